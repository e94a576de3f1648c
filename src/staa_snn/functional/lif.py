"""LIF and adaptive-LIF dynamics (method.md, sections 1 and 3; Eq. 1-3, 6).

Everything here is a pure function of tensors. The membrane update is written
once, in the form shared by the LIF and the adaptive LIF::

    H[t] = V_reset + M (.) (V[t-1] - V_reset) + N (.) X[t]      # charge, Eq. 1 / Eq. 6
    S[t] = Heaviside(H[t] - V_th)                               # fire,   Eq. 2 (grad: Eq. 5)
    V[t] = H[t] (.) (1 - S[t]) + V_reset (.) S[t]               # reset,  Eq. 3

The LIF of Eq. 1 (decay-input form, ``H = V + (X - (V - V_reset)) / tau``) is
the case ``M = 1 - 1/tau``, ``N = 1/tau``; with ``V_reset = 0`` the charge is
exactly ``M V + N X``, which is Eq. 6. Without decay on the input
(``H = V - (V - V_reset) / tau + X``, SpikingJelly's ``decay_input=False``) it is
``N = 1``: MPBN's neuron (method.md, section 11) is ``tau = 4/3``, ``M = 0.25``.

An MPBN neuron fires on a normalised potential (``normalize``, the per-step
BN_mp of :mod:`staa_snn.functional.mpbn`) and resets on the raw ``H``::

    S[t] = Heaviside(normalize(H[t]) - V_th),   V[t] = H[t] (1 - S[t]) + V_reset S[t]
"""

from __future__ import annotations

import torch
from typing import Callable

from torch import Tensor

from .surrogate import Surrogate

Normalize = Callable[[Tensor], Tensor]

__all__ = ["lif_coefficients", "leak", "charge", "fire", "hard_reset", "lif_step", "lif_multistep"]


def lif_coefficients(tau: float, decay_input: bool = True) -> tuple[float, float]:
    """``(M, N) = (1 - 1/tau, 1/tau)`` (``(1 - 1/tau, 1)`` without ``decay_input``): the LIF as an adaptive LIF."""
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau!r}")
    return 1.0 - 1.0 / tau, (1.0 / tau if decay_input else 1.0)


def leak(v: Tensor, m: "Tensor | float", v_reset: float = 0.0) -> Tensor:
    """The history term of the charge, ``M (.) (V[t-1] - V_reset)`` (``M V`` at ``V_reset = 0``); the
    STAA-LIF step gates it apart from the input term (:func:`~staa_snn.functional.staa.staa_lif_step`)."""
    return m * v if v_reset == 0.0 else m * (v - v_reset)


def charge(v: Tensor, x: Tensor, m: "Tensor | float", n: "Tensor | float", v_reset: float = 0.0) -> Tensor:
    """Eq. 1 / Eq. 6: ``H = V_reset + M (V - V_reset) + N X``."""
    if v_reset == 0.0:
        return leak(v, m) + n * x
    return v_reset + leak(v, m, v_reset) + n * x


def fire(h: Tensor, v_threshold: float, surrogate: Surrogate, straight_through: bool = False) -> Tensor:
    """Eq. 2 with the surrogate gradient of Eq. 5: ``S = Heaviside(H - V_th)``.

    ``straight_through``: the same value and gradient written as ``Heaviside(z) + (p(z) - p(z).detach())``
    with ``p`` the surrogate's primitive, so no custom autograd node stands in the way of
    ``torch.compile`` (the compiled backend)."""
    if not straight_through:
        return surrogate(h - v_threshold)
    z = h - v_threshold
    p = surrogate.primitive(z)
    return (z >= 0).to(z.dtype) + (p - p.detach())


def hard_reset(h: Tensor, s: Tensor, v_reset: float = 0.0, detach_reset: bool = False) -> Tensor:
    """Eq. 3: ``V = H (1 - S) + V_reset S``. ``detach_reset`` stops the gradient through ``S`` here."""
    if detach_reset:
        s = s.detach()
    if v_reset == 0.0:
        return h * (1.0 - s)
    return h * (1.0 - s) + v_reset * s


def lif_step(
    v: Tensor,
    x: Tensor,
    m: "Tensor | float",
    n: "Tensor | float",
    *,
    v_threshold: float,
    v_reset: float,
    surrogate: Surrogate,
    detach_reset: bool = False,
    normalize: Normalize | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One step: returns ``(S[t], V[t], H[t])`` from ``V[t-1]`` and ``X[t]`` (the state first, then the
    input, as :func:`~staa_snn.functional.staa.staa_lif_step` takes them); with ``normalize``
    the spike is ``Heaviside(normalize(H) - V_th)`` (MPBN) and the reset still acts on ``H``."""
    h = charge(v, x, m, n, v_reset)
    s = fire(h if normalize is None else normalize(h), v_threshold, surrogate)
    return s, hard_reset(h, s, v_reset, detach_reset), h


def lif_multistep(
    x_seq: Tensor,
    m: "Tensor | float",
    n: "Tensor | float",
    *,
    v_threshold: float,
    v_reset: float,
    surrogate: Surrogate,
    detach_reset: bool = False,
    v_init: Tensor | None = None,
    normalize: Normalize | None = None,
) -> tuple[Tensor, Tensor]:
    """Reference recurrence over ``x_seq = [T, B, ...]`` starting at ``V[0] = v_init``
    (default ``V_reset``). Returns ``(spikes [T, B, ...], V[T])``. ``normalize``: see :func:`lif_step`."""
    v = torch.full_like(x_seq[0], v_reset) if v_init is None else v_init
    spikes = []
    for x in x_seq:
        s, v, _ = lif_step(
            v, x, m, n, v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate, detach_reset=detach_reset,
            normalize=normalize,
        )
        spikes.append(s)
    return torch.stack(spikes), v
