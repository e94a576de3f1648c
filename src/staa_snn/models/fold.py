"""Transforms of a built net: fold MPBN for inference, switch the neuron backend."""

from __future__ import annotations

from torch import nn

from ..neurons import MultiStepNeuron
from ..kernels import compile_unsupported
from ..neurons.base import BACKENDS

__all__ = ["fold_mpbn", "set_backend"]


def fold_mpbn(model: nn.Module) -> nn.Module:
    """Fold every neuron's BN_mp (MPBN, method.md section 11) into per-channel thresholds, in
    place, and put ``model`` in ``eval()``; returns it.

    The folded net fires exactly where the unfolded one fires in ``eval()``, with no
    normalisation left in its neurons (what ``staa-snn profile`` counts and what an
    exported net computes). A net without BN_mp is returned as it is (in ``eval()``).
    """
    for module in model.modules():
        if isinstance(module, MultiStepNeuron) and module.bn_mp is not None:
            module.fold_membrane_bn()
    return model.eval()


def set_backend(model: nn.Module, backend: str) -> nn.Module:
    """Run every neuron of ``model`` on ``backend`` (``"fused"``, ``"compiled"``, ``"reference"``),
    in place; returns ``model``. The numbers stay the same (the backends are tested equal)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if backend == "compiled" and (problem := compile_unsupported()):
        raise ValueError(problem)
    for module in model.modules():
        if isinstance(module, MultiStepNeuron):
            module.backend = backend
    return model
