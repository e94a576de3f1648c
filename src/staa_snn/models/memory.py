"""Training memory: recompute each neuron segment's activations in backward (``train.memory``).

A spiking net saves, for every neuron layer, ``T`` times what its ANN saves: the convolution's
input, the BatchNorm's input and the neuron's own state, over all steps. With
``net.memory = "checkpoint"``, :attr:`SpikingNet.features` runs as *segments*, each ending at a
neuron (a VGG's ``conv, BN, neuron``, a ResNet's ``BasicBlock``, with the pooling that follows a
neuron opening the next segment); ``net.set_memory("checkpoint", segments=k)`` checkpoints only
the first ``k``, which hold the largest activations, for less recomputation. A segment keeps only its input for backward (the spikes of the
segment before, stored as ``bool`` by :func:`~staa_snn.kernels.spike_storage.binary_saved_tensors`)
and recomputes the rest when backward reaches it. The forward therefore runs twice, and the
memory held between forward and backward drops to about one byte per spike of each segment's
input, plus one segment's activations during its backward.

The gradients are those of the plain net, up to rounding:

* the random streams (TSRD's masks) are replayed: the recompute sees the same RNG state as the
  forward (``torch.utils.checkpoint``'s ``preserve_rng_state``);
* state updated in place by a forward (BatchNorm's and BN_mp's running statistics) is updated once:
  each buffer of the segment is put back as it was after the forward when a recompute ends.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .layers import SpikingNeuron

__all__ = ["buffers_kept", "neuron_segments", "run_segments", "segment_count"]


def _has_neuron(module: nn.Module) -> bool:
    return any(isinstance(m, SpikingNeuron) for m in module.modules())


def neuron_segments(features: nn.Module) -> list[tuple[bool, list[nn.Module]]]:
    """``features`` (an ``nn.Sequential``) split after each child that is or holds a neuron:
    ``(checkpointed, modules)`` per segment; the modules after the last neuron (the global pool)
    form a last segment that runs as it is."""
    if not isinstance(features, nn.Sequential):
        raise TypeError(f"memory='checkpoint' splits net.features into segments ending at each neuron, so it "
                        f"needs an nn.Sequential; got {type(features).__name__}")
    segments: list[tuple[bool, list[nn.Module]]] = []
    current: list[nn.Module] = []
    for child in features:
        current.append(child)
        if _has_neuron(child):
            segments.append((True, current))
            current = []
    if current:
        segments.append((False, current))
    return segments


def segment_count(features: nn.Module) -> int:
    """How many neuron segments of ``features`` can be checkpointed."""
    return sum(checkpointed for checkpointed, _ in neuron_segments(features))


@contextlib.contextmanager
def buffers_kept(modules: list[nn.Module]) -> Iterator[None]:
    """Put every buffer of ``modules`` back as it was on entry when the block ends (also on error):
    a forward run again, or only to measure, moves no running statistics."""
    buffers = [b for m in modules for b in m.buffers()]
    kept = [b.clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, k in zip(buffers, kept):
                b.copy_(k)


class _Segment:
    """One segment's forward, as ``checkpoint`` calls it: the first call is the forward; a later call
    is a recompute in backward, after which every buffer is put back as the forward left it."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.modules, self.calls = modules, 0

    def __call__(self, x: Tensor) -> Tensor:
        self.calls += 1
        if self.calls == 1:
            return self._run(x)
        with buffers_kept(self.modules):  # also when checkpoint stops the recompute early
            return self._run(x)

    def _run(self, x: Tensor) -> Tensor:
        for m in self.modules:
            x = m(x)
        return x


def run_segments(features: nn.Module, x: Tensor, limit: int | None = None) -> Tensor:
    """``features(x)`` with its neuron segments checkpointed (the same result, and the same
    gradients): all of them, or the first ``limit`` (where the largest activations are)."""
    left = len(features) if limit is None else limit
    for checkpointed, modules in neuron_segments(features):
        run: Callable[[Tensor], Tensor] = _Segment(modules)
        if checkpointed and left > 0:
            x = checkpoint(run, x, use_reentrant=False, preserve_rng_state=True)
            left -= 1
        else:
            x = run(x)
    return x
