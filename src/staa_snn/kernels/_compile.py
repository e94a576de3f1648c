"""One ``torch.compile`` per function and process (shapes dynamic), made on first use."""

from __future__ import annotations

import functools

import torch


@functools.cache
def compiled(fn):
    return torch.compile(fn, dynamic=True)
