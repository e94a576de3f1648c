"""The training job: :func:`train` and the :class:`Trainer` that runs it.

``train(config)`` runs a whole job: the run folder (locked, one run at a time),
the model (built before any data is read), the data loaders, the optimiser and
schedule, the state of a resumed run, then epoch after epoch of training,
evaluation, metrics and checkpoints (:class:`~.epoch.EpochLoop`). The same
:class:`Trainer` serves the command line and the Python API, where a model and
datasets of your own can replace the config's. Under ``torchrun`` it runs DDP;
only rank 0 writes files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from .. import __version__
from ..data import MixupCutmix, dataset_info
from ..errors import ConfigError
from ..kernels import resolve_backend
from ..models import set_backend
from . import distributed as ddp
from .builders import build_datasets, build_model, build_optimizer, lr_factor
from .checkpoint import caller_rng_state, load_checkpoint, set_rng_state
from .config import Config, checkpoint_interval, load_config
from .console import say
from .epoch import EpochLoop, EpochSums
from .evaluate import autocast_context
from .loaders import EpochSampler, SeededSamples, dataset_classes, dataset_sensor, make_loader
from .losses import LOSSES, LossFn, loss_name
from .memory import resolve_memory
from .preemption import StopRequest
from .resume import describe, resume_changes
from .run_folder import RunFolder
from .threads import ThreadChoice, ThroughputWatch, apply_threads, choose_threads
from .trained import checkpoint_config, num_classes_of

__all__ = ["Callback", "TrainResult", "Trainer", "as_config", "train"]


Callback = Callable[[dict], None]


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

    def __repr__(self) -> str:  # one line: the net's class, not its every layer
        parts = [f"model={type(self.model).__name__}", f"epochs={len(self.history)}"]
        if self.history:
            parts += [f"final_test_acc={self.final['test_acc']:.4f}",
                      f"best_test_acc={self.best['test_acc']:.4f} (epoch {self.best['epoch']})"]
        return f"TrainResult({', '.join(parts)}, run_dir={str(self.run_dir) if self.run_dir else None!r})"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


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


class Trainer(EpochLoop):
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
            warnings.warn(f"loss_fn={loss_name(loss_fn)} is used; optim.loss={cfg.optim.loss} is not", stacklevel=3)
        self.stop = StopRequest(())  # train() puts the one it entered here
        self.user_model, self.train_set, self.test_set = model, train_set, test_set
        self.callbacks = list(callbacks)
        self.run_folder: RunFolder | None = None
        self.history: list[dict] = []
        self.epoch = self.batch = self.step = 0  # completed epochs, batches of the current one, optimiser steps
        self.writer = None
        self.stop_at_step: int | None = None
        self.cudnn_benchmark = torch.backends.cudnn.benchmark
        self.keep_partial = True  # the last partial batch of an epoch trains (runs checkpointed before: dropped)
        self.threads_before: int | None = None  # torch's intra-op threads before the run (restored by close)
        self.threads = ThreadChoice(torch.get_num_threads(), "unchanged")
        self.watch = ThroughputWatch(1)  # set_threads makes the run's
        self.watched = (0.0, 0)  # (time, batch) of the last throughput reading

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
                say(ctx, f"no checkpoint in {folder} yet: starting {name} from the beginning")
            if removed:
                say(ctx, f"cleared what an unfinished run left in {folder}: {', '.join(removed)}")
            return None
        old = checkpoint_config(ckpt, require_root=False)
        mid = ckpt.get("batch", 0) > 0
        changed = resume_changes(old, cfg, epochs_done=ckpt["epoch"], mid_epoch=mid, run=name)
        where = f"epoch {ckpt['epoch']}/{cfg.train.epochs}" + (f", batch {ckpt['batch']}" if mid else "")
        what = describe(changed)
        say(ctx, f"resuming {name} from {where}" + (f" (changed: {what})" if what else ""))
        return ckpt

    # -- stage 2: model, data, optimisation ---------------------------------------
    def build(self) -> None:
        """The model and the data (:meth:`build_model_and_data`), the loaders, the model on its device
        with its backend and memory mode (:meth:`place_model`), the optimiser, schedule and mixing."""
        if self.cfg.train.amp == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.amp=fp16 needs a CUDA device; use train.amp=bf16 on the CPU")
        self.build_model_and_data()
        self.build_loaders()
        self.place_model()
        self.build_optimisation()

    def build_model_and_data(self) -> None:
        """The model, built before the data are read where the config says its classes (under DDP
        rank 0 reads, and converts event data, first); the same initial weights on every rank."""
        cfg, ctx, t = self.cfg, self.ctx, self.cfg.train
        torch.manual_seed(t.seed)  # the same initial weights on every rank
        own_data = self.train_set is not None
        num_classes = dataset_info(cfg.data.name).num_classes if not own_data else None
        model = self.user_model
        given = dataset_classes(self.train_set) if own_data else None
        if model is None and (num_classes or given):
            model = build_model(cfg, num_classes=num_classes or len(given))
        if ctx.distributed and not ctx.is_main:
            dist.barrier()  # rank 0 converts event data first
        if not own_data:
            self.train_set, self.test_set = build_datasets(cfg)
        if ctx.distributed and ctx.is_main:
            dist.barrier()
        # the class names of any dataset that has them (image folders, event data, wrapped ones)
        self.classes = dataset_classes(self.train_set) or dataset_classes(self.test_set)
        self.sensor = dataset_sensor(self.train_set) or dataset_sensor(self.test_set)  # event data: the camera
        if model is None:  # the classes are known from the data (image folders)
            if not self.classes:
                raise ConfigError("the training set has no classes attribute (its class names) to size the net's "
                                  "output: pass model=, or a dataset with classes")
            torch.manual_seed(t.seed)
            model = build_model(cfg, num_classes=len(self.classes))
        if self.classes is not None and num_classes_of(model) not in (None, len(self.classes)):
            self.classes = None  # names that do not match the outputs are not stored
        self.model = model

    def build_loaders(self) -> None:
        """The training and test loaders (each rank its share of every global batch) and the
        number of steps an epoch takes."""
        ctx, t, d = self.ctx, self.cfg.train, self.cfg.data
        world = ctx.world_size
        self.sampler = EpochSampler(ddp.GlobalBatchSampler(len(self.train_set), d.batch_size, rank=ctx.rank,
                                                           world_size=world, seed=t.seed,
                                                           keep_partial=self.keep_partial))
        pin = self.device.type == "cuda"
        self.train_loader = make_loader(SeededSamples(self.train_set, t.seed), self.sampler, d.batch_size // world,
                                        workers=d.workers, pin_memory=pin)
        test_bs = d.test_batch_size or d.batch_size
        test_sampler = ddp.GlobalBatchSampler(len(self.test_set), test_bs, rank=ctx.rank, world_size=world,
                                              shuffle=False, drop_last=False)
        self.test_loader = make_loader(self.test_set, test_sampler, max(test_bs // world, 1), workers=d.workers,
                                       pin_memory=pin)
        self.steps_per_epoch = min(self.sampler.batches.num_batches, t.max_batches or 10**18)
        if len(self.train_set) < d.batch_size:
            raise ConfigError(f"the training set ({len(self.train_set)} samples) is smaller than one batch "
                              f"(data.batch_size={d.batch_size}): lower data.batch_size or add data")
        left = self.sampler.batches.left_out
        if left and t.max_batches is None:
            each = "" if world == 1 else f" of {world} processes"
            say(ctx, f"{left} of the {len(self.train_set)} training samples are left out of each epoch (drawn afresh "
                     f"every epoch): the last batch would give each{each} fewer than 2 samples, too few for "
                     f"BatchNorm")

    def place_model(self) -> None:
        """The neuron backend for the job's length, sync BN, the device, the memory mode (agreed
        across ranks) and the DDP wrapper (``self.net``)."""
        cfg, ctx, t = self.cfg, self.ctx, self.cfg.train
        total = self.steps_per_epoch * t.epochs
        self.backend, self.backend_reason = resolve_backend(cfg.model.neuron_options.get("backend", "auto"), total,
                                                            self.device)
        set_backend(self.model, self.backend)
        if t.sync_bn and ctx.distributed:
            self.model = ddp.convert_sync_batchnorm(self.model, self.device)
        model = self.model
        model.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels
        self.memory, segments, self.memory_reason = resolve_memory(
            t.memory, model, self.train_set, cfg.data.batch_size // ctx.world_size, self.device,
            budget_gib=t.memory_budget, backend=self.backend, autocast=lambda: autocast_context(self.device, t.amp))
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

    def build_optimisation(self) -> None:
        """The optimiser, the LR schedule over the whole job, the AMP scaler, mixup/cutmix and the
        mid-epoch checkpoint rule."""
        cfg, t, d, o = self.cfg, self.cfg.train, self.cfg.data, self.cfg.optim
        total = self.steps_per_epoch * t.epochs
        self.optimizer = build_optimizer(cfg, self.model)
        warmup = round(o.warmup_epochs * self.steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(
            s, total=total, warmup=warmup, schedule=o.schedule, floor=o.min_lr / o.lr))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.amp == "fp16")
        self.mixer = MixupCutmix(mixup_alpha=d.mixup, cutmix_alpha=d.cutmix, prob=d.mix_prob,
                                 label_smoothing=o.label_smoothing)
        self.checkpoint_rule = checkpoint_interval(t.checkpoint_every)

    # -- stage 3: the state of a resumed run --------------------------------------
    def restore(self, ckpt: dict | None) -> EpochSums | None:
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
            return EpochSums.from_floats(ckpt["sums"][rank] if rank < len(ckpt["sums"]) else ckpt["sums"][0],
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
            "threads": self.threads.threads, "threads_reason": self.threads.reason,
            "model": self.user_model_name or cfg.model.name,
            "loss": loss_name(self.loss_fn) if self.custom_loss else cfg.optim.loss,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed_from_epoch": self.epoch or None})
        folder.write_metrics(self.history)
        self.writer = folder.tensorboard(cfg.output.tensorboard)

    # -- the job ------------------------------------------------------------------
    def run(self, resume, stop_after=None, stop_after_steps=None) -> TrainResult:
        ckpt = self.open_run(resume)
        if ckpt is not None:  # resumed as it was trained: checkpoints from before partial batches dropped them
            self.keep_partial = bool(ckpt.get("partial_batch", False))
        notice = self.set_threads()  # the data are read with the run's threads
        self.build()
        if notice:  # said once the data are known good: a bad data path is the one line a user sees
            say(self.ctx, notice)
        sums = self.restore(ckpt)
        if self.backend == "compiled":
            say(self.ctx, f"neuron backend: compiled ({self.backend_reason}; the first steps compile the "
                           f"neuron loops)")
        if self.memory == "checkpoint":
            say(self.ctx, f"memory: checkpoint ({self.memory_reason}; each neuron segment is recomputed in "
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

    def set_threads(self) -> str | None:
        """torch's intra-op threads for the run (``train.threads``; :mod:`.threads`). Returns the
        notice to say when they are fewer than torch's own count because other processes keep CPUs
        busy or a quota caps them, else ``None``."""
        before = torch.get_num_threads()
        self.threads = choose_threads(self.cfg.train.threads)
        self.threads_before = apply_threads(self.threads)
        self.watch = ThroughputWatch(self.threads.threads if self.device.type == "cpu" else 1)
        if self.threads.threads < before and self.cfg.train.threads == "auto" and "OMP_NUM_THREADS" not in \
                self.threads.reason:
            return (f"{self.threads.threads} thread{'s' if self.threads.threads > 1 else ''} for torch's CPU "
                    f"operations, not {before} ({self.threads.reason}; set train.threads to choose)")
        return None

    def close(self) -> None:
        if self.threads_before is not None:
            torch.set_num_threads(self.threads_before)
        if self.writer is not None:
            self.writer.close()
        if self.run_folder is not None:
            self.run_folder.unlock()
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
