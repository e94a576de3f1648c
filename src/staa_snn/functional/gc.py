"""Global Context block, GC (method.md, section 5; Eq. 7-10).

GCNet-style attention over the spatial positions of one step's input, for a
batch ``x [N, C, *spatial]`` (``N`` is ``T*B``: the block is stateless, so all
steps go through it in one call)::

    k = softmax_j( W_k x_j + b_k )                       # [N, S]   key, Conv1x1 C->1
    c = sum_j k_j x_j                                    # [N, C]   context
    v = W_up ReLU( LN( W_down c + b_down ) ) + b_up      # [N, C]   value, C -> C/r -> C
    X^ = X + v            (fusion "add")   or   X (.) 2 sigmoid(v)   (fusion "scale")

Both fusions are the identity at ``v = 0``, where the value-up convolution starts.

The 1x1 convolutions are written as matrix products on ``[N, C]``; their
parameters are exactly those of ``Conv2d(..., kernel_size=1)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["GC_FUSIONS", "global_context", "gc_context", "gc_value"]

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
    context = gc_context(x, key_weight, key_bias)
    value = gc_value(context, down_weight, down_bias, ln_weight, ln_bias, up_weight, up_bias, ln_eps)
    value = value.reshape((n, c) + (1,) * (x.dim() - 2))
    if fusion == "add":                                                # Eq. 10
        return x + value
    return x * (2 * torch.sigmoid(value))


def gc_context(x: Tensor, key_weight: Tensor, key_bias: Tensor | None) -> Tensor:
    """Eq. 7-8: the attention-pooled context ``c [N, C]`` of ``x [N, C, *spatial]``.

    Adding a per-channel constant ``P`` (the channel-shaped PE) to ``x`` shifts every
    key logit by the same ``W_k P``, which softmax ignores, so the context of ``x + P``
    is ``c + P``: the neuron's fast path uses this to never materialise ``x + P``.
    """
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)                                         # [N, C, S]
    # bmm, not matmul: matmul would fold ``flat`` into a transposed copy and save that for backward
    logits = torch.bmm(key_weight.expand(n, 1, c), flat).squeeze(1)    # [N, S]
    if key_bias is not None:
        logits = logits + key_bias
    attn = torch.softmax(logits, dim=-1)                               # Eq. 7
    return torch.bmm(flat, attn.unsqueeze(-1)).squeeze(-1)            # Eq. 8, [N, C]


def gc_value(
    context: Tensor,
    down_weight: Tensor,
    down_bias: Tensor | None,
    ln_weight: Tensor | None,
    ln_bias: Tensor | None,
    up_weight: Tensor,
    up_bias: Tensor | None,
    ln_eps: float = 1e-5,
) -> Tensor:
    """Eq. 9: the value ``v = W_up ReLU(LN(W_down c + b_down)) + b_up``, ``[N, C]``."""
    hidden = F.linear(context, down_weight, down_bias)
    hidden = F.relu(F.layer_norm(hidden, hidden.shape[-1:], ln_weight, ln_bias, ln_eps))
    return F.linear(hidden, up_weight, up_bias)
