"""Pure reference math of ``docs/method.md``: one small file per idea.

These functions hold no state; the modules of :mod:`staa_snn.neurons` hold the
parameters and call them. Fast paths (``staa_snn.kernels``) are tested against
these.
"""

from .gc import GC_FUSIONS, gc_context, gc_value, global_context
from .lif import charge, fire, hard_reset, lif_coefficients, lif_multistep, lif_step
from .mpbn import fold_thresholds, folded_fire_input, membrane_batch_norm
from .pe import add_position_encoding, sinusoidal_position_encoding
from .sa import SA_GATES, step_attention, step_attention_gates
from .staa import staa_lif_multistep, staa_lif_step
from .surrogate import (
    SURROGATES, ATan, Rectangle, Sigmoid, Surrogate, Tanh, Triangle, get_surrogate, heaviside, indicator,
)
from .tsrd import TSRD_MODES, check_tsrd_p, tsrd_drop_mask

__all__ = [
    "ATan", "GC_FUSIONS", "Rectangle", "SA_GATES", "SURROGATES", "Sigmoid", "Surrogate", "TSRD_MODES",
    "Tanh", "Triangle", "add_position_encoding", "charge", "check_tsrd_p", "fire", "fold_thresholds",
    "folded_fire_input", "gc_context", "gc_value", "get_surrogate", "global_context", "hard_reset", "heaviside",
    "indicator", "lif_coefficients", "lif_multistep", "lif_step", "membrane_batch_norm",
    "sinusoidal_position_encoding", "staa_lif_multistep", "staa_lif_step", "step_attention", "step_attention_gates",
    "tsrd_drop_mask",
]
