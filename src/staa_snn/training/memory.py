"""``train.memory``: keep every activation for backward, or recompute each neuron segment there.

``auto`` measures before training what a step would hold: the bytes autograd keeps for backward
on a forward of two training samples (exact, counted by
:func:`~staa_snn.kernels.spike_storage.saved_tensor_bytes`), scaled to the batch. It checkpoints
when that exceeds the budget: ``train.memory_budget`` GiB, or half of the device's free memory
(CUDA: ``mem_get_info``; CPU: ``MemAvailable``). The probe leaves the net as it found it (its
buffers, the random streams).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..kernels.spike_storage import saved_tensor_bytes
from ..models import SpikingNet, set_backend
from ..models.memory import buffers_kept, segment_count
from ..errors import ConfigError

__all__ = ["activation_bytes", "free_memory", "resolve_memory"]

PROBE_SAMPLES = 2


def free_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` (``None`` where that cannot be read)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def activation_bytes(net: nn.Module, x: torch.Tensor, autocast=contextlib.nullcontext) -> int:
    """Bytes of activations a training forward of ``x`` keeps for backward (the parameters it saves
    do not count: they exist anyway), with ``net`` left as it was: its buffers (BatchNorm's running
    statistics) restored, its mode and the random streams untouched."""
    training = net.training
    cuda = [x.device] if x.device.type == "cuda" else []
    try:
        with buffers_kept([net]), torch.random.fork_rng(devices=cuda), autocast():
            net.train()
            return saved_tensor_bytes(lambda: net(x), exclude=[*net.parameters(), *net.buffers()])
    finally:
        net.train(training)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def resolve_memory(requested: str, model: nn.Module, train_set, batch: int, device: torch.device, *,
                   budget_gib: float | None = None, backend: str = "fused", autocast=contextlib.nullcontext
                   ) -> tuple[str, int | None, str]:
    """``(mode, segments, why)`` for ``train.memory``: ``"none"``, or ``"checkpoint"`` with the number
    of leading neuron segments to recompute (``None``: all), ``batch`` the batch per process.
    Raises :class:`ConfigError` when ``checkpoint`` is asked of a net that cannot run it."""
    if requested == "none":
        return "none", None, "as configured"
    sequential = isinstance(model, SpikingNet) and isinstance(model.features, nn.Sequential)
    if requested == "checkpoint":
        if not sequential:
            what = "its features are not an nn.Sequential" if isinstance(model, SpikingNet) \
                else f"{type(model).__name__} is not a SpikingNet"
            raise ConfigError(f"train.memory=checkpoint recomputes each neuron segment of a SpikingNet's features "
                              f"(an nn.Sequential), but {what}: use train.memory=none")
        return "checkpoint", None, "as configured"
    if not sequential:
        return "none", None, "auto: not a SpikingNet with sequential features, nothing to checkpoint"
    if budget_gib is not None:
        budget, of = budget_gib * 2**30, "train.memory_budget"
    else:
        free = free_memory(device)
        if free is None:
            return "none", None, "auto: the free memory of the device cannot be read (set train.memory_budget)"
        budget, of = free / 2, f"half of the {_gib(free)} free on {device.type}"
    with torch.random.fork_rng(devices=[]):  # a random augmentation of the samples draws nothing
        samples = [torch.as_tensor(train_set[i][0]) for i in range(min(PROBE_SAMPLES, len(train_set)))]
    x = torch.stack(samples).to(device)
    x = x if x.is_floating_point() else x.float()
    count = segment_count(model.features)

    def held(k: int) -> float:  # activations of a step with the first k segments checkpointed
        model.set_memory("checkpoint", k) if k else model.set_memory("none")
        return activation_bytes(model, x, autocast) * batch / len(samples)

    if backend == "compiled":  # the probe must not compile for its batch of two: the same bytes, fused
        set_backend(model, "fused")
    try:
        plain = held(0)
        if plain <= budget:
            return "none", None, f"auto: a training step holds about {_gib(plain)} of activations, within the " \
                                 f"budget of {_gib(budget)} ({of})"
        lo, hi, fits = 1, count, held(count)  # the fewest leading segments that fit: held(k) falls with k
        while lo < hi and fits <= budget:
            mid = (lo + hi) // 2
            if held(mid) <= budget:
                hi = mid
            else:
                lo = mid + 1
        k = hi
        after = held(k)
    finally:
        model.set_memory("none")
        if backend == "compiled":
            set_backend(model, "compiled")
    over = "" if after <= budget else ", still over it"
    return "checkpoint", None if k == count else k, (
        f"auto: a training step would hold about {_gib(plain)} of activations, over the budget of {_gib(budget)} "
        f"({of}); with {k} of {count} neuron segments recomputed, {_gib(after)}{over}")
