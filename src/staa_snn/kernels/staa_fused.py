"""Fused STAA-LIF with SA: GC, PE and the step loop as one autograd node with a hand-written
backward through time.

The loop of :func:`staa_snn.functional.staa_lif_multistep` for the default
configuration (channel-shaped ``M``, ``N`` and PE, GC fusion ``"add"``), where the
augmented input is the raw input plus one value per (step, sample, channel)::

    X^[t] = X[t] + b[t]          b = P + GC value   ([T, B, C]; see ``functional.gc.gc_context``)

so ``X^`` is never materialised. GC and PE run first, for all steps at once, inside
the node (:func:`.gc_fused.shift_forward`: ``X`` is read twice, for the key logits and
for the context and ``GAP(X)`` together), and their backward adds GC's rank-one terms
into the loop's ``dL/dX`` in place, so ``dL/dX`` is written once. Each step is::

    hv     = V[t-1] - V_reset                             [B, C, S]
    z      = [ M GAP(hv),  N (GAP(X[t]) + b[t]) ]         [B, 2C]      GAP(X) for all steps at once
    g      = gates(z)  (SA MLP; 1 at steps TSRD drops)    [B, 2C]  -> g_h, g_u
    H[t]   = (g_h M) hv + (g_u N) X[t] + (g_u N b'[t] + V_reset)      b' = 0 at dropped steps
    S[t]   = 1(H[t] >= V_th),   V[t] = H[t] where S = 0, V_reset where S = 1

Five activation-sized passes per step touch ``[B, C, S]`` tensors (two for the
``H`` update, the spike, the reset, one GAP); the SA gates are ``[B, 2C]``.
Backward walks the steps in reverse with the carried ``dL/dV[t]``::

    dH      = dL/dS sigma'(H - V_th) + dL/dV[t] ((1 - S) + (V_reset - H) sigma')   ((1 - S) with detach_reset)
    dL/dX[t] = (g_u N) dH + (dz_u N) / S,     dL/dV[t-1] = (g_h M) dH + (dz_h M) / S
    dg_h    = M sum_S(dH hv),   dg_u = N (sum_S(dH X[t]) + b' sum_S dH)   -> through the gate MLP -> dz

and the parameter gradients from the same ``[B, C]`` sums. With ``recompute``
only the inputs are saved and ``H`` (with the histories ``V[t-1]``) is rebuilt
by one more forward loop in backward; otherwise ``H`` (one activation-sized
tensor per layer) is saved. With BN_mp (MPBN) the spike is ``1(BN_mp(H[t]) >= V_th)``
(:mod:`.membrane_bn`), and ``dH`` comes back through it
(:func:`.lif_fused.grad_membrane_normed`). ``compiled=True`` runs both loops through
``torch.compile``, which fuses each step's element-wise passes into one kernel.

Tested against the reference, forward and backward, in ``tests/test_kernels.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..functional.tsrd import dropped_gates, dropped_shift
from ..functional.surrogate import Surrogate
from ._compile import StepOutput, maybe_compiled
from ._dtypes import autocast_off, cast, common_dtype
from .gc_fused import GCWeights, shift_backward, shift_forward
from .lif_fused import (after_reset, fired, grad_membrane, grad_membrane_normed, membrane_norm_inputs, reset_history,
                        sync_running_stats)
from .membrane_bn import MembraneNorm, normalized, renormalized

__all__ = ["STAAOutput", "staa_lif_multistep_fused"]


class STAAOutput(NamedTuple):
    spikes: Tensor        # [T, B, C, *spatial]
    gates: Tensor         # [T, B, 2, C], the SA gates applied to (history, input)
    firing_rate: Tensor   # 0-d, the mean of the spikes (computed in the loop)


def _gates(z: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None, sa_lambda: float, gate: str):
    """The SA MLP on ``z [B, 2C]``: ``(pre-activation, hidden, gates [B, 2C])``."""
    pre = F.linear(z, w1, b1)
    hidden = pre.clamp_min(0)
    logits = F.linear(hidden, w2, b2)
    if gate == "sigmoid":
        return pre, hidden, sa_lambda * torch.sigmoid(logits)
    return pre, hidden, sa_lambda * torch.softmax(logits.view(z.shape[0], 2, -1), dim=1).flatten(1)


def _applied(gs: Tensor, bias: Tensor, keep: Tensor | None) -> tuple[Tensor, Tensor]:
    """The gates and input shifts applied at every step: gates 1 and no shift for the
    samples whose step TSRD drops (``keep`` False)."""
    if keep is None:
        return gs, bias
    return dropped_gates(gs, keep), dropped_shift(bias, keep)


def _forward_loop(x, bias, gap_x, mc, nc, w1, b1, w2, b2, keep, norm, sa_lambda, gate, v_threshold, v_reset, *,
                  spikes: bool):
    """From rest, given the shift ``b`` and ``GAP(X)`` (``[T, B, C]``): ``H [T, B, C, S]``; the
    spikes (``spikes=True``, the forward pass: BN_mp's running statistics move) or the histories
    ``V[t-1] - V_reset`` (``False``, for backward), ``[T, B, C, S]``; with BN_mp the per-step
    ``(mean, rstd)``, ``[T, C]`` each (else ``None``); the firing rate (``None`` for backward);
    ``GAP(V[t-1] - V_reset)``, ``[T, B, C]``; the SA MLP's ``z, pre, hidden, raw gates``, ``[T, B, *]``.

    Written in place into preallocated outputs: on the CPU every activation-sized temporary costs a pass.
    """
    T, B, C, S = x.shape
    bias_eff = bias if keep is None else dropped_shift(bias, keep)
    H, out = StepOutput(x), StepOutput(x)
    if not spikes:
        out.put(0, torch.zeros_like(x[0]))
    gap_v, zs, pres, hiddens, gs, stats, rates = [torch.zeros_like(gap_x[0])], [], [], [], [], [], []
    hv = None  # V[t-1] - V_reset; None at rest
    for t in range(T):
        if hv is not None:
            gap_v.append(hv.mean(-1))
        z = torch.cat([mc * gap_v[t], nc * (gap_x[t] + bias[t])], dim=1)
        pre, hidden, g = _gates(z, w1, b1, w2, b2, sa_lambda, gate)
        zs.append(z), pres.append(pre), hiddens.append(hidden), gs.append(g)
        if keep is not None:  # gates 1 where TSRD drops the step
            g = dropped_gates(g, keep[t])
        a, c = g[:, :C] * mc, g[:, C:] * nc
        d = c * bias_eff[t]
        h = H.put(t, torch.addcmul((d + v_reset).unsqueeze(-1), c.unsqueeze(-1), x[t], out=H.out(t)))
        if hv is not None:
            h.addcmul_(a.unsqueeze(-1), hv)
        hn = h
        if norm is not None:  # BN_mp: spikes where BN_mp(H) >= V_th
            hn, mean, rstd = normalized(h, norm, update=spikes)
            stats.append((mean, rstd))
        if spikes:
            s = out.put(t, fired(hn, v_threshold, out=out.out(t)))
            rates.append(s.mean())
            hv = after_reset(h, s, v_reset)
        elif t + 1 < T:
            hv = out.put(t + 1, reset_history(h, v_threshold, v_reset, out=out.out(t + 1), hn=hn))
    return (H.result(), out.result(), (tuple(map(torch.stack, zip(*stats))) if stats else None),
            torch.stack(rates).mean() if rates else None,
            torch.stack(gap_v), torch.stack(zs), torch.stack(pres), torch.stack(hiddens), torch.stack(gs))


def _grad_gate_logits(grad_g: Tensor, g_raw: Tensor, gate: str, sa_lambda: float) -> Tensor:
    """Back through the SA gate's squashing (``[B, 2C]``): dL/dlogits from dL/dgates, for the
    sigmoid gates or the softmax over each (history, input) pair."""
    if gate == "sigmoid":
        return grad_g * g_raw * (1.0 - g_raw / sa_lambda)
    B, C = g_raw.shape[0], g_raw.shape[1] // 2
    p, dp = (g_raw / sa_lambda).view(B, 2, C), (sa_lambda * grad_g).view(B, 2, C)
    return (p * (dp - (p * dp).sum(1, keepdim=True))).flatten(1)


def _backward_loop(grad_s, x, bias, gap_x, mc, nc, w1, w2, keep, norm, H, history, stats, gap_v, zs, pres,
                   hiddens, gs, sa_lambda, gate, v_threshold, v_reset, surrogate: Surrogate, detach_reset, need_x):
    """Backward through time (see the module docstring); ``history[t] = V[t-1] - V_reset``
    (``None``: rebuilt from ``H``). The loop carries only what is sequential; the parameter
    gradients are reduced once, from the per-step ``[B, *]`` terms, after it."""
    T, B, C, S = x.shape
    means, rstds = stats if norm is not None else (None, None)
    grad_bn = [torch.zeros_like(norm.weight), torch.zeros_like(norm.bias)] if norm is not None else [None, None]
    grad_x = StepOutput(x) if need_x else None
    g_all, bias_eff = _applied(gs, bias, keep)
    # per step: sum_S dH, dL/d(g_h M), dL/d(g_u N), dL/dlogits, dL/dpre, dL/dz
    sums, grad_a, grad_c, grad_logits, grad_pre, grad_z = ([None] * T for _ in range(6))
    grad_v = None    # dL/dV[t], carried backwards
    hn_next = None   # BN_mp(H[t]), when the step after it already computed it
    for t in range(T - 1, -1, -1):
        if norm is None:
            dh = grad_membrane(H[t], grad_s[t], grad_v, v_threshold, v_reset, surrogate, detach_reset)
        else:
            hn = hn_next if hn_next is not None else renormalized(H[t], norm, means[t], rstds[t])
            dh, gw, gb = grad_membrane_normed(H[t], hn, grad_s[t], grad_v, v_threshold, v_reset, surrogate,
                                              detach_reset, norm, means[t], rstds[t])
            grad_bn[0] += gw
            grad_bn[1] += gb
        hn_next = None
        sums[t] = dh.sum(-1)
        grad_c[t] = torch.linalg.vecdot(dh, x[t]).add_(bias_eff[t] * sums[t])
        if t > 0:
            if history is not None:
                hv = history[t]
            else:
                if norm is not None:
                    hn_next = renormalized(H[t - 1], norm, means[t - 1], rstds[t - 1])
                hv = reset_history(H[t - 1], v_threshold, v_reset, hn=hn_next)
            grad_a[t] = torch.linalg.vecdot(dh, hv)
        else:  # V[-1] = V_reset: the history gate has no effect
            grad_a[t] = torch.zeros_like(grad_c[t])
        grad_g = torch.cat([grad_a[t] * mc, grad_c[t] * nc], dim=1)
        if keep is not None:
            grad_g = grad_g * keep[t, :, None]
        grad_logits[t] = _grad_gate_logits(grad_g, gs[t], gate, sa_lambda)  # back through the SA MLP
        grad_pre[t] = (grad_logits[t] @ w2) * (pres[t] > 0)
        grad_z[t] = grad_pre[t] @ w1                                    # [dL/dGAP(h) | dL/dGAP(u)]
        if need_x:
            c = g_all[t, :, C:] * nc
            e = grad_z[t][:, C:] * (nc / S)                             # through GAP(X[t])
            grad_x.put(t, torch.addcmul(e.unsqueeze(-1), c.unsqueeze(-1), dh, out=grad_x.out(t)))
        if t > 0:
            e = grad_z[t][:, :C] * (mc / S)                             # through GAP(V[t-1])
            grad_v = torch.addcmul(e.unsqueeze(-1), (g_all[t, :, :C] * mc).unsqueeze(-1), dh)
    sums, grad_a, grad_c, grad_logits, grad_pre, grad_z = map(torch.stack, (sums, grad_a, grad_c, grad_logits,
                                                                          grad_pre, grad_z))
    g_h, g_u = g_all[..., :C], g_all[..., C:]
    grad_gap_h, grad_gap_u = grad_z[..., :C], grad_z[..., C:]
    grad_bias = grad_gap_u * nc + sums * g_u * nc * (1.0 if keep is None else keep[..., None])
    grad_mc = (grad_a * g_h + grad_gap_h * gap_v).sum((0, 1))
    grad_nc = (grad_c * g_u + grad_gap_u * (gap_x + bias)).sum((0, 1))
    grad_w2, grad_b2 = grad_logits.flatten(0, 1).t() @ hiddens.flatten(0, 1), grad_logits.sum((0, 1))
    grad_w1, grad_b1 = grad_pre.flatten(0, 1).t() @ zs.flatten(0, 1), grad_pre.sum((0, 1))
    return ((grad_x.result() if need_x else None), grad_bias, grad_mc, grad_nc, grad_w1, grad_b1, grad_w2, grad_b2,
            *grad_bn)


class Settings(NamedTuple):
    """The node's non-tensor arguments (and BN_mp's running statistics, which take no gradient)."""

    pe_input: bool          # PE before GC (True) or after it
    ln_eps: float
    sa_lambda: float
    gate: str
    v_threshold: float
    v_reset: float
    surrogate: Surrogate
    detach_reset: bool
    recompute: bool
    compiled: bool
    bn_state: tuple | None  # (running mean, running var, eps, momentum, training) of BN_mp


def _forward(x, pe, gc, mc, nc, w1, b1, w2, b2, keep, norm, st: Settings):
    """GC and PE, then the step loop: ``(shift, GAP(X), GC's saved tensors, loop outputs...)``."""
    bias, gap_x, gc_saved = shift_forward(x, pe, gc, st.pe_input, st.ln_eps)
    loop = _forward_loop(x, bias, gap_x, mc, nc, w1, b1, w2, b2, keep, norm, st.sa_lambda, st.gate,
                         st.v_threshold, st.v_reset, spikes=True)
    return bias, gap_x, gc_saved, *loop


def _histories(x, bias, gap_x, mc, nc, w1, b1, w2, b2, keep, norm, st: Settings):
    """The loop again, for backward: ``H``, the histories and the small per-step tensors."""
    return _forward_loop(x, bias, gap_x, mc, nc, w1, b1, w2, b2, keep, norm, st.sa_lambda, st.gate, st.v_threshold,
                         st.v_reset, spikes=False)


def _backward(grad_s, x, pe, gc, gc_saved, bias, gap_x, mc, nc, w1, w2, keep, norm, H, history, stats, small,
              st: Settings, need_x: bool):
    """The loop's backward, then GC's and PE's (adding GC's terms into ``dL/dX``)."""
    grad_x, grad_bias, *grads = _backward_loop(grad_s, x, bias, gap_x, mc, nc, w1, w2, keep, norm, H, history,
                                               stats, *small, st.sa_lambda, st.gate, st.v_threshold, st.v_reset,
                                               st.surrogate, st.detach_reset, need_x)
    grad_x, grad_pe, grad_gc = shift_backward(grad_x, grad_bias, x, pe, gc, gc_saved, st.pe_input)
    return grad_x, grad_pe, grad_gc, *grads


class Inputs(NamedTuple):
    """The node's tensor inputs, in ``apply``'s order (autograd needs them as separate arguments),
    and in the same order its gradients."""

    x: Tensor
    pe: Tensor | None
    key_w: Tensor | None   # GC's weights (GCWeights' order), all None with GC off
    key_b: Tensor | None
    down_w: Tensor | None
    down_b: Tensor | None
    ln_w: Tensor | None
    ln_b: Tensor | None
    up_w: Tensor | None
    up_b: Tensor | None
    mc: Tensor
    nc: Tensor
    w1: Tensor             # the SA MLP
    b1: Tensor | None
    w2: Tensor
    b2: Tensor | None
    bn_weight: Tensor | None  # BN_mp's affine parameters
    bn_bias: Tensor | None

    @property
    def gc(self) -> GCWeights | None:
        return None if self.key_w is None else GCWeights(*self[2:10])

    def norm(self, st: Settings) -> MembraneNorm | None:
        return None if st.bn_state is None else MembraneNorm(self.bn_weight, self.bn_bias, *st.bn_state)

    def detached(self) -> "Inputs":
        # plain tensors, as backward gets them (a Parameter would be a different compiled variant)
        return Inputs(*(v if v is None else v.detach() for v in self))


N_INPUTS = len(Inputs._fields)


class _FusedSTAA(torch.autograd.Function):
    @staticmethod
    def forward(ctx, *args):  # type: ignore[override]
        *tensors, keep, st = args  # Inputs, the TSRD mask, Settings
        inp = Inputs(*tensors).detached()
        # one compiled function per variant: fewer cached graphs whose guards each call checks
        bias, gap_x, gc_saved, H, spikes, stats, rate, *small = maybe_compiled(_forward, st.compiled)(
            inp.x, inp.pe, inp.gc, inp.mc, inp.nc, inp.w1, inp.b1, inp.w2, inp.b2, keep, inp.norm(st), st)
        gs = small[-1]
        g, _ = _applied(gs, bias, keep)
        gates = g.view(gs.shape[0], gs.shape[1], 2, -1)
        ctx.mark_non_differentiable(gates, rate)
        kept = () if st.recompute else (H, *(stats if stats is not None else (None,) * 2), *small)
        ctx.n_gc_saved = 0 if gc_saved is None else len(gc_saved)
        # saved: the inputs, then keep, bias, GAP(X), GC's own, and (without recompute) the loop's
        ctx.save_for_backward(*inp, keep, bias, gap_x, *(gc_saved or ()), *kept)
        ctx.settings = st
        return spikes, gates, rate

    @staticmethod
    def backward(ctx, grad_s, _grad_gates, _grad_rate):  # type: ignore[override]
        st: Settings = ctx.settings
        saved = ctx.saved_tensors
        inp = Inputs(*saved[:N_INPUTS])
        keep, bias, gap_x = saved[N_INPUTS:N_INPUTS + 3]
        rest = saved[N_INPUTS + 3:]
        gc_saved, kept = rest[:ctx.n_gc_saved] or None, rest[ctx.n_gc_saved:]
        norm = inp.norm(st)
        if st.recompute:
            H, history, stats, _, *small = maybe_compiled(_histories, st.compiled)(
                inp.x, bias, gap_x, inp.mc, inp.nc, inp.w1, inp.b1, inp.w2, inp.b2, keep, norm, st)
        else:  # the histories are rebuilt from H inside the backward loop
            H, mean, rstd, *small = kept
            history, stats = None, (mean, rstd)
        grad_x, grad_pe, grad_gc, grad_mc, grad_nc, grad_w1, grad_b1, grad_w2, grad_b2, grad_bn_w, grad_bn_b = \
            maybe_compiled(_backward, st.compiled)(grad_s.contiguous(), inp.x, inp.pe, inp.gc, gc_saved, bias, gap_x,
                                                   inp.mc, inp.nc, inp.w1, inp.w2, keep, norm, H, history, stats,
                                                   small, st, ctx.needs_input_grad[0])
        grads = Inputs(grad_x, grad_pe, *(grad_gc if grad_gc is not None else (None,) * 8), grad_mc, grad_nc,
                       grad_w1, grad_b1 if inp.b1 is not None else None, grad_w2,
                       grad_b2 if inp.b2 is not None else None, grad_bn_w, grad_bn_b)
        return (*grads, None, None)  # no gradient for the mask and the settings


def staa_lif_multistep_fused(
    x_seq: Tensor,
    m: Tensor,
    n: Tensor,
    w1: Tensor,
    b1: Tensor | None,
    w2: Tensor,
    b2: Tensor | None,
    *,
    sa_lambda: float,
    gate: str,
    v_threshold: float,
    v_reset: float,
    surrogate: Surrogate,
    gc: GCWeights | None = None,
    ln_eps: float = 1e-5,
    pe: Tensor | None = None,
    pe_input: bool = True,
    drop: Tensor | None = None,
    detach_reset: bool = False,
    recompute: bool = True,
    compiled: bool = False,
    bn: nn.BatchNorm1d | None = None,
) -> STAAOutput:
    """Spikes ``[T, B, C, *spatial]``, SA gates ``[T, B, 2, C]`` and firing rate of the STAA-LIF with SA.

    Args:
        x_seq: the raw input ``X``.
        m, n: per-channel coefficients, any shape with ``C`` (or 1) elements.
        w1, b1, w2, b2: the SA MLP (``nn.Linear`` shapes).
        gc: the GC block's weights (fusion ``"add"``), or ``None`` (GC off); ``ln_eps`` its LayerNorm's eps.
        pe: the channel-shaped PE table ``[T, C]``, or ``None``; ``pe_input``: added before GC (else after).
        drop: TSRD mask ``[T, 1]`` or ``[T, B]``, ``True`` at basic steps.
        recompute: keep only the inputs for backward and rebuild ``H`` there.
        compiled: run the forward and backward through ``torch.compile`` (the first call compiles).
        bn: BN_mp (MPBN), a plain ``nn.BatchNorm1d(C)``; in training its running statistics move once per step.
    """
    T, B, C = x_seq.shape[:3]
    gc_tensors = tuple(gc) if gc is not None else (None,) * 8
    dtype = common_dtype(x_seq, m, n, w1, b1, w2, b2, pe, *gc_tensors)
    x_seq, m, n, w1, b1, w2, b2, pe = (cast(v, dtype) for v in (x_seq, m, n, w1, b1, w2, b2, pe))
    gc_tensors = tuple(cast(v, dtype) for v in gc_tensors)
    x = x_seq.reshape(T, B, C, -1)
    mc, nc = m.reshape(-1).expand(C), n.reshape(-1).expand(C)
    keep = None if drop is None else (~drop).expand(T, B).contiguous()
    bn_weight, bn_bias, bn_state = membrane_norm_inputs(bn, dtype) if bn is not None else (None, None, None)
    settings = Settings(bool(pe_input), float(ln_eps), float(sa_lambda), gate, float(v_threshold), float(v_reset),
                        surrogate, bool(detach_reset), bool(recompute), bool(compiled), bn_state)
    with autocast_off(x.device):
        inputs = Inputs(x, pe, *gc_tensors, mc, nc, w1, b1, w2, b2, bn_weight, bn_bias)
        spikes, gates, rate = _FusedSTAA.apply(*inputs, keep, settings)
    if bn is not None:
        sync_running_stats(bn, bn_state, T)
    return STAAOutput(spikes.view_as(x_seq), gates, rate)
