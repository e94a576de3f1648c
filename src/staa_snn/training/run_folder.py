"""The run folder: one run at a time (a lock file), leftovers of an unfinished first epoch
cleared, and the files a run writes (config, meta, metrics as JSON lines and CSV, TensorBoard).

Only rank 0 of a DDP job touches the folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import sys
import time
import warnings
from pathlib import Path

import yaml

from .._io import remove_temporaries, write_text_atomic

__all__ = ["RunFolder", "RunFolderError", "RunLocked"]

LOCK = ".lock"
# What a run writes; the only files cleared from a folder left by an unfinished first epoch.
RUN_FILES = ("config.yaml", "meta.json", "metrics.jsonl", "metrics.csv", "best.pt", "last.pt")
RUN_FOLDERS = ("tensorboard",)


class RunFolderError(RuntimeError):
    """The run folder cannot be used (not writable, or a resume that would not do what was asked)."""


class RunLocked(RunFolderError):
    """Another run holds the folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _live(holder: dict) -> bool:
    """Whether a lock's holder may still run: alive on this host, or on another host at all."""
    return holder.get("host") != socket.gethostname() or _alive(int(holder.get("pid", -1)))


class RunFolder:
    """``<output.dir>/<run name>/`` for one run."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.locked = False
        self.created = False  # whether lock() made the folder (an empty one is removed on unlock)

    # -- one run per folder ---------------------------------------------------
    def lock(self) -> None:
        """Create the folder and take its lock (pid, host, start time) before anything is written.

        A lock held by a live process, or by any process on another host, is refused with a
        message naming it; one left by a dead process on this host is taken over with a warning.
        """
        try:
            self.created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise RunFolderError(f"cannot write to the output folder {self.path} ({e.strerror or e}); "
                                 f"choose a writable output.dir") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "command": " ".join(sys.argv)}
        lock = self.path / LOCK
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None or not _live(holder):
                    who = "an unreadable lock" if holder is None else f"pid {holder.get('pid')}, started {holder.get('started')}"
                    warnings.warn(f"{self.path}: taking over the lock of a run that is no longer running ({who})",
                                  stacklevel=2)
                    lock.unlink(missing_ok=True)
                    continue
                raise RunLocked(
                    f"{self.path} is in use by another run (pid {holder.get('pid')} on {holder.get('host')}, "
                    f"started {holder.get('started')}): wait for it, or choose another output.name") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.locked = True
            return
        raise RunLocked(f"{self.path}: could not take the run lock")

    def holder(self) -> dict | None:
        """Who runs in this folder now: the lock's record (pid, host, started, command) when a live
        process on this host holds it, or any process on another host (which cannot be checked);
        ``None`` when no run holds it (no lock, an unreadable one, or a dead process's)."""
        if not (self.path / LOCK).is_file():
            return None
        holder = self._holder()
        return holder if holder is not None and _live(holder) else None

    def _holder(self) -> dict | None:
        try:
            holder = json.loads((self.path / LOCK).read_text())
            return holder if isinstance(holder, dict) else None
        except (OSError, ValueError):
            return None

    def unlock(self) -> None:
        """Release the lock; a folder this run created and left empty (a run refused before it
        wrote anything) goes too."""
        if self.locked:
            (self.path / LOCK).unlink(missing_ok=True)
            self.locked = False
            if self.created and self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()

    # -- leftovers ------------------------------------------------------------
    def clear_leftovers(self) -> list[str]:
        """Remove what a run killed before its first checkpoint left (config, metrics,
        TensorBoard events, temporaries); returns the names removed. Other files stay."""
        removed = []
        for name in RUN_FILES:
            if (self.path / name).is_file():
                (self.path / name).unlink()
                removed.append(name)
        for name in RUN_FOLDERS:
            if (self.path / name).is_dir():
                shutil.rmtree(self.path / name)
                removed.append(name + "/")
        return removed + self.remove_temporaries()

    def remove_temporaries(self) -> list[str]:
        """Temporary files left by a process killed mid-write (never a complete file); their names."""
        return remove_temporaries(self.path)

    # -- what a run writes ----------------------------------------------------
    def write_config(self, tree: dict, *, python_model: str | None = None) -> None:
        """``config.yaml``; for a model passed in from Python, a first line saying so (the model
        section below it was not used)."""
        head = (f"# trained on a model passed in from Python: {python_model} (the model section below was not "
                f"used; reopen with staa_snn.training.load_trained(path, model=...))\n") if python_model else ""
        write_text_atomic(self.path / "config.yaml", head + yaml.safe_dump(tree, sort_keys=False))

    def write_meta(self, meta: dict) -> None:
        write_text_atomic(self.path / "meta.json", json.dumps(meta, indent=1))

    def write_metrics(self, history: list[dict]) -> None:
        """``metrics.jsonl`` (one record per line) and ``metrics.csv`` (one row per epoch, lists and
        per-layer values spread over columns), rewritten whole and atomically."""
        write_text_atomic(self.path / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        rows = [flatten_record(h) for h in history]
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.path / "metrics.csv", text.getvalue())

    def tensorboard(self, mode):
        """A ``SummaryWriter`` in ``tensorboard/``, or ``None``: ``mode`` ``"auto"`` (when
        TensorBoard is installed), ``True`` (warn in one line when it is not) or ``False``."""
        if mode is False:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            if mode is True:
                warnings.warn('output.tensorboard=true but TensorBoard is not installed (pip install -e '
                              '".[tensorboard]"); metrics go to metrics.jsonl and metrics.csv only',
                              stacklevel=2)
            return None
        return SummaryWriter(str(self.path / "tensorboard"))


def flatten_record(record: dict, prefix: str = "") -> dict:
    """One epoch record as flat columns: lists become ``key_1, key_2, ...``, dicts ``key/name``."""
    out: dict = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_record(value, f"{name}/"))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value, 1):
                out[f"{name}_{i}"] = v
        else:
            out[name] = value
    return out
