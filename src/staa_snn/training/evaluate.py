"""Evaluation: test loss, accuracy per read-out step, firing rates and SA gates of a net on a
loader (:func:`evaluate`), and of a checkpoint or exported weights on their test split."""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..data import dataset_info
from ..errors import ConfigError, DataError
from ..measure import exit_curve
from ..models import SpikingNet
from ..models import load_pretrained as load_exported
from ..models.pretrained import pretrained_spec
from ..neurons import recorded
from . import distributed as ddp
from .builders import build_datasets
from .config import Config, apply_override, split_name
from .console import progress_bar
from .loaders import make_loader
from .trained import load_trained

__all__ = ["autocast_context", "evaluate", "evaluate_checkpoint", "evaluate_weights", "step_logits"]


def autocast_context(device: torch.device, amp: str):
    if amp == "none":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def step_logits(net: nn.Module, x: torch.Tensor, *, spiking: bool) -> torch.Tensor:
    """Per-step logits ``[T, B, K]``, the one read-out of training and evaluation: a
    :class:`SpikingNet`'s (``spiking``; ``net(x, per_step=True)``, so that a DDP wrapper sees the
    call); another model's ``[T, B, K]`` output as it is, its ``[B, K]`` output as one step."""
    out = net(x, per_step=True) if spiking else net(x)
    return out.unsqueeze(0) if out.dim() == 2 else out


def _neuron_records(model: nn.Module):
    """``(name, module)`` of the layers that record a firing rate (and SA gates)."""
    return [(n, m) for n, m in model.named_modules() if hasattr(m, "last_firing_rate")]


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, *, amp: str = "none",
             ctx: ddp.DistContext | None = None, progress: bool = False) -> dict:
    """Test loss and accuracy, the accuracy when reading out after ``1..T`` steps
    (``acc_per_step[t-1]``: the mean of the first ``t`` steps' logits), and the mean firing rate
    of every neuron layer (and, for STAA-LIF layers, the mean SA gates on history and input)."""
    ctx = ctx or ddp.DistContext(device=device)
    model.eval()
    neurons = _neuron_records(model)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    n = torch.zeros((), dtype=torch.float64, device=device)
    correct = rates = gates = None
    for batch in progress_bar(loader, "eval", progress and ctx.is_main):
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        with autocast_context(device, amp):
            steps = step_logits(model, x, spiking=isinstance(model, SpikingNet)).float()  # [T, B, K]
        T, B = steps.shape[:2]
        running = steps.cumsum(0) / torch.arange(1, T + 1, device=device).view(T, 1, 1)
        hits = (running.argmax(-1) == y).sum(1).double()
        correct = hits if correct is None else correct + hits
        loss_sum += F.cross_entropy(running[-1], y, reduction="sum").double()
        n += B
        batch_rates = torch.stack([m.last_firing_rate.double() if m.last_firing_rate is not None
                                   else torch.zeros((), dtype=torch.float64, device=device) for _, m in neurons]) \
            if neurons else torch.zeros(0, dtype=torch.float64, device=device)
        rates = batch_rates * B if rates is None else rates + batch_rates * B
        batch_gates = [recorded(m, "last_sa_gates").double().mean((0, 1, 3)) * B for _, m in neurons
                       if recorded(m, "last_sa_gates") is not None]
        if batch_gates:
            gates = torch.stack(batch_gates) if gates is None else gates + torch.stack(batch_gates)
    T = _num_steps(correct, ctx)
    correct = correct if correct is not None else torch.zeros(T, dtype=torch.float64, device=device)
    rates = rates if rates is not None else torch.zeros(len(neurons), dtype=torch.float64, device=device)
    totals = ddp.all_reduce_sum([loss_sum.item(), n.item(), *correct.tolist(), *rates.tolist()], ctx)
    loss_sum, n, per, layer_rates = totals[0], totals[1], totals[2:2 + T], totals[2 + T:]
    if n == 0:
        raise ValueError("the test set is empty")
    result = {"loss": loss_sum / n, "acc": per[-1] / n, "acc_per_step": [c / n for c in per], "samples": int(n),
              "firing_rates": {name: r / n for (name, _), r in zip(neurons, layer_rates, strict=True)}}
    if gates is not None:
        sa_layers = [name for name, m in neurons if recorded(m, "last_sa_gates") is not None]
        values = ddp.all_reduce_sum(gates.flatten().tolist(), ctx)
        result["sa_gates"] = {name: {"history": values[2 * i] / n, "input": values[2 * i + 1] / n}
                              for i, name in enumerate(sa_layers)}
    return result


def _num_steps(correct, ctx: ddp.DistContext) -> int:
    """How many read-out steps the evaluation counts: the outputs' own (``[T, B, K]`` or one step
    for ``[B, K]``), never a model attribute; the same on every rank, even one that saw no batch."""
    local = len(correct) if correct is not None else 0
    if not ctx.distributed:
        return max(local, 1)
    steps = torch.tensor([local], dtype=torch.int64, device=ctx.device)
    dist.all_reduce(steps, op=dist.ReduceOp.MAX)
    return max(int(steps.item()), 1)


def evaluate_checkpoint(path: str | Path, *, overrides=(), data_root: str | None = None, device: str = "auto",
                        batch_size: int | None = None, progress: bool = True, exit_thresholds=None) -> dict:
    """Load a checkpoint (safely) and evaluate it on its dataset's test split (its config, then
    ``overrides``, ``section.key=value``). ``exit_thresholds``: also measure confidence early exit
    at these thresholds (``result["exit_curve"]``, :func:`staa_snn.measure.exit_curve`)."""
    overrides = [*overrides, *([f"data.root={json.dumps(str(data_root))}"] if data_root is not None else [])]
    if batch_size is not None:
        overrides.append(f"data.test_batch_size={batch_size}")
    cfg, model, ckpt = load_trained(path, overrides)
    result = _evaluate_on_test(cfg, model, device, progress, exit_thresholds)
    return {"checkpoint": str(path), "epoch": ckpt["epoch"], "dataset": cfg.data.name, "model": cfg.model.name,
            "neuron": cfg.model.neuron, "T": cfg.model.T, "split": split_name(cfg)[1], **result}


def evaluate_weights(weights: str | os.PathLike, overrides=(), *, device: str = "auto", batch_size: int | None = None,
                     progress: bool = True, exit_thresholds=None) -> dict:
    """Evaluate exported weights -- a shipped name (:func:`~staa_snn.models.list_pretrained`), a folder or ``hf://...``
    -- on the test split of the data they were trained on, with the config they were trained with
    (``config.json``), then ``overrides`` (``data.root=DIR``: a folder with ``test/`` or ``val/``)."""
    spec = pretrained_spec(weights)
    if not isinstance(spec.get("config"), dict):
        raise DataError(f"{weights}: its config.json has no config section (the training config, which names the "
                        f"test data): re-export it with staa-snn export --format safetensors, or run it with "
                        f"staa-snn predict")
    cfg = Config.from_dict(spec["config"])
    for text in [*overrides, *([f"data.test_batch_size={batch_size}"] if batch_size is not None else [])]:
        apply_override(cfg, text)
    info = dataset_info(cfg.data.name)
    if info.needs_root and not cfg.data.root:
        raise ConfigError(f"{weights} is evaluated on {cfg.data.name} data: give data.root=DIR, the folder holding "
                          f"{info.layout}; to evaluate, its test (or validation) part alone will do")
    cfg.validate()
    model = load_exported(weights)
    result = _evaluate_on_test(cfg, model, device, progress, exit_thresholds)
    return {"checkpoint": str(weights), "epoch": (spec["config"].get("train") or {}).get("epochs"),
            "dataset": cfg.data.name, "model": cfg.model.name, "neuron": cfg.model.neuron, "T": cfg.model.T,
            "split": split_name(cfg)[1],
            "data_root": cfg.data.root, **result}


def _evaluate_on_test(cfg: Config, model: nn.Module, device: str, progress: bool, exit_thresholds=None) -> dict:
    dev = ddp.resolve_device(device)
    model.to(dev)
    _, test_set = build_datasets(cfg, train=False)
    classes = getattr(model, "pretrained_cfg", {}).get("classes")
    found = getattr(test_set, "classes", None)
    if classes and found and list(found) != list(classes):
        raise ConfigError(f"the test data's classes ({', '.join(found)}) are not the ones the net was trained on "
                          f"({', '.join(classes)}): its labels would be counted against the wrong outputs")
    bs = cfg.data.test_batch_size or cfg.data.batch_size
    loader = make_loader(test_set, ddp.GlobalBatchSampler(len(test_set), bs, shuffle=False, drop_last=False), bs,
                         workers=cfg.data.workers, pin_memory=dev.type == "cuda")
    amp = cfg.train.amp if dev.type == "cuda" or cfg.train.amp != "fp16" else "none"
    if exit_thresholds and not isinstance(model, SpikingNet):  # said before the evaluation's work
        raise ConfigError(f"early exit runs a SpikingNet step by step; {type(model).__name__} is not one")
    result = evaluate(model, loader, dev, amp=amp, progress=progress)
    if exit_thresholds:
        result["exit_curve"] = exit_curve(model, progress_bar(loader, "exit", progress), exit_thresholds, device=dev)
    return result
