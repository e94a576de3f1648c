"""``get_dataset`` / ``list_datasets``: one entry point for every dataset."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from . import static, transforms
from .dvs import CIFAR10DVS, DVSGesture

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset before reading it."""

    name: str
    kind: str  # "static" or "events"
    num_classes: int
    in_channels: int
    size: int  # default output height = width
    needs_root: bool
    layout: str  # one line: the folder the loader expects
    T: int | None = None  # default number of frames (event datasets)


_INFO = {
    "digits": DatasetInfo("digits", "static", 10, 1, 8, False, "bundled with scikit-learn, no root"),
    "cifar10": DatasetInfo("cifar10", "static", 10, 3, 32, True,
                           "cifar-10-batches-py/ (python version pickles)"),
    "cifar100": DatasetInfo("cifar100", "static", 100, 3, 32, True, "cifar-100-python/ (python version pickles)"),
    "imagenet": DatasetInfo("imagenet", "static", 1000, 3, 224, True, "train/<wnid>/*.JPEG, val/<wnid>/*.JPEG"),
    "imagefolder": DatasetInfo("imagefolder", "static", 0, 3, 224, True,
                               "train/<class>/<image>, val/<class>/<image>"),
    "cifar10dvs": DatasetInfo("cifar10dvs", "events", 10, 2, 48, True,
                              "<class>/cifar10_<class>_<i>.aedat (AEDAT 2.0) or events_np/<class>/*.npz", T=16),
    "dvsgesture": DatasetInfo("dvsgesture", "events", 11, 2, 128, True,
                              "DvsGesture/ (AEDAT 3.1, *_labels.csv, trials_to_*.txt)", T=16),
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`get_dataset`."""
    return sorted(_INFO)


def dataset_info(name: str) -> DatasetInfo:
    """Kind, classes, channels and default size of a dataset, without reading it."""
    if name not in _INFO:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(list_datasets())}")
    return _INFO[name]


def _check_options(name: str, fn: Callable, options: dict) -> None:
    valid = [p for p in inspect.signature(fn).parameters if p not in ("root", "split")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for dataset {name!r}; "
                        f"valid dataset-specific options: {valid or 'none'}")


def _digits(root, split, *, T, split_by, size, augment, cache_dir):
    return static.digits(split, size, transforms.digits_transform(split == "train", augment, size))


def _cifar(name):
    def build(root, split, *, T, split_by, size, augment, cache_dir):
        return static.cifar(name, root, split, transforms.cifar_transform(name, split == "train", augment, size))
    return build


def _imagenet(what):
    def build(root, split, *, T, split_by, size, augment, cache_dir, skip_bad_files=False):
        return static.image_folder(root, split, transforms.imagenet_transform(split == "train", augment, size),
                                   what=what, skip_bad_files=skip_bad_files)
    return build


def _cifar10dvs(root, split, *, T, split_by, size, augment, cache_dir, holdout="last", workers=None,
                skip_bad_files=False):
    return CIFAR10DVS(root, split, T=T, split_by=split_by, size=size, cache_dir=cache_dir, holdout=holdout,
                      workers=workers, skip_bad_files=skip_bad_files,
                      transform=transforms.dvs_transform(split == "train", augment, size))


def _dvsgesture(root, split, *, T, split_by, size, augment, cache_dir, workers=None, skip_bad_files=False):
    return DVSGesture(root, split, T=T, split_by=split_by, size=size, cache_dir=cache_dir, workers=workers,
                      skip_bad_files=skip_bad_files,
                      transform=transforms.dvs_transform(split == "train", augment, size))


_BUILDERS = {
    "digits": _digits, "cifar10": _cifar("cifar10"), "cifar100": _cifar("cifar100"),
    "imagenet": _imagenet("ImageNet"), "imagefolder": _imagenet("image folder"),
    "cifar10dvs": _cifar10dvs, "dvsgesture": _dvsgesture,
}
_COMMON = {"T", "split_by", "size", "augment", "cache_dir"}


def get_dataset(name: str, root=None, split: str = "train", *, T: int | None = None, split_by: str = "number",
                size: int | None = None, augment: bool | None = None, cache_dir=None, **options):
    """A ``torch.utils.data.Dataset`` of ``(x, label)``.

    - ``split``: ``"train"`` or ``"test"`` (ImageNet-style folders: ``val/``).
    - ``T``, ``split_by`` (``"number"`` or ``"time"``): event datasets only;
      ``x`` is then ``[T, 2, size, size]`` (default ``T``: 16).
    - ``size``: output height = width (defaults: digits 8, CIFAR 32,
      ImageNet 224, CIFAR10-DVS 48, DVS128 Gesture 128).
    - ``augment``: the recipe's augmentation; on for train, off for test by
      default. Event frames without it are raw per-pixel event counts.
    - ``cache_dir``: where event frames are cached (default ``root/frames_cache``).
    - ``**options``: dataset-specific, e.g. ``holdout="first"``,
      ``workers=4`` for the event datasets, ``skip_bad_files=True`` for the event
      datasets (bad recordings left out when converting) and image folders (an
      unreadable image dropped from its batch, counted per epoch).

    >>> ds = get_dataset("digits", split="test")
    >>> len(ds), tuple(ds[0][0].shape), ds[0][1]
    (355, (1, 8, 8), 5)
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    builder = _BUILDERS[name]
    _check_options(name, builder, {**options})
    if info.kind == "static":
        if T is not None or split_by != "number":
            raise ValueError(f"T and split_by apply to event datasets only; {name!r} holds static images, "
                             f"which the model repeats over its T steps")
    else:
        T = info.T if T is None else T
        if not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive integer number of frames, got {T!r}")
    if info.needs_root and root is None:
        raise ValueError(f"dataset {name!r} needs root=, the folder holding {info.layout}")
    size = info.size if size is None else size
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer (pixels), got {size!r}")
    augment = split == "train" if augment is None else bool(augment)
    return builder(root, split, T=T, split_by=split_by, size=size, augment=augment, cache_dir=cache_dir,
                   **options)
