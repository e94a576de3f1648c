"""Spiking ResNets: ResNet-19 and ResNet-20 (CIFAR), ResNet-18/34 (ImageNet).

Definitions as in ``docs/models.md``; every neuron slot takes the neuron
built by ``neuron(channels)``, so one definition serves LIF, adaptive LIF and STAA-LIF.
"""

from __future__ import annotations

from torch import Tensor, nn

from .base import SpikingNet
from .layers import NeuronFactory, SpikingNeuron, conv_bn

__all__ = ["BasicBlock", "SpikingResNet"]


class BasicBlock(nn.Module):
    """``conv(3, c, s), N, conv(3, c, 1)`` + shortcut, add, ``N``.

    Shortcut when the shape changes: ``conv(1, c, s)`` (``shortcut="conv"``) or
    ``AvgPool(s, ceil_mode=True, count_include_pad=False)`` then ``conv(1, c, 1)``
    (``shortcut="avgpool"``, ResNet-20).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, neuron: NeuronFactory, T: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = conv_bn(c_in, c_out, 3, stride)
        self.sn1 = SpikingNeuron(neuron(c_out), c_out, T)
        self.conv2 = conv_bn(c_out, c_out, 3, 1)
        if stride == 1 and c_in == c_out:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "avgpool":
            # MPBN's flags: the same result on even sizes, a defined one on odd sizes
            pool = nn.AvgPool2d(stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
            self.shortcut = nn.Sequential(pool, *conv_bn(c_in, c_out, 1, 1))
        else:
            self.shortcut = conv_bn(c_in, c_out, 1, stride)
        self.sn2 = SpikingNeuron(neuron(c_out), c_out, T)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.sn1(self.conv1(x)))
        return self.sn2(out + self.shortcut(x))


class SpikingResNet(SpikingNet):
    """A stem, stages of :class:`BasicBlock`, global average pool, FC."""

    def __init__(
        self,
        *,
        stem: list[tuple],  # ("conv", c_out, kernel, stride) | ("pool", kernel, stride, padding)
        stages: list[tuple[int, int, int]],  # (blocks, channels, first stride)
        shortcut: str,
        neuron: NeuronFactory,
        T: int,
        in_channels: int,
        num_classes: int,
    ) -> None:
        super().__init__(T, in_channels, num_classes)
        layers: list[nn.Module] = []
        c = in_channels
        for spec in stem:
            if spec[0] == "conv":
                _, c_out, k, s = spec
                layers += [*conv_bn(c, c_out, k, s), SpikingNeuron(neuron(c_out), c_out, T)]
                c = c_out
            else:
                _, k, s, p = spec
                layers.append(nn.AvgPool2d(k, s, p))
        for blocks, c_out, stride in stages:
            for i in range(blocks):
                layers.append(BasicBlock(c, c_out, stride if i == 0 else 1, neuron, T, shortcut))
                c = c_out
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)


def resnet19(neuron: NeuronFactory, T: int, in_channels: int, num_classes: int) -> SpikingResNet:
    """tdBN's ResNet-19: stem conv(3, 128); 3 x 128, 3 x 256 (s2), 2 x 512 (s2)."""
    return SpikingResNet(
        stem=[("conv", 128, 3, 1)], stages=[(3, 128, 1), (3, 256, 2), (2, 512, 2)], shortcut="conv",
        neuron=neuron, T=T, in_channels=in_channels, num_classes=num_classes,
    )


def resnet20(neuron: NeuronFactory, T: int, in_channels: int, num_classes: int) -> SpikingResNet:
    """Diet-SNN / MPBN's ResNet-20: three conv(3, 64) + AvgPool 2; 2 x 64/128/256/512 (s 1/2/2/2);
    shortcut AvgPool(s) then conv(1, c, 1)."""
    return SpikingResNet(
        stem=[("conv", 64, 3, 1), ("conv", 64, 3, 1), ("conv", 64, 3, 1), ("pool", 2, 2, 0)],
        stages=[(2, 64, 1), (2, 128, 2), (2, 256, 2), (2, 512, 2)], shortcut="avgpool",
        neuron=neuron, T=T, in_channels=in_channels, num_classes=num_classes,
    )


def _imagenet_resnet(blocks, neuron, T, in_channels, num_classes) -> SpikingResNet:
    return SpikingResNet(
        stem=[("conv", 64, 7, 2), ("pool", 3, 2, 1)],
        stages=[(blocks[0], 64, 1), (blocks[1], 128, 2), (blocks[2], 256, 2), (blocks[3], 512, 2)],
        shortcut="conv", neuron=neuron, T=T, in_channels=in_channels, num_classes=num_classes,
    )


def resnet18(neuron: NeuronFactory, T: int, in_channels: int, num_classes: int) -> SpikingResNet:
    """ImageNet ResNet-18: stem conv(7, 64, 2) + AvgPool(3, 2, 1); [2, 2, 2, 2] blocks."""
    return _imagenet_resnet([2, 2, 2, 2], neuron, T, in_channels, num_classes)


def resnet34(neuron: NeuronFactory, T: int, in_channels: int, num_classes: int) -> SpikingResNet:
    """ImageNet ResNet-34: stem conv(7, 64, 2) + AvgPool(3, 2, 1); [3, 4, 6, 3] blocks."""
    return _imagenet_resnet([3, 4, 6, 3], neuron, T, in_channels, num_classes)
