"""Weight initialisation schemes of the nets (the neurons keep their own)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..neurons import MultiStepNeuron
from .resnet import BasicBlock

__all__ = ["INIT_SCHEMES", "init_weights"]

INIT_SCHEMES = ("torch", "mpbn")


def _net_modules(model: nn.Module):
    """The modules of the net proper: everything except what lives inside a neuron (GC, SA, PE,
    M, N, BN_mp keep the initialisation that makes a fresh STAA-LIF an adaptive LIF)."""
    stack = [model]
    while stack:
        module = stack.pop()
        yield module
        stack.extend(child for child in module.children() if not isinstance(child, MultiStepNeuron))


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str = "torch") -> nn.Module:
    """Initialise ``model``'s convolutions, batch norms and classifier in place; returns it.

    ``"torch"``: PyTorch's defaults, as the layers are built (nothing to do).
    ``"mpbn"``: the MPBN code's CIFAR nets (method.md, section 11): convolutions
    ``N(0, sqrt(2 / (k^2 C_out)))``, batch norms weight 1 and bias 0, linear layers
    ``N(0, 1 / C_in)`` with bias 0, and the last batch norm of every residual block at weight 0,
    so that each block starts as its shortcut.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init {scheme!r}; expected one of {INIT_SCHEMES}")
    if scheme == "torch":
        return model
    for m in _net_modules(model):
        if isinstance(m, nn.Conv2d):
            m.weight.normal_(0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            m.weight.fill_(1.0)
            m.bias.zero_()
        elif isinstance(m, nn.Linear):
            m.weight.normal_(0.0, 1.0 / m.in_features)
            if m.bias is not None:
                m.bias.zero_()
    for m in _net_modules(model):
        if isinstance(m, BasicBlock):
            m.conv2[1].weight.zero_()
    return model
