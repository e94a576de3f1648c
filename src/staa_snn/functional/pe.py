"""Position encoding, PE (method.md, section 4; Eq. 11): ``X~[t] = X[t] + P[t]``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["sinusoidal_position_encoding", "add_position_encoding"]


def sinusoidal_position_encoding(T: int, channels: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """The fixed encoding of the step index over channels, ``[T, C]``.

    Transformer-style: for step ``t = 0..T-1`` and channel pair ``(2i, 2i+1)``,
    ``P[t, 2i] = sin(t / 10000^(2i/C))`` and ``P[t, 2i+1] = cos(t / 10000^(2i/C))``.
    """
    if T < 1 or channels < 1:
        raise ValueError(f"T and channels must be >= 1, got T={T}, channels={channels}")
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    i = torch.arange(0, channels, 2, dtype=torch.float64)
    freq = torch.exp(-math.log(10000.0) * i / channels)
    pe = torch.zeros(T, channels, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : channels // 2]
    return pe.to(dtype)


def add_position_encoding(x_seq: Tensor, p: Tensor) -> Tensor:
    """Eq. 11 for all steps at once: ``x_seq [T, B, C, ...] + p [T, C, ...]`` (``p``
    broadcast over the batch; its trailing dims are 1 or the spatial size)."""
    if p.shape[0] != x_seq.shape[0]:
        raise ValueError(f"position encoding has {p.shape[0]} steps but the input has {x_seq.shape[0]}")
    return x_seq + p.unsqueeze(1)
