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

from .lif import Normalize, fire, hard_reset, leak
from .sa import step_attention
from .surrogate import Surrogate
from .tsrd import dropped_gates, dropped_input

__all__ = ["staa_lif_multistep", "staa_lif_step"]

GateFn = Callable[[Tensor, Tensor], "tuple[Tensor, Tensor]"]


def staa_lif_step(
    v: Tensor,
    x: Tensor,
    x_hat: Tensor,
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
    straight_through: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One STAA-LIF step, the update rule every path is built from: ``(S[t], V[t], gates)`` from
    ``V[t-1]`` and the step's inputs.

    Args:
        v: ``V[t-1]``, ``[B, C, ...]`` (``V_reset`` at rest).
        x, x_hat: this step's raw input ``X[t]`` and augmented input ``X^[t] = GC(X[t] + P[t])``.
        m, n: the adaptive coefficients (Eq. 6), broadcastable to one step.
        sa_gates: ``(h, u) -> (g_h, g_u)`` (SA on), or ``None`` (plain sum).
        membrane_pe: this step's ``[C, ...]`` PE at the membrane, or ``None``.
        drop: this step's TSRD mask, ``[1]`` (shared by the batch) or ``[B]``; ``True`` = basic step.
        normalize: BN_mp of one step (MPBN), or ``None``.
        straight_through: the spike in the form ``torch.compile`` traces (:func:`~.lif.fire`).

    Returns:
        ``(spikes, V[t], gates [B, 2, C] or None)``: the gates applied to ``(h, u)``, 1 at a dropped step.
    """
    h = leak(v, m, v_reset)                                # history term: the LIF charge's
    u = n * x_hat                                          # input term
    g_h = g_u = None
    if sa_gates is not None:
        g_h, g_u = sa_gates(h, u)
        H = step_attention(h, u, g_h, g_u)
    else:
        H = h + u
    if membrane_pe is not None:
        H = H + membrane_pe
    if drop is not None:  # basic steps: selected on the device, nothing read back
        H = dropped_input(h + n * x, H, drop)
        if g_h is not None:
            g_h, g_u = dropped_gates(g_h, ~drop), dropped_gates(g_u, ~drop)
    if v_reset != 0.0:
        H = H + v_reset
    s = fire(H if normalize is None else normalize(H), v_threshold, surrogate, straight_through)
    gates = None if g_h is None else torch.stack([g_h, g_u], dim=1).detach().expand(x.shape[0], 2, -1)
    return s, hard_reset(H, s, v_reset, detach_reset), gates


def staa_lif_multistep(
    x_seq: Tensor,
    x_hat_seq: Tensor,
    m: "Tensor | float",
    n: "Tensor | float",
    *,
    membrane_pe: Tensor | None = None,
    drop: Tensor | None = None,
    **step,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run the STAA-LIF over ``[T, B, C, ...]`` from rest: :func:`staa_lif_step` at every step.

    Args:
        x_seq: raw input currents ``X`` (used at steps TSRD drops).
        x_hat_seq: augmented currents ``X^ = GC(X + P)``, same shape.
        membrane_pe: ``[T, C, ...]`` added to ``H[t]`` (PE at the membrane), or ``None``.
        drop: TSRD mask, ``[T, 1]`` (shared by the batch) or ``[T, B]``; ``True`` = basic step.
        m, n, step: as in :func:`staa_lif_step` (``v_threshold``, ``v_reset`` and ``surrogate``
            required; ``sa_gates``, ``detach_reset``, ``normalize``, ``straight_through``), the same
            at every step.

    Returns:
        ``(spikes [T, B, ...], V[T], gates [T, B, 2, C] or None)``. The gates
        are the weights applied to ``(h, u)`` at each step: 1 where no SA ran.
    """
    v = torch.full_like(x_seq[0], step["v_reset"])
    spikes, gates = [], []
    for t in range(x_seq.shape[0]):
        s, v, g = staa_lif_step(v, x_seq[t], x_hat_seq[t], m, n,
                                membrane_pe=None if membrane_pe is None else membrane_pe[t],
                                drop=None if drop is None else drop[t], **step)
        spikes.append(s)
        if g is not None:
            gates.append(g)
    return torch.stack(spikes), v, (torch.stack(gates) if gates else None)
