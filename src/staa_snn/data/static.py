"""Static-image datasets: scikit-learn's digits, CIFAR-10/100, ImageNet and
any user folder of class sub-folders. ``x`` is a float ``[C, H, W]`` image
(the model repeats it over the ``T`` steps)."""

from __future__ import annotations

import _compat_pickle
import functools
import io
import math
import os
import pickle
import pickletools
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .._io import first_line
from ..errors import CorruptFileError, DataError
from .images import read_image

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
IMAGENET_URL = "https://image-net.org/download.php"


class TensorImages(Dataset):
    """Images held in memory as one tensor ``[N, C, H, W]`` with int labels."""

    def __init__(self, images: torch.Tensor, targets: list[int], transform=None, classes=None):
        self.images = images
        self.targets = list(targets)
        self.transform = transform
        self.classes = classes

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        x = self.images[index]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.targets[index]


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's ``load_digits()`` (1797 8x8 images, values 0-16) and its
    fixed split: within each class, in the dataset's order, every fifth image
    (positions 4, 9, 14, ...) is a test image -- 1442 train, 355 test.
    Independent of any random state or library version."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images, labels = d.images.astype(np.float32), d.target.astype(np.int64)
    rank = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    test = rank % 5 == 4
    return images, labels, ~test, test


def digits(split: str, size: int = 8, transform=None) -> TensorImages:
    """Digits as ``[1, size, size]`` floats in ``[0, 1]`` (value / 16),
    bilinearly up-sampled when ``size > 8``."""
    images, labels, train, test = digits_split()
    keep = train if split == "train" else test
    x = torch.from_numpy(images[keep] / 16.0).unsqueeze(1)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)
    return TensorImages(x.contiguous(), labels[keep].tolist(), transform, classes=[str(i) for i in range(10)])


def _numpy_global(module: str, name: str):
    """``numpy.core.<module>.<name>`` (numpy 1) / ``numpy._core.<module>.<name>`` (numpy 2), from
    whichever numpy is installed: a pickle written under either names the same function."""
    import importlib

    try:
        found = importlib.import_module(f"numpy._core.{module}")
    except ImportError:  # numpy 1
        found = importlib.import_module(f"numpy.core.{module}")
    return getattr(found, name)


def _plain_dtype(*args):
    """``numpy.dtype`` for the plain numeric kinds a CIFAR array has (never object or structured)."""
    dtype = np.dtype(*args)
    if dtype.hasobject or dtype.kind not in "biuf":
        raise pickle.UnpicklingError(f"forbidden dtype {dtype}")
    return dtype


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals the CIFAR releases (and honest re-pickles of them)
    reference -- numpy's array (protocol 2-4: ``_reconstruct``; protocol 5: ``_frombuffer``), dtype
    and scalar reconstruction, and the bytes reconstruction of protocol-2 Python 3 pickles -- so a
    crafted file cannot name any other callable and loading it runs nothing of it. Arrays it
    reconstructs are bounded by the file's size (a corrupt shape cannot make it allocate more).
    Containers, str, bytes, int and float are pickle opcodes, not globals."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")  # reads past the end come back short
        self.limit = len(data)
        self.allowed = {
            **{(f"{package}.{module}", name): self._numpy(module, name) for package in ("numpy.core", "numpy._core")
               for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                                    ("numeric", "_frombuffer"))},
            ("numpy", "ndarray"): lambda: np.ndarray,
            ("numpy", "dtype"): lambda: _plain_dtype,
            ("_codecs", "encode"): lambda: _latin1_bytes,
            ("copyreg", "_reconstructor"): lambda: self._reconstructor,
        }

    def _numpy(self, module: str, name: str):
        def resolve():
            function = _numpy_global(module, name)
            return self._bounded(function) if name == "_reconstruct" else function
        return resolve

    def _bounded(self, reconstruct):
        def bounded(subtype, shape, dtype_char, *rest):
            if subtype is not np.ndarray:
                raise pickle.UnpicklingError(f"forbidden array type {subtype!r}")
            count = math.prod(int(n) for n in (shape if isinstance(shape, tuple) else (shape,)))
            if count > self.limit:
                raise pickle.UnpicklingError(f"an array of {count} elements in a file of {self.limit} bytes")
            return reconstruct(subtype, shape, dtype_char, *rest)
        return bounded

    @staticmethod
    def _reconstructor(cls, base, state):
        if cls is not np.ndarray and base is not object:
            raise pickle.UnpicklingError(f"forbidden reconstruction of {cls!r}")
        return __import__("copyreg")._reconstructor(cls, base, state)

    def find_class(self, module: str, name: str):
        # Python 2 names (__builtin__, copy_reg), as pickle itself maps them
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        resolve = self.allowed.get((module, name))
        if resolve is None:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        return resolve()


def _latin1_bytes(text, encoding="latin1", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"forbidden encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1", errors)


def _check_opcodes(data: bytes) -> None:
    """Walk the pickle's opcodes without running any: the C unpickler sizes its memo by the largest
    index a PUT names, so a damaged 4-byte index would make it allocate gigabytes. A real pickle's
    memo indices count up from 0, one per PUT."""
    puts = 0
    with warnings.catch_warnings():  # a damaged text opcode may warn about its escapes
        warnings.simplefilter("ignore")
        ops = list(pickletools.genops(data))
    for opcode, arg, _ in ops:
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            if not isinstance(arg, int) or not 0 <= arg <= puts:
                raise pickle.UnpicklingError(f"memo index {arg} out of order (after {puts} entries)")
            puts += 1
        elif opcode.name == "MEMOIZE":
            puts += 1
        elif opcode.name == "STOP":
            return


def _unpickle(path: Path) -> dict:
    """Read a CIFAR pickle without running code from it (:class:`_CifarUnpickler`), its opcodes
    checked first (:func:`_check_opcodes`)."""
    try:
        data = Path(path).read_bytes()
        _check_opcodes(data)
        d = _CifarUnpickler(data).load()
    except pickle.UnpicklingError as e:
        if str(e).startswith("forbidden global"):
            raise CorruptFileError(f"{path}: refused: the pickle references {str(e)[17:]}, which a CIFAR file "
                                   f"never does (a crafted or foreign file; nothing of it was run)") from None
        raise CorruptFileError(f"{path}: not a readable CIFAR pickle ({e})") from None
    except Exception as e:  # a damaged pickle fails in many ways, all of them "not a CIFAR file"
        raise CorruptFileError(f"{path}: not a readable CIFAR pickle ({type(e).__name__}: {first_line(e)})") from None
    if not isinstance(d, dict):
        raise CorruptFileError(f"{path}: not a CIFAR pickle (a {type(d).__name__}, expected a dict)")
    # Python 2 pickles: keys are bytes under encoding="bytes", str under "latin1".
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def _names(values) -> list[str]:
    return [v.decode("latin1") if isinstance(v, (bytes, bytearray)) else str(v) for v in values]


def cifar(name: str, root, split: str, transform=None) -> TensorImages:
    """CIFAR-10/100 from the python-version pickles, as uint8 ``[3, 32, 32]``
    tensors (the transform converts and normalises). ``root`` is the
    ``cifar-10-batches-py`` / ``cifar-100-python`` folder or its parent."""
    folder, files, label_key, meta_file, names_key = {
        "cifar10": ("cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)],
                                            "test": ["test_batch"]}, "labels", "batches.meta", "label_names"),
        "cifar100": ("cifar-100-python", {"train": ["train"], "test": ["test"]}, "fine_labels", "meta",
                     "fine_label_names"),
    }[name]
    root = Path(root)
    base = root if root.name == folder or not (root / folder).is_dir() else root / folder
    wanted = files[split]
    missing = [f for f in wanted if not (base / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name.upper()} not found at {root}: expected the python version ({folder}/ with "
            f"{', '.join(files['train'] + files['test'])}; {CIFAR_URL}); missing {', '.join(missing)}")
    num_classes = 10 if name == "cifar10" else 100
    data, targets = [], []
    for f in wanted:
        arr, labels = _cifar_batch(base / f, label_key, num_classes)
        data.append(arr.reshape(-1, 3, 32, 32))
        targets += labels
    classes = None
    if (base / meta_file).is_file():
        names = _unpickle(base / meta_file).get(names_key, [])
        classes = _names(names) if isinstance(names, (list, tuple)) and len(names) == num_classes else None
    return TensorImages(torch.from_numpy(np.concatenate(data)), targets, transform, classes)


def _cifar_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, list[int]]:
    """``(data [N, 3072] uint8, labels)`` of one CIFAR batch, every field checked."""
    d = _unpickle(path)
    if "data" not in d or label_key not in d:
        raise CorruptFileError(f"{path}: expected keys 'data' and '{label_key}', got {sorted(map(repr, d))}")
    arr, labels = d["data"], d[label_key]
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != 3072:
        what = f"{arr.dtype} {list(arr.shape)}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise CorruptFileError(f"{path}: expected 'data' as a uint8 array [N, 3072], got {what}")
    if not isinstance(labels, (list, tuple, np.ndarray)) or len(labels) != len(arr):
        raise CorruptFileError(f"{path}: expected {len(arr)} labels for {len(arr)} images in '{label_key}'")
    try:
        targets = [int(v) for v in labels]
    except (TypeError, ValueError, OverflowError):
        raise CorruptFileError(f"{path}: '{label_key}' holds something other than integer labels") from None
    bad = [v for v in targets if not 0 <= v < num_classes]
    if bad:
        raise CorruptFileError(f"{path}: label {bad[0]} outside 0..{num_classes - 1}")
    return arr, targets


def _checked_image_folder():
    from torchvision.datasets import ImageFolder

    class CheckedImageFolder(ImageFolder):
        """ImageFolder whose unreadable images (corrupt, truncated, not an image) raise a
        :class:`CorruptFileError` naming the file, or, with ``skip_bad_files``, come back as
        ``None`` (the trainer drops them from their batch and counts them). ``classes``, when
        given, fixes the class list and indices (the training split's), whatever this folder holds."""

        skip_bad_files = False

        def __init__(self, root, *, classes: "list[str] | None" = None, background=None, **kwargs) -> None:
            self.fixed_classes = classes
            # 16-bit grayscale scaled to 8 bits, transparency onto the mean colour (data.images)
            super().__init__(root, loader=functools.partial(read_image, channels=3, background=background), **kwargs)

        def find_classes(self, directory):
            if self.fixed_classes is None:
                return super().find_classes(directory)
            return list(self.fixed_classes), {c: i for i, c in enumerate(self.fixed_classes)}

        def __getitem__(self, index: int):
            path = self.samples[index][0]
            try:
                return super().__getitem__(index)
            except (OSError, ValueError, SyntaxError) as e:  # PIL: truncated, unidentified, broken
                if self.skip_bad_files:
                    return None
                if isinstance(e, CorruptFileError):  # read_image's own: names the file and what is wrong
                    raise
                raise CorruptFileError(f"{path}: not a readable image ({first_line(e)}); remove it, or skip unreadable "
                                       f"files with data.options.skip_bad_files=true (skip_bad_files=True in Python)") from None

    return CheckedImageFolder


def _class_dirs(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir())


def image_folder_splits(root, *, what: str = "an image folder", val_per_class: int | None = None,
                        split: str = "train", item: str = "image") -> dict[str, Path | None]:
    """``{"train": train/, "test": val/ or test/}`` of an image folder, checked (both may be
    ``train/`` when ``val_per_class`` holds a validation split out of it). ``split="test"``
    (evaluation only) takes a folder without ``train/``: ``{"train": None, "test": ...}``."""
    root = Path(root)
    train = root / "train"
    evaluation = next((root / c for c in ("val", "test") if (root / c).is_dir()), None)
    hint = f" ({IMAGENET_URL}; sort the validation images into class folders first)" if what == "ImageNet" else ""
    if not train.is_dir() and split == "test" and evaluation is not None and val_per_class is None:
        return {"train": None, "test": evaluation}
    if not train.is_dir() and split == "test" and val_per_class is None:  # evaluation only: test/ or val/ will do
        raise FileNotFoundError(f"{what} not found at {root}: expected {root}/test/<class>/<{item}> (or val/) class "
                                f"folders to evaluate on{hint}")
    if not train.is_dir():
        raise FileNotFoundError(f"{what} not found at {root}: expected {root}/train/<class>/<{item}> class folders"
                                f"{hint}")
    if val_per_class is not None:
        if isinstance(val_per_class, bool) or not isinstance(val_per_class, int) or val_per_class < 1:
            raise DataError(f"val_per_class must be a positive number of {item}s per class, got {val_per_class!r}")
        if evaluation is not None:
            raise DataError(f"{what} at {root} has its own {evaluation.name}/: val_per_class holds a validation "
                             f"split out of train/ only where there is none; drop val_per_class to use "
                             f"{evaluation.name}/")
        return {"train": train, "test": train}
    if evaluation is None:
        raise FileNotFoundError(f"{what} at {root} has train/ but no val/ or test/: expected "
                                f"{root}/val|test/<class>/<{item}> class folders "
                                f"beside train/ (or hold a validation split out of train/ with "
                                f"data.options.val_per_class=N){hint}")
    return {"train": train, "test": evaluation}


def first_image_size(folder: Path) -> tuple[int, int] | None:
    """``(H, W)`` of the first image (by name) of the first class folder of ``folder`` that has
    one, read from its header; ``None`` when none can be read."""
    from PIL import Image

    for name in _class_dirs(folder):
        for path in sorted((folder / name).iterdir()):
            if path.is_file():
                try:
                    with Image.open(path) as img:
                        return img.size[1], img.size[0]
                except (OSError, ValueError, SyntaxError):
                    continue
    return None


def image_folder(root, split: str, transform=None, *, what: str = "an image folder", skip_bad_files: bool = False,
                 val_per_class: int | None = None, val_seed: int = 0, background=None):
    """``root/<train|val>/<class>/<image>`` through torchvision's ImageFolder.

    - ``split="test"`` reads ``val/`` (or ``test/`` when there is no ``val/``).
    - Class indices are the training split's (sorted ``train/`` class folders) in both splits: a
      validation class that training lacks is an error naming it; one class is refused. A folder
      with only ``val/`` or ``test/`` serves ``split="test"`` with its own class folders (to
      evaluate a net whose class names are known, e.g. shipped weights).
    - ``val_per_class=N``: a folder with only ``train/`` gets a validation split of ``N`` images
      per class, drawn within each class (its files sorted by name) by a permutation seeded with
      ``val_seed``, the same whatever the training seed; ``split="train"`` is the rest.
    - An unreadable image raises a :class:`CorruptFileError` naming it when it is read, or is
      skipped (``skip_bad_files``: the sample comes back as ``None``).
    - Images are read by :func:`~.images.read_image`: 16-bit grayscale scaled to 8 bits,
      transparency composited onto ``background`` (values in [0, 1] per channel: the mean colour
      the transform normalises with; ``None``: black).
    """
    folders = image_folder_splits(root, what=what, val_per_class=val_per_class, split=split)
    train_folder, folder = folders["train"], folders[split]
    if train_folder is None:  # evaluation only, without train/: the classes are the test folder's own
        train_folder = folder
    classes = _class_dirs(train_folder)
    empty = sorted(c for c in classes if not any(p.is_file() for p in (train_folder / c).iterdir()))
    if empty:
        raise FileNotFoundError(f"{what}: class folder(s) with no files in {train_folder}: {', '.join(empty)}")
    if len(classes) < 2:
        found = f"one class folder ({classes[0]})" if classes else "no class folders"
        raise DataError(f"{what} at {train_folder} has {found}: a classifier needs at least 2 classes, "
                         f"expected {train_folder}/<class>/<image> for each class")
    if folder != train_folder:
        unknown = sorted(set(_class_dirs(folder)) - set(classes))
        if unknown:
            raise DataError(f"{what}: class folder(s) {', '.join(unknown)} in {folder} are not in {train_folder} "
                             f"(classes: {', '.join(classes)}): a model trained on train/ cannot predict them")
    try:
        # a validation folder may lack classes; the training folder may not
        dataset = _checked_image_folder()(os.fspath(folder), transform=transform, classes=classes,
                                          background=background, allow_empty=folder != train_folder)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{what} at {folder}: {e}") from e
    if val_per_class is not None:
        _hold_out(dataset, split, val_per_class, val_seed, what)
    dataset.skip_bad_files = bool(skip_bad_files)
    return dataset


def _hold_out(dataset, split: str, per_class: int, seed: int, what: str) -> None:
    """Keep the training or the held-out samples of ``dataset`` (in place): within each class,
    ``per_class`` files chosen by a permutation seeded with ``seed`` are held out."""
    keep = stratified_holdout([t for _, t in dataset.samples], dataset.classes, split, per_class, seed, what)
    dataset.samples = [dataset.samples[i] for i in keep]
    dataset.imgs = dataset.samples
    dataset.targets = [t for _, t in dataset.samples]


def stratified_holdout(targets: list[int], classes: list[str], split: str, per_class: int, seed: int,
                       what: str, unit: str = "images") -> list[int]:
    """Indices of the training (``split="train"``) or held-out (``"test"``) samples: within each
    class (samples in their given order, sorted by class then file name), ``per_class`` chosen by a
    permutation seeded with ``seed``, one generator drawn class after class. The image and event
    folders share it, so the same files give the same split."""
    by_class: dict[int, list[int]] = {}
    for i, target in enumerate(targets):
        by_class.setdefault(target, []).append(i)
    short = {classes[c]: len(idx) for c, idx in by_class.items() if len(idx) <= per_class}
    if short:
        name, count = next(iter(short.items()))
        raise DataError(f"{what}: val_per_class={per_class} leaves nothing to train on in class {name!r} "
                        f"({count} {unit}); choose val_per_class below the smallest class's size")
    rng = np.random.Generator(np.random.PCG64(seed))
    keep = []
    for c in sorted(by_class):
        idx = by_class[c]
        held = set(rng.permutation(len(idx))[:per_class].tolist())
        keep += [i for j, i in enumerate(idx) if (j in held) == (split == "test")]
    return keep
