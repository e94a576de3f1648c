"""``get_dataset`` / ``list_datasets``: one entry point for every dataset."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from . import static, transforms
from .dvs import CIFAR10DVS, DVSGesture
from ..errors import DataError
from .eventsets import NMNIST, EventFolder, TonicEvents, tonic_class, tonic_classes

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
    "nmnist": DatasetInfo("nmnist", "events", 10, 2, 34, True,
                          "Train/<digit>/*.bin and Test/<digit>/*.bin (the N-MNIST release)", T=8),
    "eventfolder": DatasetInfo("eventfolder", "events", 0, 2, 64, True,
                               "train/<class>/<recording>, val/<class>/<recording> (any event format)", T=16),
}
TONIC = "tonic:"  # data.name=tonic:<Name>: tonic.datasets.<Name> on disk under root


def list_datasets() -> list[str]:
    """Names accepted by :func:`get_dataset` (besides ``tonic:<Name>``, any of tonic's event-camera
    datasets already on disk)."""
    return sorted(_INFO)


def dataset_info(name: str) -> DatasetInfo:
    """Kind, classes, channels and default size of a dataset, without reading it."""
    if isinstance(name, str) and name.startswith(TONIC):
        cls = tonic_class(name[len(TONIC):])
        width, height = cls.sensor_size[:2]
        return DatasetInfo(name, "events", len(tonic_classes(cls) or ()), 2, int(min(width, height)), True,
                           f"{name[len(TONIC):]}/ as tonic stores it (never downloaded)", T=16)
    if name not in _INFO:
        raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(list_datasets())}, or "
                         f"tonic:<Name> for a tonic dataset on disk")
    return _INFO[name]


def check_dataset_options(name: str, options: dict) -> None:
    """Reject dataset-specific options (``data.options``) that ``name`` does not take, listing those it does."""
    valid = [p for p in inspect.signature(_builder(name)).parameters
             if p not in ("root", "split", *_COMMON)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise DataError(f"unknown option(s) {unknown} for dataset {name!r}; "
                         f"valid dataset-specific options: {valid or 'none'}")


def _digits(root, split, *, T, split_by, size, augment, cache_dir, image):
    return static.digits(split, size, transforms.digits_transform(split == "train", augment, size))


def _cifar(name):
    def build(root, split, *, T, split_by, size, augment, cache_dir, image):
        return static.cifar(name, root, split, transforms.cifar_transform(name, split == "train", augment, size,
                                                                          **image.heavy, **image.stats))
    return build


def _image_folder(what):
    def build(root, split, *, T, split_by, size, augment, cache_dir, image, skip_bad_files=False,
              val_per_class=None, val_seed=0):
        train = split == "train"
        if image.recipe == "cifar":
            transform = transforms.cifar_transform(None, train, augment, size, **image.heavy, **image.stats,
                                                   from_pil=True)
        else:
            transform = transforms.imagenet_transform(train, augment, size, **image.stats)
        mean = transforms.stats(None, image.mean, image.std)[0]  # transparent pixels read as the mean colour
        return static.image_folder(root, split, transform, what=what, skip_bad_files=skip_bad_files,
                                   val_per_class=val_per_class, val_seed=val_seed, background=mean)
    return build


_WHAT = {"imagenet": "ImageNet", "imagefolder": "image folder"}  # in messages


def normalization(name: str, mean=None, std=None) -> dict | None:
    """``{"mean": [...], "std": [...]}`` the inputs of ``name`` are normalised with (the given
    ones, or the dataset's defaults), or ``None`` where they are not normalised (digits: value /
    16; event frames: raw counts)."""
    kind = dataset_info(name).kind
    if kind == "events" or name == "digits":
        return None
    mean, std = transforms.stats(name, mean, std)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}


@dataclass(frozen=True)
class ImageRecipe:
    """The augmentation recipe of a static-image dataset, resolved (see :func:`get_dataset`)."""

    recipe: str  # "cifar" | "imagenet" | "digits" | "none" (events)
    image_size: int | None = None  # an image folder's first image's longer side, when read
    autoaugment: bool | None = None
    cutout: int | None = None
    mean: tuple | None = None
    std: tuple | None = None

    @property
    def heavy(self) -> dict:
        return {"autoaugment": self.autoaugment, "cutout": self.cutout}

    @property
    def stats(self) -> dict:
        return {"mean": self.mean, "std": self.std}


def resolve_recipe(name: str, root=None, *, recipe: str = "auto", autoaugment: bool | None = None,
                   cutout: int | None = None, mean=None, std=None, val_per_class=None,
                   split: str = "train") -> ImageRecipe:
    """The recipe a dataset gets, checked: ``"auto"`` is CIFAR's for CIFAR and for image folders
    whose first image is at most :data:`~.transforms.SMALL_IMAGE` pixels a side, ImageNet's for
    other folders; digits and event data have their own. ``autoaugment`` and ``cutout`` apply to
    the CIFAR recipe only, ``mean`` and ``std`` to CIFAR and image folders."""
    if recipe not in transforms.RECIPES:
        raise DataError(f"unknown recipe {recipe!r}; valid recipes: {', '.join(transforms.RECIPES)}")
    image_size = None
    native = {"digits": "digits", "cifar10": "cifar", "cifar100": "cifar"}.get(name)
    if dataset_info(name).kind == "events":
        native = "none"
    if native is not None:
        if recipe not in ("auto", native):
            raise DataError(f"recipe={recipe!r} applies to image folders (imagefolder, imagenet); "
                             f"{name!r} has its own recipe ({native})")
        recipe = native
    elif root is not None:  # an image folder: its first image's size
        folders = static.image_folder_splits(root, what=_WHAT[name], val_per_class=val_per_class, split=split)
        found = static.first_image_size(folders["train"] or folders["test"])
        image_size = max(found) if found is not None else None
        if recipe == "auto" and name == "imagenet":
            recipe = "imagenet"
        elif recipe == "auto":
            recipe = "cifar" if image_size is not None and image_size <= transforms.SMALL_IMAGE else "imagenet"
    if recipe not in ("cifar", "auto"):  # "auto" here: an image folder not read yet (a config's check)
        given = [k for k, v in (("autoaugment", autoaugment), ("cutout", cutout)) if v is not None]
        if given:
            raise DataError(f"{' and '.join(given)} apply to the CIFAR recipe only; {name!r} gets the {recipe} "
                             f"recipe here (set recipe='cifar' for an image folder)")
    if cutout is not None and (isinstance(cutout, bool) or not isinstance(cutout, int) or cutout < 0):
        raise DataError(f"cutout must be a length in pixels (0: off), got {cutout!r}")
    for key, value in (("mean", mean), ("std", std)):
        if value is None:
            continue
        if recipe not in ("cifar", "imagenet", "auto"):
            raise DataError(f"{key} applies to CIFAR and image folders; {name!r} is not normalised")
        channels = dataset_info(name).in_channels
        if (not isinstance(value, (list, tuple)) or len(value) != channels
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise DataError(f"{key} must be {channels} numbers, one per channel, got {value!r}")
        if key == "std" and not all(v > 0 for v in value):
            raise DataError(f"std must be positive, got {value!r}")
    return ImageRecipe(recipe, image_size, autoaugment, cutout, tuple(mean) if mean else None, tuple(std) if std else None)


def _cifar10dvs(root, split, *, T, split_by, size, augment, cache_dir, image, holdout="last", workers=None,
                skip_bad_files=False):
    return CIFAR10DVS(root, split, T=T, split_by=split_by, size=size, cache_dir=cache_dir, holdout=holdout,
                      workers=workers, skip_bad_files=skip_bad_files,
                      transform=transforms.dvs_transform(split == "train", augment, size))


def _dvsgesture(root, split, *, T, split_by, size, augment, cache_dir, image, workers=None, skip_bad_files=False):
    return DVSGesture(root, split, T=T, split_by=split_by, size=size, cache_dir=cache_dir, workers=workers,
                      skip_bad_files=skip_bad_files,
                      transform=transforms.dvs_transform(split == "train", augment, size))


def _nmnist(root, split, *, T, split_by, size, augment, cache_dir, image, val_per_class=None, val_seed=0,
            workers=None, skip_bad_files=False):
    return NMNIST(root, split, T=T, split_by=split_by, size=size, cache_dir=cache_dir, val_per_class=val_per_class,
                  val_seed=val_seed, workers=workers, skip_bad_files=skip_bad_files,
                  transform=transforms.dvs_transform(split == "train", augment, size, flip=False))


def _eventfolder(root, split, *, T, split_by, size, augment, cache_dir, image, val_per_class=None, val_seed=0,
                 sensor_size=None, workers=None, skip_bad_files=False):
    return EventFolder(root, split, T=T, split_by=split_by, size=size, cache_dir=cache_dir,
                       val_per_class=val_per_class, val_seed=val_seed, sensor_size=sensor_size, workers=workers,
                       skip_bad_files=skip_bad_files, transform=transforms.dvs_transform(split == "train", augment, size))


def _tonic(name):
    def build(root, split, *, T, split_by, size, augment, cache_dir, image, val_per_class=None, val_seed=0,
              skip_bad_files=False):
        return TonicEvents(root, split, dataset=name, T=T, split_by=split_by, size=size, cache_dir=cache_dir,
                           val_per_class=val_per_class, val_seed=val_seed, skip_bad_files=skip_bad_files,
                           transform=transforms.dvs_transform(split == "train", augment, size))
    return build


_BUILDERS = {
    "digits": _digits, "cifar10": _cifar("cifar10"), "cifar100": _cifar("cifar100"),
    "imagenet": _image_folder(_WHAT["imagenet"]), "imagefolder": _image_folder(_WHAT["imagefolder"]),
    "cifar10dvs": _cifar10dvs, "dvsgesture": _dvsgesture, "nmnist": _nmnist, "eventfolder": _eventfolder,
}


def _builder(name: str):
    info = dataset_info(name)
    return _tonic(name[len(TONIC):]) if name.startswith(TONIC) else _BUILDERS[info.name]
_COMMON = {"T", "split_by", "size", "augment", "cache_dir", "image"}


def get_dataset(name: str, root=None, split: str = "train", *, T: int | None = None, split_by: str = "number",
                size: int | None = None, augment: bool | None = None, cache_dir=None, recipe: str = "auto",
                autoaugment: bool | None = None, cutout: int | None = None, mean=None, std=None, **options):
    """A ``torch.utils.data.Dataset`` of ``(x, label)``.

    - ``split``: ``"train"`` or ``"test"`` (ImageNet-style folders: ``val/``).
    - ``T``, ``split_by`` (``"number"`` or ``"time"``): event datasets only;
      ``x`` is then ``[T, 2, size, size]`` (default ``T``: 16).
    - ``size``: output height = width (defaults: digits 8, CIFAR 32,
      ImageNet 224, CIFAR10-DVS 48, DVS128 Gesture 128).
    - ``augment``: the recipe's augmentation; on for train, off for test by
      default. Event frames without it are raw per-pixel event counts.
    - ``cache_dir``: where event frames are cached (default ``root/frames_cache``).
    - ``recipe``: image folders' augmentation, ``"auto"`` (CIFAR's for images of at
      most 64 px a side, else ImageNet's), ``"cifar"`` (random crop with padding,
      flip, AutoAugment, Cutout) or ``"imagenet"`` (random-resized crop, flip).
    - ``autoaugment`` (default on), ``cutout`` (length, default ``size // 2``, 0:
      off): the CIFAR recipe's heavy augmentations. ``mean``, ``std``: the
      normalisation (defaults: CIFAR's statistics, ImageNet's for image folders).
    - ``**options``: dataset-specific, e.g. ``holdout="first"``,
      ``workers=4`` for the event datasets, ``skip_bad_files=True`` for the event
      datasets (bad recordings left out when converting) and image folders (an
      unreadable image dropped from its batch, counted per epoch),
      ``val_per_class=500`` (and ``val_seed``) for an image folder with only
      ``train/``: a class-stratified validation split held out of it (also for ``nmnist``,
      ``eventfolder`` and ``tonic:<Name>``); ``sensor_size=(width, height)`` for an event folder of
      NumPy recordings (files that state no sensor).
    - Event datasets: ``nmnist``, ``eventfolder`` (any format :func:`~.recordings.read_events`
      reads), ``tonic:<Name>`` (a tonic dataset on disk, never downloaded), ``cifar10dvs``,
      ``dvsgesture``; each has ``classes`` (index -> name).

    >>> ds = get_dataset("digits", split="test")
    >>> len(ds), tuple(ds[0][0].shape), ds[0][1]
    (355, (1, 8, 8), 5)
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    builder = _builder(name)
    check_dataset_options(name, options)
    if info.kind == "static":
        if T is not None or split_by != "number":
            raise DataError(f"T and split_by apply to event datasets only; {name!r} holds static images, "
                             f"which the model repeats over its T steps")
    else:
        T = info.T if T is None else T
        if not isinstance(T, int) or T < 1:
            raise DataError(f"T must be a positive integer number of frames, got {T!r}")
    if info.needs_root and root is None:
        raise DataError(f"dataset {name!r} needs root=, the folder holding {info.layout}")
    image = resolve_recipe(name, root, recipe=recipe, autoaugment=autoaugment, cutout=cutout, mean=mean, std=std,
                           val_per_class=options.get("val_per_class"), split=split)
    if size is None:  # small images in a folder keep their size (the CIFAR recipe)
        size = (image.image_size or 32) if image.recipe == "cifar" and name not in ("cifar10", "cifar100") \
            else info.size
    if not isinstance(size, int) or size < 1:
        raise DataError(f"size must be a positive integer (pixels), got {size!r}")
    augment = split == "train" if augment is None else bool(augment)
    return builder(root, split, T=T, split_by=split_by, size=size, augment=augment, cache_dir=cache_dir,
                   image=image, **options)
