"""Writing files so that a crash never leaves a half-written one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same folder and suffix, hidden);
    when the block succeeds it is renamed over ``path`` (``fsync``: flushed to
    disk first), otherwise removed. Readers see the old file or the new one.
    A device or a pipe (``--json /dev/stdout``) is written in place: a file
    renamed over it would replace the device."""
    path = make_parent(path)
    if _special(path):
        yield path
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # as a plain open() would make it (some writers make 0600 files)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def make_parent(path: str | os.PathLike) -> Path:
    """Make ``path``'s folder (and those above it) where missing, as every output of staa-snn is
    written: ``--out runs/x.png`` on a fresh clone makes ``runs/``. A file where a folder is
    needed, a ``path`` that is a folder, a folder that cannot be made or written, is a one-line
    error naming it. Returns ``path``."""
    path = _output_path(path)
    if _special(path):
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a read-only file system, /proc
        raise PermissionError(f"cannot write {path}: its folder {path.parent} cannot be made "
                              f"({e.strerror or type(e).__name__})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):  # (a file is written beside, then renamed)
        raise PermissionError(f"cannot write {path}: its folder {path.parent} is not writable (by this user, "
                              f"or on a read-only file system)")
    return path


def check_writable(path: str | os.PathLike) -> Path:
    """What :func:`make_parent` checks, and a file made and removed in ``path``'s folder (or, where
    that is still to be made, the nearest one above it), making no folder: an output that would
    fail only after the work (a read-only file system, ``/proc``, a folder this user may not
    write) fails here, before it, in one line naming the folder. Returns ``path``."""
    path = _output_path(path)
    if _special(path):
        return path
    folder = next(p for p in path.parents if p.exists())  # a folder (_output_path checked it)
    try:
        fd, probe = tempfile.mkstemp(prefix=".staa-snn-probe-", dir=folder)
    except OSError as e:
        where = "its folder" if folder == path.parent else "the folder its own would be made in,"
        raise PermissionError(f"cannot write {path}: {where} {folder} takes no new files "
                              f"({e.strerror or type(e).__name__})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _output_path(path: str | os.PathLike) -> Path:
    """``path`` as a ``Path``, refused (one line) where it names a folder or lies under a file;
    a device or a pipe that this user may not write, likewise. Makes nothing."""
    if isinstance(path, str) and path.endswith(("/", os.sep)):  # Path() would drop the slash
        raise IsADirectoryError(f"cannot write {path}: it names a folder (expected a file's path)")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder (expected a file's path)")
    above = file_in_the_way(path)
    if above is not None:
        raise NotADirectoryError(f"cannot write {path}: {above} is a file, not a folder")
    if _special(path) and not os.access(path, os.W_OK):
        raise PermissionError(f"cannot write {path}: this user may not write it")
    return path


def _special(path: Path) -> bool:
    """An existing path that is neither a file nor a folder: a device, a pipe (links followed)."""
    return path.exists() and not path.is_file() and not path.is_dir()


def file_in_the_way(path: str | os.PathLike) -> Path | None:
    """The nearest existing folder above ``path`` when it is a file instead (``None``: none is)."""
    above = next((p for p in Path(path).parents if p.exists()), None)
    return above if above is not None and not above.is_dir() else None


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, at most 200 characters (its type's name when it has
    none): what a one-line message quotes of a failure underneath it."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def remove_temporaries(folder: str | os.PathLike) -> list[str]:
    """Remove the temporary files :func:`atomic_path` left in ``folder`` (their process was killed
    mid-write: never a complete file); returns their names."""
    removed = []
    for tmp in Path(folder).iterdir():
        if is_temporary(tmp):
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def is_temporary(path: Path) -> bool:
    """A file :func:`atomic_path` left behind (its process was killed mid-write)."""
    return path.name.startswith(".") and ".tmp-" in path.name
