"""Fused multi-step (adaptive) LIF: the recurrence of ``functional.lif.lif_multistep`` as one
autograd node with a hand-written backward through time.

The reference implementation lets autograd record every elementwise op of every
step, saving about four activation-sized tensors per layer. This one saves one:
the membrane potentials ``H [T, ...]`` (the input ``X`` instead when ``N`` needs a
gradient; ``H`` is then rebuilt by one more forward loop in backward). Everything
else is rebuilt in backward:

* ``S[t] = 1(H[t] >= V_th)`` and the surrogate ``sigma'(H[t] - V_th)``;
* ``V[t-1]`` from ``H[t-1]`` (reset where it fired).

Backward, from ``dL/dS`` and the carried ``dL/dV[t]``::

    dV/dH   = (1 - S) + (V_reset - H) sigma'       ((1 - S) with detach_reset)
    dL/dH   = dL/dS sigma' + dL/dV[t] dV/dH
    dL/dX   = N dL/dH,   dL/dV[t-1] = M dL/dH
    dL/dM  += (V[t-1] - V_reset) dL/dH,   dL/dN += X dL/dH   (summed to the parameter's shape)

With BN_mp (MPBN, method.md section 11) the spike is ``1(Hn >= V_th)`` with
``Hn = BN_mp(H)`` per step (:mod:`.membrane_bn`: ATen's batch-norm kernels, so the
same numbers as the reference), the surrogate is taken at ``Hn``, and
``dL/dS + dL/dV (V_reset - H)`` goes back through BN_mp (its batch statistics couple
the batch within a step); the per-step mean and inverse std ``[T, C]`` are saved
beside ``H``, and ``Hn`` is rebuilt from them in backward, once per step, pointwise.

Tested against the reference, forward and backward, in ``tests/test_kernels.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..functional.surrogate import Surrogate, indicator
from ._compile import StepOutput, maybe_compiled
from ._dtypes import autocast_off, cast, common_dtype
from .membrane_bn import MembraneNorm, grad_through_norm, normalized, renormalized

__all__ = ["LIFOutput", "lif_multistep_fused"]


class LIFOutput(NamedTuple):
    spikes: Tensor        # [T, B, ...]
    firing_rate: Tensor   # 0-d, the mean of the spikes (computed in the loop: no extra pass when compiled)


def _sum_to(grad: Tensor, like: Tensor) -> Tensor:
    """Sum a gradient of one step ``[B, ...]`` down to the shape of a broadcast parameter."""
    while grad.dim() > like.dim():
        grad = grad.sum(0)
    dims = tuple(i for i, s in enumerate(like.shape) if s == 1 and grad.shape[i] != 1)
    return grad.sum(dims, keepdim=True) if dims else grad


def fired(hn: Tensor, v_threshold: float, out: Tensor | None = None) -> Tensor:
    """``S = 1(Hn >= V_th)`` as 0/1 floats (``Hn``: ``H``, or ``BN_mp(H)``)."""
    return indicator(torch.ge, hn, v_threshold, out=out)


def after_reset(h: Tensor, s: Tensor, v_reset: float, out: Tensor | None = None) -> Tensor:
    """``V - V_reset`` after the hard reset, from ``H`` and its spikes ``s`` (0/1 floats):
    ``(H - V_reset)(1 - s)``, written as ``a - a s`` (exact; no ``bool`` tensor, which is slow on the CPU)."""
    a = h - v_reset if v_reset != 0.0 else h
    return torch.addcmul(a, a, s, value=-1.0, out=out)


def reset_history(h: Tensor, v_threshold: float, v_reset: float, out: Tensor | None = None,
                  hn: Tensor | None = None) -> Tensor:
    """``V - V_reset`` after firing and resetting from ``H`` (the next step's history term);
    ``hn``: the potential that fires, ``BN_mp(H)`` with MPBN."""
    return after_reset(h, fired(h if hn is None else hn, v_threshold), v_reset, out=out)


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


def grad_membrane_normed(h: Tensor, hn: Tensor, grad_s: Tensor, grad_v: Tensor | None, v_threshold: float,
                         v_reset: float, surrogate: Surrogate, detach_reset: bool, norm: MembraneNorm, mean: Tensor,
                         rstd: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`grad_membrane` with BN_mp between ``H`` and the spike (``hn = BN_mp(h)``, steps
    ``[B, C, S]``): ``(dL/dH, dL/dg, dL/db)``. The spike's gradient ``dL/dS + dL/dV (V_reset - H)``
    becomes ``dL/dHn`` through the surrogate at ``Hn``, then goes back through BN_mp; the reset's
    ``(1 - S)`` term acts on the raw ``H``."""
    grad_spike = grad_s
    if grad_v is not None and not detach_reset:  # + dL/dV (V_reset - H)
        grad_spike = torch.addcmul(grad_s, grad_v, h - v_reset if v_reset != 0.0 else h, value=-scale)
    grad_h, grad_weight, grad_bias = grad_through_norm(grad_spike * surrogate.grad(hn - v_threshold), h, norm,
                                                       mean, rstd)
    if grad_v is not None:
        grad_h.addcmul_(grad_v, indicator(torch.lt, hn, v_threshold), value=scale)         # (1 - S)
    return grad_h, grad_weight, grad_bias


def _forward_loop(x: Tensor, m, n, v_threshold: float, v_reset: float, norm: MembraneNorm | None,
                  update: bool = False, hv: Tensor | None = None):
    """Membrane potentials ``H`` and spikes ``S`` of the steps ``x [K, ...]``, from
    ``hv = V - V_reset`` before the first of them (``None``: at rest); with BN_mp the per-step
    ``(mean, rstd)``, ``[K, C]`` each (else ``None``), and with ``update`` the running statistics
    moved once per step (training); the number of spikes (0-d) and ``V - V_reset`` after the last step."""
    # Eager, steps are written in place into H and S: on the CPU every activation-sized
    # temporary costs a pass (and [T, ...]-sized ones page faults as well).
    H, S = StepOutput(x), StepOutput(x)
    stats, counts = [], []
    # The spike count: eager, one sum per step; compiled, the spikes summed over steps and reduced
    # once, so Inductor keeps the whole loop in one pass (a sum per step re-read each step's spikes).
    count = None
    for t in range(x.shape[0]):
        h = H.put(t, torch.mul(x[t], n, out=H.out(t)))
        if v_reset != 0.0:
            h.add_(v_reset)
        if hv is not None:
            h.addcmul_(m, hv) if isinstance(m, Tensor) else h.add_(hv, alpha=m)
        hn = h
        if norm is not None:
            hn, mean, rstd = normalized(h, norm, update)
            stats.append((mean, rstd))
        s = S.put(t, fired(hn, v_threshold, out=S.out(t)))
        if S.compiling:
            count = s if count is None else count + s
        else:
            counts.append(s.sum())
        hv = after_reset(h, s, v_reset)
    total = count.sum() if S.compiling else torch.stack(counts).sum()
    return H.result(), S.result(), (tuple(map(torch.stack, zip(*stats))) if stats else None), total, hv


def _backward_loop(H: Tensor, x: Tensor | None, grad_s: Tensor, m, n, v_threshold: float, v_reset: float,
                   surrogate: Surrogate, detach_reset: bool, need_x: bool, need_m: bool, need_n: bool,
                   norm: MembraneNorm | None, means: Tensor | None, rstds: Tensor | None,
                   h_prev: Tensor | None = None, grad_v: Tensor | None = None,
                   stats_prev: tuple[Tensor, Tensor] | None = None):
    """Backward through time over the steps ``H [K, ...]`` (see the module docstring); ``x`` is
    needed for ``dL/dN``. ``h_prev``: ``H`` of the step before the first (``None``: the first step
    starts at rest); ``grad_v``: ``dL/dH`` of the step after the last (``None``: the last step of
    the sequence); ``stats_prev``: BN_mp's ``(mean, rstd)`` of ``h_prev``. Returns the gradients
    of this span and ``dL/dH`` of its first step."""
    vth, vr, sg = v_threshold, v_reset, surrogate
    grad_x = StepOutput(H) if need_x else None
    grad_m = torch.zeros_like(m) if need_m else None
    grad_n = torch.zeros_like(n) if need_n else None
    grad_weight = grad_bias = None
    if norm is not None:
        grad_weight, grad_bias = torch.zeros_like(norm.weight), torch.zeros_like(norm.bias)
    owned = False    # whether grad_v is this loop's own tensor (then it is scaled in place)
    hn_next = None   # BN_mp(H[t]), when the step after it already computed it
    for t in range(H.shape[0] - 1, -1, -1):
        h = H[t]
        if isinstance(m, Tensor) and grad_v is not None:  # dL/dV[t] = M dL/dH[t+1]
            grad_v = grad_v.mul_(m) if owned else grad_v * m
        scale = 1.0 if isinstance(m, Tensor) else m
        if norm is None:
            grad_h = grad_membrane(h, grad_s[t], grad_v, vth, vr, sg, detach_reset, scale)
        else:
            hn = hn_next if hn_next is not None else renormalized(h, norm, means[t], rstds[t])
            grad_h, gw, gb = grad_membrane_normed(h, hn, grad_s[t], grad_v, vth, vr, sg, detach_reset, norm,
                                                  means[t], rstds[t], scale)
            grad_weight += gw
            grad_bias += gb
        hn_next = None
        if need_x:
            grad_x.put(t, torch.mul(grad_h, n, out=grad_x.out(t)))
        previous = H[t - 1] if t > 0 else h_prev
        if need_m and previous is not None:  # V[-1] = V_reset: no history at the first step
            if norm is not None:
                hn_next = renormalized(previous, norm, *((means[t - 1], rstds[t - 1]) if t > 0 else stats_prev))
            grad_m += _sum_to(grad_h * reset_history(previous, vth, vr, hn=hn_next), m)
        if need_n:
            grad_n += _sum_to(grad_h * x[t], n)
        grad_v, owned = grad_h, True  # dL/dV[t-1] = M dL/dH[t]: M is applied at the next step
    return (grad_x.result() if need_x else None), grad_m, grad_n, grad_weight, grad_bias, grad_v


# Compiled, sequences longer than this run as chunks of this many steps: one graph for the chunk
# whatever T (the remainder runs eagerly), so the compile time stays bounded (a graph of T steps
# takes many minutes to compile at T = 500), and each chunk is still one fused pass over its steps.
COMPILE_CHUNK = 16
EAGER_CHUNK: int | None = None  # eager loops run the whole sequence (a chunk size here is for tests)


def _chunks(T: int, compiled: bool) -> list[tuple[int, int]]:
    """``(start, stop)`` of the spans the loops run: the whole sequence, or chunks when compiled."""
    size = COMPILE_CHUNK if compiled else EAGER_CHUNK
    if size is None or T <= size:
        return [(0, T)]
    return [(t, min(t + size, T)) for t in range(0, T, size)]


def _chunk_loop(loop, steps: int, compiled: bool):
    """The loop a chunk of ``steps`` runs: compiled for full chunks, eager for the shorter remainder
    (fewer steps than a chunk, so little time; and no second graph to compile)."""
    return maybe_compiled(loop, compiled and steps == COMPILE_CHUNK)


def _run_forward(x: Tensor, m, n, v_threshold: float, v_reset: float, norm: MembraneNorm | None, update: bool,
                 compiled: bool):
    """:func:`_forward_loop` over the whole sequence: ``(H, S, stats, spike count)``. Chunked, each
    chunk starts from the state the one before left (the first from rest, given as zeros so that
    every chunk runs the same graph)."""
    spans = _chunks(x.shape[0], compiled)
    if len(spans) == 1:
        return maybe_compiled(_forward_loop, compiled)(x, m, n, v_threshold, v_reset, norm, update)[:4]
    H, S = torch.empty_like(x), torch.empty_like(x)
    stats, total, hv = [], 0, torch.zeros_like(x[0])
    for a, b in spans:
        loop = _chunk_loop(_forward_loop, b - a, compiled)
        h, s, st, count, hv = loop(x[a:b], m, n, v_threshold, v_reset, norm, update, hv)
        H[a:b], S[a:b] = h, s
        total = total + count
        if st is not None:
            stats.append(st)
    stats = tuple(map(torch.cat, zip(*stats))) if stats else None
    return H, S, stats, total


def _run_backward(H: Tensor, x: Tensor | None, grad_s: Tensor, m, n, v_threshold: float, v_reset: float,
                  surrogate: Surrogate, detach_reset: bool, need_x: bool, need_m: bool, need_n: bool,
                  norm: MembraneNorm | None, means: Tensor | None, rstds: Tensor | None, compiled: bool):
    """:func:`_backward_loop` over the whole sequence, chunk by chunk from the last when compiled
    (the carried ``dL/dH`` starts as zeros, and the first chunk's ``h_prev`` is ``V_reset``, whose
    history term is zero: the same graph for every chunk)."""
    spans = _chunks(H.shape[0], compiled)
    args = (v_threshold, v_reset, surrogate, detach_reset, need_x, need_m, need_n, norm)
    if len(spans) == 1:
        return maybe_compiled(_backward_loop, compiled)(H, x, grad_s, m, n, *args, means, rstds)[:5]
    grad_x = torch.empty_like(H) if need_x else None
    sums: list = [None, None, None, None]  # dL/dM, dL/dN, dL/dg, dL/db
    grad_v = torch.zeros_like(H[0])
    for a, b in reversed(spans):
        h_prev = H[a - 1] if a > 0 else torch.full_like(H[0], v_reset)
        # BN_mp's statistics of h_prev; before the first chunk any will do (index -1): the history
        # term of V_reset is zero whatever Hn fires
        stats_prev = None if means is None else (means[a - 1], rstds[a - 1])
        part = _chunk_loop(_backward_loop, b - a, compiled)(H[a:b], None if x is None else x[a:b], grad_s[a:b], m, n, *args,
                    None if means is None else means[a:b], None if rstds is None else rstds[a:b], h_prev, grad_v,
                    stats_prev)
        if need_x:
            grad_x[a:b] = part[0]
        sums = [g if s is None else (s if g is None else s + g) for s, g in zip(sums, part[1:5])]
        grad_v = part[5]
    return (grad_x, *sums)


class _FusedLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, m, n, bn_weight, bn_bias, bn_state, v_threshold, v_reset, surrogate,  # type: ignore[override]
                detach_reset, compiled):
        norm = None if bn_state is None else MembraneNorm(bn_weight.detach(), bn_bias.detach(), *bn_state)
        H, spikes, stats, count = _run_forward(x, m, n, v_threshold, v_reset, norm, True, compiled)
        rate = count / spikes.numel()
        need_n = isinstance(n, Tensor) and n.requires_grad
        means, rstds = stats if stats is not None else (None, None)
        # dL/dN needs X (never rebuilt from H: that would divide by N); H is then rebuilt from X
        ctx.save_for_backward(x if need_n else H, means, rstds, bn_weight, bn_bias,
                              *(p for p in (m, n) if isinstance(p, Tensor)))
        ctx.m_is_tensor, ctx.n_is_tensor = isinstance(m, Tensor), isinstance(n, Tensor)
        ctx.m, ctx.n = (None if ctx.m_is_tensor else m), (None if ctx.n_is_tensor else n)
        ctx.v_threshold, ctx.v_reset, ctx.surrogate, ctx.detach_reset = v_threshold, v_reset, surrogate, detach_reset
        ctx.compiled, ctx.saved_input, ctx.bn_state = compiled, need_n, bn_state
        ctx.mark_non_differentiable(rate)
        return spikes, rate

    @staticmethod
    def backward(ctx, grad_s, _grad_rate):  # type: ignore[override]
        saved, means, rstds, bn_weight, bn_bias, *params = ctx.saved_tensors
        m = params.pop(0) if ctx.m_is_tensor else ctx.m
        n = params.pop(0) if ctx.n_is_tensor else ctx.n
        norm = None if ctx.bn_state is None else MembraneNorm(bn_weight, bn_bias, *ctx.bn_state)
        x = saved if ctx.saved_input else None
        H = _run_forward(x, m, n, ctx.v_threshold, ctx.v_reset, norm, False, ctx.compiled)[0] \
            if ctx.saved_input else saved
        need_x, need_m, need_n = ctx.needs_input_grad[:3]
        grad_x, grad_m, grad_n, grad_weight, grad_bias = _run_backward(
            H, x, grad_s.contiguous(), m, n, ctx.v_threshold, ctx.v_reset, ctx.surrogate, ctx.detach_reset,
            need_x, need_m, need_n, norm, means, rstds, ctx.compiled)
        return grad_x, grad_m, grad_n, grad_weight, grad_bias, None, None, None, None, None, None


def _channel_params(p, channels: int):
    """``M`` or ``N`` shaped for steps ``[B, C, S]``: ``[C, 1]`` or ``[C, S]`` (a number or a 0-d tensor as it is)."""
    return p.reshape(channels, -1) if isinstance(p, Tensor) and p.dim() > 0 else p


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
    bn: nn.BatchNorm1d | None = None,
) -> LIFOutput:
    """Spikes ``[T, B, ...]`` of the (adaptive) LIF from rest, and their mean; the same numbers as
    :func:`staa_snn.functional.lif_multistep`, with far less memory saved for backward.
    ``compiled=True`` runs the forward and backward loops as ``torch.compile``d
    kernels (several times faster once compiled; the first call compiles).
    ``bn``: BN_mp (MPBN), a plain ``nn.BatchNorm1d(C)`` (see :func:`.membrane_bn.fusable`); in
    training its running statistics move once per step."""
    dtype = common_dtype(x_seq, m, n)
    x, bn_weight, bn_bias, bn_state = x_seq, None, None, None
    if bn is not None:  # steps as [B, C, S], for BN_mp's statistics over (B, S)
        T, B, C = x_seq.shape[:3]
        x, m, n = x_seq.reshape(T, B, C, -1), _channel_params(m, C), _channel_params(n, C)
        bn_weight, bn_bias, bn_state = membrane_norm_inputs(bn, dtype)
    with autocast_off(x_seq.device):
        spikes, rate = _FusedLIF.apply(cast(x, dtype), cast(m, dtype), cast(n, dtype), bn_weight, bn_bias, bn_state,
                                       v_threshold, v_reset, surrogate, detach_reset, compiled)
    if bn is not None:
        sync_running_stats(bn, bn_state, x.shape[0])
    return LIFOutput(spikes.view_as(x_seq), rate)


def membrane_norm_inputs(bn: nn.BatchNorm1d, dtype: torch.dtype):
    """``(weight, bias, state)`` of BN_mp for a fused node computing in ``dtype``: the affine
    parameters as autograd inputs, and the running statistics (the buffers themselves, or
    copies in ``dtype``), eps, momentum and mode."""
    norm = MembraneNorm.of(bn)
    state = (cast(norm.running_mean, dtype), cast(norm.running_var, dtype), *norm[4:])
    return cast(norm.weight, dtype), cast(norm.bias, dtype), state


@torch.no_grad()
def sync_running_stats(bn: nn.BatchNorm1d, state, steps: int) -> None:
    """After a training forward of ``steps`` steps: the step count (one per step, as ``steps``
    calls of ``bn``), and the running statistics when the node moved copies of them (a compute
    dtype other than the buffers')."""
    if not bn.training:
        return
    for buffer, moved in zip((bn.running_mean, bn.running_var), state[:2]):
        if moved is not buffer:
            buffer.copy_(moved)
    bn.num_batches_tracked.add_(steps)
