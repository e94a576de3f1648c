"""Checkpoints that never lose work and cannot run code.

A checkpoint is a plain dict of tensors and Python primitives, written with
``torch.save`` to a temporary file in the run folder, flushed to disk and
renamed over the old one, so a crash or ``SIGKILL`` at any moment leaves the
previous complete file. It is read with ``torch.load(weights_only=True)``:
no pickled object is ever executed.
"""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_path, first_line
from ..data import CorruptFileError

FORMAT = "staa-snn-checkpoint-1"


def rng_state() -> dict:
    """torch, CUDA, numpy and Python RNG states as tensors and primitives."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class caller_rng_state:
    """Keep the caller's random streams (torch, CUDA, numpy, Python): a library call that seeds
    and draws inside this block (the trainer: weights, TSRD, dropout) leaves them as they were."""

    def __enter__(self):
        self.saved = rng_state()
        return self

    def __exit__(self, *exc) -> None:
        set_rng_state(self.saved)


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Write atomically: temporary file, fsync, rename."""
    with atomic_path(path, fsync=True) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint safely (``weights_only=True``), with a one-line error naming the file and
    what is wrong with it: missing, a folder, empty, truncated or damaged, or not a checkpoint."""
    path = Path(path)
    if path.is_dir():
        inside = [p.name for p in (path / "best.pt", path / "last.pt") if p.is_file()]
        hint = f"; did you mean {path / inside[0]}?" if inside else " (no best.pt or last.pt in it)"
        raise CorruptFileError(f"{path} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise CorruptFileError(f"{path}: the file is empty (0 bytes), not a checkpoint")
    if not zipfile.is_zipfile(path):
        kind = "truncated or damaged" if _starts_like_a_zip(path) else "not a PyTorch checkpoint"
        raise CorruptFileError(f"{path}: {kind} ({size} bytes)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for foreign or damaged files
        raise CorruptFileError(f"{path}: not a readable staa-snn checkpoint ({first_line(e)})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        what = f"a {type(ckpt).__name__}" if not isinstance(ckpt, dict) else "a dict without the staa-snn format tag"
        raise CorruptFileError(f"{path}: not a staa-snn checkpoint ({what}; expected one written by staa-snn train)")
    return ckpt


def _starts_like_a_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"
