"""Time-Step Random Dropout, TSRD (method.md, section 8).

In training, each step of each STAA-LIF layer skips the augmentation (PE, GC,
SA) with probability ``p`` and uses the basic aggregation
``H = M (.) V[t-1] + N (.) X[t]`` instead.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["TSRD_MODES", "tsrd_drop_mask", "check_tsrd_p", "dropped_gates", "dropped_input", "dropped_shift"]

TSRD_MODES = ("batch", "sample")


# The rule of a dropped step, written once for every path (reference, fused, compiled): the
# basic aggregation, i.e. the raw input, gates 1 and no input shift.

def dropped_input(raw: Tensor, augmented: Tensor, drop: Tensor) -> Tensor:
    """``raw`` where ``drop`` is True (a dropped step takes the basic aggregation), else
    ``augmented``; ``drop`` (``[B]``, ``[T, B]``, ...) broadcast over the trailing dimensions."""
    return torch.where(drop.view(drop.shape + (1,) * (augmented.dim() - drop.dim())), raw, augmented)


def dropped_gates(gates: Tensor, keep: Tensor) -> Tensor:
    """SA gates ``[..., B, K]`` set to 1 (no gating) where ``keep`` (``[..., B]``) is False."""
    return torch.where(keep[..., None], gates, torch.ones((), dtype=gates.dtype, device=gates.device))


def dropped_shift(shift: Tensor, keep: Tensor) -> Tensor:
    """An input shift ``[..., B, C]`` (PE, GC's context) removed where ``keep`` (``[..., B]``) is False."""
    return shift * keep[..., None]


def check_tsrd_p(p: float) -> float:
    """``p`` as a float if it lies in ``[0, 1]`` (at 1 every training step is basic)."""
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"tsrd_p must be in [0, 1], got {p!r}")
    return float(p)


def tsrd_drop_mask(
    T: int,
    batch: int,
    p: float,
    *,
    mode: str = "batch",
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Boolean drop mask, ``True`` where a step uses the basic aggregation.

    ``mode="batch"`` (default): one draw per step, shared by the batch,
    shape ``[T, 1]``. ``mode="sample"``: one draw per (step, sample), ``[T, B]``.
    """
    if mode not in TSRD_MODES:
        raise ValueError(f"unknown tsrd_mode {mode!r}; expected one of {TSRD_MODES}")
    check_tsrd_p(p)
    shape = (T, 1) if mode == "batch" else (T, batch)
    return torch.rand(shape, device=device, generator=generator) < p
