"""Weights exported by ``staa-snn export --format safetensors``, loaded back: :func:`load_pretrained`
builds the net from ``config.json`` and loads ``model.safetensors`` (tensors only: no code runs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

__all__ = ["FORMAT", "load_pretrained", "load_weights"]

FORMAT = "staa-snn-weights-1"


def _safetensors():
    try:
        import safetensors.torch
    except ImportError:
        raise ImportError('safetensors weights need safetensors: pip install -e ".[export]" (in the repository)') from None
    return safetensors.torch


def _files(path: str | os.PathLike) -> tuple[Path, Path]:
    path = Path(path)
    weights = path / "model.safetensors" if path.is_dir() else path
    config = weights.parent / "config.json"
    for f in (weights, config):
        if not f.is_file():
            raise FileNotFoundError(f"{f} does not exist (expected model.safetensors and config.json, as written by "
                                    f"staa-snn export --format safetensors)")
    return weights, config


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load ``model.safetensors`` (a folder or the file) into ``model``, strictly: every key, every
    shape; a mismatch is a ``ValueError`` saying which."""
    weights, _ = _files(path)
    state = _safetensors().load_file(str(weights))
    missing, unexpected = [], []
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
                 f"{len(shapes)} of another shape (e.g. {shapes[0]}: {tuple(state[shapes[0]].shape)} vs "
                 f"{tuple(own[shapes[0]].shape)})" if shapes else ""]
        raise ValueError(f"the weights in {weights} do not fit this net: "
                         + "; ".join(p for p in parts if p) + " -- build it with the config.json beside them "
                         "(staa_snn.models.load_pretrained)")
    model.load_state_dict(state)
    return model


def load_pretrained(path: str | os.PathLike, **overrides) -> nn.Module:
    """The net of an exported folder (or its ``model.safetensors``), built from ``config.json`` and
    loaded, in ``eval()``. ``overrides``: create_model arguments to change (e.g. ``backend="compiled"``)."""
    from .registry import create_model

    _, config = _files(path)
    spec = json.loads(config.read_text())
    if spec.get("format") != FORMAT:
        raise ValueError(f"{config}: not a staa-snn weights config (format {spec.get('format')!r})")
    args = {**spec["model"], **overrides}
    name = args.pop("name")
    model = create_model(name, **args)
    return load_weights(model, path).eval()


