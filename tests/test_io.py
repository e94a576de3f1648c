"""Atomic writes: the old file or the new one, never a half-written one."""

import pytest

from staa_snn._io import atomic_path, is_temporary, write_text_atomic


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.json"
    write_text_atomic(target, "old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.png"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".png" and is_temporary(tmp) and tmp.parent == tmp_path
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_written_files_get_the_usual_permissions(tmp_path):
    # Some writers (safetensors) create their file 0600; the renamed result is what open() would make.
    import os

    mask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "w.bin") as tmp:
            fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
    finally:
        os.umask(mask)
    assert (tmp_path / "w.bin").stat().st_mode & 0o777 == 0o644
