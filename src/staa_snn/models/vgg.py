"""Spiking VGG-13 (CIFAR 32x32 and DVS 48/64/128), and a small VGG for tiny inputs."""

from __future__ import annotations

from torch import nn

from .base import SpikingNet
from .layers import NeuronFactory, SpikingNeuron, conv_bn

__all__ = ["SpikingVGG", "vgg13", "vgg_quick", "vgg_small", "vgg_tiny"]

VGG13 = [64, 64, "A", 128, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A"]
VGG_SMALL = [32, 32, "A", 64, 64, "A"]
VGG_QUICK = [32, "A", 64, 64, "A", 128, 128, "A"]
VGG_TINY = [32, "A", 64, "A", 128, "A"]


class SpikingVGG(SpikingNet):
    """``conv(3, c) + N`` per number, ``AvgPool 2`` per ``"A"``; global average pool; FC."""

    def __init__(self, cfg: list, neuron: NeuronFactory, T: int, in_channels: int, num_classes: int) -> None:
        super().__init__(T, in_channels, num_classes)
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "A":
                layers.append(nn.AvgPool2d(2))
            else:
                layers += [*conv_bn(c, v, 3, 1), SpikingNeuron(neuron(v), v, T)]
                c = v
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)


def vgg13(neuron: NeuronFactory, T: int, in_channels: int, num_classes: int) -> SpikingVGG:
    return SpikingVGG(VGG13, neuron, T, in_channels, num_classes)


def vgg_small(neuron: NeuronFactory, T: int, in_channels: int, num_classes: int) -> SpikingVGG:
    """Four conv layers (32, 32, pool, 64, 64, pool): the bundled digits default, trained in a
    minute on a laptop CPU. Not a paper net."""
    return SpikingVGG(VGG_SMALL, neuron, T, in_channels, num_classes)


def vgg_quick(neuron: NeuronFactory, T: int, in_channels: int, num_classes: int) -> SpikingVGG:
    """Five conv layers (32, pool, 64, 64, pool, 128, 128, pool; 0.28 M weights, 29 M MACs a step at
    32x32): CIFAR-10 on 2 CPU cores (the ``cifar10_quick`` recipes). The first
    layer pools at once, so the wide layers run at 16x16 and 8x8, where a CPU spends least per
    weight. Not a paper net."""
    return SpikingVGG(VGG_QUICK, neuron, T, in_channels, num_classes)


def vgg_tiny(neuron: NeuronFactory, T: int, in_channels: int, num_classes: int) -> SpikingVGG:
    """Three conv layers, each followed by a 2x2 average pool (32, 64, 128 channels; 94 k weights,
    11 M MACs a step at 34x34): N-MNIST on 2 CPU cores (the ``nmnist`` recipes). Not a paper net."""
    return SpikingVGG(VGG_TINY, neuron, T, in_channels, num_classes)
