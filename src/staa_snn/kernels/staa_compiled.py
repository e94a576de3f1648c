"""The STAA-LIF step loop with SA, through ``torch.compile`` (``backend="compiled"``), for
the shapes the fused kernel (:mod:`staa_snn.kernels.staa_fused`) does not cover: full-shaped
PE or ``M, N``, GC fusion ``"scale"``, PE at the membrane.

The same recurrence as :func:`staa_snn.functional.staa_lif_multistep`, written
so that one graph covers every case, which ``torch.compile`` turns into fused
forward and backward kernels (AOTAutograd's partitioner chooses what to keep
for backward and recomputes the rest):

* TSRD steps are selected with ``torch.where`` for both mask layouts
  (``[T, 1]`` and ``[T, B]``) instead of a host-side branch, so the drop
  pattern does not cause recompilation;
* the spike is the straight-through form ``heaviside(z) + (p(z) - p(z).detach())``
  with ``p`` the surrogate's primitive: the forward value is exactly the
  Heaviside step and the gradient is ``p'(z)``, the surrogate gradient, with no
  custom autograd node for the compiler to trace through;
* AOTAutograd's partitioner runs with an activation-memory budget of 0.5, so it
  recomputes the cheap element-wise ops in backward instead of keeping them: on
  a ``[4, 32, 64, 16, 16]`` layer this keeps 24.5 MiB for backward where the
  default would keep 40 MiB (and the eager path with checkpointing 32 MiB).

Tested against the functional reference, forward and backward, in
``tests/test_kernels.py``.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor

from ..functional.lif import hard_reset
from ..functional.sa import step_attention
from ..functional.surrogate import Surrogate
from ._compile import maybe_compiled

__all__ = ["staa_lif_multistep_compiled"]


def _loop(x_seq: Tensor, x_hat_seq: Tensor, m, n, sa_gates, membrane_pe, drop, v_threshold: float,
          v_reset: float, surrogate: Surrogate, detach_reset: bool, normalize):
    T = x_seq.shape[0]
    v = torch.full_like(x_seq[0], v_reset)
    spikes, gates = [], []
    for t in range(T):
        h = m * (v - v_reset) if v_reset != 0.0 else m * v
        u = n * x_hat_seq[t]
        if sa_gates is not None:
            g_h, g_u = sa_gates(h, u)
            H = step_attention(h, u, g_h, g_u)
        else:
            H = h + u
        if membrane_pe is not None:
            H = H + membrane_pe[t]
        if drop is not None:  # [T, 1] or [T, B]: basic steps where True
            sel = drop[t].view((-1,) + (1,) * (H.dim() - 1))
            H = torch.where(sel, h + n * x_seq[t], H)
            if sa_gates is not None:
                one = torch.ones((), dtype=g_h.dtype, device=g_h.device)
                g_h = torch.where(drop[t].view(-1, 1), one, g_h)
                g_u = torch.where(drop[t].view(-1, 1), one, g_u)
        if v_reset != 0.0:
            H = H + v_reset
        if sa_gates is not None:
            gates.append(torch.stack([g_h, g_u], dim=1).detach())
        z = (H if normalize is None else normalize(H)) - v_threshold
        p = surrogate.primitive(z)
        s = (z >= 0).to(z.dtype) + (p - p.detach())
        v = hard_reset(H, s, v_reset, detach_reset)
        spikes.append(s)
    return torch.stack(spikes), v, (torch.stack(gates) if gates else None)


ACTIVATION_MEMORY_BUDGET = 0.5


def _memory_budget():
    """The partitioner's memory budget (a torch._functorch setting; absent in old torch)."""
    try:
        import torch._functorch.config as functorch_config
    except ImportError:  # pragma: no cover
        return nullcontext()
    if not hasattr(functorch_config, "activation_memory_budget"):  # pragma: no cover
        return nullcontext()
    return functorch_config.patch(activation_memory_budget=ACTIVATION_MEMORY_BUDGET)


def staa_lif_multistep_compiled(x_seq: Tensor, x_hat_seq: Tensor, m, n, *, v_threshold: float, v_reset: float,
                                surrogate: Surrogate, sa_gates=None, membrane_pe: Tensor | None = None,
                                drop: Tensor | None = None, detach_reset: bool = False, normalize=None):
    """Same arguments and results as :func:`staa_snn.functional.staa_lif_multistep`
    (``sa_gates`` an ``nn.Module`` or ``None``; ``normalize`` BN_mp through its module, whose
    running statistics the compiled graph updates); compiled once per process."""
    with _memory_budget():  # in force whenever a (re)compile happens
        return maybe_compiled(_loop, True)(x_seq, x_hat_seq, m, n, sa_gates, membrane_pe, drop, v_threshold,
                                           v_reset, surrogate, detach_reset, normalize)
