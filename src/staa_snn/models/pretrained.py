"""Weights exported by ``staa-snn export --format safetensors``, loaded back: :func:`load_pretrained`
builds the net from ``config.json`` and loads ``model.safetensors`` (tensors only: no code runs).

A path is the name of weights shipped with the package (:func:`list_pretrained`; export folders
under ``staa_snn/pretrained/``: ``cifar10_quick``, ``cifar10_quick_lif``), a local folder (or its ``model.safetensors``) or a Hugging Face Hub model,
``hf://owner/name`` or ``hf://owner/name@revision`` (downloaded once into the Hub's cache; needs
the ``[hub]`` extra)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

__all__ = ["FORMAT", "HUB_PREFIX", "PRETRAINED_DIR", "list_pretrained", "load_pretrained", "load_weights",
           "pretrained_spec"]

FORMAT = "staa-snn-weights-1"
HUB_PREFIX = "hf://"
FILES = ("model.safetensors", "config.json", "README.md")  # what an export folder holds
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"  # weights shipped with the package


def list_pretrained() -> list[str]:
    """Names of the weights shipped with the package (each an export folder under
    ``staa_snn/pretrained/``, loaded by ``load_pretrained(name)`` or ``create_model(..., weights=name)``)."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(d.name for d in PRETRAINED_DIR.iterdir() if (d / "model.safetensors").is_file())


def _safetensors():
    try:
        import safetensors.torch
    except ImportError:
        raise ImportError('safetensors weights need safetensors: pip install -e ".[export]" (in the repository)') from None
    return safetensors.torch


def hub_repo(ref: str, *, revision: bool = True) -> tuple[str, str | None]:
    """``[hf://]owner/name[@revision]`` -> (``owner/name``, revision or None); a ValueError otherwise
    (also for an ``@revision`` when ``revision`` is False: a repository to upload to)."""
    repo, at, rev = ref.removeprefix(HUB_PREFIX).partition("@")
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name or any(c.isspace() for c in repo) or (at and not revision):
        expected = f"{HUB_PREFIX}owner/name or {HUB_PREFIX}owner/name@revision" if revision else "owner/name"
        raise ValueError(f"{ref!r} is not a Hub model: expected {expected}")
    return repo, rev or None


def huggingface_hub():
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError('Hugging Face Hub weights need huggingface_hub: pip install -e ".[hub]" (in the repository)'
                          ) from None
    return huggingface_hub


def _local(path: str | os.PathLike) -> Path:
    """A local path as it is; a shipped name, its folder; an ``hf://`` reference downloaded (only
    the export's files) into the Hub's cache."""
    if isinstance(path, str) and path in list_pretrained() and not Path(path).exists():
        return PRETRAINED_DIR / path
    if isinstance(path, str) and path.startswith(HUB_PREFIX):
        repo, revision = hub_repo(path)
        return Path(huggingface_hub().snapshot_download(repo_id=repo, revision=revision, repo_type="model",
                                                        allow_patterns=list(FILES), library_name="staa-snn"))
    return Path(path)


def _files(path: str | os.PathLike) -> tuple[Path, Path]:
    path = _local(path)
    weights = path / "model.safetensors" if path.is_dir() else path
    config = weights.parent / "config.json"
    for f in (weights, config):
        if not f.is_file():
            shipped = list_pretrained()
            names = f"; or the name of shipped weights: {', '.join(shipped)}" if shipped else ""
            raise FileNotFoundError(f"{f} does not exist (expected model.safetensors and config.json, as written by "
                                    f"staa-snn export --format safetensors{names})")
    return weights, config


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load ``model.safetensors`` (a folder, the file or ``hf://owner/name[@revision]``) into
    ``model``, strictly: every key, every shape; a mismatch is a ``ValueError`` saying which."""
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


def describe_inputs(name: str, T: int, dataset: str, inputs: dict | None) -> dict:
    """``net.pretrained_cfg``: the net, ``T``, the dataset and what a checkpoint or export stores of
    its inputs (class names, normalisation, size, channels, kind)."""
    return {"name": name, "T": T, "dataset": dataset, **(inputs or {"classes": None, "normalization": None})}


def pretrained_spec(path: str | os.PathLike) -> dict:
    """The ``config.json`` of exported weights (a shipped name, a folder or ``hf://...``), checked."""
    _, config = _files(path)
    spec = json.loads(config.read_text())
    if spec.get("format") != FORMAT:
        raise ValueError(f"{config}: not a staa-snn weights config (format {spec.get('format')!r})")
    return spec


def load_pretrained(path: str | os.PathLike, **overrides) -> nn.Module:
    """The net of exported weights -- a shipped name (:func:`list_pretrained`), a folder (or its
    ``model.safetensors``) or ``hf://owner/name[@revision]`` on the Hugging Face Hub -- built from
    ``config.json`` and loaded, in ``eval()``; or of a ``.pt`` checkpoint written by ``staa-snn
    train`` (:func:`staa_snn.training.load_trained`). ``overrides``: create_model arguments to
    change (e.g. ``backend="compiled"``).

    ``net.pretrained_cfg`` (as in timm) says what the inputs must be and what the outputs mean:
    ``classes`` (index -> name), ``normalization`` (``{"mean", "std"}`` of values in [0, 1], or
    ``None``), ``size``, ``in_channels``, ``kind``, with ``name``, ``T`` and the ``dataset``.

    >>> net = load_pretrained("path/to/export")                     # doctest: +SKIP
    >>> net.pretrained_cfg["classes"][:3]                            # doctest: +SKIP
    ['airplane', 'automobile', 'bird']
    """
    from .registry import create_model

    path = _local(path)  # one download for both files
    if path.is_file() and path.suffix == ".pt":  # a checkpoint written by staa-snn train
        from ..training import load_trained

        if overrides:
            raise ValueError(f"{path} is a checkpoint: create_model overrides apply to exported weights; "
                             f"set the backend on the loaded net (staa_snn.models.set_backend)")
        return load_trained(path, require_root=False)[1]
    spec = pretrained_spec(path)
    args = {**spec["model"], **overrides}
    name = args.pop("name")
    model = load_weights(create_model(name, **args), path).eval()
    model.pretrained_cfg = describe_inputs(name, args.get("T"), spec.get("dataset"), spec.get("input"))
    return model
