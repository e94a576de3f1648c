"""ONNX: the eval-mode net as a graph any ONNX runtime runs (MPBN folded, TSRD off)."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .._io import atomic_path
from ..models import fold_mpbn, set_backend

__all__ = ["to_onnx"]


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
