"""DDP plumbing: process-group set-up from torchrun's environment, a sampler
that splits every global batch across ranks, batch statistics over the global
batch on any backend, and sums reduced across ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from ..errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA (this process's local GPU) when present, else CPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda":
        spec = f"cuda:{local_rank}"
    try:
        device = torch.device(spec)
    except RuntimeError as e:
        raise ConfigError(f"train.device: {spec!r} is not a device ({e}); use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={spec!r} but CUDA is not available here; use train.device=cpu (or auto)")
    return device


def setup(device_spec: str) -> DistContext:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1): NCCL on
    GPUs, gloo on the CPU. A plain run gets a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, world, local, device)


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Element-wise sum over ranks (float64), for metric totals."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


class GlobalBatchSampler(Sampler[int]):
    """Indices for one rank: every global batch of the epoch's permutation is
    split into ``world_size`` equal consecutive slices, so ``W`` processes with
    batch ``B / W`` see exactly the batches of one process with batch ``B``.

    Training (``drop_last=True``) gives whole global batches; with ``keep_partial`` also the
    incomplete last one, split into ``W`` equal slices of at least 2 samples (a batch of 1 would
    break BatchNorm's statistics): what is left out is fewer than ``2 W`` samples, ``left_out``.
    Evaluation (``shuffle=False, drop_last=False``) gives rank ``r`` the
    indices ``r, r + W, ...`` (unequal lengths are fine: totals are summed).
    The permutation depends only on ``(seed, epoch)``.
    """

    def __init__(self, n: int, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = True, keep_partial: bool = False):
        if drop_last and batch_size % world_size:
            raise ValueError(f"data.batch_size={batch_size} must be divisible by the number of processes "
                             f"({world_size})")
        self.n, self.batch_size, self.rank, self.world = n, batch_size, rank, world_size
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.keep_partial = keep_partial
        self.epoch = 0

    @property
    def partial(self) -> int:
        """Samples per rank of the incomplete last global batch that are kept (0: none)."""
        if not (self.drop_last and self.keep_partial):
            return 0
        per = (self.n % self.batch_size) // self.world
        return per if per >= 2 else 0

    @property
    def num_batches(self) -> int:
        """Batches per rank and epoch (training); the whole global batches, plus the partial one kept."""
        return self.n // self.batch_size + (1 if self.partial else 0)

    @property
    def left_out(self) -> int:
        """Samples of the epoch no rank sees (training)."""
        if not self.drop_last:
            return 0
        return self.n - (self.n // self.batch_size) * self.batch_size - self.partial * self.world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self):
        order = self._order()
        if not self.drop_last:
            return iter(order[self.rank::self.world].tolist())
        per = self.batch_size // self.world
        full = self.n // self.batch_size
        mine = order[:full * self.batch_size].view(full, self.world, per)[:, self.rank].reshape(-1)
        if self.partial:
            start = full * self.batch_size
            tail = order[start:start + self.partial * self.world].view(self.world, self.partial)[self.rank]
            mine = torch.cat([mine, tail])
        return iter(mine.tolist())

    def __len__(self) -> int:
        if not self.drop_last:
            return len(range(self.rank, self.n, self.world))
        return (self.n // self.batch_size) * (self.batch_size // self.world) + self.partial


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover the global batch on every
    backend (``nn.SyncBatchNorm`` needs GPUs; this also runs on gloo/CPU).

    Two differentiable all-reduces (sum, then the centred sum of squares), so
    forward and backward equal one process's BatchNorm on the whole batch.
    Outside training or a process group it is plain BatchNorm.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected an input with a channel dimension, got shape {list(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        total = all_reduce(torch.cat([x.sum(dims), count]))
        n = total[-1]
        mean = total[:-1] / n
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1), m)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Global-batch statistics: ``nn.SyncBatchNorm`` on GPUs, :class:`GlobalBatchNorm` elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _swap_bn(model)


def _swap_bn(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        new.load_state_dict(module.state_dict())
        return new
    for name, child in module.named_children():
        module.add_module(name, _swap_bn(child))
    return module
