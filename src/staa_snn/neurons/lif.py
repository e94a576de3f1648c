"""The LIF neuron (method.md, section 1; Eq. 1-3)."""

from __future__ import annotations

import math

from torch import Tensor

from ..functional.lif import lif_coefficients
from ..functional.surrogate import Surrogate
from .base import MultiStepNeuron, register_neuron
from .presets import get_preset

__all__ = ["LIF"]


@register_neuron("lif")
class LIF(MultiStepNeuron):
    """Multi-step leaky integrate-and-fire neuron with hard reset.

    ``H[t] = V[t-1] + (X[t] - (V[t-1] - V_reset)) / tau``, ``S[t] = 1(H[t] >= V_th)``,
    ``V[t] = H[t] (1 - S[t]) + V_reset S[t]``; ``dS/dH`` from ``surrogate``.
    With ``mpbn``: ``S[t] = 1(BN_mp(H[t]) >= V_th)``, the reset unchanged (method.md, section 11).

    Arguments left at ``None`` come from ``neuron_preset``.

    Args:
        tau: membrane time constant, in steps (``>= 1``; preset ``"spec"``: 2, ``"mpbn"``: 4/3).
        v_threshold: firing threshold ``V_th`` (positive; ``"spec"``: 1, ``"mpbn"``: 0.5).
        v_reset: reset potential (below the threshold).
        surrogate: ``"rectangle"`` (``"spec"``, ``a = 1``), ``"tanh"`` (``"mpbn"``), ``"sigmoid"``,
            ``"atan"``, ``"triangle"`` or a :class:`~staa_snn.functional.Surrogate`.
        detach_reset: stop the gradient through the reset.
        backend: ``"fused"`` (default: one autograd node that saves only ``H``),
            ``"compiled"`` (the same node with its loops through ``torch.compile``: several
            times faster once compiled, about 20 s the first time in a process; sequences longer than
            16 steps run as chunks of 16 compiled steps, so the compile time does not grow with T) or
            ``"reference"`` (the functional loop, every op recorded); same numbers.
        channels: ``C`` (dim 2 of the input); needed by ``mpbn``, checked when given.
        decay_input: ``H = V + (X - (V - V_reset)) / tau`` (``True``, ``"spec"``) or
            ``H = V - (V - V_reset) / tau + X`` (``False``, ``"mpbn"``: ``H = 0.25 V + X``).
        mpbn: BN_mp of ``H`` before the Heaviside (``"mpbn"``: on).
        neuron_preset: ``"spec"`` (method.md, sections 1-2; default) or ``"mpbn"`` (section 11).

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
        tau: float | None = None,
        v_threshold: float | None = None,
        v_reset: float = 0.0,
        surrogate: "str | Surrogate | None" = None,
        detach_reset: bool = False,
        backend: str = "fused",
        *,
        channels: int | None = None,
        decay_input: bool | None = None,
        mpbn: bool | None = None,
        neuron_preset: str = "spec",
    ) -> None:
        super().__init__(
            v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate, detach_reset=detach_reset, backend=backend,
            channels=channels, mpbn=mpbn, neuron_preset=neuron_preset,
        )
        tau, decay_input = get_preset(neuron_preset).fill(tau=tau, decay_input=decay_input).values()
        if not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau < 1:
            raise ValueError(f"tau must be a finite number >= 1 (the membrane time constant in steps), got {tau!r}")
        self.tau, self.decay_input = float(tau), bool(decay_input)
        self.decay, self.gain = lif_coefficients(self.tau, self.decay_input)

    def coefficients(self, x: Tensor) -> tuple[float, float]:
        return self.decay, self.gain

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return self._multistep(x, self.decay, self.gain)

    def extra_repr(self) -> str:
        head = f"{self.channels}, " if self.channels is not None else ""
        head += f"tau={self.tau:g}, " + ("" if self.decay_input else "decay_input=False, ")
        return head + super().extra_repr()
