"""Analysis, the experiments on top of training: Grad-CAM and figures (:mod:`.visualize`),
ablation sweeps (:mod:`.ablate`, :mod:`.ablate_table`, :mod:`.launch`), training curves (:func:`plot_runs`), and a model
and inputs from a config or a checkpoint (:mod:`.loading`).

The measurements they use live one floor down, in :mod:`staa_snn.measure`, and are re-exported
here: operation counts, firing rates and energy (:func:`profile_model`), per-step recordings of
spikes, potentials and SA gates (:class:`Monitor`)."""

from ..measure import (E_AC_PJ, E_MAC_PJ, Monitor, ProfileReport, count_operations, firing_rates, is_spiking_module,
                       profile_model)
from .plot import plot_runs

__all__ = ["Monitor", "plot_runs", "E_AC_PJ", "E_MAC_PJ", "ProfileReport", "count_operations", "firing_rates", "is_spiking_module",
           "profile_model"]
