"""Writing files so that a crash never leaves a half-written one."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same folder and suffix, hidden);
    when the block succeeds it is renamed over ``path`` (``fsync``: flushed to
    disk first), otherwise removed. Readers see the old file or the new one;
    the file keeps its permissions (a new one gets those ``open()`` gives), not
    its hard links, which keep the old file.
    A link is followed: its target is written, the link kept. What is written
    into rather than replaced (:func:`_in_place`: ``/dev/null``, a pipe,
    ``--json /dev/stdout``) gets the whole output once the block succeeds,
    through this process's own stream where ``path`` is its stdout or stderr."""
    path = make_parent(path)
    if _in_place(path):
        with tempfile.TemporaryDirectory(prefix="staa-snn-") as folder:
            tmp = Path(folder) / path.name
            yield tmp
            _copy_into(tmp, path)
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o666 & ~_umask()  # kept, or open()'s
    try:
        yield tmp
        os.chmod(tmp, mode)  # (some writers make 0600 files)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _copy_into(written: Path, path: Path) -> None:
    """``written``'s bytes into ``path`` (a device, a pipe, a stream's file): through ``sys.stdout``
    or ``sys.stderr`` where ``path`` is one of them, so that they stay in order with what this
    process prints."""
    stream = _own_stream(path)
    with open(written, "rb") as source:
        if stream is not None:
            stream.flush()
            shutil.copyfileobj(source, stream.buffer)
            stream.buffer.flush()
        else:
            with open(path, "ab") as f:  # a device, a pipe: the same as "wb"; /dev/fd/3 of 3>>log: not emptied
                shutil.copyfileobj(source, f)


def is_stdout(path: str | os.PathLike) -> bool:
    """Whether ``path`` is this process's stdout (``/dev/stdout``, ``/dev/fd/1``): what a command
    would print after writing there goes to stderr (a binary file redirected from stdout stays whole)."""
    return written_in_place(path) and _own_stream(Path(path).expanduser()) is sys.stdout


def _own_stream(path: Path):
    """``sys.stdout`` or ``sys.stderr`` where ``path`` is that stream's file (``/dev/stdout``), else ``None``."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if os.path.samestat(os.stat(path), os.fstat(stream.fileno())) and hasattr(stream, "buffer"):
                return stream
        except (OSError, ValueError, AttributeError):  # a replaced stream (no fileno), a closed one
            continue
    return None


def make_parent(path: str | os.PathLike) -> Path:
    """Make ``path``'s folder (and those above it) where missing, as every output of staa-snn is
    written: ``--out runs/x.png`` on a fresh clone makes ``runs/``. A file where a folder is
    needed, a ``path`` that is a folder, a folder that cannot be made or written, is a one-line
    error naming it. Returns ``path`` as it is written (:func:`_output_path`)."""
    path = _output_path(path)
    if _in_place(path):
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
    write) fails here, before it, in one line naming the folder. Returns ``path`` as it is written."""
    path = _output_path(path)
    if _in_place(path):
        return path
    folder = next(p for p in path.parents if p.exists())  # a folder (_output_path checked it)
    where = f"its folder {folder}" if folder == path.parent else f"{folder}, where its folder would be made,"
    try:
        fd, probe = tempfile.mkstemp(prefix=".staa-snn-probe-", dir=folder)
    except OSError as e:
        raise PermissionError(f"cannot write {path}: {where} takes no new files "
                              f"({_reason(e)})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _reason(error: OSError) -> str:
    """Why a file could not be made, in words: ENOENT from ``/proc`` (no file can be made there) is
    not "No such file or directory"."""
    if error.errno == errno.ENOENT:
        return "the file system makes no files there"
    return error.strerror or type(error).__name__


def _output_path(path: str | os.PathLike) -> Path:
    """``path`` as it is written: ``~`` expanded, a link (to a file, or dangling) followed to its
    target. Refused (one line) where it names a folder or lies under a file, where it is a file or
    device this user may not write, or a file a sticky folder keeps from being replaced (someone
    else's in ``/tmp``). Makes nothing."""
    text = os.fspath(path)
    if isinstance(text, str) and text.endswith(("/", os.sep)):  # Path() would drop the slash
        raise IsADirectoryError(f"cannot write {path}: it names a folder (expected a file's path)")
    path = output_target(text)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder (expected a file's path)")
    above = file_in_the_way(path)
    if above is not None:
        raise NotADirectoryError(f"cannot write {path}: {above} is a file, not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        kind = "file" if path.is_file() else "device or pipe"
        raise PermissionError(f"cannot write {path}: this user may not write this {kind} (read-only)")
    if path.is_file() and not _in_place(path) and not _may_replace(path):
        raise PermissionError(f"cannot write {path}: it belongs to another user, and its folder {path.parent} "
                              f"(sticky, like /tmp) lets only them replace it")
    return path


def output_target(path: str | os.PathLike) -> Path:
    """What an output to ``path`` writes: ``~`` expanded, a link (to a file or a folder, or to
    one still to be made) followed to its target, which is written while the link is kept; a
    device, a pipe or a stream as named (:func:`_in_place`). Links in a loop are refused."""
    path = Path(os.fspath(path)).expanduser()
    if not path.is_symlink() or _in_place(path):
        return path
    try:
        return Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:  # a link to what is still to be made
        return Path(os.path.realpath(path))
    except OSError as e:
        raise FileNotFoundError(f"cannot write {path}: its links lead round in a loop, to no file "
                                f"({e.strerror or type(e).__name__})") from None


def _may_replace(path: Path) -> bool:
    """Whether a file renamed into ``path``'s folder may replace ``path``: a sticky folder (``/tmp``)
    lets only the file's owner, the folder's or root do it."""
    folder = path.parent.stat()
    if not folder.st_mode & stat.S_ISVTX:
        return True
    return os.geteuid() in (0, folder.st_uid, path.stat().st_uid)


def written_in_place(path: str | os.PathLike) -> bool:
    """Whether an output to ``path`` goes into a device, a pipe or a stream (:func:`_in_place`):
    nothing can be written beside it (``--json /dev/null`` draws no ``/dev/null.exit.png``)."""
    return _in_place(Path(path).expanduser())


def _in_place(path: Path) -> bool:
    """Whether an output to ``path`` is written into what it names, not replaced by a new file: a
    device, a pipe, a socket (``/dev/null``, ``<(...)``; links followed), or a file reached through
    a link into ``/proc`` (``/dev/stdout``, ``/dev/fd/3``: the file a process's stream writes, which
    a file renamed in its place would take from that stream)."""
    if path.exists() and not path.is_file() and not path.is_dir():
        return True
    link = Path(os.path.abspath(path))
    for _ in range(40):  # the links' chain, as the kernel follows it (at most 40)
        link = Path(os.path.realpath(link.parent)) / link.name
        if not link.is_symlink():
            return False
        if link.parts[1:2] == ("proc",):
            return True
        link = link.parent / os.readlink(link)
    return False


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
