"""Fast paths. Each is tested against :mod:`staa_snn.functional`, forward and backward;
deleting this package would leave the reference path working."""

from ._compile import compile_unsupported
from .backend import AUTO_COMPILE_MIN_STEPS, resolve_backend
from .gc_fused import gc_context_fused
from .lif_fused import lif_multistep_fused
from .spike_storage import binary_saved_tensors, mark_binary
from .staa_compiled import staa_lif_multistep_compiled
from .staa_fused import staa_lif_multistep_fused

__all__ = [
    "AUTO_COMPILE_MIN_STEPS", "binary_saved_tensors", "compile_unsupported", "gc_context_fused", "lif_multistep_fused",
    "mark_binary", "resolve_backend", "staa_lif_multistep_compiled", "staa_lif_multistep_fused",
]
