"""staa-snn: spiking neural networks with a spatial-temporal attention aggregator.

The package is layered so the method can be read off the code:

- :mod:`staa_snn.functional` -- the pure reference math of ``docs/method.md``
  (surrogates, LIF charge/fire/reset, PE, GC, SA, TSRD, MPBN), one small file per idea;
- :mod:`staa_snn.kernels` -- fused and compiled fast paths, tested against it;
- :mod:`staa_snn.neurons` -- stateful multi-step modules over time-first
  tensors ``[T, B, ...]``: :class:`~staa_snn.neurons.LIF`,
  :class:`~staa_snn.neurons.AdaptiveLIF`, :class:`~staa_snn.neurons.STAALIF`;
- :mod:`staa_snn.models` -- the nets (``create_model``), MPBN folding, pretrained weights;
- :mod:`staa_snn.data` -- the datasets (``get_dataset``), beside the nets, importing none of them;
- :mod:`staa_snn.measure` -- operation counts and energy, per-step recordings, step costs;
- :mod:`staa_snn.training` -- configs and the trainer (``train``), checkpoints (``load_trained``);
- on top, the application: :mod:`staa_snn.inference` (predict, stream, early exit),
  :mod:`staa_snn.analysis` (figures, ablations, curves), :mod:`staa_snn.export` (ONNX, NIR and
  safetensors) and :mod:`staa_snn.cli`.

A module imports only from the layers below its own (``pyproject.toml``'s import-linter contracts,
checked by ``tests/test_layers.py``); :mod:`staa_snn.errors` holds the errors every layer raises.

The main entry points are importable from the top level (loaded on first use):
``create_model``, ``list_models``, ``load_pretrained``, ``list_pretrained``, ``fold_mpbn``, ``get_dataset``,
``train``, ``load_config``, ``profile_model``, ``LIF``, ``AdaptiveLIF``, ``STAALIF``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "create_model": "models", "list_models": "models", "load_pretrained": "training", "list_pretrained": "models",
    "fold_mpbn": "models",
    "get_dataset": "data", "list_datasets": "data",
    "train": "training", "load_config": "training", "Config": "training", "evaluate_checkpoint": "training",
    "profile_model": "analysis", "plot_runs": "analysis",
    "LIF": "neurons", "AdaptiveLIF": "neurons", "STAALIF": "neurons",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'staa_snn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
