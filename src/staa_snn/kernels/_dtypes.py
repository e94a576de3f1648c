"""Custom autograd nodes under autocast: compute in one dtype, with autocast off inside.

Autocast changes the dtype of matrix products inside a forward but not inside a
hand-written backward, so a kernel would see mixed dtypes there. Instead, the
kernels take their inputs in the dtype the reference's type promotion gives
(``bf16`` activations times ``float32`` parameters compute in ``float32``) and
run with autocast off; autograd casts the gradients back to each input's dtype.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor


def common_dtype(*values) -> torch.dtype:
    """The promoted dtype of the floating-point tensors among ``values``."""
    dtypes = [v.dtype for v in values if isinstance(v, Tensor) and v.is_floating_point()]
    dtype = dtypes[0]
    for d in dtypes[1:]:
        dtype = torch.promote_types(dtype, d)
    return dtype


def cast(value, dtype: torch.dtype):
    """``value.to(dtype)`` for floating-point tensors; anything else unchanged."""
    return value.to(dtype) if isinstance(value, Tensor) and value.is_floating_point() else value


def autocast_off(device: torch.device):
    """No autocast for ``device`` inside (a no-op when autocast is not on)."""
    if not torch.is_autocast_enabled(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device.type, enabled=False)
