"""Weights to share: ``model.safetensors``, ``config.json`` and a model card (``README.md``); the
way back is :func:`staa_snn.models.load_pretrained`.

``config.json`` holds what :func:`~staa_snn.models.create_model` needs (net, neuron and its
options, ``T``, classes, input channels, initialisation) and the training config the weights
came from; ``model.safetensors`` the state dict (tensors only: loading runs no code).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from .. import __version__
from .._io import atomic_path, write_text_atomic
from ..data import dataset_info
from ..models.pretrained import FORMAT
from ..training import format_duration, input_metadata, run_time
from ..training.config import OutputConfig, split_name

__all__ = ["save_weights", "model_card", "model_spec", "run_provenance", "shareable_config", "training_hours",
           "training_time_text"]

# Data options that say which part of the user's folder was held out: where the weights came from,
# not how to use them (``eval --weights NAME data.root=DIR`` evaluates on DIR's own test/ or val/).
HOLD_OUT_OPTIONS = ("val_per_class", "val_seed")


def shareable_config(cfg) -> tuple[dict, dict]:
    """``(config, provenance)`` of a run for weights to share: the training config without the
    training machine's paths (the data folder; the run folder goes back to the default) and
    hold-out options, and those options as provenance."""
    config = cfg.to_dict()
    data = config["data"]
    options = dict(data.get("options") or {})
    held = {k: options.pop(k) for k in HOLD_OUT_OPTIONS if k in options}
    data["root"], data["options"] = None, options
    config["output"].update(dir=OutputConfig.dir, name=OutputConfig.name)
    return config, {"data": cfg.data.name, **({"held_out": held} if held else {})}


def save_weights(model: nn.Module, folder: str | os.PathLike, spec: dict, *, card: str | None = None) -> Path:
    """Write ``folder/model.safetensors``, ``folder/config.json`` (``spec``: the create_model
    arguments and provenance) and, when given, ``folder/README.md``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        # One metadata key: safetensors writes its metadata in a random order (safetensors#584), so
        # two keys would make the same weights two different files. The version is in config.json.
        safetensors.torch.save_file(state, str(tmp), metadata={"format": FORMAT})
    write_text_atomic(folder / "config.json", json.dumps({"format": FORMAT, **spec}, indent=1) + "\n")
    if card is not None:
        write_text_atomic(folder / "README.md", card)
    return folder


def model_card(*, cfg, ckpt: dict, spec: dict, profile: dict | None, profile_input: str, command: list[str],
               note: str | None = None, chosen: dict | None = None) -> str:
    """A model card in markdown: what the net is, how well it did, what it costs, how to load it;
    ``note`` (markdown: how the run was made, on what machine...) follows the first sentence, so a
    card never needs editing by hand after export (its ``# `` first line: the title, :func:`card_title`).
    ``chosen`` (a ``best.pt``: ``{"epochs", "last_acc"}`` of its run, either ``None`` where unknown)
    says that the accuracy was the selection's criterion on the same split, and the last epoch's."""
    import yaml

    history = ckpt.get("history") or []
    record = next((h for h in history if h["epoch"] == ckpt["epoch"]), history[-1] if history else {})
    m = spec["model"]
    options = {k: v for k, v in m.items()
               if k not in ("name", "neuron", "T", "num_classes", "in_channels", "init", "input_size")}
    size = m.get("input_size")
    size = "x".join(map(str, size)) if isinstance(size, (list, tuple)) else f"{size}x{size}"
    front = ["---", "library_name: staa-snn", "tags:", "- spiking-neural-network", f"- {m['neuron']}-neurons",
             f"- {cfg.data.name}", "---", ""]  # the Hub's model-card metadata
    title, note = card_title(note, f"{m['name']}, {m['neuron']} neurons, T = {m['T']} ({cfg.data.name})")
    lines = [*front, f"# {title}", "",
             f"Spiking network trained with staa-snn {ckpt.get('staa_snn', __version__)}: "
             f"`{m['name']}` with `{m['neuron']}` neurons over T = {m['T']} steps, {m['num_classes']} classes.", "",
             *([note, ""] if note else []),
             "| | |", "|---|---|",
             f"| net | `{m['name']}` ({spec['parameters']:,} parameters) |",
             f"| neuron | `{m['neuron']}`, " + (", ".join(f"`{k}={v!r}`" for k, v in options.items()) or "defaults")
             + " |",
             f"| T | {m['T']} |", f"| dataset | `{cfg.data.name}` |",
             f"| input | {m['in_channels']} x {size} "
             + ("event frames per step |" if dataset_info(cfg.data.name).kind == "events" else "images |"),
             f"| trained | {ckpt['epoch']} of {cfg.train.epochs} epochs, step {ckpt.get('step')} |"]
    meta = spec.get("input") or {}
    if meta.get("classes"):
        lines.append(f"| classes (index order) | {', '.join(meta['classes'])} |")
    norm = meta.get("normalization")
    lines.append(f"| normalisation | mean {norm['mean']}, std {norm['std']} (of values in [0, 1]) |" if norm
                 else f"| normalisation | none (the inputs as staa-snn's `{cfg.data.name}` loader gives them) |")
    if record:
        steps = ", ".join(f"{a:.2%}" for a in record.get("test_acc_per_step", []))
        picked = ""
        if chosen is not None:
            of = f"the run's {chosen['epochs']} epochs" if chosen["epochs"] else "the run's epochs"
            last = f"; after its last epoch: {chosen['last_acc']:.2%}" if chosen["last_acc"] is not None else ""
            picked = (f"; best.pt, the best of {of} by this accuracy, so chosen on this split and an optimistic "
                      f"figure{last}")
        lines += [f"| {split_name(cfg)[1]} | {record['test_acc']:.2%} (loss {record['test_loss']:.4f}{picked}) |",
                  f"| accuracy read out after 1..T steps | {steps} |",
                  f"| training time | {training_time_text(ckpt)} |"]
    if profile is not None:
        lines += [f"| dense MACs (T steps) | {profile['dense_macs'] / 1e9:.4f} G |",
                  f"| #AC / #MAC | {profile['ac'] / 1e9:.4f} G / {profile['mac'] / 1e9:.4f} G |",
                  f"| energy (45 nm) | {profile['energy_mj']:.4f} mJ per sample ({profile_input}) |"]
    lines += ["", "## Use", "", "```python", "from staa_snn.models import load_pretrained", "",
              "net = load_pretrained(\"path/to/this/folder\")   # eval mode; net(x) -> logits",
              "# on the Hugging Face Hub: load_pretrained(\"hf://owner/name\")", "```", "",
              "## Training config", "",
              *_held_out_line(spec.get("provenance", {})),
              "```yaml", yaml.safe_dump(spec.get("config") or cfg.to_dict(), sort_keys=False).rstrip(), "```", "",
              "## Exported with", "", "```bash", shlex.join(command if command else sys.argv), "```", ""]
    return "\n".join(lines)


def card_title(note: str | None, default: str) -> tuple[str, str]:
    """``(title, note)`` of a model card: a note whose first line is a ``# `` heading gives the
    title (``# CIFAR-10, STAA-LIF`` where the loader's name, ``imagefolder``, says less), the
    rest is the note; otherwise ``default`` and the whole note (stripped, ``""`` for none)."""
    note = (note or "").strip()
    first, _, rest = note.partition("\n")
    if first.startswith("# ") and first[2:].strip():
        return first[2:].strip(), rest.strip()
    return default, note


def training_hours(ckpt: dict) -> float:
    """Wall-clock hours of a checkpoint's training: the sum of its epochs' times."""
    return run_time(ckpt.get("history"), ckpt["epoch"]).total_s / 3600


def training_time_text(ckpt: dict) -> str:
    """The card's training time: the sum of the epochs' wall-clock times and, where a run was
    paused (a few long epochs in that sum), the median epoch times the epochs (its usual pace)."""
    t = run_time(ckpt.get("history"), ckpt["epoch"])
    if not t.epochs:
        return "not recorded"
    text = f"{format_duration(t.total_s)}, the sum of the {t.epochs} epochs' wall-clock times"
    if t.paused:
        text += (f"; the run was paused or shared its cores: at its median epoch ({format_duration(t.median_epoch_s)})"
                 f" the {t.epochs} epochs take {format_duration(t.usual_s)}")
    return text


def run_provenance(ckpt: dict, note: str | None = None) -> dict:
    """What ``config.json`` records of the run beside :func:`shareable_config`'s data: the epochs
    trained, the wall-clock hours (the sum of the epochs' times), the median epoch's seconds and
    the exporter's note."""
    t = run_time(ckpt.get("history"), ckpt["epoch"])
    return {"epochs": ckpt["epoch"], "training_hours": round(t.total_s / 3600, 3),
            **({"median_epoch_s": round(t.median_epoch_s, 1)} if t.epochs else {}),
            **({"note": note.strip()} if note and note.strip() else {})}


def _held_out_line(provenance: dict) -> list[str]:
    held = provenance.get("held_out")
    if not held:
        return []
    options = " ".join(f"data.options.{k}={v}" for k, v in held.items())
    return [f"Trained with `data.root=<the data folder> {options}`: the hold-out is the split every "
            "accuracy above is measured on; the config below leaves both out, so that `eval --weights` "
            "takes a folder's own `test/` or `val/`.", ""]


def model_spec(cfg, num_classes: int, in_channels: int, model: nn.Module, input_meta: dict | None = None) -> dict:
    """``config.json``'s content: the create_model arguments, the inputs (class names,
    normalisation, size: ``input_meta``, as a checkpoint stores it), the parameter count, the
    training config."""
    options = {k: v for k, v in cfg.model.neuron_options.items() if k != "backend"}
    options["input_size"] = cfg.data.input_size
    config, provenance = shareable_config(cfg)
    return {"model": {"name": cfg.model.name, "neuron": cfg.model.neuron, "T": cfg.model.T, "num_classes": num_classes,
                      "in_channels": in_channels, "init": cfg.model.init, **options},
            "input": input_meta or input_metadata(cfg),
            "parameters": sum(p.numel() for p in model.parameters()), "dataset": cfg.data.name,
            "config": config, "provenance": provenance, "staa_snn": __version__, "torch": torch.__version__}
