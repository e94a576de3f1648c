"""Parameter holders for the STAA sub-blocks; the math is in :mod:`staa_snn.functional`."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..functional.gc import GC_FUSIONS, global_context
from ..functional.pe import add_position_encoding, sinusoidal_position_encoding
from ..functional.sa import SA_GATES, step_attention_gates

__all__ = ["PositionEncoding", "GlobalContext", "StepAttention", "PE_KINDS", "PE_SHAPES"]

PE_KINDS = ("learnable", "fixed")
PE_SHAPES = ("channel", "full")


def step_rows(table: Tensor, t: "int | Tensor") -> Tensor:
    """Row ``t`` of a per-step table ``[T, ...]``, kept as ``[1, ...]``: a slice for an int, a
    gather for a tensor (so an exported graph takes the step index as an input)."""
    if isinstance(t, Tensor):
        return table.index_select(0, t.reshape(1).long())
    return table[t:t + 1]


class PositionEncoding(nn.Module):
    """Eq. 11: ``X~[t] = X[t] + P[t]`` with ``P`` of shape ``[T, C, 1, 1]`` (``shape="channel"``)
    or ``[T, C, H, W]`` (``"full"``). ``kind="learnable"`` starts at zero; ``"fixed"`` is the
    sinusoidal encoding of the step index over channels times ``scale`` (a buffer, not trained;
    the raw sinusoid would put +1 on half the channels, next to a threshold of 1)."""

    def __init__(
        self, T: int, channels: int, *, kind: str = "learnable", shape: str = "channel",
        spatial_shape: "tuple[int, ...] | None" = None, scale: float = 0.1,
    ) -> None:
        super().__init__()
        if kind not in PE_KINDS:
            raise ValueError(f"unknown PE kind {kind!r}; expected one of {PE_KINDS}")
        if shape not in PE_SHAPES:
            raise ValueError(f"unknown pe_shape {shape!r}; expected one of {PE_SHAPES}")
        if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale)):
            raise ValueError(f"pe_scale must be a finite number, got {scale!r}")
        self.T, self.channels, self.kind, self.shape, self.scale = T, channels, kind, shape, float(scale)
        self.spatial_shape = tuple(spatial_shape) if shape == "full" else None
        if kind == "learnable":
            full = (T, channels) + (self.spatial_shape or ())
            self.p = nn.Parameter(torch.zeros(full))
        else:
            p = sinusoidal_position_encoding(T, channels) * self.scale
            if self.spatial_shape:
                p = p.reshape(T, channels, *([1] * len(self.spatial_shape))).expand(T, channels, *self.spatial_shape)
            self.register_buffer("p", p.contiguous())

    def table(self, x: Tensor) -> Tensor:
        """``P`` viewed to broadcast over ``[T, B, C, ...]`` after the batch dim is inserted."""
        if self.shape == "channel":
            return self.p.view(self.T, self.channels, *([1] * (x.dim() - 3)))
        return self.p

    def forward(self, x: Tensor, t: "int | Tensor | None" = None) -> Tensor:
        """``x [T, B, C, ...] + P``; with ``t``, ``x`` is the one step ``[1, B, C, ...]`` at index ``t``
        (an int, or a 0-d integer tensor, as in an exported step graph)."""
        table = self.table(x)
        return add_position_encoding(x, table if t is None else step_rows(table, t))

    def extra_repr(self) -> str:
        scale = f", scale={self.scale:g}" if self.kind == "fixed" else ""
        return f"T={self.T}, channels={self.channels}, kind={self.kind!r}, shape={self.shape!r}{scale}"


class GlobalContext(nn.Module):
    """GC block (Eq. 7-10) with bottleneck ratio ``ratio``; ``up`` starts at zero (identity at init).

    Parameters are those of three ``Conv2d(kernel_size=1)`` (key ``C->1``, value
    down ``C->C/r``, value up ``C/r->C``) and a LayerNorm over ``C/r``.
    """

    def __init__(self, channels: int, *, ratio: float = 4, fusion: str = "add") -> None:
        super().__init__()
        if fusion not in GC_FUSIONS:
            raise ValueError(f"unknown gc_fusion {fusion!r}; expected one of {GC_FUSIONS}")
        if not ratio > 0:
            raise ValueError(f"gc_ratio must be positive, got {ratio!r}")
        hidden = max(1, int(round(channels / ratio)))
        self.fusion = fusion
        self.key = nn.Linear(channels, 1)
        self.down = nn.Linear(channels, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.up = nn.Linear(hidden, channels)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x [N, C, *spatial]`` -> same shape."""
        return global_context(
            x, self.key.weight, self.key.bias, self.down.weight, self.down.bias,
            self.norm.weight, self.norm.bias, self.up.weight, self.up.bias,
            fusion=self.fusion, ln_eps=self.norm.eps,
        )

    def extra_repr(self) -> str:
        return f"fusion={self.fusion!r}"


class StepAttention(nn.Module):
    """SA gates (Eq. 12): ``W1: 2C -> 2C/r_sa``, ``W2: 2C/r_sa -> 2C``; ``W2`` starts at zero (gates = 1)."""

    def __init__(self, channels: int, *, ratio: float = 16, sa_lambda: float = 2.0, gate: str = "sigmoid") -> None:
        super().__init__()
        if gate not in SA_GATES:
            raise ValueError(f"unknown sa_gate {gate!r}; expected one of {SA_GATES}")
        if not ratio > 0:
            raise ValueError(f"sa_ratio must be positive, got {ratio!r}")
        if not sa_lambda > 0:
            raise ValueError(f"sa_lambda must be positive, got {sa_lambda!r}")
        hidden = max(1, int(round(2 * channels / ratio)))
        self.gate, self.sa_lambda = gate, float(sa_lambda)
        self.fc1 = nn.Linear(2 * channels, hidden)
        self.fc2 = nn.Linear(hidden, 2 * channels)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        """Gates ``(g_h, g_u)``, each ``[B, C]``."""
        return step_attention_gates(
            h, u, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias, self.sa_lambda, self.gate
        )

    def extra_repr(self) -> str:
        return f"sa_lambda={self.sa_lambda:g}, gate={self.gate!r}"
