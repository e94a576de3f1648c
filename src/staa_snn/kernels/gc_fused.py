"""GC's attention-pooled context (Eq. 7-8) as one autograd node with a hand-written backward.

Same numbers as :func:`staa_snn.functional.gc_context`. Autograd through the two
``bmm`` writes two activation-sized gradients for ``x`` (one from the key logits,
one from the pooling) and adds them; both are rank one per sample::

    dL/dx[n] = W_k^T dlogits[n] + dc[n] attn[n]^T      ([C, S])

so backward writes them with a single ``bmm`` of ``[N, C, 2] x [N, 2, S]``, after two
reads of ``x`` for ``dattn = x^T dc`` and ``dW_k = sum_n x dlogits``. Saved for
backward: ``x`` (shared with the neuron) and the attention ``[N, S]``.

Tested against the reference, forward and backward, in ``tests/test_kernels.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._dtypes import autocast_off, cast, common_dtype

__all__ = ["gc_context_fused"]


class _GCContext(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, key_weight: Tensor, key_bias: Tensor | None):  # type: ignore[override]
        n, c = x.shape[:2]
        flat = x.reshape(n, c, -1)
        logits = torch.bmm(key_weight.expand(n, 1, c), flat).squeeze(1)
        if key_bias is not None:
            logits = logits + key_bias
        attn = torch.softmax(logits, dim=-1)
        ctx.save_for_backward(x, key_weight, attn)
        ctx.has_bias = key_bias is not None
        return torch.bmm(flat, attn.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def backward(ctx, grad_context: Tensor):  # type: ignore[override]
        x, key_weight, attn = ctx.saved_tensors
        n, c = x.shape[:2]
        flat = x.reshape(n, c, -1)
        grad_attn = torch.bmm(grad_context.unsqueeze(1), flat).squeeze(1)               # [N, S]
        grad_logits = attn * (grad_attn - (attn * grad_attn).sum(-1, keepdim=True))   # softmax backward
        grad_weight = torch.bmm(flat, grad_logits.unsqueeze(-1)).sum(0).view_as(key_weight)
        grad_bias = grad_logits.sum().view(1) if ctx.has_bias else None
        left = torch.cat([key_weight.t().expand(n, c, 1), grad_context.unsqueeze(-1)], dim=-1)   # [N, C, 2]
        grad_x = torch.bmm(left, torch.stack([grad_logits, attn], dim=1)).view_as(x)           # [N, C, S]
        return grad_x, grad_weight, grad_bias


def gc_context_fused(x: Tensor, key_weight: Tensor, key_bias: Tensor | None) -> Tensor:
    """The context ``c [N, C]`` of ``x [N, C, *spatial]``, as :func:`staa_snn.functional.gc_context`."""
    dtype = common_dtype(x, key_weight, key_bias)
    with autocast_off(x.device):
        return _GCContext.apply(cast(x, dtype), cast(key_weight, dtype), cast(key_bias, dtype))
