"""NIR, the neuromorphic exchange format: LIF and adaptive-LIF nets as a graph of NIR primitives.

What the graph holds, per time step (the input is the same image at every step, as the net's
direct encoding): each ``conv + BN`` as one ``Conv2d`` (BN folded into its weights and bias),
average pools as ``AvgPool2d``, the classifier as ``Flatten`` + ``Affine``, each neuron layer as a
``LIF`` with its leak, gain, threshold and reset, and residual additions as two edges into one
node (NIR sums a node's inputs). The graph's time step is ``dt = 1`` (``metadata``): NIR's
``tau dv/dt = (v_leak - v) + R I``, integrated by Euler's method with ``dt = 1``, is our
``H = V_reset + M (V - V_reset) + N X`` with ``tau = 1 / (1 - M)``, ``R = N tau``,
``v_leak = V_reset``; each neuron starts at rest, ``v = v_leak`` (a simulator that starts at 0
differs when ``V_reset != 0``). NIR fires on ``v > v_threshold``, we on ``>=``: the same spikes
except on exact ties.

STAA-LIF layers (GC, PE, SA) have no NIR primitive and are refused, naming them; so are MPBN
neurons whose BN weight is negative in some channel (they fire below a threshold) and shortcut
poolings whose ``ceil_mode`` would matter.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..models import SpikingNet, SpikingNeuron, fold_mpbn
from ..models.resnet import BasicBlock
from ..neurons import LIF, STAALIF, AdaptiveLIF

__all__ = ["NIRExportError", "to_nir"]


class NIRExportError(ValueError):
    """The net has a part NIR cannot express; the message names it."""


def _array(t) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=np.float64)


def _fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None):
    weight = _array(conv.weight)
    bias = _array(conv.bias) if conv.bias is not None else np.zeros(weight.shape[0])
    if bn is not None:
        scale = _array(bn.weight) / np.sqrt(_array(bn.running_var) + bn.eps)
        weight = weight * scale[:, None, None, None]
        bias = (bias - _array(bn.running_mean)) * scale + _array(bn.bias)
    return weight, bias


class _Builder:
    def __init__(self, model: SpikingNet, shapes: dict[nn.Module, tuple]) -> None:
        try:
            import nir
        except ImportError:
            raise ImportError('NIR export needs nir: pip install -e ".[export]" (in the repository)') from None
        if "v_reset" not in getattr(nir.LIF, "__dataclass_fields__", {}):
            from importlib.metadata import version
            raise ImportError(f"NIR export needs nir>=1.0.6, whose LIF has a reset potential (v_reset); "
                              f"nir {version('nir')} is installed (Sinabs pins nir<=1.0.4): "
                              f"pip install 'nir>=1.0.6'")

        self.nir, self.model, self.shapes = nir, model, shapes
        self.nodes: dict = {}
        self.edges: list[tuple[str, str]] = []

    def add(self, name: str, node, *sources: str) -> str:
        self.nodes[name] = node
        self.edges += [(s, name) for s in sources]
        return name

    def conv(self, name: str, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, source: str) -> str:
        weight, bias = _fold_conv_bn(conv, bn)
        in_shape = self.shapes[conv][0]
        return self.add(name, self.nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=weight, stride=conv.stride,
                                              padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                                              bias=bias), source)

    def pool(self, name: str, pool: nn.AvgPool2d, source: str) -> str:
        k, s, p = (np.array(v if isinstance(v, tuple) else (v, v)) for v in (pool.kernel_size, pool.stride or
                                                                            pool.kernel_size, pool.padding))
        size = np.array(self.shapes[pool][0][1:])
        if pool.ceil_mode and ((size + 2 * p - k) % s).any():
            raise NIRExportError(f"{name}: average pooling with ceil_mode on a {size.tolist()} input has a partial "
                                 f"window, which NIR's AvgPool2d cannot express")
        return self.add(name, self.nir.AvgPool2d(kernel_size=k, stride=s, padding=p), source)

    def neuron(self, name: str, slot: SpikingNeuron, *sources: str) -> str:
        neuron = slot.neuron
        shape = self.shapes[slot][1]
        if isinstance(neuron, LIF):
            m, n = np.full(shape, neuron.decay), np.full(shape, neuron.gain)
        else:
            m = np.broadcast_to(_array(neuron.m).reshape(_param_shape(neuron.m, shape)), shape)
            n = np.broadcast_to(_array(neuron.n).reshape(_param_shape(neuron.n, shape)), shape)
        if (m >= 1).any():
            raise NIRExportError(f"{name}: a decay M >= 1 (no leak) has no NIR LIF time constant")
        threshold = np.full(shape, neuron.v_threshold)
        if neuron.fold_threshold is not None:
            if (_array(neuron.fold_sign) < 0).any():
                raise NIRExportError(f"{name}: MPBN channels with a negative BN weight fire below their threshold, "
                                     f"which NIR's LIF cannot express")
            threshold = np.broadcast_to(_array(neuron.fold_threshold).reshape(-1, *([1] * (len(shape) - 1))), shape)
        tau = 1.0 / (1.0 - m)
        return self.add(name, self.nir.LIF(tau=tau, r=n * tau, v_leak=np.full(shape, neuron.v_reset),
                                           v_threshold=np.array(threshold, dtype=np.float64),
                                           v_reset=np.full(shape, neuron.v_reset)), *sources)


def _param_shape(p: torch.Tensor, shape: tuple) -> tuple:
    """``M`` / ``N`` of shape ``[]``, ``[C]`` or ``[C, H, W]`` viewed to broadcast over ``shape``."""
    if p.dim() == 0:
        return (1,) * len(shape)
    if p.dim() == 1:
        return (-1,) + (1,) * (len(shape) - 1)
    return tuple(p.shape)


def _shapes(model: SpikingNet, input_shape: tuple) -> dict[nn.Module, tuple]:
    """Per-sample ``(input shape, output shape)`` of every module, from one forward of zeros."""
    shapes: dict[nn.Module, tuple] = {}

    def record(module, args, out) -> None:
        shapes.setdefault(module, (tuple(args[0].shape[1:]), tuple(out.shape[1:])))

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, dtype=next(model.parameters()).dtype))
    finally:
        for h in hooks:
            h.remove()
    return shapes


def to_nir(model: SpikingNet, input_shape: tuple[int, ...]):
    """The NIR graph of a LIF / adaptive-LIF VGG or ResNet of this package, for inputs of
    ``input_shape`` (``(C, H, W)``). MPBN's BN_mp is folded into per-channel thresholds first
    (on a copy: ``model`` is left as it is)."""
    staa = [n for n, m in model.named_modules() if isinstance(m, STAALIF)]
    if staa:
        raise NIRExportError(f"STAA-LIF layers have no NIR primitive (GC, PE and SA are not in NIR): "
                             f"{', '.join(staa)}; export a LIF or adaptive-LIF net, or use --format onnx")
    others = [n for n, m in model.named_modules() if isinstance(m, SpikingNeuron)
              and not isinstance(m.neuron, (LIF, AdaptiveLIF))]
    if others or not isinstance(model, SpikingNet):
        raise NIRExportError("NIR export takes the package's VGG and ResNet nets with LIF or adaptive-LIF neurons"
                             + (f"; not: {', '.join(others)}" if others else ""))
    model = fold_mpbn(copy.deepcopy(model).double())
    shapes = _shapes(model, input_shape)
    b = _Builder(model, shapes)
    current = b.add("input", b.nir.Input(input_type=np.array(input_shape)))
    children = list(model.features.named_children())
    i = 0
    while i < len(children):
        name, m = children[i]
        nxt = children[i + 1][1] if i + 1 < len(children) else None
        if isinstance(m, nn.Conv2d):
            bn = nxt if isinstance(nxt, nn.BatchNorm2d) else None
            current = b.conv(f"features.{name}", m, bn, current)
            i += 2 if bn is not None else 1
            continue
        if isinstance(m, SpikingNeuron):
            current = b.neuron(f"features.{name}", m, current)
        elif isinstance(m, nn.AvgPool2d):
            current = b.pool(f"features.{name}", m, current)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            size = shapes[m][0][1:]
            current = b.add(f"features.{name}", b.nir.AvgPool2d(kernel_size=np.array(size), stride=np.array(size),
                                                               padding=np.array([0, 0])), current)
        elif isinstance(m, BasicBlock):
            current = _block(b, f"features.{name}", m, current)
        else:
            raise NIRExportError(f"features.{name}: {type(m).__name__} has no NIR counterpart here")
        i += 1
    channels = shapes[model.classifier][0][0]
    current = b.add("flatten", b.nir.Flatten(input_type={"input": np.array([channels, 1, 1])}, start_dim=0), current)
    current = b.add("classifier", b.nir.Affine(weight=_array(model.classifier.weight),
                                               bias=_array(model.classifier.bias)), current)
    b.add("output", b.nir.Output(output_type=np.array([model.num_classes])), current)
    return b.nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata={
        "dt": 1.0, "T": model.T, "encoding": "the input image at every step", "readout": "mean of the T steps' logits",
        "initial_state": "every LIF at rest, v = v_leak",
        "spike": "v >= v_threshold (NIR: >)", "source": "staa-snn"})


def _block(b: _Builder, name: str, block: BasicBlock, source: str) -> str:
    conv1 = b.conv(f"{name}.conv1", block.conv1[0], block.conv1[1], source)
    sn1 = b.neuron(f"{name}.sn1", block.sn1, conv1)
    conv2 = b.conv(f"{name}.conv2", block.conv2[0], block.conv2[1], sn1)
    shortcut = source
    if not isinstance(block.shortcut, nn.Identity):
        layers = list(block.shortcut)
        if isinstance(layers[0], nn.AvgPool2d):
            shortcut = b.pool(f"{name}.shortcut.pool", layers[0], shortcut)
            layers = layers[1:]
        elif isinstance(layers[0], nn.Identity):
            layers = layers[1:]
        shortcut = b.conv(f"{name}.shortcut", layers[0], layers[1], shortcut)
    return b.neuron(f"{name}.sn2", block.sn2, conv2, shortcut)
