"""Step Attention, SA (method.md, section 6; Eq. 12).

SA replaces the plain sum of the LIF update by an attention-weighted sum of
its two terms, the carried history ``h = M (.) V[t-1]`` and the new input
``u = N (.) X^[t]``::

    z = concat(GAP(h), GAP(u))                         # [B, 2C]
    g = lambda * sigmoid( W2 ReLU( W1 z + b1 ) + b2 )  # [B, 2C]   (gate "sigmoid")
    g = lambda * softmax over the two terms, per channel (gate "softmax")
    H = g_h (.) h + g_u (.) u

With ``W2 = 0, b2 = 0`` both gates give ``g = 1`` exactly (for ``lambda = 2``):
SA starts as the plain sum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SA_GATES", "step_attention_gates", "step_attention"]

SA_GATES = ("sigmoid", "softmax")


def _gap(x: Tensor) -> Tensor:
    """Global average over the spatial dims of ``[B, C, *spatial]`` -> ``[B, C]``."""
    return x.flatten(2).mean(-1) if x.dim() > 2 else x


def step_attention_gates(
    h: Tensor,
    u: Tensor,
    w1: Tensor,
    b1: Tensor | None,
    w2: Tensor,
    b2: Tensor | None,
    sa_lambda: float = 2.0,
    gate: str = "sigmoid",
) -> tuple[Tensor, Tensor]:
    """Gates ``(g_h, g_u)``, each ``[B, C]``, for ``h, u [B, C, *spatial]``."""
    if gate not in SA_GATES:
        raise ValueError(f"unknown SA gate {gate!r}; expected one of {SA_GATES}")
    c = h.shape[1]
    z = torch.cat([_gap(h), _gap(u)], dim=1)                    # [B, 2C]
    logits = F.linear(F.relu(F.linear(z, w1, b1)), w2, b2)      # [B, 2C]
    if gate == "sigmoid":
        g = sa_lambda * torch.sigmoid(logits)
        return g[:, :c], g[:, c:]
    g = sa_lambda * torch.softmax(logits.view(-1, 2, c), dim=1)
    return g[:, 0], g[:, 1]


def step_attention(h: Tensor, u: Tensor, g_h: Tensor, g_u: Tensor) -> Tensor:
    """Eq. 12: ``H = g_h (.) h + g_u (.) u``, gates ``[B, C]`` broadcast over space."""
    shape = g_h.shape + (1,) * (h.dim() - 2)
    return g_h.view(shape) * h + g_u.view(shape) * u
