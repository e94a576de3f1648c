"""Weights exported by ``staa-snn export --format safetensors``: where they are, their files, their
``config.json``, and :func:`load_weights` (tensors only: no code runs). The net is built from
``config.json`` by :func:`staa_snn.models.load_pretrained` (in :mod:`.registry`, beside ``create_model``).

A path is the name of weights shipped with the package (:func:`list_pretrained`; export folders
under ``staa_snn/pretrained/``: ``cifar10_quick``, ``cifar10_quick_lif``), a local folder (or its ``model.safetensors``) or a Hugging Face Hub model,
``hf://owner/name`` or ``hf://owner/name@revision`` (downloaded once into the Hub's cache; needs
the ``[hub]`` extra)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import safetensors.torch
from torch import nn

from ..errors import CorruptFileError, DataError

__all__ = ["FILES", "FORMAT", "HUB_PREFIX", "PRETRAINED_DIR", "PretrainedCfg", "describe_inputs", "hub_repo",
           "huggingface_hub", "list_pretrained", "load_weights", "pretrained_spec", "resolve_path", "weight_files"]

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


def hub_repo(ref: str, *, revision: bool = True) -> tuple[str, str | None]:
    """``[hf://]owner/name[@revision]`` -> (``owner/name``, revision or None); a
    :class:`~staa_snn.errors.DataError` (a ValueError) otherwise (also for an ``@revision`` when
    ``revision`` is False: a repository to upload to)."""
    repo, at, rev = ref.removeprefix(HUB_PREFIX).partition("@")
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name or any(c.isspace() for c in repo) or (at and not revision):
        expected = f"{HUB_PREFIX}owner/name or {HUB_PREFIX}owner/name@revision" if revision else "owner/name"
        raise DataError(f"{ref!r} is not a Hub model: expected {expected}")
    return repo, rev or None


def huggingface_hub():
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError('Hugging Face Hub weights need huggingface_hub: pip install -e ".[hub]" (in the repository)'
                          ) from None
    return huggingface_hub


def resolve_path(path: str | os.PathLike) -> Path:
    """A local path as it is; a shipped name, its folder; an ``hf://`` reference downloaded (only
    the export's files) into the Hub's cache."""
    if isinstance(path, str) and path in list_pretrained() and not Path(path).exists():
        return PRETRAINED_DIR / path
    if isinstance(path, str) and path.startswith(HUB_PREFIX):
        repo, revision = hub_repo(path)
        return Path(huggingface_hub().snapshot_download(repo_id=repo, revision=revision, repo_type="model",
                                                        allow_patterns=list(FILES), library_name="staa-snn"))
    return Path(path)


_OTHER_FILES = {".onnx": "an ONNX file (it runs in onnxruntime)", ".nir": "a NIR graph",
                ".pt": "a checkpoint", ".pth": "a PyTorch file"}


def weight_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(model.safetensors, config.json)`` of exported weights (a shipped name, a folder, its
    ``model.safetensors`` or ``hf://...``); a FileNotFoundError naming what is missing, a
    :class:`~staa_snn.errors.DataError` (a ValueError: bad input, exit 2 in the CLI) naming a file
    of another kind (``.onnx``, ``.pt``, ...)."""
    path = resolve_path(path)
    shipped = list_pretrained()
    names = f"; or the name of shipped weights: {', '.join(shipped)}" if shipped else ""
    expected = f"expected a folder with model.safetensors and config.json, as written by staa-snn export --format " \
               f"safetensors{names}"
    if path.is_file() and path.suffix != ".safetensors":
        what = _OTHER_FILES.get(path.suffix.lower(), f"a {path.suffix or 'suffix-less'} file")
        raise DataError(f"{path}: {what}, not exported weights: {expected} (or its model.safetensors, a .pt "
                         f"checkpoint of staa-snn train, hf://owner/name)")
    if not path.exists():
        if path.suffix == ".pt":
            raise FileNotFoundError(f"{path} does not exist (expected a .pt checkpoint written by staa-snn train)")
        raise FileNotFoundError(f"{path} does not exist ({expected})")
    weights = path / "model.safetensors" if path.is_dir() else path
    config = weights.parent / "config.json"
    for f in (weights, config):
        if not f.is_file():
            where = f"in {path}" if path.is_dir() else f"beside {path} ({f.resolve()} does not exist)"
            raise FileNotFoundError(f"no {f.name} {where}: {expected}")
    return weights, config


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load ``model.safetensors`` (a folder, the file or ``hf://owner/name[@revision]``) into
    ``model``, strictly: every key, every shape; a mismatch is a :class:`~staa_snn.errors.DataError`
    (a ValueError) saying which, a file safetensors cannot read a
    :class:`~staa_snn.errors.CorruptFileError` naming it."""
    weights, _ = weight_files(path)
    try:
        state = safetensors.torch.load_file(str(weights))
    except Exception as e:  # safetensors' own error kinds (SafetensorError, OSError) vary by version
        raise CorruptFileError(f"{weights}: not a readable safetensors file ({' '.join(str(e).split())})") from None
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
        raise DataError(f"the weights in {weights} do not fit this net: "
                         + "; ".join(p for p in parts if p) + " -- build it with the config.json beside them "
                         "(staa_snn.models.load_pretrained)")
    model.load_state_dict(state)
    return model


@dataclass(frozen=True, eq=False)
class PretrainedCfg(Mapping):
    """``net.pretrained_cfg`` (as in timm): what the inputs must be and what the outputs mean, typed,
    and read as a dict too (``cfg["classes"]``, ``cfg.get("size")``, ``{**cfg}``, ``cfg == {...}``).

    ``size``, ``in_channels``, ``kind`` and ``sensor`` are keys only when known (a checkpoint written before
    they were stored has ``classes`` and ``normalization`` alone), as in the dict it replaces."""

    name: str | None
    T: int | None
    dataset: str | None
    classes: list | None = None       # index -> class name
    normalization: dict | None = None  # {"mean", "std"} of values in [0, 1], or None
    size: int | None = None
    in_channels: int | None = None
    kind: str | None = None           # "static" or "events"
    sensor: list | None = None        # event data: the camera's [width, height] the net was trained on

    def _keys(self) -> list[str]:
        return [f.name for f in fields(self) if f.name not in _KNOWN_ONLY or getattr(self, f.name) is not None]

    def __getitem__(self, key: str):
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def to_dict(self) -> dict:
        return dict(self)


_KNOWN_ONLY = {"size", "in_channels", "kind", "sensor"}


def describe_inputs(name: str, T: int, dataset: str, inputs: dict | None) -> PretrainedCfg:
    """``net.pretrained_cfg``: the net, ``T``, the dataset and what a checkpoint or export stores of
    its inputs (class names, normalisation, size, channels, kind)."""
    return PretrainedCfg(name, T, dataset, **(inputs or {}))


def pretrained_spec(path: str | os.PathLike) -> dict:
    """The ``config.json`` of exported weights (a shipped name, a folder or ``hf://...``), checked:
    JSON, of this format, with the net's ``model`` section; a file that is not is a
    :class:`~staa_snn.errors.DataError` (a ValueError) naming it."""
    _, config = weight_files(path)
    try:
        spec = json.loads(config.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFileError(f"{config}: not valid JSON ({e}); expected the config.json written by staa-snn export "
                               f"--format safetensors") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        found = spec.get("format") if isinstance(spec, dict) else None
        raise DataError(f"{config}: not a staa-snn weights config (format {found!r}, expected {FORMAT!r}: the "
                        f"config.json written by staa-snn export --format safetensors)")
    if not isinstance(spec.get("model"), dict) or not isinstance(spec["model"].get("name"), str):
        raise CorruptFileError(f"{config}: no model section with the net's name (a staa-snn weights config "
                               f"always has one): the file is damaged")
    return spec
