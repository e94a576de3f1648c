"""The adaptive LIF neuron (method.md, section 3; Eq. 6)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._validation import check_positive_int
from ..functional.lif import lif_coefficients
from ..functional.surrogate import Surrogate
from .base import MultiStepNeuron, register_neuron
from .presets import get_preset

__all__ = ["AdaptiveLIF", "MN_SHAPES"]

MN_SHAPES = ("scalar", "channel", "full")


def _check_spatial(spatial_shape, needed: bool, what: str) -> tuple[int, ...] | None:
    if not needed:
        return None
    if spatial_shape is None:
        raise ValueError(f"{what}='full' needs spatial_shape=(H, W) (or () for [T, B, F] inputs)")
    shape = tuple(int(s) for s in spatial_shape)
    if any(s < 1 for s in shape):
        raise ValueError(f"spatial_shape must hold positive sizes, got {spatial_shape!r}")
    return shape


@register_neuron("adaptive")
class AdaptiveLIF(MultiStepNeuron):
    """LIF with learnable decay and input gain (Eq. 6): ``H[t] = M (.) V[t-1] + N (.) X[t]``.

    ``M`` and ``N`` start at the LIF coefficients ``1 - 1/tau`` and ``1/tau`` (``1`` without
    ``decay_input``), so an untrained adaptive neuron computes exactly the :class:`LIF`
    of the same preset (``"mpbn"``: ``M = 0.25``, ``N = 1``).

    Args:
        channels: ``C``, the size of dim 2 of the input.
        tau, decay_input: set the initial ``M, N``.
        mn_shape: ``"channel"`` (default, one value per channel), ``"scalar"``, or
            ``"full"`` (``[C, H, W]``, needs ``spatial_shape``).
        spatial_shape: ``(H, W)`` of the input, for ``mn_shape="full"``.
        v_threshold, v_reset, surrogate, detach_reset, backend, mpbn, neuron_preset: as in :class:`LIF`.
        With ``v_reset != 0`` the charge is ``V_reset + M (V - V_reset) + N X``.
    """

    @classmethod
    def needs_spatial_shape(cls, options: dict) -> bool:
        """``mn_shape="full"``: ``M`` and ``N`` over ``[C, H, W]``."""
        return options.get("mn_shape") == "full"

    def __init__(
        self,
        channels: int,
        *,
        tau: float | None = None,
        mn_shape: str = "channel",
        spatial_shape: "tuple[int, ...] | None" = None,
        v_threshold: float | None = None,
        v_reset: float = 0.0,
        surrogate: "str | Surrogate | None" = None,
        detach_reset: bool = False,
        backend: str = "fused",
        decay_input: bool | None = None,
        mpbn: bool | None = None,
        neuron_preset: str = "spec",
    ) -> None:
        super().__init__(
            v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate, detach_reset=detach_reset, backend=backend,
            channels=check_positive_int("channels", channels), mpbn=mpbn, neuron_preset=neuron_preset,
        )
        tau, decay_input = get_preset(neuron_preset).fill(tau=tau, decay_input=decay_input).values()
        if mn_shape not in MN_SHAPES:
            raise ValueError(f"unknown mn_shape {mn_shape!r}; expected one of {MN_SHAPES}")
        self.mn_shape = mn_shape
        self.spatial_shape = _check_spatial(spatial_shape, mn_shape == "full", "mn_shape")
        m0, n0 = lif_coefficients(float(tau), bool(decay_input))
        shape = {"scalar": (), "channel": (channels,), "full": (channels,) + (self.spatial_shape or ())}[mn_shape]
        self.m = nn.Parameter(torch.full(shape, m0))
        self.n = nn.Parameter(torch.full(shape, n0))

    def _check_input(self, x: Tensor, step: bool = False) -> None:
        super()._check_input(x, step)
        if self.spatial_shape is not None and tuple(x.shape[3:]) != self.spatial_shape:
            raise ValueError(
                f"{type(self).__name__} was built for spatial shape {self.spatial_shape} "
                f"but the input has {tuple(x.shape[3:])}"
            )

    def _per_step(self, p: Tensor, x: Tensor) -> Tensor:
        """View a ``[C]`` / ``[C, *spatial]`` / ``[]`` parameter so it broadcasts over one step ``[B, C, ...]``."""
        if p.dim() == 1:
            return p.view((-1,) + (1,) * (x.dim() - 3))
        return p

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(M, N)`` shaped to broadcast over one step of ``x``."""
        return self._per_step(self.m, x), self._per_step(self.n, x)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        m, n = self.coefficients(x)
        return self._multistep(x, m, n)

    def extra_repr(self) -> str:
        return f"{self.channels}, mn_shape={self.mn_shape!r}, " + super().extra_repr()
