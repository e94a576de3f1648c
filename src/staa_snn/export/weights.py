"""Weights to share: ``model.safetensors``, ``config.json`` and a model card (``README.md``); the
way back is :func:`staa_snn.models.load_pretrained`.

``config.json`` holds what :func:`~staa_snn.models.create_model` needs (net, neuron and its
options, ``T``, classes, input channels, initialisation) and the training config the weights
came from; ``model.safetensors`` the state dict (tensors only: loading runs no code).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from .. import __version__
from .._io import atomic_path, write_text_atomic
from ..data import dataset_info
from ..models.pretrained import FORMAT
from ..training import input_metadata
from ..training.config import split_name

__all__ = ["save_weights", "model_card", "model_spec"]


def save_weights(model: nn.Module, folder: str | os.PathLike, spec: dict, *, card: str | None = None) -> Path:
    """Write ``folder/model.safetensors``, ``folder/config.json`` (``spec``: the create_model
    arguments and provenance) and, when given, ``folder/README.md``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        safetensors.torch.save_file(state, str(tmp), metadata={"format": FORMAT, "staa_snn": __version__})
    write_text_atomic(folder / "config.json", json.dumps({"format": FORMAT, **spec}, indent=1) + "\n")
    if card is not None:
        write_text_atomic(folder / "README.md", card)
    return folder


def model_card(*, cfg, ckpt: dict, spec: dict, profile: dict | None, profile_input: str, command: list[str]) -> str:
    """A model card in markdown: what the net is, how well it did, what it costs, how to load it."""
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
    lines = [*front, f"# {m['name']}, {m['neuron']} neurons, T = {m['T']} ({cfg.data.name})", "",
             f"Spiking network trained with staa-snn {ckpt.get('staa_snn', __version__)}: "
             f"`{m['name']}` with `{m['neuron']}` neurons over T = {m['T']} steps, {m['num_classes']} classes.", "",
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
                 else "| normalisation | none (the dataset's raw values) |")
    if record:
        steps = ", ".join(f"{a:.2%}" for a in record.get("test_acc_per_step", []))
        trained = [h for h in history if h["epoch"] <= ckpt["epoch"]]
        hours = sum(h.get("epoch_time_s", 0.0) for h in trained) / 3600
        lines += [f"| {split_name(cfg)[1]} | {record['test_acc']:.2%} (loss {record['test_loss']:.4f}) |",
                  f"| accuracy read out after 1..T steps | {steps} |",
                  f"| training time | {hours:.2f} h wall-clock, the sum of the epochs' times |"]
    if profile is not None:
        lines += [f"| dense MACs (T steps) | {profile['dense_macs'] / 1e9:.4f} G |",
                  f"| #AC / #MAC | {profile['ac'] / 1e9:.4f} G / {profile['mac'] / 1e9:.4f} G |",
                  f"| energy (45 nm) | {profile['energy_mj']:.4f} mJ per sample ({profile_input}) |"]
    lines += ["", "## Use", "", "```python", "from staa_snn.models import load_pretrained", "",
              "net = load_pretrained(\"path/to/this/folder\")   # eval mode; net(x) -> logits",
              "# on the Hugging Face Hub: load_pretrained(\"hf://owner/name\")", "```", "",
              "## Training config", "", "```yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip(), "```", "",
              "## Exported with", "", "```bash", " ".join(command) if command else " ".join(sys.argv), "```", ""]
    return "\n".join(lines)


def model_spec(cfg, num_classes: int, in_channels: int, model: nn.Module, input_meta: dict | None = None) -> dict:
    """``config.json``'s content: the create_model arguments, the inputs (class names,
    normalisation, size: ``input_meta``, as a checkpoint stores it), the parameter count, the
    training config."""
    options = {k: v for k, v in cfg.model.neuron_options.items() if k != "backend"}
    options["input_size"] = cfg.data.input_size
    return {"model": {"name": cfg.model.name, "neuron": cfg.model.neuron, "T": cfg.model.T, "num_classes": num_classes,
                      "in_channels": in_channels, "init": cfg.model.init, **options},
            "input": input_meta or input_metadata(cfg),
            "parameters": sum(p.numel() for p in model.parameters()), "dataset": cfg.data.name,
            "config": cfg.to_dict(), "staa_snn": __version__, "torch": torch.__version__}
