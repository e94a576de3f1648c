"""Building a job from its config: the net, the datasets, the optimiser with its parameter groups,
and the learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data import dataset_info, get_dataset, layout_only
from ..errors import ConfigError
from ..models import SpikingNet, create_model
from ..neurons import block_types
from .config import Config

__all__ = ["build_datasets", "build_model", "build_optimizer", "lr_factor", "parameter_groups"]


def build_model(cfg: Config, num_classes: int | None = None) -> SpikingNet:
    """The config's net (``model.backend=auto`` builds it on the fused backend; :class:`Trainer`
    switches long jobs to the compiled one); ``ConfigError`` (naming ``model``) for a bad neuron
    option value."""
    info = dataset_info(cfg.data.name)
    options = dict(cfg.model.neuron_options)
    if options.get("backend") == "auto":
        del options["backend"]
    try:
        return create_model(cfg.model.name, num_classes=num_classes or info.num_classes, T=cfg.model.T,
                            neuron=cfg.model.neuron, in_channels=info.in_channels, init=cfg.model.init,
                            input_size=cfg.data.input_size, **options)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model: {e}") from e


def build_datasets(cfg: Config, *, train: bool = True):
    """``(train, test)`` datasets of the config (``train=False``: ``(None, test)``, reading and
    converting nothing of the training split)."""
    d = cfg.data
    info = dataset_info(d.name)
    events = info.kind == "events"
    common = dict(T=cfg.model.T if events else None, split_by=d.split_by if events else "number",
                  size=d.size, cache_dir=d.cache_dir, recipe=d.recipe, autoaugment=d.autoaugment, cutout=d.cutout,
                  mean=d.mean, std=d.std, **d.options)
    splits = ("train", "test") if train else ("test",)
    if events:  # converted to frames as they are made: both splits' layouts checked before either is
        with layout_only():
            for split in splits:
                get_dataset(d.name, d.root, split, **common)
    train_set = get_dataset(d.name, d.root, "train", augment=d.augment, **common) if train else None
    test = get_dataset(d.name, d.root, "test", augment=False, **common)
    return train_set, test


_DECAYED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def parameter_groups(model: nn.Module, weight_decay: float, on: str = "weights", *, lr: float | None = None,
                     block_lr_scale: float = 1.0, block_weight_decay: float | None = None) -> list[dict]:
    """Optimiser groups: ``on="weights"`` decays the weights of conv and linear layers only (the
    recipes; the GC and SA blocks' 1x1 convolutions are linear layers), never biases, norm
    affines (BN, BN_mp, LayerNorm), ``M``, ``N`` or PE; ``on="all"`` decays every parameter.

    The STAA blocks' parameters (PE, GC, SA) get their own groups when ``block_lr_scale != 1``
    or ``block_weight_decay`` is given: LR ``lr * block_lr_scale`` and, where decayed,
    ``block_weight_decay``. Each group carries its ``lr``; the schedule scales every group alike."""
    params = [p for p in model.parameters() if p.requires_grad]
    if on == "all":
        decayed = {id(p) for p in params}
    else:
        decayed = {id(m.weight) for m in model.modules() if isinstance(m, _DECAYED) and m.weight is not None}
    split = block_lr_scale != 1.0 or block_weight_decay is not None
    blocks = block_types()  # declared by the neuron kinds (STAA-LIF: PE, GC, SA)
    block = {id(p) for m in model.modules() if isinstance(m, blocks) for p in m.parameters()} if split else set()
    block_wd = weight_decay if block_weight_decay is None else block_weight_decay
    groups = []
    for is_block in (False, True):  # (decayed, not decayed) of the rest, then of the blocks
        for is_decayed in (True, False):
            members = [p for p in params if (id(p) in decayed) == is_decayed and (id(p) in block) == is_block]
            group = {"params": members, "weight_decay": (block_wd if is_block else weight_decay) if is_decayed
                     else 0.0}
            if is_block:
                group["block"] = True
            if lr is not None:
                group["lr"] = lr * block_lr_scale if is_block else lr
            groups.append(group)
    return [g for g in groups if g["params"]]


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    groups = parameter_groups(model, o.weight_decay, o.weight_decay_on, lr=o.lr, block_lr_scale=o.block_lr_scale,
                              block_weight_decay=o.block_weight_decay)
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)
    return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas))


def lr_factor(step: int, *, total: int, warmup: int, schedule: str, floor: float) -> float:
    """Multiplier of the peak LR at optimiser step ``step``: linear warm-up over
    ``warmup`` steps, then constant or cosine down to ``floor`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
