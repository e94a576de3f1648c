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
    disk first), otherwise removed. Readers see the old file or the new one."""
    path = make_parent(path)
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
    needed, a ``path`` that is a folder, or a folder this user cannot write, is a one-line error
    naming it. Returns ``path``."""
    if isinstance(path, str) and path.endswith(("/", os.sep)):  # Path() would drop the slash
        raise IsADirectoryError(f"cannot write {path}: it names a folder (expected a file's path)")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder (expected a file's path)")
    above = file_in_the_way(path)
    if above is not None:
        raise NotADirectoryError(f"cannot write {path}: {above} is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(path.parent, os.W_OK | os.X_OK):  # (a file is written beside, then renamed)
        raise PermissionError(f"cannot write {path}: its folder {path.parent} is not writable by this user")
    return path


def check_writable(path: str | os.PathLike) -> Path:
    """:func:`make_parent`, then a file made and removed in ``path``'s folder: an output that would
    fail only after the work (a read-only file system, ``/proc``, a folder root may not write)
    fails here, before it, in one line naming the folder. Returns ``path``."""
    path = make_parent(path)
    try:
        fd, probe = tempfile.mkstemp(prefix=".staa-snn-probe-", dir=path.parent)
    except OSError as e:
        raise PermissionError(f"cannot write {path}: its folder {path.parent} takes no new files "
                              f"({e.strerror or type(e).__name__})") from None
    os.close(fd)
    os.unlink(probe)
    return path


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
