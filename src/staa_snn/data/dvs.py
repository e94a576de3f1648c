"""Event-camera datasets as cached frames: CIFAR10-DVS and DVS128 Gesture here, N-MNIST, event
folders and tonic's datasets in :mod:`.eventsets`, all on :class:`EventFrames`.

Each sample's events are read once (vectorised, :mod:`.aedat`), integrated
into ``[T, 2, size, size]`` count frames (:mod:`.events`) and saved as one
``.npy`` file in a cache folder named after every option that changes the
frames (``T``, ``split_by``, ``size``, the format version). Files are written
to a temporary name and renamed, so an interrupted conversion leaves only
whole files, and the next construction converts just what is missing.
Conversion runs in a process pool with a progress bar.
"""

from __future__ import annotations

import contextvars
import csv
import io
import json
import os
import re
import warnings
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .._io import atomic_path, first_line, write_text_atomic
from .aedat import read_aedat2, read_aedat3
from ..errors import CorruptFileError, DataError
from .events import SPLIT_MODES, events_to_frames
from .recordings import detect_format, read_events, read_npy

CACHE_VERSION = 1
SENSOR = 128

CIFAR10DVS_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                      "dog", "frog", "horse", "ship", "truck")
CIFAR10DVS_URL = "https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671"
DVSGESTURE_URL = "https://research.ibm.com/interactive/dvsgesture/"
DVSGESTURE_CLASSES = 11
# the gestures of labels 1..11, as the release's README names them
DVSGESTURE_NAMES = ("hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
                    "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise", "arm_roll",
                    "air_drums", "air_guitar", "other_gestures")


def read_npz(path: str) -> dict[str, np.ndarray]:
    """SpikingJelly's converted events (keys t, x, y, p; already image coordinates, 128x128):
    every array's header is checked against the bytes the archive holds before it is read."""
    try:
        with zipfile.ZipFile(path) as z:
            events = {}
            for key in ("t", "x", "y", "p"):
                if f"{key}.npy" not in z.namelist():
                    raise CorruptFileError(f"{path}: no array {key!r} (expected keys t, x, y, p)")
                info = z.getinfo(f"{key}.npy")
                # a compressed member may expand, but never past 64x the archive (events compress ~3-5x)
                with z.open(info) as f:
                    events[key] = read_npy(f, f"{path}:{key}.npy", info.file_size,
                                           max_bytes=64 * max(os.path.getsize(path), 1 << 16))
    except CorruptFileError:
        raise
    except Exception as e:  # zipfile, zlib and numpy fail in many ways on a damaged archive
        raise CorruptFileError(f"{path}: not a readable events .npz with keys t, x, y, p "
                               f"({type(e).__name__}: {first_line(e)})") from None
    n = len(events["t"])
    if any(v.ndim != 1 or len(v) != n for v in events.values()):
        raise CorruptFileError(f"{path}: t, x, y, p must be 1-D arrays of one length, got shapes "
                               f"{[list(v.shape) for v in events.values()]}")
    events = {k: v.astype(np.int64) for k, v in events.items()}
    x, y, p = events["x"], events["y"], events["p"]
    if n and (x.min() < 0 or x.max() >= SENSOR or y.min() < 0 or y.max() >= SENSOR or p.min() < 0 or p.max() > 1):
        raise CorruptFileError(f"{path}: events outside the {SENSOR}x{SENSOR} sensor or polarities other than 0/1")
    return events


def read_recording(path: str, sensor: tuple[int, int]) -> dict[str, np.ndarray]:
    """Any recording :func:`~.recordings.read_events` reads, as arrays t, x, y, p, checked against
    the dataset's ``sensor`` (width, height): a file recorded on another sensor, or with events
    outside it, is refused naming both sizes."""
    events, found = read_events(path)
    # a header's sensor is the camera's; a header-less .bin's is read off its events (one damaged event
    # makes it the ATIS's), so there where its events lie is the error
    if found is not None and tuple(found) != tuple(sensor) and detect_format(path) != "nmnist":
        raise CorruptFileError(f"{path}: recorded on a {found[0]}x{found[1]} sensor (its header), but this "
                               f"dataset's recordings are {sensor[0]}x{sensor[1]}: keep one camera per dataset, "
                               f"or convert the file")
    if len(events) and (int(events["x"].max()) >= sensor[0] or int(events["y"].max()) >= sensor[1]):
        raise CorruptFileError(f"{path}: events up to x={int(events['x'].max())}, y={int(events['y'].max())} lie "
                               f"outside this dataset's {sensor[0]}x{sensor[1]} sensor: another camera's "
                               f"recording (keep one camera per dataset), or a damaged file")
    return {k: events[k] for k in "txyp"}


READERS = {"aedat2": read_aedat2, "aedat3": read_aedat3, "npz": read_npz, "events": read_recording}


@dataclass(frozen=True)
class Source:
    """One event file and the samples cut from it: ``windows`` is ``None``
    (the whole recording is one sample) or ``[(start_us, end_us), ...]``."""

    path: str
    reader: str
    outputs: tuple[str, ...]
    windows: tuple[tuple[int, int], ...] | None = None


def _compact(frames: np.ndarray) -> np.ndarray:
    top = int(frames.max()) if frames.size else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return frames.astype(dtype)
    return frames


def convert_source(source: Source, T: int, split_by: str, size: int, sensor: tuple[int, int] = (SENSOR, SENSOR),
                   read=None) -> None:
    """Read one file (``read(source)`` when given, else its reader), integrate each of its samples,
    save them atomically."""
    if read is not None:
        ev = read(source)
    elif source.reader == "events":
        ev = read_recording(source.path, sensor)
    else:
        ev = READERS[source.reader](source.path)
    if source.windows is None:
        pieces = [ev]
    else:
        pieces = []
        for start, end in source.windows:
            keep = (ev["t"] >= start) & (ev["t"] < end)
            pieces.append({k: v[keep] for k, v in ev.items()})
    for piece, out in zip(pieces, source.outputs, strict=True):
        frames = events_to_frames(piece["t"], piece["x"], piece["y"], piece["p"], T,
                                  split_by=split_by, sensor=SENSOR if tuple(sensor) == (SENSOR, SENSOR) else sensor,
                                  size=size)
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.save(f, _compact(frames))


_LAYOUT_ONLY = contextvars.ContextVar("staa_snn_event_layout_only", default=False)


@contextmanager
def layout_only() -> Iterator[None]:
    """Within this block an event dataset that is made checks its layout (:meth:`EventFrames.scan`:
    a missing split or class folder raises its error) and stops there, converting and caching
    nothing; the object made is not to be used. The trainer checks both splits this way before
    the long conversion of either, so that a missing one is said first."""
    token = _LAYOUT_ONLY.set(True)
    try:
        yield
    finally:
        _LAYOUT_ONLY.reset(token)


class EventFrames(Dataset):
    """Base of the event datasets: a list of cached frame files and labels.

    Subclasses implement :meth:`scan` (find the samples of ``split``, checking
    the layout) and give ``name``, ``classes`` (index -> name; they travel with the weights) and,
    unless it is the DVS128's 128x128, ``sensor`` (width, height). ``x`` is a float
    ``[T, 2, size, size]`` tensor of event counts (then ``transform``), the label an int.
    """

    name = "events"
    sensor: tuple[int, int] = (SENSOR, SENSOR)
    classes: list[str] | None = None

    def __init__(self, root: str | os.PathLike, split: str = "train", *, T: int = 16,
                 split_by: str = "number", size: int = SENSOR, transform=None,
                 cache_dir: str | os.PathLike | None = None, workers: int | None = None,
                 skip_bad_files: bool = False):
        if split_by not in SPLIT_MODES:
            raise DataError(f"split_by must be one of {SPLIT_MODES}, got {split_by!r}")
        width, height = self.sensor
        if not isinstance(size, int) or not 1 <= size <= min(width, height):
            raise DataError(f"size must be in [1, {min(width, height)}] (the sensor is {width}x{height}), "
                             f"got {size!r}: set data.size (size= in Python); frames are never up-sampled")
        self.root = Path(root)
        self.split, self.T, self.split_by, self.size = split, T, split_by, size
        self.transform = transform
        key = f"{self.name}-T{T}-{split_by}-{size}px-v{CACHE_VERSION}"
        if tuple(self.sensor) != (SENSOR, SENSOR):
            key += f"-{width}x{height}"
        base = Path(cache_dir) if cache_dir is not None else self.root / "frames_cache"
        self.cache = base / key
        sources, labels = self.scan()  # layout errors surface here, before any conversion
        if _LAYOUT_ONLY.get():
            return
        self._prepare_cache()
        self.bad_files = self._convert(sources, workers, skip_bad_files)
        self.files: list[str] = []
        self.targets: list[int] = []
        for src, labs in zip(sources, labels, strict=True):
            if src.path in self.bad_files:
                continue
            self.files += src.outputs
            self.targets += labs

    # -- subclass API ------------------------------------------------------
    def scan(self) -> tuple[list[Source], list[list[int]]]:
        raise NotImplementedError

    def read_in_process(self):
        """``None`` (files are read by their reader, in worker processes), or a function
        ``source -> {t, x, y, p}`` run in this process (datasets read through another library)."""
        return None

    def out_path(self, stem: str) -> str:
        return str(self.cache / f"{stem}.npy")

    # -- cache ------------------------------------------------------------
    def _prepare_cache(self) -> None:
        try:
            self.cache.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(f"cannot create the frame cache {self.cache} ({e}); "
                          f"pass cache_dir= to put it somewhere writable") from e
        meta = self.cache / "cache.json"
        if not meta.exists():
            write_text_atomic(meta, json.dumps({"dataset": self.name, "T": self.T, "split_by": self.split_by,
                                                "size": self.size, "sensor": list(self.sensor),
                                                "version": CACHE_VERSION,
                                                "layout": "[T, 2 (OFF, ON), size, size] event counts"}, indent=1))

    def _convert(self, sources: list[Source], workers: int | None, skip_bad: bool) -> set[str]:
        todo = [s for s in sources if not all(os.path.exists(o) for o in s.outputs)]
        self.converted = len(todo)
        bad: set[str] = set()
        if not todo:
            return bad
        read = self.read_in_process()
        workers = 1 if read is not None else min(workers or os.cpu_count() or 1, len(todo))
        desc = f"{self.name} {self.split}: events -> {self.T} frames"

        def failed(src: Source, err: Exception) -> None:
            if not skip_bad:
                raise err
            warnings.warn(f"skipping a bad file: {err}", stacklevel=3)
            bad.add(src.path)

        if workers <= 1:
            for src in tqdm(todo, total=len(todo), desc=desc, unit="file"):
                try:
                    convert_source(src, self.T, self.split_by, self.size, self.sensor, read)
                except CorruptFileError as e:
                    failed(src, e)
            return bad
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(convert_source, s, self.T, self.split_by, self.size, self.sensor): s for s in todo}
            try:
                for fut in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="file"):
                    try:
                        fut.result()
                    except CorruptFileError as e:
                        failed(futures[fut], e)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
        return bad

    def load_frames(self, path: str) -> np.ndarray:
        """One cached sample, ``[T, 2, size, size]`` float32, checked: a damaged or foreign cache file
        raises a :class:`CorruptFileError` naming it (delete it: it is converted again)."""
        try:
            with open(path, "rb") as f:
                frames = read_npy(f, path, os.fstat(f.fileno()).st_size, dtype_kinds="biu")
        except OSError as e:
            raise CorruptFileError(f"{path}: cannot read the cached frames ({e.strerror or e})") from None
        expected = (self.T, 2, self.size, self.size)
        if frames.shape != expected:
            raise CorruptFileError(f"{path}: cached frames of shape {list(frames.shape)}, expected {list(expected)} "
                                   f"(delete the file to convert it again)")
        return frames.astype(np.float32)

    # -- Dataset ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        frames = torch.from_numpy(self.load_frames(self.files[index]))
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, self.targets[index]

    def extra_repr(self) -> str:
        return f"split={self.split}, T={self.T}, split_by={self.split_by}, size={self.size}, cache={self.cache}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples, {self.extra_repr()})"


_INDEX = re.compile(r"_(\d+)$")


class CIFAR10DVS(EventFrames):
    """CIFAR10-DVS (Li et al., 2017): 10 classes x 1000 recordings, 128x128.

    ``root`` holds the original release, one folder per class of
    ``cifar10_<class>_<i>.aedat`` (AEDAT 2.0), or SpikingJelly's converted
    ``events_np/<class>/*.npz``. There is no official split; per class, the
    recordings sorted by their index ``i`` are split 9:1, ``holdout="last"``
    (default) testing on the last 10% (900 / 100 per class on the real data),
    ``holdout="first"`` on the first 10% (the other common choice, i = 0-99).
    """

    name = "cifar10dvs"
    classes = list(CIFAR10DVS_CLASSES)

    def __init__(self, root, split="train", *, holdout: str = "last", **kwargs):
        if holdout not in ("last", "first"):
            raise DataError(f"holdout must be 'last' or 'first', got {holdout!r}")
        self.holdout = holdout
        super().__init__(root, split, **kwargs)

    def scan(self):
        root = self.root
        layouts = [(root, "*.aedat", "aedat2"), (root / "events_np", "*.npz", "npz")]
        found = None
        for base, pattern, reader in layouts:
            if all((base / c).is_dir() for c in CIFAR10DVS_CLASSES):
                found = (base, pattern, reader)
                break
        if found is None:
            raise FileNotFoundError(
                f"CIFAR10-DVS not found at {root}: expected one folder per class "
                f"({', '.join(CIFAR10DVS_CLASSES)}) of cifar10_<class>_<i>.aedat files (the original "
                f"release, {CIFAR10DVS_URL}), or SpikingJelly's events_np/<class>/*.npz")
        base, pattern, reader = found
        sources, labels = [], []
        for label, cls in enumerate(CIFAR10DVS_CLASSES):
            files = []
            for f in (base / cls).glob(pattern):
                m = _INDEX.search(f.stem)
                files.append((int(m.group(1)) if m else -1, f.name, f))
            if not files:
                raise FileNotFoundError(f"CIFAR10-DVS class folder {base / cls} has no {pattern} files")
            files.sort()
            n_test = max(1, round(len(files) / 10))
            test = files[-n_test:] if self.holdout == "last" else files[:n_test]
            chosen = test if self.split == "test" else [f for f in files if f not in test]
            for _, _, f in chosen:
                sources.append(Source(str(f), reader, (self.out_path(f"{cls}/{f.stem}"),)))
                labels.append([label])
        return sources, labels

    def _prepare_cache(self):
        super()._prepare_cache()
        for cls in CIFAR10DVS_CLASSES:
            (self.cache / cls).mkdir(exist_ok=True)

    def extra_repr(self) -> str:
        return f"holdout={self.holdout}, " + super().extra_repr()


def read_gesture_labels(path: str | os.PathLike) -> list[tuple[int, int, int]]:
    """``class,startTime_usec,endTime_usec`` rows as ``(label 0..10, start, end)``."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptFileError(f"{path}: not a text file (byte {e.start} is not UTF-8)") from None
    try:
        return _gesture_rows(path, text)
    except csv.Error as e:
        raise CorruptFileError(f"{path}: not a readable CSV file ({e})") from None


def _gesture_rows(path, text: str) -> list[tuple[int, int, int]]:
    rows = []
    with io.StringIO(text, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["class", "startTime_usec", "endTime_usec"]:
            raise CorruptFileError(f"{path}: line 1: expected the header "
                                   f"'class,startTime_usec,endTime_usec', got {header!r}")
        for line, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            try:
                cls, start, end = (int(v) for v in row)
            except ValueError:
                raise CorruptFileError(f"{path}: line {line}: expected three integers "
                                       f"'class,startTime_usec,endTime_usec', got {','.join(row)!r}") from None
            if not 1 <= cls <= DVSGESTURE_CLASSES or end <= start:
                raise CorruptFileError(f"{path}: line {line}: expected a class in 1..{DVSGESTURE_CLASSES} "
                                       f"and start < end, got {','.join(row)!r}")
            rows.append((cls - 1, start, end))
    return rows


class DVSGesture(EventFrames):
    """DVS128 Gesture (Amir et al., 2017): 11 classes, 128x128.

    ``root`` is the ``DvsGesture/`` folder of the IBM release (or its parent):
    ``userXX_<lighting>.aedat`` (AEDAT 3.1), ``userXX_<lighting>_labels.csv``
    and ``trials_to_train.txt`` / ``trials_to_test.txt``, the official split
    (1176 train / 288 test samples). A sample is one labelled gesture, the
    events with ``start <= t < end``.
    """

    name = "dvsgesture"
    classes = list(DVSGESTURE_NAMES)

    def scan(self):
        root = self.root
        if (root / "DvsGesture").is_dir():
            root = root / "DvsGesture"
        trials = root / f"trials_to_{self.split}.txt"
        if not trials.is_file():
            raise FileNotFoundError(
                f"DVS128 Gesture not found at {self.root}: expected the DvsGesture/ folder of the IBM "
                f"release ({DVSGESTURE_URL}) with trials_to_train.txt, trials_to_test.txt, "
                f"userXX_<lighting>.aedat and userXX_<lighting>_labels.csv; missing {trials}")
        names = [ln.strip() for ln in trials.read_text().splitlines() if ln.strip()]
        if not names:
            raise FileNotFoundError(f"{trials} lists no recordings")
        sources, labels = [], []
        for name in names:
            aedat = root / name
            csv_path = root / f"{Path(name).stem}_labels.csv"
            if not aedat.is_file() or not csv_path.is_file():
                raise FileNotFoundError(f"{trials} lists {name}, but {aedat if not aedat.is_file() else csv_path} "
                                        f"does not exist")
            rows = read_gesture_labels(csv_path)
            outs = tuple(self.out_path(f"{aedat.stem}_{i}") for i in range(len(rows)))
            sources.append(Source(str(aedat), "aedat3", outs, tuple((s, e) for _, s, e in rows)))
            labels.append([c for c, _, _ in rows])
        return sources, labels
