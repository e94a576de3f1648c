"""The STAA-LIF step loop with SA, through ``torch.compile`` (``backend="compiled"``), for
the shapes the fused kernel (:mod:`staa_snn.kernels.staa_fused`) does not cover: full-shaped
PE or ``M, N``, GC fusion ``"scale"``, PE at the membrane.

No copy of the recurrence: this compiles :func:`staa_snn.functional.staa_lif_multistep`
itself (one :func:`~staa_snn.functional.staa_lif_step` per step), which ``torch.compile``
turns into fused forward and backward kernels (AOTAutograd's partitioner chooses what
to keep for backward and recomputes the rest). What makes the reference compile well:

* TSRD steps are selected with ``torch.where`` for both mask layouts
  (``[T, 1]`` and ``[T, B]``) instead of a host-side branch, so the drop
  pattern does not cause recompilation;
* ``straight_through=True``: the spike is ``heaviside(z) + (p(z) - p(z).detach())``
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

from ..functional.staa import staa_lif_multistep
from ..functional.surrogate import Surrogate
from ._compile import maybe_compiled

__all__ = ["staa_lif_multistep_compiled"]


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


def _loop(x_seq, x_hat_seq, m, n, sa_gates, membrane_pe, drop, v_threshold, v_reset, surrogate, detach_reset,
          normalize):
    """The reference loop itself, with the straight-through spike (positional, as compiled once)."""
    return staa_lif_multistep(x_seq, x_hat_seq, m, n, v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate,
                              sa_gates=sa_gates, membrane_pe=membrane_pe, drop=drop, detach_reset=detach_reset,
                              normalize=normalize, straight_through=True)
