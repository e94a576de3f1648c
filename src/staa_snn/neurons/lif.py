"""The LIF neuron (method.md, section 1; Eq. 1-3)."""

from __future__ import annotations

import math

from torch import Tensor

from ..functional.lif import lif_coefficients
from ..functional.surrogate import Surrogate
from .base import MultiStepNeuron

__all__ = ["LIF"]


class LIF(MultiStepNeuron):
    """Multi-step leaky integrate-and-fire neuron with hard reset.

    ``H[t] = V[t-1] + (X[t] - (V[t-1] - V_reset)) / tau``, ``S[t] = 1(H[t] >= V_th)``,
    ``V[t] = H[t] (1 - S[t]) + V_reset S[t]``; ``dS/dH`` from ``surrogate``.

    Args:
        tau: membrane time constant, in steps (``>= 1``).
        v_threshold: firing threshold ``V_th`` (positive).
        v_reset: reset potential (below the threshold).
        surrogate: ``"rectangle"`` (default, ``a = 1``), ``"sigmoid"``, ``"atan"``,
            ``"triangle"`` or a :class:`~staa_snn.functional.Surrogate`.
        detach_reset: stop the gradient through the reset.
        backend: ``"fused"`` (default: one autograd node that saves only ``H``),
            ``"compiled"`` (the same node with its loops through ``torch.compile``: several
            times faster once compiled, about 20 s the first time in a process) or
            ``"reference"`` (the functional loop, every op recorded); same numbers.

    Shape: ``[T, B, F]`` or ``[T, B, C, H, W]`` in, spikes of the same shape out.

    Example::

        >>> import torch
        >>> from staa_snn.neurons import LIF
        >>> lif = LIF(tau=2.0)
        >>> lif(torch.full((3, 1, 1), 1.5)).flatten().tolist()   # H = 0.75, 1.125 -> fire, 0.75
        [0.0, 1.0, 0.0]
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        surrogate: "str | Surrogate" = "rectangle",
        detach_reset: bool = False,
        backend: str = "fused",
    ) -> None:
        super().__init__(
            v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate, detach_reset=detach_reset, backend=backend
        )
        if not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau < 1:
            raise ValueError(f"tau must be a finite number >= 1 (the membrane time constant in steps), got {tau!r}")
        self.tau = float(tau)
        self.decay, self.gain = lif_coefficients(self.tau)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        spikes = self._multistep(x, self.decay, self.gain)
        self._record(spikes)
        return spikes

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}, " + super().extra_repr()
