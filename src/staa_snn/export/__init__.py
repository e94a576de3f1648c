"""Export a trained net: ONNX (any ONNX runtime), NIR (neuromorphic hardware and simulators), and
safetensors weights with a model card (to share, on the Hugging Face Hub too: :func:`push_to_hub`;
:func:`staa_snn.models.load_pretrained` loads them).

``staa-snn export --checkpoint best.pt --format onnx|nir|safetensors --out PATH`` runs
:func:`export_checkpoint`. The ``[export]`` extra installs what the formats need.
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
from pathlib import Path

import torch

from .._io import atomic_path, check_writable, file_in_the_way, is_temporary, output_target
from ..analysis import loading
from ..data import dataset_info
from ..errors import ConfigError
from ..measure import profile_model
from ..models import fold_mpbn
from ..training import input_metadata, load_checkpoint, load_trained
from ..training.config import eval_split, samples_of
from .hub import push_to_hub
from .nir_graph import NIRExportError, to_nir
from .onnx_export import to_onnx, to_onnx_step
from .weights import model_card, model_spec, run_provenance, save_weights

__all__ = ["FORMATS", "NIRExportError", "export_checkpoint", "push_to_hub", "to_nir", "to_onnx", "to_onnx_step", "save_weights"]

FORMATS = ("onnx", "nir", "safetensors")


def _input_shape(cfg) -> tuple[int, ...]:
    info = dataset_info(cfg.data.name)
    size = cfg.data.input_size
    return (info.in_channels, size, size)


EXPORT_FILES = ("model.safetensors", "config.json", "README.md")  # what save_weights writes


def _check_out(out: str | os.PathLike, fmt: str) -> Path:
    """Refuse, before any work, an ``out`` that cannot be written: safetensors weights are a
    folder, so not an existing file; ONNX and NIR are a file, so not an existing folder; no
    folder above it may be a file, and its folder must take files (:func:`~.._io.check_writable`).
    Returns what is written (:func:`~.._io.output_target`: ``~`` expanded, a link followed)."""
    if fmt != "safetensors" and str(out).endswith(("/", os.sep)):  # Path() would drop the slash
        raise ConfigError(f"--out {out} names a folder; {fmt} writes one file: give a file path such as "
                          f"{Path(out) / f'net.{fmt}'}")
    out = output_target(out)  # ~ expanded, a link followed
    above = file_in_the_way(out)
    if above is not None:
        raise ConfigError(f"--out {out}: {above} is a file, not a folder; expected a path in a folder")
    if fmt == "safetensors" and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; safetensors weights are written as a folder (model.safetensors, "
                          f"config.json, README.md): give a new or existing folder")
    if fmt == "safetensors" and out.is_dir():  # a new folder, or an earlier export written over
        other = sorted(p.name for p in out.iterdir() if p.name not in EXPORT_FILES and not is_temporary(p))
        if other:
            raise ConfigError(f"--out {out} holds other files ({', '.join(other[:3])}{', ...' if len(other) > 3 else ''}"
                              f"): safetensors weights go into a new or empty folder, or over an earlier export "
                              f"({', '.join(EXPORT_FILES)} alone)")
    if fmt != "safetensors" and out.is_dir():
        raise ConfigError(f"--out {out} is a folder; {fmt} writes one file: give a file path such as {out / f'net.{fmt}'}")
    check_writable(out / EXPORT_FILES[0] if fmt == "safetensors" else out)  # a folder that takes no files
    return out


def _chosen(checkpoint: Path, ckpt: dict) -> dict | None:
    """For a ``best.pt`` (the epoch of the highest accuracy on the evaluation split, so chosen on
    it): the run's epochs and its accuracy after the last one, from ``last.pt`` beside it where
    that is there (``None`` values otherwise); ``None`` for any other checkpoint."""
    if checkpoint.name != "best.pt":
        return None
    last = checkpoint.with_name("last.pt")
    history = load_checkpoint(last).get("history") if last.is_file() else None
    if not history or history[-1]["epoch"] < ckpt["epoch"]:
        return {"epochs": None, "last_acc": None}
    return {"epochs": history[-1]["epoch"], "last_acc": history[-1]["test_acc"]}


def _command_line() -> list[str]:
    """This process's command for the card, the program by its name (``staa-snn``), not by the
    exporting machine's path to it."""
    return [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else list(sys.argv)


def export_checkpoint(checkpoint: str | os.PathLike, fmt: str, out: str | os.PathLike, *, profile_batches: int = 2,
                      batch_size: int = 16, command: list[str] | None = None, step: bool = False,
                      card_note: str | None = None) -> Path:
    """Export a checkpoint written by ``staa-snn train``; returns the file or folder written.

    * ``onnx``: one ``.onnx`` file (the eval-mode net, MPBN folded, batch size free); ``step``: one
      step with the neurons' state as inputs and outputs (:func:`to_onnx_step`);
    * ``nir``: one ``.nir`` file (LIF / adaptive-LIF nets; STAA-LIF is refused, naming its layers);
    * ``safetensors``: a folder with ``model.safetensors``, ``config.json`` and ``README.md`` (a model
      card with the accuracy and, from ``staa-snn profile`` on ``profile_batches`` batches of the run's
      evaluation split (test or validation) -- or a
      random input when the data are not at hand -- the operation counts and energy), and
      ``card_note`` (markdown: how the run was made) under the card's first sentence and in
      ``config.json``'s ``provenance``. ``config.json`` and the card carry the training config
      without the data's path and hold-out options, which go to ``provenance`` (with the epochs
      and hours), so the folder is the run's, reproducibly, with nothing to edit by hand.
    """
    if card_note is not None and fmt != "safetensors":
        raise ValueError(f"a card note goes into the model card of safetensors weights, not into {fmt}: "
                         f"use --format safetensors")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if step and fmt != "onnx":
        raise ValueError(f"a step graph is exported as ONNX (--format onnx --step), not {fmt}")
    out = _check_out(out, fmt)
    cfg, model, ckpt = load_trained(checkpoint, require_root=False)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    shape = _input_shape(cfg)
    if fmt == "nir":
        import nir

        graph = to_nir(model, shape)
        with atomic_path(out) as tmp:
            nir.write(tmp, graph)
        return out
    if fmt == "onnx":
        events = dataset_info(cfg.data.name).kind == "events"
        example = torch.zeros(2, cfg.model.T, *shape) if events else torch.zeros(2, *shape)
        meta = {**(ckpt.get("input") or input_metadata(cfg)), "T": cfg.model.T, "model": cfg.model.name,
                "neuron": cfg.model.neuron, "staa_snn": ckpt.get("staa_snn")}
        return (to_onnx_step if step else to_onnx)(model, example, out, metadata=meta)
    try:  # the model card's energy: the run's evaluation data when at hand, else a random input (exact counts only)
        inputs = loading.dataset_batches(cfg, profile_batches, batch_size)[0]
        what = f"{sum(len(x) for x in inputs)} of the {eval_split(cfg.data.options)} {samples_of(cfg.data.name)}"
    except (FileNotFoundError, ValueError, OSError) as e:
        warnings.warn(f"the model card's firing rates, #AC and energy are measured on a random input: the test data "
                      f"could not be read ({e})")
        inputs, what = [loading.random_batch(cfg, batch_size)], "a random input: the firing rates, #AC and energy are not a trained net's on data"
    report = profile_model(fold_mpbn(copy.deepcopy(model)), inputs).to_dict()
    spec = model_spec(cfg, ckpt["num_classes"], shape[0], model, ckpt.get("input"))
    spec["provenance"].update(run_provenance(ckpt, card_note))
    card = model_card(cfg=cfg, ckpt=ckpt, spec=spec, profile=report, profile_input=what,
                      command=command if command is not None else _command_line(), note=card_note,
                      chosen=_chosen(Path(checkpoint), ckpt))
    return save_weights(model, out, spec, card=card)
