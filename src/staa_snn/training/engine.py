"""The training and evaluation loops.

``train(cfg)`` runs a whole job from a validated :class:`Config`: it builds the
model (before any data is read), the data loaders, the optimiser and schedule,
then trains epoch by epoch, evaluating, logging and checkpointing after each.
Under ``torchrun`` it runs DDP; only rank 0 writes files.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader

from .. import __version__
from .._io import write_text_atomic
from ..data import MixupCutmix, dataset_info, get_dataset
from ..models import SpikingNet, create_model
from . import distributed as ddp
from .checkpoint import load_checkpoint, remove_stale_temporaries, rng_state, save_checkpoint, set_rng_state
from .config import Config, ConfigError, parse_override


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
        return max(self.history, key=lambda h: h["test_acc"]) if self.history else {}


# -- building blocks ----------------------------------------------------------

def build_model(cfg: Config, num_classes: int | None = None) -> SpikingNet:
    """The config's net; ``ConfigError`` (naming ``model``) for a bad neuron option value."""
    info = dataset_info(cfg.data.name)
    try:
        return create_model(cfg.model.name, num_classes=num_classes or info.num_classes, T=cfg.model.T,
                            neuron=cfg.model.neuron, in_channels=info.in_channels, init=cfg.model.init,
                            **cfg.model.neuron_options)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model: {e}") from e


def build_datasets(cfg: Config):
    d = cfg.data
    info = dataset_info(d.name)
    events = info.kind == "events"
    common = dict(T=cfg.model.T if events else None, split_by=d.split_by if events else "number",
                  size=d.size, cache_dir=d.cache_dir, **d.options)
    train = get_dataset(d.name, d.root, "train", augment=d.augment, **common)
    test = get_dataset(d.name, d.root, "test", augment=False, **common)
    return train, test


_DECAYED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def parameter_groups(model: nn.Module, weight_decay: float, on: str = "weights") -> list[dict]:
    """Optimiser groups: ``on="weights"`` decays the weights of conv and linear layers only (the
    recipes; the GC and SA blocks' 1x1 convolutions are linear layers), never biases, norm
    affines (BN, BN_mp, LayerNorm), ``M``, ``N`` or PE; ``on="all"`` decays every parameter."""
    params = [p for p in model.parameters() if p.requires_grad]
    if on == "all":
        return [{"params": params, "weight_decay": weight_decay}]
    decayed = {id(m.weight) for m in model.modules() if isinstance(m, _DECAYED) and m.weight is not None}
    groups = [{"params": [p for p in params if id(p) in decayed], "weight_decay": weight_decay},
              {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    groups = parameter_groups(model, o.weight_decay, o.weight_decay_on)
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


def _autocast(device: torch.device, amp: str):
    if amp == "none":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, *, amp: str = "none",
             ctx: ddp.DistContext | None = None, progress: bool = False) -> dict:
    """Test loss and accuracy, and the accuracy when reading out after ``1..T``
    steps (``acc_per_step[t-1]``: the mean of the first ``t`` steps' logits)."""
    ctx = ctx or ddp.DistContext(device=device)
    model.eval()
    loss_sum, n = 0.0, 0
    correct_steps = torch.zeros(model.T, dtype=torch.float64)  # same length on every rank, even an idle one
    for x, y in _bar(loader, "eval", progress and ctx.is_main):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, amp):
            steps = model.forward_steps(x).float()  # [T, B, K]
        T = steps.shape[0]
        running = steps.cumsum(0) / torch.arange(1, T + 1, device=device).view(T, 1, 1)
        loss_sum += F.cross_entropy(running[-1], y, reduction="sum").item()
        correct_steps += (running.argmax(-1) == y).sum(1).double().cpu()
        n += len(y)
    totals = ddp.all_reduce_sum([loss_sum, n, *correct_steps.tolist()], ctx)
    loss_sum, n, per = totals[0], totals[1], totals[2:]
    if n == 0:
        raise ValueError("the test set is empty")
    return {"loss": loss_sum / n, "acc": per[-1] / n, "acc_per_step": [c / n for c in per], "samples": int(n)}


def _all_finite(loss: torch.Tensor, ctx: ddp.DistContext) -> bool:
    """Whether the loss is finite on every rank (so all ranks stop together)."""
    bad = (~torch.isfinite(loss.detach())).float().reshape(1)
    if ctx.distributed:
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    return not bool(bad.item())


def _bar(iterable, desc: str, enabled: bool, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    # disable=None: tqdm shows the bar on a terminal only, so logs and CI stay readable
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr, disable=None)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


# -- the job -------------------------------------------------------------------

def train(cfg: Config, *, resume: str | Path | None = None, stop_after: int | None = None) -> TrainResult:
    """Run a training job. ``resume``: a checkpoint path, or ``"auto"`` for the
    run folder's ``last.pt``. ``stop_after``: train at most this many epochs in
    this call (checkpointed; resume later)."""
    cfg.validate()
    ctx = ddp.setup(cfg.train.device)
    try:
        return _train(cfg, ctx, resume, stop_after)
    finally:
        ddp.teardown(ctx)


def _train(cfg: Config, ctx: ddp.DistContext, resume, stop_after) -> TrainResult:
    device, t = ctx.device, cfg.train
    if t.amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp=fp16 needs a CUDA device; use train.amp=bf16 on the CPU")
    run_dir = Path(cfg.output.dir) / cfg.run_name
    ckpt = None
    if resume is not None:
        path = run_dir / "last.pt" if str(resume) == "auto" else Path(resume)
        ckpt = load_checkpoint(path)
        run_dir = path.parent
    elif (run_dir / "last.pt").exists():
        raise FileExistsError(f"{run_dir} already holds a run (last.pt): resume it with --resume auto, "
                              f"or choose another output.name")

    torch.manual_seed(t.seed)  # the same initial weights on every rank
    info = dataset_info(cfg.data.name)
    model = build_model(cfg) if info.num_classes else None  # bad options fail before any data is read
    if ctx.distributed and not ctx.is_main:
        dist.barrier()  # rank 0 converts event data and creates the run folder first
    train_set, test_set = build_datasets(cfg)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir)
    if ctx.distributed and ctx.is_main:
        dist.barrier()
    if model is None:
        torch.manual_seed(t.seed)
        model = build_model(cfg, num_classes=len(train_set.classes))
    num_classes = model.num_classes
    if cfg.train.sync_bn and ctx.distributed:
        model = ddp.convert_sync_batchnorm(model, device)
    model.to(device)
    net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if ctx.distributed else model

    world, d = ctx.world_size, cfg.data
    sampler = ddp.GlobalBatchSampler(len(train_set), d.batch_size, rank=ctx.rank, world_size=world, seed=t.seed)
    test_bs = d.test_batch_size or d.batch_size
    loader_opts = dict(num_workers=d.workers, pin_memory=device.type == "cuda", persistent_workers=d.workers > 0)
    train_loader = DataLoader(train_set, batch_size=d.batch_size // world, sampler=sampler, **loader_opts)
    test_loader = DataLoader(test_set, batch_size=max(test_bs // world, 1), **loader_opts,
                             sampler=ddp.GlobalBatchSampler(len(test_set), test_bs, rank=ctx.rank, world_size=world,
                                                            shuffle=False, drop_last=False))
    steps_per_epoch = min(len(sampler) * world // d.batch_size, t.max_batches or 10**18)
    if steps_per_epoch == 0:
        raise ValueError(f"the training set ({len(train_set)} samples) is smaller than one batch "
                         f"(data.batch_size={d.batch_size})")

    optimizer = build_optimizer(cfg, model)
    o = cfg.optim
    total = steps_per_epoch * t.epochs
    warmup = round(o.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(
        s, total=total, warmup=warmup, schedule=o.schedule, floor=o.min_lr / o.lr))
    scaler = torch.amp.GradScaler(device.type, enabled=t.amp == "fp16")
    mixer = MixupCutmix(num_classes, mixup_alpha=d.mixup, cutmix_alpha=d.cutmix, prob=d.mix_prob,
                        label_smoothing=o.label_smoothing)

    history: list[dict] = []
    start_epoch, step = 0, 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, step, history = ckpt["epoch"], ckpt["step"], list(ckpt["history"])
        set_rng_state(ckpt["rng"][ctx.rank] if ctx.rank < len(ckpt["rng"]) else ckpt["rng"][0])
    else:
        torch.manual_seed(t.seed + ctx.rank)  # the random stream of training (TSRD, augmentation, mixing)

    writer = None
    if ctx.is_main:
        write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        meta = {"staa_snn": __version__, "git_commit": _git_commit(), "torch": torch.__version__,
                "command": sys.argv, "world_size": world, "device": str(device),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed_from_epoch": start_epoch or None}
        write_text_atomic(run_dir / "meta.json", json.dumps(meta, indent=1))
        write_text_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        if cfg.output.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                writer = None

    end_epoch = t.epochs if stop_after is None else min(t.epochs, start_epoch + stop_after)
    best_acc = max((h["test_acc"] for h in history), default=-1.0)
    for epoch in range(start_epoch, end_epoch):
        sampler.set_epoch(epoch)
        net.train()
        tic = time.perf_counter()
        loss_sum = correct = seen = 0.0
        bar = _bar(train_loader, f"epoch {epoch + 1}/{t.epochs}", t.progress and ctx.is_main, steps_per_epoch)
        for i, (x, y) in enumerate(bar):
            if i >= steps_per_epoch:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            xm, target = mixer(x, y)
            with _autocast(device, t.amp):
                logits = net(xm)
            loss = soft_cross_entropy(logits, target)
            if not _all_finite(loss, ctx):
                last = run_dir / "last.pt"
                raise TrainingDiverged(
                    f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                    + (f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet")
                    + " -- lower optim.lr or set optim.grad_clip")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if o.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            batch_loss = loss.item()
            loss_sum += batch_loss * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            if bar is not train_loader and not bar.disable:
                bar.set_postfix(loss=f"{batch_loss:.3f}", acc=f"{correct / seen:.3f}",
                                img_s=f"{seen * world / (time.perf_counter() - tic):.0f}")
        if bar is not train_loader:
            bar.close()
        train_time = time.perf_counter() - tic
        loss_sum, correct, seen = ddp.all_reduce_sum([loss_sum, correct, seen], ctx)
        test = evaluate(model, test_loader, device, amp=t.amp, ctx=ctx, progress=t.progress)
        record = {"epoch": epoch + 1, "step": step, "lr": optimizer.param_groups[0]["lr"],
                  "train_loss": loss_sum / seen, "train_acc": correct / seen,
                  "test_loss": test["loss"], "test_acc": test["acc"], "test_acc_per_step": test["acc_per_step"],
                  "train_samples_per_s": seen / train_time, "epoch_time_s": time.perf_counter() - tic}
        history.append(record)
        rngs = [rng_state()]
        if ctx.distributed:
            gathered = [None] * world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if ctx.is_main:
            payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rngs,
                       "epoch": epoch + 1, "step": step, "history": history, "config": cfg.to_dict(),
                       "num_classes": num_classes, "staa_snn": __version__}
            save_checkpoint(run_dir / "last.pt", payload)
            if record["test_acc"] > best_acc:
                best_acc = record["test_acc"]
                save_checkpoint(run_dir / "best.pt", payload)
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if writer is not None:
                for k in ("lr", "train_loss", "train_acc", "test_loss", "test_acc", "train_samples_per_s"):
                    writer.add_scalar(k, record[k], epoch + 1)
                writer.flush()
            if t.progress:
                print(f"epoch {epoch + 1}/{t.epochs}: train loss {record['train_loss']:.4f} "
                      f"acc {record['train_acc']:.2%} | test loss {record['test_loss']:.4f} "
                      f"acc {record['test_acc']:.2%} | {record['train_samples_per_s']:.0f} img/s", file=sys.stderr)
    if writer is not None:
        writer.close()
    return TrainResult(model, history, run_dir)


def checkpoint_config(ckpt: dict, overrides=(), *, require_root: bool = True) -> Config:
    """The config a checkpoint was trained with, then ``section.key=value`` overrides; validated."""
    tree = ckpt["config"]
    if "weight_decay_on" not in tree.get("optim", {}):  # written before the key existed: decay was on all
        tree = {**tree, "optim": {**tree.get("optim", {}), "weight_decay_on": "all"}}
    cfg = Config.from_dict(tree)
    for text in overrides:
        cfg.set(*parse_override(text))
    return cfg.validate(require_root=require_root)


def load_trained(path: str | Path, overrides=(), *, require_root: bool = True) -> tuple[Config, SpikingNet, dict]:
    """``(config, model in eval mode, checkpoint)`` from a checkpoint written by :func:`train`."""
    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt, overrides, require_root=require_root)
    model = build_model(cfg, num_classes=ckpt["num_classes"])
    model.load_state_dict(ckpt["model"])
    return cfg, model.eval(), ckpt


def evaluate_checkpoint(path: str | Path, *, data_root: str | None = None, device: str = "auto",
                        batch_size: int | None = None, progress: bool = True) -> dict:
    """Load a checkpoint (safely) and evaluate it on its dataset's test split."""
    overrides = [f"data.root={json.dumps(str(data_root))}"] if data_root is not None else []
    if batch_size is not None:
        overrides.append(f"data.test_batch_size={batch_size}")
    cfg, model, ckpt = load_trained(path, overrides)
    dev = ddp.resolve_device(device)
    model.to(dev)
    _, test_set = build_datasets(cfg)
    loader = DataLoader(test_set, batch_size=cfg.data.test_batch_size or cfg.data.batch_size,
                        num_workers=cfg.data.workers)
    amp = cfg.train.amp if dev.type == "cuda" or cfg.train.amp != "fp16" else "none"
    result = evaluate(model, loader, dev, amp=amp, progress=progress)
    return {"checkpoint": str(path), "epoch": ckpt["epoch"], "dataset": cfg.data.name, "model": cfg.model.name,
            "neuron": cfg.model.neuron, "T": cfg.model.T, **result}
