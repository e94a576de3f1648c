"""The measuring layer: what a net computes and what it costs, below training and the application.

Operation counts, firing rates and energy (:func:`profile_model`, :mod:`.profile`), per-step
recordings of spikes, potentials and SA gates (:class:`Monitor`), and the cost and accuracy of
running a net step by step (:func:`step_costs`, :func:`exit_curve`, :mod:`.steps`). It reads nets
(``models``, ``neurons``) and nothing above them; :mod:`staa_snn.analysis` and
:mod:`staa_snn.inference` re-export it.
"""

from .monitor import Monitor
from .profile import (E_AC_PJ, E_MAC_PJ, OpRecord, ProfileReport, count_operations, energy_mj, firing_rates,
                      is_spiking_module, profile_model)
from .steps import EXITS, exit_curve, step_costs

__all__ = ["EXITS", "E_AC_PJ", "E_MAC_PJ", "Monitor", "OpRecord", "ProfileReport", "count_operations", "energy_mj",
           "exit_curve", "firing_rates", "is_spiking_module", "profile_model", "step_costs"]
