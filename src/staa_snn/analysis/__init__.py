"""Analysis: operation counts, firing rates and energy (:func:`profile_model`),
Grad-CAM and figures (:mod:`.visualize`), ablation sweeps (:mod:`.ablate`), training
curves (:func:`plot_runs`), per-step recordings of spikes, potentials and SA gates (:class:`Monitor`)."""

from .profile import (E_AC_PJ, E_MAC_PJ, ProfileReport, count_operations, firing_rates, is_spiking_module,
                      profile_model)

from .monitor import Monitor
from .plot import plot_runs

__all__ = ["Monitor", "plot_runs", "E_AC_PJ", "E_MAC_PJ", "ProfileReport", "count_operations", "firing_rates", "is_spiking_module",
           "profile_model"]
