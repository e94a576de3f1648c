"""The contract every multi-step neuron follows.

* Input and output are time-first: ``[T, B, F]`` or ``[T, B, C, H, W]``.
* Each ``forward`` runs a whole sequence, starting from ``V[0] = V_reset``, so
  there is no hidden state to forget to reset between batches.
* After each forward, ``last_firing_rate`` holds the mean spike rate of the
  output (a detached 0-d tensor), for analysis without hooks.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..functional.lif import lif_multistep
from ..functional.surrogate import Surrogate, get_surrogate
from ..kernels.lif_fused import lif_multistep_fused

__all__ = ["MultiStepNeuron", "BACKENDS"]

BACKENDS = ("fused", "compiled", "reference")


def _check_finite(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class MultiStepNeuron(nn.Module):
    """Base class: threshold, reset value, surrogate and the input checks."""

    def __init__(
        self,
        *,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        surrogate: "str | Surrogate" = "rectangle",
        detach_reset: bool = False,
        backend: str = "fused",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        self.backend = backend
        self.v_threshold = _check_finite("v_threshold", v_threshold)
        if self.v_threshold <= 0:
            raise ValueError(f"v_threshold must be positive, got {v_threshold!r}")
        self.v_reset = _check_finite("v_reset", v_reset)
        if self.v_reset >= self.v_threshold:
            raise ValueError(f"v_reset ({v_reset}) must be below v_threshold ({v_threshold})")
        self.surrogate = get_surrogate(surrogate)
        self.detach_reset = bool(detach_reset)
        self.last_firing_rate: Tensor | None = None

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__} expects a tensor, got {type(x).__name__}")
        if x.dim() not in (3, 5):
            raise ValueError(
                f"{type(self).__name__} expects a time-first input [T, B, F] or [T, B, C, H, W], "
                f"got a tensor of rank {x.dim()} with shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects a floating-point input, got {x.dtype}")

    def _multistep(self, x: Tensor, m: "Tensor | float", n: "Tensor | float") -> Tensor:
        """Spikes of the (adaptive) LIF recurrence from rest, by the chosen backend."""
        kwargs = dict(
            v_threshold=self.v_threshold, v_reset=self.v_reset, surrogate=self.surrogate, detach_reset=self.detach_reset
        )
        if self.backend in ("fused", "compiled"):
            return lif_multistep_fused(x, m, n, compiled=self.backend == "compiled", **kwargs)
        return lif_multistep(x, m, n, **kwargs)[0]

    def _record(self, spikes: Tensor) -> None:
        self.last_firing_rate = spikes.detach().float().mean()

    def reset(self) -> None:
        """Forget the recorded statistics. (State never carries over between forwards.)"""
        self.last_firing_rate = None

    def extra_repr(self) -> str:
        parts = [f"v_threshold={self.v_threshold:g}", f"v_reset={self.v_reset:g}", f"surrogate={self.surrogate!r}"]
        if self.detach_reset:
            parts.append("detach_reset=True")
        if self.backend != "fused":
            parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)
