"""Building blocks of the spiking nets.

The nets keep activations folded as ``[T*B, ...]``: convolutions, batch norm,
pooling and the classifier run on that tensor directly (never in a loop over
steps). Only :class:`SpikingNeuron` unfolds it to ``[T, B, ...]`` for the
neuron's recurrence and folds the spikes back.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from ..kernels.spike_storage import mark_binary
from .stream import stepping

__all__ = ["SpikingNeuron", "conv_bn", "NeuronFactory"]

NeuronFactory = Callable[[int], nn.Module]  # channels -> neuron layer


class SpikingNeuron(nn.Module):
    """A neuron slot: ``[T*B, C, ...]`` in, spikes ``[T*B, C, ...]`` out.

    ``self.neuron`` is any multi-step neuron over ``[T, B, ...]`` (ours or, after
    :func:`~staa_snn.models.convert_neurons`, any compatible one). Inside ``net.step``
    (:mod:`.stream`) it gets one step ``[B, C, ...]`` and runs ``self.neuron.step``.
    """

    def __init__(self, neuron: nn.Module, channels: int, T: int) -> None:
        super().__init__()
        self.neuron, self.channels, self.T = neuron, channels, T

    def forward(self, x: Tensor) -> Tensor:
        call = stepping()
        if call is not None:  # net.step: one step [B, C, ...], the state kept by the call
            return call.run(self, x)
        # Spikes are 0/1: the layers that save them for backward may store them as bool.
        return mark_binary(self.neuron(x.unflatten(0, (self.T, -1))).flatten(0, 1))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, T={self.T}"


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """``conv(k, c_out, s)`` of docs/models.md: bias-free conv, padding ``k // 2``, then BN."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
    )
