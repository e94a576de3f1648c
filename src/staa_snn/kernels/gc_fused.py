"""GC's attention-pooled context (Eq. 7-8) as one autograd node with a hand-written backward.

Same numbers as :func:`staa_snn.functional.gc_context`. Autograd through the two
``bmm`` writes two activation-sized gradients for ``x`` (one from the key logits,
one from the pooling) and adds them; both are rank one per sample::

    dL/dx[n] = W_k^T dlogits[n] + dc[n] attn[n]^T      ([C, S])

so backward writes them with a single ``bmm`` of ``[N, C, 2] x [N, 2, S]``, after two
reads of ``x`` for ``dattn = x^T dc`` and ``dW_k = sum_n x dlogits``. Saved for
backward: ``x`` (shared with the neuron) and the attention ``[N, S]``.

The fused STAA-LIF node computes GC (and PE) inside itself as the input shift ``b``
(:func:`shift_forward`, :func:`shift_backward`), so that ``dL/dX`` is written once.

Tested against the reference, forward and backward, in ``tests/test_kernels.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._dtypes import autocast_off, cast, common_dtype

__all__ = ["GCWeights", "gc_context_fused", "shift_backward", "shift_forward"]


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


# -- GC and PE as the input shift of the fused STAA-LIF node ------------------------------------

class GCWeights(NamedTuple):
    """The GC block's parameters, as plain tensors (the shapes of ``nn.Linear`` / ``nn.LayerNorm``)."""

    key_weight: Tensor
    key_bias: Tensor | None
    down_weight: Tensor
    down_bias: Tensor | None
    ln_weight: Tensor | None
    ln_bias: Tensor | None
    up_weight: Tensor
    up_bias: Tensor | None


def shift_forward(x: Tensor, pe: Tensor | None, gc: GCWeights | None, pe_input: bool, ln_eps: float):
    """``(b, GAP(X), saved)`` for ``x [T, B, C, S]``: the shift ``b [T, B, C]`` with
    ``GC(X + P) = X + b`` (``b = P + v(c(X) + P)``; ``b = v(c(X)) + P`` when PE follows GC, i.e.
    ``pe_input=False``), the spatial means ``GAP(X) [T, B, C]``, and what :func:`shift_backward` needs.

    ``X`` is read twice: once for the key logits, once for the context and GAP together (one
    ``bmm`` against ``[attention, 1/S]``).
    """
    T, B, C, S = x.shape
    if gc is None:
        shift = pe[:, None, :].expand(T, B, C) if pe is not None else x.new_zeros(T, B, C)
        return shift, x.mean(-1), None
    flat = x.reshape(T * B, C, S)
    logits = torch.bmm(gc.key_weight.expand(T * B, 1, C), flat).squeeze(1)
    if gc.key_bias is not None:
        logits = logits + gc.key_bias
    attn = torch.softmax(logits, dim=-1)                                                   # [TB, S]
    pooled = torch.bmm(flat, torch.stack([attn, torch.full_like(attn, 1.0 / S)], dim=-1))  # [TB, C, 2]
    context, gap = pooled[..., 0], pooled[..., 1].reshape(T, B, C)
    if pe is not None and pe_input:
        context = (context.view(T, B, C) + pe[:, None, :]).view(T * B, C)
    hidden = F.linear(context, gc.down_weight, gc.down_bias)
    normed, ln_mean, ln_rstd = torch.ops.aten.native_layer_norm(hidden, hidden.shape[-1:], gc.ln_weight,
                                                                 gc.ln_bias, ln_eps)
    relu = normed.clamp_min(0)
    shift = F.linear(relu, gc.up_weight, gc.up_bias).view(T, B, C)
    if pe is not None:
        shift = shift + pe[:, None, :]
    return shift, gap, (attn, context, hidden, ln_mean, ln_rstd, relu)


def shift_backward(grad_x: Tensor | None, grad_shift: Tensor, x: Tensor, pe: Tensor | None, gc: GCWeights | None,
                   saved, pe_input: bool):
    """Gradients of :func:`shift_forward` from ``dL/db [T, B, C]``: ``(dL/dX, dL/dP [T, C] or None,
    dL/d(GC weights) as a :class:`GCWeights` or None)``, where ``dL/dX`` is ``grad_x`` (the loop's)
    plus GC's two rank-one terms (through the key logits and through the pooling): added in place
    with one ``baddbmm`` when eager, element-wise when compiled (where the compiler fuses them with
    the loop's writes)."""
    T, B, C, S = x.shape
    grad_pe = grad_shift.sum(1) if pe is not None else None
    if gc is None:
        return grad_x, grad_pe, None
    attn, context, hidden, ln_mean, ln_rstd, relu = saved
    grad_v = grad_shift.reshape(T * B, C)
    grad_up_w = grad_v.t() @ relu
    grad_relu = (grad_v @ gc.up_weight) * (relu > 0)
    grad_hidden, grad_ln_w, grad_ln_b = torch.ops.aten.native_layer_norm_backward(
        grad_relu, hidden, hidden.shape[-1:], ln_mean, ln_rstd, gc.ln_weight, gc.ln_bias,
        [True, gc.ln_weight is not None, gc.ln_bias is not None])
    grad_down_w = grad_hidden.t() @ context
    grad_context = grad_hidden @ gc.down_weight                                             # [TB, C]
    if pe is not None and pe_input:
        grad_pe = grad_pe + grad_context.view(T, B, C).sum(1)
    flat = x.reshape(T * B, C, S)
    grad_attn = torch.bmm(grad_context.unsqueeze(1), flat).squeeze(1)                      # [TB, S]
    grad_logits = attn * (grad_attn - (attn * grad_attn).sum(-1, keepdim=True))            # softmax backward
    grad_key_w = torch.bmm(flat, grad_logits.unsqueeze(-1)).sum(0).view_as(gc.key_weight)
    if grad_x is not None:
        if torch.compiler.is_compiling():  # element-wise: fused with the loop's writes of dL/dX (no copy)
            grad_x = (grad_x.view(T * B, C, S) + gc.key_weight.view(1, C, 1) * grad_logits.unsqueeze(1)
                      + grad_context.unsqueeze(-1) * attn.unsqueeze(1)).view(T, B, C, S)
        else:  # in place, one pass
            left = torch.cat([gc.key_weight.t().expand(T * B, C, 1), grad_context.unsqueeze(-1)], dim=-1)
            grad_x.view(T * B, C, S).baddbmm_(left, torch.stack([grad_logits, attn], dim=1))  # [TB, C, 2] x [TB, 2, S]
    grads = GCWeights(
        grad_key_w, grad_logits.sum().view(1) if gc.key_bias is not None else None,
        grad_down_w, grad_hidden.sum(0) if gc.down_bias is not None else None,
        grad_ln_w, grad_ln_b, grad_up_w, grad_v.sum(0) if gc.up_bias is not None else None)
    return grad_x, grad_pe, grads
