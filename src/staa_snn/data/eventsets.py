"""N-MNIST, folders of recordings and tonic's datasets, as cached frames (docs/data.md).

All three read their recordings with :func:`~.recordings.read_events` (or through tonic) and go
through the same integration, cache and augmentation as CIFAR10-DVS (:class:`~.dvs.EventFrames`).
:func:`recording_to_frames` turns one recording into a net's input the way these datasets do, for
inference.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np

from ..errors import CorruptFileError, DataError
from .dvs import EventFrames, Source
from .events import events_to_frames
from .recordings import NMNIST_SENSOR, SUFFIXES, read_events
from .static import image_folder_splits, stratified_holdout

NMNIST_URL = "https://www.garrickorchard.com/datasets/n-mnist"
RECORDING_SUFFIXES = tuple(sorted(SUFFIXES) + [".aedat"])


def _check_holdout(val_per_class, val_seed) -> None:
    if val_per_class is not None and (isinstance(val_per_class, bool) or not isinstance(val_per_class, int)
                                      or val_per_class < 1):
        raise DataError(f"val_per_class must be a positive number of recordings per class, got {val_per_class!r}")
    if isinstance(val_seed, bool) or not isinstance(val_seed, int):
        raise DataError(f"val_seed must be an integer, got {val_seed!r}")


class NMNIST(EventFrames):
    """N-MNIST (Orchard et al., 2015): 34x34 saccade recordings of MNIST digits, 60,000 / 10,000.

    ``root`` holds the release's ``Train/<digit>/*.bin`` and ``Test/<digit>/*.bin`` (or is tonic's
    ``NMNIST/`` parent). ``val_per_class=N`` holds ``N`` recordings of each digit out of ``Train/``
    (seeded by ``val_seed``, the same for every training seed): ``split="test"`` is then that
    validation split, ``Test/`` is not read, and ``Test/`` may be absent.
    """

    name = "nmnist"
    sensor = NMNIST_SENSOR
    classes = [str(d) for d in range(10)]

    def __init__(self, root, split="train", *, val_per_class: int | None = None, val_seed: int = 0, **kwargs):
        _check_holdout(val_per_class, val_seed)
        self.val_per_class, self.val_seed = val_per_class, val_seed
        super().__init__(root, split, **kwargs)

    def _folder(self, which: str) -> Path:
        for base in (self.root, self.root / "NMNIST"):
            for name in (which, which.lower()):
                if (base / name).is_dir():
                    return base / name
        return self.root / which

    def scan(self):
        train = self._folder("Train")
        if not train.is_dir() and not self._folder("Test").is_dir():
            raise FileNotFoundError(f"N-MNIST not found at {self.root}: expected Train/<digit>/*.bin and "
                                    f"Test/<digit>/*.bin (the release, {NMNIST_URL})")
        if self.val_per_class is not None:
            folder = train
        else:
            folder = train if self.split == "train" else self._folder("Test")
            if not folder.is_dir():
                raise FileNotFoundError(f"N-MNIST at {self.root} has no {folder.name}/: expected "
                                        f"{folder.name}/<digit>/*.bin" + (
                                            ", or hold a validation split out of Train/ with "
                                            "data.options.val_per_class=N" if self.split == "test" else ""))
        files, targets = [], []
        for digit in range(10):
            found = sorted((folder / str(digit)).glob("*.bin")) if (folder / str(digit)).is_dir() else []
            if not found:
                raise FileNotFoundError(f"N-MNIST: no {folder / str(digit)}/*.bin recordings (expected one "
                                        f"folder per digit 0-9 in {folder})")
            files += found
            targets += [digit] * len(found)
        keep = range(len(files))
        if self.val_per_class is not None:
            keep = stratified_holdout(targets, self.classes, self.split, self.val_per_class, self.val_seed,
                                      "N-MNIST", "recordings")
        sources = [Source(str(files[i]), "events", (self.out_path(f"{folder.name}_{targets[i]}_{files[i].stem}"),))
                   for i in keep]
        return sources, [[targets[i]] for i in keep]

    def extra_repr(self) -> str:
        held = f"val_per_class={self.val_per_class}, " if self.val_per_class is not None else ""
        return held + super().extra_repr()


def _class_folders(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _recordings(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in RECORDING_SUFFIXES)


class EventFolder(EventFrames):
    """The image folder for recordings: ``root/train/<class>/<recording>`` in any format
    :func:`~.recordings.read_events` reads (known by suffix: .aedat, .aedat4, .dat, .raw, .bin,
    .npz, .npy; other files are ignored), and ``root/val/<class>/`` (or ``test/``), or a seeded
    class-stratified validation split of ``val_per_class`` recordings per class held out of
    ``train/`` (as image folders). Class indices and names are the sorted ``train/`` folders.

    ``sensor_size=(width, height)``: the sensor, for recordings whose files state none (NumPy);
    by default the first training recording's header. Every recording must be of that sensor.
    """

    name = "eventfolder"

    def __init__(self, root, split="train", *, val_per_class: int | None = None, val_seed: int = 0,
                 sensor_size=None, **kwargs):
        _check_holdout(val_per_class, val_seed)
        self.val_per_class, self.val_seed = val_per_class, val_seed
        self.root = Path(root)
        folders = self._splits()
        train = folders["train"]
        self.classes = _class_folders(train)
        empty = [c for c in self.classes if not _recordings(train / c)]
        if empty:
            raise FileNotFoundError(f"event folder: class folder(s) with no recordings in {train}: "
                                    f"{', '.join(empty)} (recordings end in {', '.join(RECORDING_SUFFIXES)})")
        if len(self.classes) < 2:
            found = f"one class folder ({self.classes[0]})" if self.classes else "no class folders"
            raise DataError(f"event folder at {train} has {found}: a classifier needs at least 2 classes, "
                             f"expected {train}/<class>/<recording> for each class")
        self.sensor = self._sensor(sensor_size, _recordings(train / self.classes[0])[0])
        super().__init__(root, split, **kwargs)

    def _splits(self) -> dict[str, Path]:
        return image_folder_splits(self.root, what="event folder", val_per_class=self.val_per_class, item="recording")

    @staticmethod
    def _sensor(given, first: Path) -> tuple[int, int]:
        if given is not None:
            if (not isinstance(given, (list, tuple)) or len(given) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in given)):
                raise DataError(f"sensor_size must be [width, height] in pixels, got {given!r}")
            return int(given[0]), int(given[1])
        found = read_events(first).sensor_size
        if found is None:
            raise DataError(f"{first}: its format states no sensor size; set it with "
                             f"data.options.sensor_size=[width,height] (sensor_size=(width, height) in Python)")
        return tuple(found)

    def scan(self):
        folders = self._splits()
        folder = folders[self.split]
        if folder != folders["train"]:
            unknown = sorted(set(_class_folders(folder)) - set(self.classes))
            if unknown:
                raise DataError(f"event folder: class folder(s) {', '.join(unknown)} in {folder} are not in "
                                 f"{folders['train']} (classes: {', '.join(self.classes)})")
        files, targets = [], []
        for label, cls in enumerate(self.classes):
            found = _recordings(folder / cls) if (folder / cls).is_dir() else []
            files += found
            targets += [label] * len(found)
        if not files:
            raise FileNotFoundError(f"event folder: no recordings in {folder}/<class>/")
        keep = range(len(files))
        if self.val_per_class is not None:
            keep = stratified_holdout(targets, self.classes, self.split, self.val_per_class, self.val_seed,
                                      "event folder", "recordings")
        sources = [Source(str(files[i]), "events",
                          (self.out_path(f"{folder.name}_{self.classes[targets[i]]}_{files[i].name}"),)) for i in keep]
        return sources, [[targets[i]] for i in keep]

    def extra_repr(self) -> str:
        return f"classes={len(self.classes)}, sensor={self.sensor[0]}x{self.sensor[1]}, " + super().extra_repr()


# -- tonic -----------------------------------------------------------------------------------------------

def tonic_class(name: str):
    """The ``tonic.datasets`` class called ``name`` (an event-camera dataset), checked."""
    try:
        import tonic.datasets
    except ImportError:
        raise DataError(f"data.name=tonic:{name} needs the tonic package: pip install 'staa-snn[tonic]'") from None
    cls = getattr(tonic.datasets, name, None)
    sensor = getattr(cls, "sensor_size", None)
    if not inspect.isclass(cls) or sensor is None or len(sensor) != 3 or sensor[2] != 2:
        cameras = sorted(n for n, c in vars(tonic.datasets).items()
                         if inspect.isclass(c) and len(getattr(c, "sensor_size", None) or ()) == 3
                         and c.sensor_size[2] == 2)
        raise DataError(f"tonic has no event-camera dataset {name!r} (a fixed width x height x 2 sensor); "
                         f"valid names: {', '.join(cameras)}")
    return cls


def tonic_classes(cls) -> list[str] | None:
    found = getattr(cls, "classes", None)
    if isinstance(found, dict):
        return [str(k) for k, _ in sorted(found.items(), key=lambda kv: kv[1])]
    if isinstance(found, (list, tuple)) and found:
        return [str(c) for c in found]
    return None


class TonicEvents(EventFrames):
    """Any tonic event-camera dataset already on disk under ``root`` (as ``tonic.datasets.<Name>(
    save_to=root)`` stores it: ``root/<Name>/...``), never downloaded: a dataset tonic cannot find
    there is an error, not a download. Samples are read through tonic in this process and cached
    as frames. Datasets with a ``train`` flag give its two splits; others need ``val_per_class``.
    """

    def __init__(self, root, split="train", *, dataset: str, val_per_class: int | None = None, val_seed: int = 0,
                 **kwargs):
        _check_holdout(val_per_class, val_seed)
        cls = tonic_class(dataset)
        self.dataset, self.val_per_class, self.val_seed = dataset, val_per_class, val_seed
        self.sensor = (int(cls.sensor_size[0]), int(cls.sensor_size[1]))
        has_train = "train" in inspect.signature(cls.__init__).parameters
        if not has_train and val_per_class is None:
            raise DataError(f"tonic's {dataset} has no train/test split: hold a validation split out of it with "
                             f"data.options.val_per_class=N")
        self.tonic_split = "train" if val_per_class is not None or split == "train" else "test"
        refusing = type(dataset, (cls,), {"download": _no_download(Path(root), dataset),
                                          "_check_exists": lambda self: os.path.isdir(self.location_on_system)})
        kw = {"train": self.tonic_split == "train"} if has_train else {}
        if not (Path(root) / dataset).is_dir():
            _no_download(Path(root), dataset)(None)
        self.tonic = refusing(save_to=os.fspath(root), **kw)
        if not len(self.tonic):
            raise FileNotFoundError(f"tonic's {dataset} under {Path(root) / dataset} has no {self.tonic_split} "
                                    f"samples: unpack the release there as tonic does (never downloaded here)"
                                    + (", or hold a validation split out of the training samples with "
                                       "data.options.val_per_class=N" if self.tonic_split == "test" else ""))
        self.name = f"tonic-{dataset}-{self.tonic_split}{len(self.tonic)}"
        targets = getattr(self.tonic, "targets", None)
        if targets is None or len(targets) != len(self.tonic):
            targets = [int(self.tonic[i][1]) for i in range(len(self.tonic))]
        self.all_targets = [int(t) for t in targets]
        self.classes = tonic_classes(cls) or [str(i) for i in range(max(self.all_targets) + 1)]
        super().__init__(root, split, **kwargs)

    def scan(self):
        keep = range(len(self.all_targets))
        if self.val_per_class is not None:
            keep = stratified_holdout(self.all_targets, self.classes, self.split, self.val_per_class,
                                      self.val_seed, f"tonic's {self.dataset}", "samples")
        sources = [Source(f"tonic:{self.dataset}:{self.tonic_split}:{i}", "tonic",
                          (self.out_path(f"{self.tonic_split}_{i:06d}"),)) for i in keep]
        return sources, [[self.all_targets[i]] for i in keep]

    def read_in_process(self):
        return self._read

    def _read(self, source: Source) -> dict[str, np.ndarray]:
        index = int(source.path.rsplit(":", 1)[1])
        events = self.tonic[index][0]
        names = getattr(getattr(events, "dtype", None), "names", None) or ()
        if not {"x", "y", "t", "p"} <= set(names):
            raise CorruptFileError(f"tonic's {self.dataset} sample {index}: events with fields {list(names)}, "
                                   f"expected x, y, t, p (an event camera's)")
        p = np.asarray(events["p"]).astype(np.int64)
        return {"t": np.asarray(events["t"]).astype(np.int64), "x": np.asarray(events["x"]).astype(np.int64),
                "y": np.asarray(events["y"]).astype(np.int64), "p": (p > 0).astype(np.int64)}

    def extra_repr(self) -> str:
        return f"tonic={self.dataset}, " + super().extra_repr()


def _no_download(root: Path, name: str):
    def refuse(self):
        raise FileNotFoundError(f"tonic's {name} not found under {root / name}: this project never downloads; "
                                f"unpack the release there as tonic.datasets.{name}(save_to={str(root)!r}) would")
    return refuse


# -- inference -------------------------------------------------------------------------------------------

def read_for_net(path: str | os.PathLike, *, size: int, sensor_size: tuple[int, int] | None = None,
                 sensor_from: str | None = None, format: str = "auto") -> tuple[np.ndarray, tuple[int, int]]:
    """``(events, sensor)`` of one recording to be fed to a net whose frames are ``size x size``,
    checked: the sensor from the file's header, else ``sensor_size``, for a file that states none
    (``sensor_from``: where that size came from, in words for the messages, e.g. "the camera the
    net was trained on"). A sensor whose shorter side is below ``size`` (frames are never
    up-sampled), events outside the sensor and a recording without events are refused in one
    line naming the file, both sizes and where the sensor's came from (the file, or the size
    taken for a file stating none, with the least sensor its events need)."""
    events, found = read_events(path, format=format)
    if found is None and sensor_size is None:
        raise DataError(f"{path}: its format states no sensor size, and neither the net nor the caller gives one: "
                        f"give the camera's (--sensor WIDTHxHEIGHT; sensor_size=(width, height) in Python)")
    sensor = tuple(found) if found is not None else (int(sensor_size[0]), int(sensor_size[1]))
    if found is not None:
        said = f"its file states a {sensor[0]}x{sensor[1]} sensor"
    else:
        said = (f"its format states no sensor size, so it was taken as {sensor[0]}x{sensor[1]} "
                f"({sensor_from or 'the sensor_size given'})")
    if size > min(sensor):
        raise DataError(f"{path}: {said}, too small for the net's {size}x{size} input: frames are never up-sampled")
    if not len(events):
        raise CorruptFileError(f"{path}: the recording holds no events")
    x, y = int(events["x"].max()), int(events["y"].max())
    if x >= sensor[0] or y >= sensor[1]:
        if found is not None:  # the file contradicts itself
            raise CorruptFileError(f"{path}: {said}, but its events reach x={x}, y={y}: the file is damaged or its "
                                   f"header wrong")
        raise DataError(f"{path}: {said}, but its events reach x={x}, y={y}: give the recording's camera with "
                        f"--sensor WIDTHxHEIGHT (at least {max(x + 1, size)}x{max(y + 1, size)}; "
                        f"sensor_size=(width, height) in Python)")
    return events, sensor


def recording_to_frames(path: str | os.PathLike, *, T: int, split_by: str = "number", size: int,
                        sensor_size: tuple[int, int] | None = None, sensor_from: str | None = None,
                        format: str = "auto") -> np.ndarray:
    """One recording as a net's input, ``[T, 2, size, size]`` float32 event counts, integrated as
    the event datasets integrate their training samples (no augmentation).

    A recording from any sensor is binned to ``size`` the same way (the datasets bin any sensor to
    ``size x size``), as long as its shorter side is at least ``size``; otherwise it is refused
    naming both sizes. A recording whose file states no sensor (NumPy, a .dat without geometry)
    is taken to be of ``sensor_size`` (e.g. the camera the net was trained on; ``sensor_from``
    says where it came from, for the messages: :func:`read_for_net` checks it).
    """
    events, sensor = read_for_net(path, size=size, sensor_size=sensor_size, sensor_from=sensor_from, format=format)
    frames = events_to_frames(events["t"], events["x"], events["y"], events["p"], T, split_by=split_by,
                              sensor=sensor, size=size)
    return frames.astype(np.float32)


__all__ = ["EventFolder", "NMNIST", "TonicEvents", "read_for_net", "recording_to_frames", "tonic_class"]
