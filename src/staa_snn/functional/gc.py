"""Global Context block, GC (method.md, section 5; Eq. 7-10).

GCNet-style attention over the spatial positions of one step's input, for a
batch ``x [N, C, *spatial]`` (``N`` is ``T*B``: the block is stateless, so all
steps go through it in one call)::

    k = softmax_j( W_k x_j + b_k )                       # [N, S]   key, Conv1x1 C->1
    c = sum_j k_j x_j                                    # [N, C]   context
    v = W_up ReLU( LN( W_down c + b_down ) ) + b_up      # [N, C]   value, C -> C/r -> C
    X^ = X + v            (fusion "add")   or   X (.) sigmoid(v)   (fusion "scale")

The 1x1 convolutions are written as matrix products on ``[N, C]``; their
parameters are exactly those of ``Conv2d(..., kernel_size=1)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["GC_FUSIONS", "global_context"]

GC_FUSIONS = ("add", "scale")


def global_context(
    x: Tensor,
    key_weight: Tensor,
    key_bias: Tensor | None,
    down_weight: Tensor,
    down_bias: Tensor | None,
    ln_weight: Tensor | None,
    ln_bias: Tensor | None,
    up_weight: Tensor,
    up_bias: Tensor | None,
    fusion: str = "add",
    ln_eps: float = 1e-5,
) -> Tensor:
    """Apply the GC block to ``x [N, C, *spatial]`` (``*spatial`` may be empty).

    Weights: ``key_weight [1, C]``, ``down_weight [C/r, C]``, ``up_weight [C, C/r]``
    (the shapes of ``nn.Linear``), LayerNorm over the ``C/r`` bottleneck.
    """
    if fusion not in GC_FUSIONS:
        raise ValueError(f"unknown GC fusion {fusion!r}; expected one of {GC_FUSIONS}")
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)                                         # [N, C, S]
    logits = torch.matmul(key_weight, flat).squeeze(1)                 # [N, S]
    if key_bias is not None:
        logits = logits + key_bias
    attn = torch.softmax(logits, dim=-1)                               # Eq. 7
    context = torch.bmm(flat, attn.unsqueeze(-1)).squeeze(-1)         # Eq. 8, [N, C]
    hidden = F.linear(context, down_weight, down_bias)                 # Eq. 9
    hidden = F.relu(F.layer_norm(hidden, hidden.shape[-1:], ln_weight, ln_bias, ln_eps))
    value = F.linear(hidden, up_weight, up_bias)                       # [N, C]
    value = value.reshape((n, c) + (1,) * (x.dim() - 2))
    if fusion == "add":                                                # Eq. 10
        return x + value
    return x * torch.sigmoid(value)
