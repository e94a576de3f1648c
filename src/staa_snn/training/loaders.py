"""Data loading whose randomness does not depend on the loader: exact resume at any point of an
epoch, and the same run for any number of worker processes.

* The sample order of an epoch is a function of ``(seed, epoch)``
  (:class:`~.distributed.GlobalBatchSampler`), and an epoch can start at any batch.
* Each sample's augmentation draws from a generator seeded by ``(seed, epoch, index)``
  (:class:`SeededSamples`): the sampler hands ``(epoch, index)`` to the dataset, which seeds
  torch's generator for that one sample (restoring it afterwards), wherever it runs.
* The loader gets its own generator, so creating its iterator does not consume the training
  process's random stream (which TSRD draws from, and which checkpoints save).
* Unreadable samples (a dataset returning ``None``, e.g. an image folder with
  ``skip_bad_files``) are dropped from their batch and counted (:func:`collate_skipping`).
"""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler
from torch.utils.data import default_collate

from ..data import CorruptFileError
from .distributed import GlobalBatchSampler

__all__ = ["EpochSampler", "SeededSamples", "collate_skipping", "dataset_attribute", "dataset_classes",
           "dataset_sensor", "sample_seed", "make_loader"]


def sample_seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, epoch, index, ...): stable across processes and runs."""
    digest = hashlib.blake2b(b",".join(str(int(p)).encode() for p in parts), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class SeededSamples(Dataset):
    """``dataset[index]`` drawn with torch's generator seeded by ``(seed, epoch, index)``.

    Indexed by ``(epoch, index)`` pairs (from :class:`EpochSampler`); a plain ``index`` is
    epoch 0. The caller's random state is restored after each sample.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.dataset[index]

    def __getattr__(self, name):  # classes, targets, ... of the wrapped dataset
        # never its protocol (``__getitems__``: the DataLoader would hand a Subset our (epoch, index) keys)
        if name in ("dataset", "seed") or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def dataset_attribute(dataset, name: str):
    """``dataset.<name>``, looked for through the wrappers that hide it (``Subset``,
    :class:`SeededSamples`: ``.dataset``; ``ConcatDataset``: its first part); ``None`` where no
    dataset in the chain has it."""
    for _ in range(16):  # wrappers of wrappers, not a cycle
        value = getattr(dataset, name, None)
        if value is not None:
            return value
        if isinstance(dataset, ConcatDataset) and dataset.datasets:
            dataset = dataset.datasets[0]
        elif isinstance(getattr(dataset, "dataset", None), Dataset):
            dataset = dataset.dataset
        else:
            return None
    return None


def dataset_classes(dataset) -> list[str] | None:
    """The class names (index -> name) a dataset exposes as ``classes`` (through its wrappers)."""
    classes = dataset_attribute(dataset, "classes")
    return None if classes is None else [str(c) for c in classes]


def dataset_sensor(dataset) -> tuple[int, int] | None:
    """The event camera's ``(width, height)`` an event dataset exposes as ``sensor`` (through its
    wrappers); ``None`` for image data."""
    sensor = dataset_attribute(dataset, "sensor")
    return None if sensor is None else (int(sensor[0]), int(sensor[1]))


class EpochSampler(Sampler):
    """The indices of :class:`GlobalBatchSampler` as ``(epoch, index)`` pairs, starting at global
    batch ``start`` of the epoch (to resume in the middle of one)."""

    def __init__(self, batches: GlobalBatchSampler) -> None:
        self.batches = batches
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start
        self.batches.set_epoch(epoch)

    def __iter__(self):
        skip = self.start * (self.batches.batch_size // self.batches.world)
        for i, index in enumerate(self.batches):
            if i >= skip:
                yield self.epoch, index

    def __len__(self) -> int:
        return len(self.batches) - self.start * (self.batches.batch_size // self.batches.world)


def collate_skipping(batch: list):
    """``(inputs, labels, skipped)``: the samples that could be read, and how many could not
    (``None`` from the dataset)."""
    good = [b for b in batch if b is not None]
    if not good:
        raise CorruptFileError(f"none of the {len(batch)} samples of a batch could be read "
                               "(every file unreadable; see the warnings above)")
    x, y = default_collate(good)
    return x, y, len(batch) - len(good)


def make_loader(dataset: Dataset, sampler: Sampler, batch_size: int, *, workers: int, pin_memory: bool) -> DataLoader:
    """A loader over ``sampler`` with its own generator (the process's random stream untouched)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=workers > 0, collate_fn=collate_skipping,
                      generator=torch.Generator().manual_seed(0))
