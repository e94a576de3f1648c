"""Store spike tensors saved for backward as ``bool`` (1 byte instead of 4).

Layers after a neuron (convolution, pooling, linear) save their spiking input
for backward as float. Inside :func:`binary_saved_tensors`, tensors marked with
:func:`mark_binary` are packed as ``bool`` when autograd saves them and turned
back into their dtype when backward needs them: exact, since spikes are 0 or 1.

A mark holds a weak reference to the marked tensor; a saved tensor is packed
only while that tensor is alive and shares its storage, so an address reused by
a later, non-binary tensor is never mistaken for spikes.
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from typing import Callable, Iterable

import torch
from torch import Tensor

__all__ = ["binary_saved_tensors", "mark_binary", "saved_tensor_bytes"]

class _Mark:
    """A weak reference to a marked tensor, and the bool copies already made of its views."""

    __slots__ = ("ref", "packed")

    def __init__(self, t: Tensor) -> None:
        self.ref = weakref.ref(t)
        self.packed: dict[tuple, Tensor] = {}


_marks: contextvars.ContextVar["dict[int, _Mark] | None"] = contextvars.ContextVar("_marks", default=None)
# saved_tensor_bytes: storage address -> bytes of each tensor kept for backward
_kept: contextvars.ContextVar["dict[int, int] | None"] = contextvars.ContextVar("_kept", default=None)


def mark_binary(t: Tensor) -> Tensor:
    """Declare that ``t`` holds only 0 and 1 (no-op outside :func:`binary_saved_tensors`, and while
    compiling or exporting, where a tensor has no storage to point at)."""
    marks = _marks.get()
    if marks is not None and not torch.compiler.is_compiling():
        marks[t.untyped_storage().data_ptr()] = _Mark(t)
    return t


def _pack(t: Tensor):
    marks = _marks.get()
    if marks and t.is_floating_point() and t.layout == torch.strided:
        mark = marks.get(t.untyped_storage().data_ptr())
        if mark is not None and mark.ref() is not None:
            # a tensor saved by two layers (a block's conv and its shortcut) is packed once
            key = (tuple(t.shape), t.stride(), t.storage_offset())
            if key not in mark.packed:
                mark.packed[key] = t.to(torch.bool)
            return ("binary", _keep(mark.packed[key]), t.dtype)
    return _keep(t)


def _keep(t: Tensor) -> Tensor:
    kept = _kept.get()
    if kept is not None:
        try:
            storage = t.untyped_storage()
            kept[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # tensors without storage
            pass
    return t


def saved_tensor_bytes(fn: Callable[[], object], exclude: Iterable[Tensor] = ()) -> int:
    """Bytes of the distinct storages autograd keeps for backward while ``fn()`` runs (a forward):
    the activation memory a training step holds between its forward and its backward. Spikes count
    as the ``bool`` copies :func:`binary_saved_tensors` keeps; what ``torch.utils.checkpoint``
    recomputes in backward is not kept, so it does not count. ``exclude``: tensors whose storage
    does not count (a net's parameters, which layers save but which exist anyway)."""
    token = _kept.set({})
    try:
        with torch.autograd.graph.saved_tensors_hooks(_keep, lambda t: t):
            fn()
        kept = _kept.get()
        for t in exclude:
            kept.pop(t.untyped_storage().data_ptr(), None)
        return sum(kept.values())
    finally:
        _kept.reset(token)


def _unpack(packed):
    if isinstance(packed, tuple) and len(packed) == 3 and packed[0] == "binary":
        return packed[1].to(packed[2])
    return packed


@contextlib.contextmanager
def binary_saved_tensors():
    """Within this block, saved tensors marked binary are stored as ``bool``."""
    token = _marks.set({})
    try:
        with torch.autograd.graph.saved_tensors_hooks(_pack, _unpack):
            yield
    finally:
        _marks.reset(token)
