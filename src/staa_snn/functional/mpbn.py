"""Membrane-potential batch normalisation, MPBN (method.md, section 11).

The MPBN neuron normalises the charged potential before it fires::

    Hn[t] = BN_mp(H[t])            per channel, over the batch and spatial positions of one step
    S[t]  = Heaviside(Hn[t] - V_th)
    V[t]  = H[t] (1 - S[t])        the reset acts on the raw H; Hn is never carried

In training each step is normalised with its own batch statistics (and the
running statistics move once per step); in eval BN_mp is an affine map per
channel, so ``Hn >= V_th`` is a comparison of the raw ``H`` with a per-channel
threshold: :func:`fold_thresholds`. Because the reset acts on the raw ``H``, the
folded neuron fires exactly where the unfolded one does.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = ["membrane_batch_norm", "fold_thresholds", "folded_fire_input"]


def membrane_batch_norm(h: Tensor, bn: Callable[[Tensor], Tensor]) -> Tensor:
    """BN_mp of one step ``h [B, C, *spatial]`` (or ``[B, C]``): ``bn``, a BatchNorm module that
    holds the affine parameters and running statistics (``nn.BatchNorm1d(C)``, or its
    ``SyncBatchNorm`` conversion), applied to ``h`` viewed as ``[B, C, L]``, so the statistics
    are per channel over the batch and the spatial positions."""
    return bn(h.reshape(h.shape[0], h.shape[1], -1)).view_as(h)


def fold_thresholds(
    v_threshold: float, running_mean: Tensor, running_var: Tensor, weight: Tensor | None, bias: Tensor | None,
    eps: float,
) -> tuple[Tensor, Tensor]:
    """Per-channel ``(threshold, sign)`` such that ``BN_mp(H) >= V_th`` (eval) exactly when
    ``sign (H - threshold) >= 0``::

        threshold_c = (V_th - b_c) sqrt(var_c + eps) / g_c + mu_c
        sign_c = +1 where g_c > 0 (fire on H >= threshold), -1 where g_c < 0 (fire on H <= threshold)

    Where ``g_c = 0``, ``BN_mp(H) = b_c`` whatever ``H``: the channel always fires
    (``threshold = -inf``) when ``b_c >= V_th`` and never (``+inf``) otherwise. Computed in
    float64, returned in the dtype of the running mean.
    """
    dtype = running_mean.dtype
    mu, var = running_mean.double(), running_var.double()
    g = torch.ones_like(mu) if weight is None else weight.detach().double()
    b = torch.zeros_like(mu) if bias is None else bias.detach().double()
    nonzero = g != 0
    threshold = (v_threshold - b) * torch.sqrt(var + eps) / torch.where(nonzero, g, 1.0) + mu
    constant = torch.where(b >= v_threshold, -torch.inf, torch.inf).to(mu)
    threshold = torch.where(nonzero, threshold, constant)
    sign = torch.where(g < 0, -1.0, 1.0).to(mu)
    return threshold.to(dtype), sign.to(dtype)


def folded_fire_input(h: Tensor, threshold: Tensor, sign: Tensor) -> Tensor:
    """``sign (H - threshold)`` for one step ``h [B, C, ...]``: the folded neuron fires where it is ``>= 0``.

    The difference is exactly zero only where ``H == threshold``, so this comparison
    with 0 is the comparison of ``H`` with the threshold, with no rounding.
    """
    shape = (-1,) + (1,) * (h.dim() - 2)
    return sign.view(shape) * (h - threshold.view(shape))
