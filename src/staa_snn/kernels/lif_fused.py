"""Fused multi-step (adaptive) LIF: the recurrence of ``functional.lif.lif_multistep`` as one
autograd node with a hand-written backward through time.

The reference implementation lets autograd record every elementwise op of every
step, saving about four activation-sized tensors per layer. This one saves only
the membrane potentials ``H [T, ...]`` and rebuilds everything else in backward:

* ``S[t] = 1(H[t] >= V_th)`` and the surrogate ``sigma'(H[t] - V_th)``;
* ``V[t-1]`` from ``H[t-1]`` (reset where it fired);
* the input term ``N X[t] = H[t] - V_reset - M (V[t-1] - V_reset)``, for ``dL/dN``.

Backward, from ``dL/dS`` and the carried ``dL/dV[t]``::

    dV/dH   = (1 - S) + (V_reset - H) sigma'       ((1 - S) with detach_reset)
    dL/dH   = dL/dS sigma' + dL/dV[t] dV/dH
    dL/dX   = N dL/dH,   dL/dV[t-1] = M dL/dH
    dL/dM  += (V[t-1] - V_reset) dL/dH,   dL/dN += X dL/dH   (summed to the parameter's shape)

Tested against the reference, forward and backward, in ``tests/test_kernels.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..functional.surrogate import Surrogate, indicator
from ._compile import StepOutput, maybe_compiled
from ._dtypes import autocast_off, cast, common_dtype

__all__ = ["lif_multistep_fused"]


def _sum_to(grad: Tensor, like: Tensor) -> Tensor:
    """Sum a gradient of one step ``[B, ...]`` down to the shape of a broadcast parameter."""
    while grad.dim() > like.dim():
        grad = grad.sum(0)
    dims = tuple(i for i, s in enumerate(like.shape) if s == 1 and grad.shape[i] != 1)
    return grad.sum(dims, keepdim=True) if dims else grad


def after_reset(h: Tensor, s: Tensor, v_reset: float, out: Tensor | None = None) -> Tensor:
    """``V - V_reset`` after the hard reset, from ``H`` and its spikes ``s`` (0/1 floats):
    ``(H - V_reset)(1 - s)``, written as ``a - a s`` (exact; no ``bool`` tensor, which is slow on the CPU)."""
    a = h - v_reset if v_reset != 0.0 else h
    return torch.addcmul(a, a, s, value=-1.0, out=out)


def reset_history(h: Tensor, v_threshold: float, v_reset: float, out: Tensor | None = None) -> Tensor:
    """``V - V_reset`` after firing and resetting from ``H`` (the next step's history term)."""
    return after_reset(h, indicator(torch.ge, h, v_threshold), v_reset, out=out)


def grad_membrane(h: Tensor, grad_s: Tensor, grad_v: Tensor | None, v_threshold: float, v_reset: float,
                  surrogate: Surrogate, detach_reset: bool, scale: float = 1.0) -> Tensor:
    """``dL/dH[t]`` from ``dL/dS[t]`` and the carried ``scale * dL/dV[t]`` (``None`` at the last step)::

        dL/dH = dL/dS sigma' + dL/dV ((1 - S) + (V_reset - H) sigma')     ((1 - S) with detach_reset)
    """
    surrogate_grad = surrogate.grad(h - v_threshold)
    grad_h = grad_s * surrogate_grad
    if grad_v is not None:
        dv_dh = indicator(torch.lt, h, v_threshold)                                          # 1 - S
        if not detach_reset:
            dv_dh.addcmul_(surrogate_grad, h - v_reset if v_reset != 0.0 else h, value=-1.0)  # + (V_reset - H) sigma'
        grad_h.addcmul_(grad_v, dv_dh, value=scale)
    return grad_h


def _forward_loop(x: Tensor, m, n, v_threshold: float, v_reset: float) -> tuple[Tensor, Tensor]:
    """Membrane potentials ``H`` and spikes ``S`` of all steps, from rest."""
    # Eager, steps are written in place into H and S: on the CPU every activation-sized
    # temporary costs a pass (and [T, ...]-sized ones page faults as well).
    H, S = StepOutput(x), StepOutput(x)
    hv = None                                               # V[t-1] - V_reset (None at rest)
    for t in range(x.shape[0]):
        h = H.put(t, torch.mul(x[t], n, out=H.out(t)))
        if v_reset != 0.0:
            h.add_(v_reset)
        if hv is not None:
            h.addcmul_(m, hv) if isinstance(m, Tensor) else h.add_(hv, alpha=m)
        hv = after_reset(h, S.put(t, indicator(torch.ge, h, v_threshold, out=S.out(t))), v_reset)
    return H.result(), S.result()


def _backward_loop(H: Tensor, grad_s: Tensor, m, n, v_threshold: float, v_reset: float, surrogate: Surrogate,
                   detach_reset: bool, need_x: bool, need_m: bool, need_n: bool):
    """Backward through time from ``dL/dS`` (see the module docstring)."""
    vth, vr, sg = v_threshold, v_reset, surrogate
    grad_x = StepOutput(H) if need_x else None
    grad_m = torch.zeros_like(m) if need_m else None
    grad_n = torch.zeros_like(n) if need_n else None
    grad_v = None  # dL/dV[t], carried backwards
    for t in range(H.shape[0] - 1, -1, -1):
        h = H[t]
        if isinstance(m, Tensor) and grad_v is not None:  # dL/dV[t] = M dL/dH[t+1]
            grad_v = grad_v.mul_(m)
        grad_h = grad_membrane(h, grad_s[t], grad_v, vth, vr, sg, detach_reset,
                               scale=1.0 if isinstance(m, Tensor) else m)
        if need_x:
            grad_x.put(t, torch.mul(grad_h, n, out=grad_x.out(t)))
        if need_m or need_n:
            if t > 0:
                hist = reset_history(H[t - 1], vth, vr)   # V[t-1] - V_reset
            else:
                hist = torch.zeros_like(h)
            # sum dH (V[t-1] - V_reset), to the shape of M (of N when M is a number)
            grad_hist = _sum_to(grad_h * hist, m if isinstance(m, Tensor) else n)
            if need_m:
                grad_m += grad_hist
            if need_n:  # N X[t] = H[t] - V_reset - M (V[t-1] - V_reset); M is constant over the summed dims
                grad_drive = _sum_to(grad_h * (h - vr) if vr != 0.0 else grad_h * h, n)
                grad_n += (grad_drive - m * grad_hist) / n
        grad_v = grad_h  # dL/dV[t-1] = M dL/dH[t]: M is applied at the next step
    return (grad_x.result() if need_x else None), grad_m, grad_n


class _FusedLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, m, n, v_threshold, v_reset, surrogate, detach_reset, compiled):  # type: ignore[override]
        H, spikes = maybe_compiled(_forward_loop, compiled)(x, m, n, v_threshold, v_reset)
        ctx.save_for_backward(H, *(p for p in (m, n) if isinstance(p, Tensor)))
        ctx.m_is_tensor, ctx.n_is_tensor = isinstance(m, Tensor), isinstance(n, Tensor)
        ctx.m, ctx.n = (None if ctx.m_is_tensor else m), (None if ctx.n_is_tensor else n)
        ctx.v_threshold, ctx.v_reset, ctx.surrogate, ctx.detach_reset = v_threshold, v_reset, surrogate, detach_reset
        ctx.compiled = compiled
        return spikes

    @staticmethod
    def backward(ctx, grad_s):  # type: ignore[override]
        H, *params = ctx.saved_tensors
        m = params.pop(0) if ctx.m_is_tensor else ctx.m
        n = params.pop(0) if ctx.n_is_tensor else ctx.n
        need_x, need_m, need_n = ctx.needs_input_grad[:3]
        backward_loop = maybe_compiled(_backward_loop, ctx.compiled)
        grad_x, grad_m, grad_n = backward_loop(H, grad_s.contiguous(), m, n, ctx.v_threshold, ctx.v_reset,
                                               ctx.surrogate, ctx.detach_reset, need_x, need_m, need_n)
        return grad_x, grad_m, grad_n, None, None, None, None, None


def lif_multistep_fused(
    x_seq: Tensor,
    m: "Tensor | float",
    n: "Tensor | float",
    *,
    v_threshold: float,
    v_reset: float,
    surrogate: Surrogate,
    detach_reset: bool = False,
    compiled: bool = False,
) -> Tensor:
    """Spikes ``[T, B, ...]`` of the (adaptive) LIF from rest; same numbers as
    :func:`staa_snn.functional.lif_multistep`, with far less memory saved for backward.
    ``compiled=True`` runs the forward and backward loops as ``torch.compile``d
    kernels (several times faster once compiled; the first call compiles)."""
    dtype = common_dtype(x_seq, m, n)
    with autocast_off(x_seq.device):
        return _FusedLIF.apply(cast(x_seq, dtype), cast(m, dtype), cast(n, dtype), v_threshold, v_reset, surrogate,
                               detach_reset, compiled)
