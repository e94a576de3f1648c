"""The STAA-LIF recurrence (method.md, sections 7-8; Eq. 13-14).

::

    H[t] = SA( M (.) V[t-1],  N (.) X^[t] )      X^ = GC(X + P): computed before the loop
    S[t] = Heaviside(H[t] - V_th)                 Heaviside(BN_mp(H[t]) - V_th) with MPBN
    V[t] = H[t] (.) (1 - S[t])

At a step that TSRD drops, ``H[t] = M (.) V[t-1] + N (.) X[t]`` (raw input, no
PE, GC or SA); BN_mp, part of firing, still applies. PE and GC do not depend on the state, so the caller computes
``X^`` for every step in one batched call; only SA and the membrane update run
inside this loop.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .lif import Normalize, fire, hard_reset
from .sa import step_attention
from .surrogate import Surrogate

__all__ = ["staa_lif_multistep"]

GateFn = Callable[[Tensor, Tensor], "tuple[Tensor, Tensor]"]


def staa_lif_multistep(
    x_seq: Tensor,
    x_hat_seq: Tensor,
    m: "Tensor | float",
    n: "Tensor | float",
    *,
    v_threshold: float,
    v_reset: float,
    surrogate: Surrogate,
    sa_gates: GateFn | None = None,
    membrane_pe: Tensor | None = None,
    drop: Tensor | None = None,
    detach_reset: bool = False,
    normalize: Normalize | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run the STAA-LIF over ``[T, B, C, ...]``.

    Args:
        x_seq: raw input currents ``X`` (used at steps TSRD drops).
        x_hat_seq: augmented currents ``X^ = GC(X + P)``, same shape.
        m, n: the adaptive coefficients (Eq. 6), broadcastable to one step.
        sa_gates: ``(h, u) -> (g_h, g_u)`` (SA on), or ``None`` (plain sum).
        membrane_pe: ``[T, C, ...]`` added to ``H[t]`` (PE at the membrane), or ``None``.
        drop: TSRD mask, ``[T, 1]`` (shared by the batch) or ``[T, B]``; ``True`` = basic step.
        normalize: BN_mp of one step (MPBN: spikes where ``normalize(H) >= V_th``), or ``None``.

    Returns:
        ``(spikes [T, B, ...], V[T], gates [T, B, 2, C] or None)``. The gates
        are the weights applied to ``(h, u)`` at each step: 1 where no SA ran.
    """
    T = x_seq.shape[0]
    v = torch.full_like(x_seq[0], v_reset)
    spikes, gates = [], []
    for t in range(T):
        h = m * (v - v_reset) if v_reset != 0.0 else m * v     # history term
        u = n * x_hat_seq[t]                                   # input term
        if sa_gates is not None:
            g_h, g_u = sa_gates(h, u)
            H = step_attention(h, u, g_h, g_u)
        else:
            H = h + u
        if membrane_pe is not None:
            H = H + membrane_pe[t]
        if drop is not None:  # basic steps: selected on the device, nothing read back per step
            sel = drop[t].view((-1,) + (1,) * (H.dim() - 1))
            H = torch.where(sel, h + n * x_seq[t], H)
            if sa_gates is not None:
                one = torch.ones((), dtype=g_h.dtype, device=g_h.device)
                g_h = torch.where(drop[t, :, None], one, g_h)
                g_u = torch.where(drop[t, :, None], one, g_u)
        if v_reset != 0.0:
            H = H + v_reset
        if sa_gates is not None:
            gates.append(torch.stack([g_h, g_u], dim=1).detach().expand(x_seq.shape[1], 2, -1))
        s = fire(H if normalize is None else normalize(H), v_threshold, surrogate)
        v = hard_reset(H, s, v_reset, detach_reset)
        spikes.append(s)
    return torch.stack(spikes), v, (torch.stack(gates) if gates else None)
