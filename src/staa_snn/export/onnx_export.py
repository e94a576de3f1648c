"""ONNX: the eval-mode net as a graph any ONNX runtime runs (MPBN folded, TSRD off)."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .._io import atomic_path
from ..models import SpikingNet, SpikingNeuron, fold_mpbn, set_backend
from ..models.stream import StreamState

__all__ = ["to_onnx", "to_onnx_step"]


def to_onnx(model: nn.Module, example: torch.Tensor, path: str | os.PathLike, *, dynamic_batch: bool = True,
            metadata: dict | None = None) -> Path:
    """Export ``model`` (a copy: MPBN folded into thresholds, eval mode so no TSRD step is dropped,
    the neuron loops on the reference backend, whose plain tensor ops ONNX can express) for inputs
    shaped like ``example``, the batch size free (``dynamic_batch``). Logits ``[B, classes]``,
    averaged over the steps, as the net's ``forward``. ``metadata``: written into the model's
    ``metadata_props``, each value as JSON (the exporter writes ``classes``, ``normalization``,
    ``size``, ``T``: ``onnxruntime``'s ``get_modelmeta().custom_metadata_map`` reads them). Written
    atomically; returns the path."""
    try:
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError:
        raise ImportError('ONNX export needs onnx and onnxscript: pip install -e ".[export]" (in the repository)') from None
    net = fold_mpbn(copy.deepcopy(model))
    set_backend(net, "reference")
    net = net.float().eval()
    example = example.float()
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
    path = Path(path)
    with torch.no_grad(), atomic_path(path) as tmp, warnings.catch_warnings():
        # the neurons keep their last firing rate as a plain attribute; the exported graph does not
        warnings.filterwarnings("ignore", message=".*were assigned during export.*")
        program = torch.onnx.export(net, (example,), dynamo=True, dynamic_shapes=shapes, input_names=["x"],
                                    output_names=["logits"], verbose=False)
        program.save(str(tmp))
        if metadata:
            import json

            import onnx

            graph = onnx.load(str(tmp))
            for key, value in metadata.items():
                entry = graph.metadata_props.add()
                entry.key, entry.value = str(key), json.dumps(value)
            onnx.save(graph, str(tmp))
    return path


class _OneStep(nn.Module):
    """``net.step`` as a function of tensors: ``(x, t, V_0, ..., V_n) -> (logits, V_0', ..., V_n')``."""

    def __init__(self, net: nn.Module, layers: list[str]) -> None:
        super().__init__()
        self.net, self.layers = net, layers

    def forward(self, x, t, *v):
        logits, state = self.net.step(x, StreamState(t, None, dict(zip(self.layers, v, strict=True)), None))
        return (logits, *(state.neurons[name] for name in self.layers))


def to_onnx_step(model: nn.Module, example: torch.Tensor, path: str | os.PathLike, *,
                 metadata: dict | None = None) -> Path:
    """Export one step of ``model`` (``net.step``; MPBN folded, eval mode, reference neurons) for
    deployments that feed frames as they arrive. Inputs: ``x`` (one step, ``[B, C, H, W]``,
    shaped like ``example``'s first step), ``t`` (the step's index, an int64 scalar: STAA's
    position encoding reads its row) and ``state.0 .. state.n``, each neuron layer's ``V[t-1]``;
    outputs: ``logits`` (this step's, ``[B, classes]``) and ``next_state.0 ..``, the ``V[t]`` to
    feed back. At rest every state is ``V_reset`` (0 for the paper's neurons). The metadata
    (``custom_metadata_map``) adds ``state_layers`` (the layer of each state), ``state_shapes``
    (per sample) and ``state_rest`` (the value at rest). The batch size is free. Written
    atomically; returns the path."""
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        raise ImportError('ONNX export needs onnx and onnxscript: pip install -e ".[export]" (in the repository)') from None
    if not isinstance(model, SpikingNet):
        raise TypeError(f"a step graph exports a SpikingNet (net.step); got {type(model).__name__}")
    net = fold_mpbn(copy.deepcopy(model))
    set_backend(net, "reference")
    net = net.float().eval()
    x = (example[:, 0] if example.dim() == 5 else example).float()
    with torch.no_grad():
        _, state = net.step(x, net.init_state())
    layers = [name for name, m in net.named_modules() if isinstance(m, SpikingNeuron)]
    v = [state.neurons[name] for name in layers]
    rest = [float(dict(net.named_modules())[name].neuron.v_reset) for name in layers]
    batch = torch.export.Dim("batch", min=1, max=4096)
    shapes = ({0: batch}, None, tuple({0: batch} for _ in v))  # forward(x, t, *v): v is one tuple
    names = ["x", "t", *(f"state.{i}" for i in range(len(v)))]
    path = Path(path)
    with torch.no_grad(), atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*were assigned during export.*")
        warnings.filterwarnings("ignore", message=".*axis name: batch will not be used.*")  # x and states share it
        program = torch.onnx.export(_OneStep(net, layers).eval(), (x, torch.tensor(0, dtype=torch.int64), *v), dynamo=True,
                                    dynamic_shapes=shapes, input_names=names,
                                    output_names=["logits", *(f"next_state.{i}" for i in range(len(v)))],
                                    verbose=False)
        program.save(str(tmp))
        import json

        import onnx

        graph = onnx.load(str(tmp))
        extra = {**(metadata or {}), "step": True, "state_layers": layers,
                 "state_shapes": [list(s.shape[1:]) for s in v], "state_rest": rest}
        for key, value in extra.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = str(key), json.dumps(value)
        onnx.save(graph, str(tmp))
    return path
