"""The training and evaluation loops.

``train(config)`` runs a whole job: the run folder (locked, one run at a time),
the model (built before any data is read), the data loaders, the optimiser and
schedule, the state of a resumed run, then epoch after epoch of training,
evaluation, metrics and checkpoints. The same :class:`Trainer` serves the
command line and the Python API, where a model and datasets of your own can
replace the config's. Under ``torchrun`` it runs DDP; only rank 0 writes files.

The loop never waits for the device inside a step: loss sums, correct counts and
the finite check stay on the device and are read every ``train.check_every``
steps, before every checkpoint and at the end of the epoch.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .. import __version__
from ..data import MixupCutmix, dataset_info, get_dataset, normalization
from ..kernels import resolve_backend
from ..models import SpikingNet, create_model, set_backend
from ..models import load_pretrained as load_exported
from ..models.pretrained import describe_inputs, pretrained_spec, resolve_path
from ..measure import exit_curve
from ..neurons.blocks import GlobalContext, PositionEncoding, StepAttention
from . import distributed as ddp
from .checkpoint import caller_rng_state, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import Config, ConfigError, apply_override, checkpoint_interval, eval_split, load_config, split_name
from .loaders import EpochSampler, SeededSamples, make_loader, sample_seed
from .memory import resolve_memory
from .preemption import StopRequest, TrainingPreempted
from .resume import describe, resume_changes
from .run_folder import RunFolder, RunFolderError

__all__ = ["TrainResult", "Trainer", "TrainingDiverged", "build_datasets", "build_model", "build_optimizer",
           "checkpoint_config", "evaluate", "evaluate_checkpoint", "evaluate_weights", "input_metadata", "load_pretrained",
           "load_trained", "lr_factor",
           "parameter_groups",
           "resolve_backend", "soft_cross_entropy", "train"]

# Without a progress bar (stderr not a terminal): a progress line at the first check point after this
# many seconds, unless train.log_every sets a number of steps.
LOG_SECONDS = 30.0

Callback = Callable[[dict], None]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict] = field(default_factory=list)
    run_dir: Path | None = None

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    @property
    def best(self) -> dict:
        """The epoch ``best.pt`` holds: the highest test accuracy, the later epoch of a tie."""
        return max(self.history, key=lambda h: (h["test_acc"], h["epoch"])) if self.history else {}


# -- building blocks ----------------------------------------------------------

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
                            input_size=cfg.data.size or info.size, **options)
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
    train_set = get_dataset(d.name, d.root, "train", augment=d.augment, **common) if train else None
    test = get_dataset(d.name, d.root, "test", augment=False, **common)
    return train_set, test


_DECAYED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BLOCK_TYPES = (PositionEncoding, GlobalContext, StepAttention)  # optim.block_lr_scale, block_weight_decay


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
    block = {id(p) for m in model.modules() if isinstance(m, BLOCK_TYPES) for p in m.parameters()} if split else set()
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


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mean_logits_loss(steps: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``optim.loss=mean_logits``: the cross-entropy of the logits averaged over the steps (the
    readout the paper trains and evaluates). ``steps [T, B, K]``, ``targets [B, K]`` probabilities."""
    return soft_cross_entropy(steps.mean(0), targets)


def tet_loss(steps: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``optim.loss=tet``: the mean over steps of each step's cross-entropy (TET, Deng et al. 2022,
    without its optional MSE term), so that every step is trained to classify on its own: what
    early exit over steps wants. ``steps [T, B, K]``, ``targets [B, K]`` probabilities."""
    log_p = F.log_softmax(steps.float(), dim=-1)
    return -(targets * log_p).sum(-1).mean()


LOSSES = {"mean_logits": mean_logits_loss, "tet": tet_loss}


def _name_of(fn) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _check_loss(loss, fn) -> None:
    """A ``loss_fn`` result must be a 0-d floating tensor with a gradient (shape and flags only: no sync)."""
    ok = isinstance(loss, torch.Tensor) and loss.dim() == 0 and loss.is_floating_point() and loss.requires_grad
    if not ok:
        got = (f"a tensor of shape {tuple(loss.shape)}, {loss.dtype}, requires_grad={loss.requires_grad}"
               if isinstance(loss, torch.Tensor) else type(loss).__name__)
        raise TypeError(f"loss_fn {_name_of(fn)} must return a 0-d floating tensor that requires grad "
                        f"(a loss of the logits it was given), got {got}")


def _autocast(device: torch.device, amp: str):
    if amp == "none":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _step_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-step logits ``[T, B, K]``: ``forward_steps`` of a :class:`SpikingNet`; another model's
    ``[T, B, K]`` output as it is, its ``[B, K]`` output as one step."""
    if isinstance(model, SpikingNet):
        return model.forward_steps(x)
    out = model(x)
    return out if out.dim() == 3 else out.unsqueeze(0)


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
    for batch in _bar(loader, "eval", progress and ctx.is_main):
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        with _autocast(device, amp):
            steps = _step_logits(model, x).float()  # [T, B, K]
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
        batch_gates = [m.last_sa_gates.double().mean((0, 1, 3)) * B for _, m in neurons
                       if getattr(m, "last_sa_gates", None) is not None]
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
        sa_layers = [name for name, m in neurons if getattr(m, "last_sa_gates", None) is not None]
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


def _bar(iterable, desc: str, enabled: bool, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    # disable=None: tqdm shows the bar on a terminal only, so logs and CI stay readable;
    # mininterval: at most two redraws a second
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr, disable=None,
                mininterval=0.5)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _say(ctx: ddp.DistContext, text: str) -> None:
    """A notice on rank 0's stderr (what a run does that one should know of: resuming, starting
    afresh, clearing leftovers, skipping files, compiling), whether or not progress is shown."""
    if ctx.is_main:
        print(f"staa-snn: {text}", file=sys.stderr)


def as_config(config: Config | str | os.PathLike) -> Config:
    """A :class:`Config` as it is, or loaded from a YAML path or bundled name."""
    if isinstance(config, Config):
        return config
    return load_config(config)


# -- the job -------------------------------------------------------------------

def train(config: Config | str | os.PathLike, *, model: nn.Module | None = None, train_set: Dataset | None = None,
          test_set: Dataset | None = None, callbacks: Iterable[Callback] = (), resume: str | Path | None = None,
          stop_after: int | None = None, stop_after_steps: int | None = None,
          handle_signals: bool = True, loss_fn: LossFn | None = None) -> TrainResult:
    """Run a training job.

    Args:
        config: a :class:`Config`, a YAML path or the name of a bundled config (``"digits"``).
        model: a net of your own instead of the config's: a :class:`~staa_snn.models.SpikingNet`
            or any ``nn.Module`` mapping a batch to ``[B, K]`` (or per-step ``[T, B, K]``) logits.
        train_set, test_set: map-style datasets of ``(x, label)`` instead of the config's data
            (both, or neither).
        callbacks: called on rank 0 with each epoch's record (a dict, as written to
            ``metrics.jsonl``), e.g. to log to Weights & Biases.
        resume: a checkpoint path, or ``"auto"``: the run folder's ``last.pt`` if there is one
            (otherwise a fresh start).
        stop_after: train at most this many epochs in this call (checkpointed; resume later).
        stop_after_steps: train at most this many optimiser steps in this call; when that ends in
            the middle of an epoch, a mid-epoch checkpoint is written to resume from.
        handle_signals: on SIGUSR1, SIGUSR2 or SIGTERM (a scheduler's time limit or preemption), checkpoint
            at the next step and raise :class:`~staa_snn.training.preemption.TrainingPreempted`
            (``--resume auto`` continues exactly); in the main thread only. ``False``: leave the
            signals alone.
        loss_fn: ``loss_fn(steps, targets)`` instead of ``optim.loss``: ``steps`` the per-step logits
            ``[T, B, K]`` (one step for a model that returns ``[B, K]``), ``targets`` the ``[B, K]``
            class probabilities (one-hot, with label smoothing, mixup and cutmix applied); a 0-d loss.
    """
    cfg = as_config(config)
    if (train_set is None) != (test_set is None):
        raise ValueError("give both train_set and test_set, or neither")
    cfg.validate(require_root=train_set is None)
    ctx = ddp.setup(cfg.train.device)
    trainer = Trainer(cfg, ctx, model=model, train_set=train_set, test_set=test_set, callbacks=callbacks,
                      loss_fn=loss_fn)
    try:
        # the run seeds and draws from the global streams; the caller's come back
        with caller_rng_state(), StopRequest() if handle_signals else StopRequest(()) as trainer.stop:
            return trainer.run(resume, stop_after, stop_after_steps)
    finally:
        trainer.close()
        ddp.teardown(ctx)


@dataclass
class _Sums:
    """Running totals of an epoch, on the device (read at check points and at the end)."""

    loss: torch.Tensor
    correct: torch.Tensor
    seen: torch.Tensor
    bad: torch.Tensor        # whether a non-finite loss has been seen
    bad_step: torch.Tensor   # the first such global step (-1: none)
    bad_loss: torch.Tensor   # its loss
    skipped: int = 0         # unreadable samples dropped (host count)
    elapsed: float = 0.0     # seconds this epoch ran before a resume (host), for epoch_time_s

    @classmethod
    def zeros(cls, device) -> "_Sums":
        z = lambda dtype=torch.float64: torch.zeros((), dtype=dtype, device=device)  # noqa: E731
        return cls(z(), z(), z(), z(torch.bool), z(torch.int64) - 1, z(torch.float32))

    def as_floats(self, running_s: float = 0.0) -> dict:
        """The totals as plain numbers; ``running_s``: the seconds this epoch has run in this call."""
        return {"loss": float(self.loss), "correct": float(self.correct), "seen": float(self.seen),
                "skipped": self.skipped, "elapsed": self.elapsed + running_s}

    @classmethod
    def from_floats(cls, saved: dict, device) -> "_Sums":
        sums = cls.zeros(device)
        sums.loss += saved["loss"]
        sums.correct += saved["correct"]
        sums.seen += saved["seen"]
        sums.skipped = int(saved.get("skipped", 0))
        sums.elapsed = float(saved.get("elapsed", 0.0))
        return sums


class Trainer:
    """One training job, in named stages: :meth:`open_run`, :meth:`build`, :meth:`restore`,
    :meth:`train_epoch`, :meth:`finish_epoch`, :meth:`checkpoint` (see :func:`train`)."""

    def __init__(self, cfg: Config, ctx: ddp.DistContext, *, model: nn.Module | None = None,
                 train_set: Dataset | None = None, test_set: Dataset | None = None,
                 callbacks: Iterable[Callback] = (), loss_fn: LossFn | None = None) -> None:
        self.cfg, self.ctx, self.device = cfg, ctx, ctx.device
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(f"loss_fn must be a function of (steps [T, B, K], targets [B, K]), got {loss_fn!r}")
        self.loss_fn = loss_fn or LOSSES[cfg.optim.loss]
        self.custom_loss = loss_fn is not None
        if loss_fn is not None and cfg.optim.loss != "mean_logits":
            warnings.warn(f"loss_fn={_name_of(loss_fn)} is used; optim.loss={cfg.optim.loss} is not", stacklevel=3)
        self.stop = StopRequest(())  # train() puts the one it entered here
        self.user_model, self.train_set, self.test_set = model, train_set, test_set
        self.callbacks = list(callbacks)
        self.run_folder: RunFolder | None = None
        self.history: list[dict] = []
        self.epoch = self.batch = self.step = 0  # completed epochs, batches of the current one, optimiser steps
        self.writer = None
        self.stop_at_step: int | None = None
        self.cudnn_benchmark = torch.backends.cudnn.benchmark

    @property
    def user_model_name(self) -> str | None:
        """``module.Class`` of a model passed in from Python (``None``: the config's)."""
        if self.user_model is None:
            return None
        kind = type(self.user_model)
        return f"{kind.__module__}.{kind.__qualname__}"

    @property
    def run_name(self) -> str:
        """``output.name``; the config's default, or ``<data>_<class name>`` for a model passed in."""
        if self.user_model is None or self.cfg.output.name:
            return self.cfg.run_name
        return f"{self.cfg.data.name}_{type(self.user_model).__name__.lower()}"

    # -- stage 1: the run folder ------------------------------------------------
    def open_run(self, resume) -> dict | None:
        """Lock the run folder (created, checked writable) and find what to resume, before any
        data is read. Returns the checkpoint to resume from, or ``None`` for a fresh start."""
        cfg, ctx = self.cfg, self.ctx
        auto = resume is not None and str(resume) == "auto"
        path = Path(resume) if resume is not None and not auto else None
        folder = path.parent if path is not None else Path(cfg.output.dir) / self.run_name
        self.run_folder = RunFolder(folder)
        if ctx.is_main:
            self.run_folder.lock()
        if auto:
            path = folder / "last.pt" if (folder / "last.pt").is_file() else None
        ckpt = load_checkpoint(path) if path is not None else None
        name = folder.name
        if ckpt is None:
            if (folder / "last.pt").exists():
                raise FileExistsError(f"{folder} already holds a run (last.pt): resume it with --resume auto, "
                                      f"or choose another output.name")
            removed = self.run_folder.clear_leftovers() if ctx.is_main else []
            if auto:
                _say(ctx, f"no checkpoint in {folder} yet: starting {name} from the beginning")
            if removed:
                _say(ctx, f"cleared what an unfinished run left in {folder}: {', '.join(removed)}")
            return None
        old = checkpoint_config(ckpt, require_root=False)
        mid = ckpt.get("batch", 0) > 0
        changed = resume_changes(old, cfg, epochs_done=ckpt["epoch"], mid_epoch=mid, run=name)
        where = f"epoch {ckpt['epoch']}/{cfg.train.epochs}" + (f", batch {ckpt['batch']}" if mid else "")
        what = describe(changed)
        _say(ctx, f"resuming {name} from {where}" + (f" (changed: {what})" if what else ""))
        return ckpt

    # -- stage 2: model, data, optimisation ---------------------------------------
    def build(self) -> None:
        cfg, ctx, t, d = self.cfg, self.ctx, self.cfg.train, self.cfg.data
        if t.amp == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.amp=fp16 needs a CUDA device; use train.amp=bf16 on the CPU")
        torch.manual_seed(t.seed)  # the same initial weights on every rank
        own_data = self.train_set is not None
        num_classes = dataset_info(cfg.data.name).num_classes if not own_data else None
        model = self.user_model
        if model is None and (num_classes or own_data and hasattr(self.train_set, "classes")):
            model = build_model(cfg, num_classes=num_classes or len(self.train_set.classes))
        if ctx.distributed and not ctx.is_main:
            dist.barrier()  # rank 0 converts event data first
        if not own_data:
            self.train_set, self.test_set = build_datasets(cfg)
        if ctx.distributed and ctx.is_main:
            dist.barrier()
        if model is None:  # the classes are known from the data (image folders)
            torch.manual_seed(t.seed)
            model = build_model(cfg, num_classes=len(self.train_set.classes))
        self.model = model

        world = ctx.world_size
        self.sampler = EpochSampler(ddp.GlobalBatchSampler(len(self.train_set), d.batch_size, rank=ctx.rank,
                                                           world_size=world, seed=t.seed))
        pin = self.device.type == "cuda"
        self.train_loader = make_loader(SeededSamples(self.train_set, t.seed), self.sampler, d.batch_size // world,
                                        workers=d.workers, pin_memory=pin)
        test_bs = d.test_batch_size or d.batch_size
        test_sampler = ddp.GlobalBatchSampler(len(self.test_set), test_bs, rank=ctx.rank, world_size=world,
                                              shuffle=False, drop_last=False)
        self.test_loader = make_loader(self.test_set, test_sampler, max(test_bs // world, 1), workers=d.workers,
                                       pin_memory=pin)
        self.steps_per_epoch = min(len(self.sampler.batches) * world // d.batch_size, t.max_batches or 10**18)
        if self.steps_per_epoch == 0:
            raise ConfigError(f"the training set ({len(self.train_set)} samples) is smaller than one batch "
                              f"(data.batch_size={d.batch_size}): lower data.batch_size or add data")
        total = self.steps_per_epoch * t.epochs
        self.backend, self.backend_reason = resolve_backend(cfg.model.neuron_options.get("backend", "auto"), total,
                                                            self.device)
        set_backend(model, self.backend)

        if t.sync_bn and ctx.distributed:
            model = ddp.convert_sync_batchnorm(model, self.device)
            self.model = model
        model.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels
        self.memory, segments, self.memory_reason = resolve_memory(
            t.memory, model, self.train_set, d.batch_size // world, self.device, budget_gib=t.memory_budget,
            backend=self.backend, autocast=lambda: _autocast(self.device, t.amp))
        if ctx.distributed:  # the same segments recomputed on every rank: those of the one shortest of memory
            ALL = 2**30
            mine = 0 if self.memory == "none" else ALL if segments is None else segments
            agreed = torch.tensor([mine], dtype=torch.int64, device=self.device)
            dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
            if int(agreed) != mine:
                segments = None if int(agreed) == ALL else int(agreed)
                self.memory, self.memory_reason = "checkpoint", (
                    f"auto: another process is shorter of memory ({'all' if segments is None else segments} "
                    f"neuron segments recomputed)")
        if self.memory == "checkpoint":
            model.set_memory("checkpoint", segments)
        self.net = nn.parallel.DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None) if ctx.distributed else model

        o = cfg.optim
        self.optimizer = build_optimizer(cfg, model)
        warmup = round(o.warmup_epochs * self.steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(
            s, total=total, warmup=warmup, schedule=o.schedule, floor=o.min_lr / o.lr))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.amp == "fp16")
        self.mixer = MixupCutmix(mixup_alpha=d.mixup, cutmix_alpha=d.cutmix, prob=d.mix_prob,
                                 label_smoothing=o.label_smoothing)
        self.checkpoint_rule = checkpoint_interval(t.checkpoint_every)

    # -- stage 3: the state of a resumed run --------------------------------------
    def restore(self, ckpt: dict | None) -> _Sums | None:
        """Load a checkpoint's states and position; the running totals of an epoch left in the
        middle (``None`` when starting at an epoch boundary)."""
        if ckpt is None:
            torch.manual_seed(self.cfg.train.seed + self.ctx.rank)  # the stream of training (TSRD)
            return None
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.step, self.history = ckpt["epoch"], ckpt["step"], list(ckpt["history"])
        self.batch = ckpt.get("batch", 0)
        rank = self.ctx.rank
        set_rng_state(ckpt["rng"][rank] if rank < len(ckpt["rng"]) else ckpt["rng"][0])
        if self.batch:
            return _Sums.from_floats(ckpt["sums"][rank] if rank < len(ckpt["sums"]) else ckpt["sums"][0],
                                     self.device)
        return None

    def write_run_files(self) -> None:
        if not self.ctx.is_main:
            return
        cfg, folder = self.cfg, self.run_folder
        folder.remove_temporaries()
        folder.write_config(cfg.to_dict(), python_model=self.user_model_name)
        folder.write_meta({
            "staa_snn": __version__, "git_commit": _git_commit(), "torch": torch.__version__, "command": sys.argv,
            "world_size": self.ctx.world_size, "device": str(self.device), "backend": self.backend,
            "memory": self.memory, "memory_reason": self.memory_reason,
            "model": self.user_model_name or cfg.model.name,
            "loss": _name_of(self.loss_fn) if self.custom_loss else cfg.optim.loss,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed_from_epoch": self.epoch or None})
        folder.write_metrics(self.history)
        self.writer = folder.tensorboard(cfg.output.tensorboard)

    # -- the job ------------------------------------------------------------------
    def run(self, resume, stop_after=None, stop_after_steps=None) -> TrainResult:
        ckpt = self.open_run(resume)
        self.build()
        sums = self.restore(ckpt)
        if self.backend == "compiled":
            _say(self.ctx, f"neuron backend: compiled ({self.backend_reason}; the first steps compile the "
                           f"neuron loops)")
        if self.memory == "checkpoint":
            _say(self.ctx, f"memory: checkpoint ({self.memory_reason}; each neuron segment is recomputed in "
                           f"backward)")
        self.write_run_files()
        t = self.cfg.train
        self.stop_at_step = None if stop_after_steps is None else self.step + stop_after_steps
        end = t.epochs if stop_after is None else min(t.epochs, self.epoch + stop_after)
        while self.epoch < end:
            sums, stopped = self.train_epoch(sums)
            if stopped:  # stop_after_steps ended this call in the middle of the epoch (checkpointed)
                break
            self.finish_epoch(sums)
            sums = None
            if self.stop_at_step is not None and self.step >= self.stop_at_step:
                break
            if self.epoch < end and self._stop_requested(True):  # this epoch's checkpoint is written
                raise self._preempted()
        return TrainResult(self.model, self.history, self.run_folder.path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.run_folder is not None:
            self.run_folder.unlock()
        torch.backends.cudnn.benchmark = self.cudnn_benchmark

    # -- stage 4: one epoch -------------------------------------------------------
    def train_epoch(self, sums: _Sums | None) -> tuple[_Sums, bool]:
        """Train the current epoch from batch ``self.batch``; ``(totals, stopped)``."""
        cfg, ctx, t = self.cfg, self.ctx, self.cfg.train
        device, epoch = self.device, self.epoch
        sums = sums or _Sums.zeros(device)
        self.sampler.set_epoch(epoch, self.batch)
        self.net.train()
        self.tic = time.perf_counter()
        self.timed_from = self.batch
        next_save = self._next_checkpoint(self.batch)
        bar = _bar(self.train_loader, f"epoch {epoch + 1}/{t.epochs}", t.progress and ctx.is_main,
                   self.steps_per_epoch - self.batch)
        # no bar where stderr is not a terminal (nohup, a batch scheduler): a line now and then instead
        lines = t.progress and ctx.is_main and (bar is self.train_loader or bar.disable)
        self.logged = time.monotonic()
        for x, y, skipped in bar:
            if self.batch >= self.steps_per_epoch:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            sums.skipped += skipped
            rng = np.random.default_rng(sample_seed(t.seed, ctx.rank, epoch, self.batch))
            xm, mix = self.mixer.mix(x, y, rng)
            with _autocast(device, t.amp):
                steps = self.net(xm, per_step=True) if isinstance(self.model, SpikingNet) else self.net(xm)
            if steps.dim() == 2:  # a model of one's own, [B, K]: one step
                steps = steps.unsqueeze(0)
            logits = steps.mean(0)
            loss = self.loss_fn(steps, self.mixer.targets(mix, steps.shape[-1]))
            if self.custom_loss:
                _check_loss(loss, self.loss_fn)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.optim.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            # running totals on the device: no host synchronisation here
            loss = loss.detach()
            bad_now = ~torch.isfinite(loss)
            sums.bad_step = torch.where(bad_now & (sums.bad_step < 0), self.step + 1, sums.bad_step)
            sums.bad_loss = torch.where(bad_now & ~sums.bad, loss.float(), sums.bad_loss)
            sums.bad |= bad_now
            sums.loss += loss.double() * len(y)
            sums.correct += (logits.detach().argmax(1) == y).sum()
            sums.seen += len(y)
            self.step += 1
            self.batch += 1
            checking = self.batch % t.check_every == 0
            if checking:
                self._check(sums)
                if bar is not self.train_loader and not bar.disable:
                    bar.set_postfix(**self._progress(sums))
            if lines and (self.batch % t.log_every == 0 if t.log_every else
                          checking and time.monotonic() - self.logged >= LOG_SECONDS):
                self._log_line(sums)
            if self.batch < self.steps_per_epoch and self._stop_requested(checking):
                self._check(sums)
                self.checkpoint(sums)
                raise self._preempted()
            if self.batch < self.steps_per_epoch and self.stop_at_step is not None and self.step >= self.stop_at_step:
                self._check(sums)
                self.checkpoint(sums)
                break
            if next_save is not None and self.batch < self.steps_per_epoch and self._due(next_save):
                self._check(sums)
                self.checkpoint(sums)
                next_save = self._next_checkpoint(self.batch)
        if bar is not self.train_loader:
            bar.close()
        self._check(sums)
        return sums, self.batch < self.steps_per_epoch

    def _stop_requested(self, at_check_point: bool) -> bool:
        """Whether a stop signal arrived (on any rank: under DDP only asked at check points, where
        the ranks meet anyway; alone, a Python attribute, every step)."""
        if not self.ctx.distributed:
            return self.stop.requested
        if not at_check_point:
            return False
        flag = torch.tensor([float(self.stop.requested)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _preempted(self) -> TrainingPreempted:
        signum = self.stop.signum if self.stop.signum is not None else signal.SIGTERM
        epochs = self.cfg.train.epochs
        where = f"batch {self.batch}/{self.steps_per_epoch} of epoch {self.epoch + 1}/{epochs}" if self.batch \
            else f"epoch {self.epoch}/{epochs}"
        return TrainingPreempted(f"stopped by {signal.Signals(signum).name} after {where}: checkpointed in "
                                 f"{self.run_folder.path / 'last.pt'}; continue with --resume auto",
                                 signum=signum, epoch=self.epoch, step=self.step)

    def _progress(self, sums: _Sums) -> dict:
        seen = max(float(sums.seen), 1.0)
        return {"loss": f"{float(sums.loss) / seen:.3f}", "acc": f"{float(sums.correct) / seen:.3f}",
                "img_s": f"{seen * self.ctx.world_size / (time.perf_counter() - self.tic):.0f}"}

    def _log_line(self, sums: _Sums) -> None:
        """One progress line on stderr (what the bar shows, for logs)."""
        p, t = self._progress(sums), self.cfg.train
        elapsed = time.perf_counter() - self.tic
        left = elapsed / max(self.batch - self.timed_from, 1) * (self.steps_per_epoch - self.batch)
        print(f"epoch {self.epoch + 1}/{t.epochs} step {self.batch}/{self.steps_per_epoch}: train loss {p['loss']} "
              f"acc {float(p['acc']):.2%} | {p['img_s']} img/s | epoch {elapsed:.0f} s, about {left:.0f} s left",
              file=sys.stderr, flush=True)
        self.logged = time.monotonic()

    def _next_checkpoint(self, batch: int):
        """When the next mid-epoch checkpoint is due: a batch number or a time (``None``: off)."""
        rule = self.checkpoint_rule
        if rule is None:
            return None
        if rule[0] == "steps":
            return ("batch", (batch // rule[1] + 1) * rule[1])
        # a duration: rank 0's clock decides, every rank follows at the same batch
        return ("time", time.monotonic() + rule[1])

    def _due(self, when) -> bool:
        kind, value = when
        if kind == "batch":
            return self.batch >= value
        if self.batch % self.cfg.train.check_every:
            return False  # (time is looked at only at the check points, where ranks agree anyway)
        due = torch.tensor([float(time.monotonic() >= value)], device=self.device)  # NCCL needs it on the GPU
        if self.ctx.distributed:
            dist.broadcast(due, 0)
        return bool(due.item())

    def _check(self, sums: _Sums) -> None:
        """Raise :class:`TrainingDiverged` when a loss was not finite (on any rank)."""
        flag = sums.bad.float().reshape(1)
        if self.ctx.distributed:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if not bool(flag.item()):
            return
        step = int(sums.bad_step)
        where = f"step {step}" if step > 0 else "a step on another rank"
        raise TrainingDiverged(f"the loss became {float(sums.bad_loss)} at epoch {self.epoch + 1}, {where}; "
                               f"{self._last_good()} -- lower optim.lr or set optim.grad_clip")

    def _last_good(self) -> str:
        last = self.run_folder.path / "last.pt"
        return f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"

    # -- stage 5: the end of an epoch ---------------------------------------------
    def finish_epoch(self, sums: _Sums) -> None:
        cfg, ctx = self.cfg, self.ctx
        train_time = time.perf_counter() - self.tic
        loss_sum, correct, seen, skipped = ddp.all_reduce_sum(
            [float(sums.loss), float(sums.correct), float(sums.seen), float(sums.skipped)], ctx)
        timed = (self.batch - self.timed_from) * cfg.data.batch_size
        test = evaluate(self.model, self.test_loader, self.device, amp=cfg.train.amp, ctx=ctx,
                        progress=cfg.train.progress)
        self.epoch += 1
        self.batch = 0
        record = {"epoch": self.epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                  "train_loss": loss_sum / seen, "train_acc": correct / seen,
                  "test_loss": test["loss"], "test_acc": test["acc"], "test_acc_per_step": test["acc_per_step"],
                  "firing_rates": test["firing_rates"], **({"sa_gates": test["sa_gates"]} if "sa_gates" in test else {}),
                  "train_samples_per_s": timed / train_time, "epoch_time_s": time.perf_counter() - self.tic + sums.elapsed}
        if skipped:
            record["skipped_samples"] = int(skipped)
            _say(ctx, f"epoch {self.epoch}: skipped {int(skipped)} unreadable sample(s) "
                      f"(data.options.skip_bad_files)")
        self.history.append(record)
        best = max(h["test_acc"] for h in self.history)
        self.checkpoint(None, best=record["test_acc"] >= best)
        if ctx.is_main:
            if self.writer is not None:
                for k in ("lr", "train_loss", "train_acc", "test_loss", "test_acc", "train_samples_per_s"):
                    self.writer.add_scalar(k, record[k], self.epoch)
                for name, rate in record["firing_rates"].items():
                    self.writer.add_scalar(f"firing_rate/{name}", rate, self.epoch)
                self.writer.flush()
            for callback in self.callbacks:
                callback(record)
            if cfg.train.progress:
                split = eval_split(cfg.data.options)
                print(f"epoch {self.epoch}/{cfg.train.epochs}: train loss {record['train_loss']:.4f} "
                      f"acc {record['train_acc']:.2%} | {split} loss {record['test_loss']:.4f} "
                      f"acc {record['test_acc']:.2%} (best {best:.2%}) | {record['train_samples_per_s']:.0f} img/s",
                      file=sys.stderr)

    # -- stage 6: checkpoints -----------------------------------------------------
    def checkpoint(self, sums: _Sums | None, *, best: bool = False) -> None:
        """Write ``last.pt`` (and ``best.pt``): at an epoch end (``sums`` None), or in the middle of
        one with the running totals, to resume at the same batch. Never from non-finite weights."""
        ctx = self.ctx
        finite = torch.stack([p.detach().isfinite().all() for p in self.model.parameters()]).all().float().reshape(1)
        if ctx.distributed:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if not bool(finite.item()):
            raise TrainingDiverged(f"the weights became non-finite in epoch {self.epoch + (sums is not None)} "
                                   f"(by step {self.step}, the loss still finite); {self._last_good()} "
                                   f"-- lower optim.lr or set optim.grad_clip")
        rngs, totals = [rng_state()], [sums.as_floats(time.perf_counter() - self.tic) if sums is not None else {}]
        if ctx.distributed:
            gathered, gathered_sums = [None] * ctx.world_size, [None] * ctx.world_size
            dist.all_gather_object(gathered, rngs[0])
            dist.all_gather_object(gathered_sums, totals[0])
            rngs, totals = gathered, gathered_sums
        if not ctx.is_main:
            return
        payload = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                   "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": rngs,
                   "epoch": self.epoch, "batch": self.batch, "step": self.step, "history": self.history,
                   "config": self.cfg.to_dict(), "num_classes": _num_classes(self.model), "staa_snn": __version__,
                   "input": input_metadata(self.cfg, getattr(self.train_set, "classes", None))}
        if self.user_model is not None:
            payload["python_model"] = self.user_model_name
        if sums is not None:
            payload["sums"] = totals
        folder = self.run_folder
        save_checkpoint(folder.path / "last.pt", payload)
        if best:
            save_checkpoint(folder.path / "best.pt", payload)
        if sums is None:
            folder.write_metrics(self.history)


def input_metadata(cfg: Config, classes=None) -> dict:
    """What a deployed net needs to know of its inputs and outputs, stored with the weights:
    the class names (index -> name; ``None`` when the data has none), the normalisation
    (``None``: not normalised), the input size and channels, and the kind of data."""
    info = dataset_info(cfg.data.name)
    return {"classes": [str(c) for c in classes] if classes is not None else None,
            "normalization": normalization(cfg.data.name, cfg.data.mean, cfg.data.std),
            "size": cfg.data.size or info.size, "in_channels": info.in_channels, "kind": info.kind}


def _num_classes(model: nn.Module) -> int | None:
    if hasattr(model, "num_classes"):
        return int(model.num_classes)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else None


def checkpoint_config(ckpt: dict, overrides=(), *, require_root: bool = True) -> Config:
    """The config a checkpoint was trained with, then ``section.key=value`` overrides; validated."""
    tree = ckpt["config"]
    if "weight_decay_on" not in tree.get("optim", {}):  # written before the key existed: decay was on all
        tree = {**tree, "optim": {**tree.get("optim", {}), "weight_decay_on": "all"}}
    cfg = Config.from_dict(tree)
    for text in overrides:
        apply_override(cfg, text)
    return cfg.validate(require_root=require_root)


def load_trained(path: str | Path, overrides=(), *, model: nn.Module | None = None,
                 require_root: bool = True) -> tuple[Config, nn.Module, dict]:
    """``(config, model in eval mode, checkpoint)`` from a checkpoint written by :func:`train`.

    A run trained on a model passed in from Python (``train(cfg, model=MyNet())``) needs that
    model again: ``load_trained(path, model=MyNet())`` loads the weights into it (strictly); the
    config's ``model`` section was not used by such a run, and is not used to rebuild it."""
    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt, overrides, require_root=require_root)
    python_model = ckpt.get("python_model")
    if model is None and python_model is not None:
        raise ConfigError(f"{path} was trained on a model passed in from Python ({python_model}), which a config "
                          f"cannot rebuild: in Python, staa_snn.training.load_trained({str(path)!r}, "
                          f"model={python_model.rpartition('.')[2]}(...))")
    if model is None:
        model = build_model(cfg, num_classes=ckpt["num_classes"])
    model.load_state_dict(ckpt["model"])
    model.pretrained_cfg = describe_inputs(cfg.model.name, cfg.model.T, cfg.data.name,
                                           ckpt.get("input") or input_metadata(cfg))
    return cfg, model.eval(), ckpt


def load_pretrained(path: str | os.PathLike, **overrides) -> nn.Module:
    """A net in ``eval()`` with ``pretrained_cfg`` from a ``.pt`` checkpoint written by :func:`train`
    (:func:`load_trained`) or from exported weights -- a shipped name, a folder or
    ``hf://owner/name[@revision]`` (:func:`staa_snn.models.load_pretrained`, which ``overrides``,
    create_model arguments, go to). This is ``staa_snn.load_pretrained``."""
    path = resolve_path(path)  # one download for both files
    if path.is_file() and path.suffix == ".pt":  # a checkpoint written by staa-snn train
        if overrides:
            raise ValueError(f"{path} is a checkpoint: create_model overrides apply to exported weights; "
                             f"set the backend on the loaded net (staa_snn.models.set_backend)")
        return load_trained(path, require_root=False)[1]
    return load_exported(path, **overrides)


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
    cfg = Config.from_dict(spec["config"])
    for text in [*overrides, *([f"data.test_batch_size={batch_size}"] if batch_size is not None else [])]:
        apply_override(cfg, text)
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
        result["exit_curve"] = exit_curve(model, _bar(loader, "exit", progress), exit_thresholds, device=dev)
    return result
