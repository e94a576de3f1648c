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


def test_a_link_is_followed_its_target_written_and_the_link_kept(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real/a.json")
    (tmp_path / "dangling.json").symlink_to("real/new.json")
    write_text_atomic(tmp_path / "link.json", "one")
    write_text_atomic(tmp_path / "dangling.json", "two")
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "dangling.json").is_symlink()
    assert (tmp_path / "real" / "a.json").read_text() == "one" and (tmp_path / "real" / "new.json").read_text() == "two"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["a.json", "new.json"]


def test_links_in_a_loop_are_refused_and_kept(tmp_path):
    (tmp_path / "a.json").symlink_to("b.json")
    (tmp_path / "b.json").symlink_to("a.json")
    with pytest.raises(FileNotFoundError, match=r"a\.json: its links lead round in a loop, to no file \(Too many"):
        write_text_atomic(tmp_path / "a.json", "x")
    assert (tmp_path / "a.json").is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_a_file_written_again_keeps_its_permissions(tmp_path):
    import os

    private = tmp_path / "private.json"
    private.write_text("old")
    private.chmod(0o600)
    (tmp_path / "link.json").symlink_to("private.json")
    write_text_atomic(tmp_path / "link.json", "new")
    assert private.read_text() == "new" and os.stat(private).st_mode & 0o777 == 0o600


def test_a_descriptor_opened_for_appending_is_appended_to(tmp_path):
    """``--json /dev/fd/3 3>>log``: the log keeps what it held (written into, never emptied)."""
    import subprocess
    import sys

    log = tmp_path / "log.txt"
    log.write_text("kept\n")
    script = "from staa_snn._io import write_text_atomic\nwrite_text_atomic('/dev/fd/3', 'JSON\\n')\n"
    subprocess.run(["bash", "-c", '"$0" -c "$1" 3>>"$2"', sys.executable, script, str(log)], check=True, timeout=120)
    assert log.read_text() == "kept\nJSON\n" and [p.name for p in tmp_path.iterdir()] == ["log.txt"]


def test_dev_stdout_is_written_through_the_stream_in_order_and_never_replaced(tmp_path):
    """``--json /dev/stdout > file``: the file stdout writes gets the JSON between what was printed
    before and after (one inode throughout); /dev/stdout stays a link. A file renamed over
    ``/proc/self/fd/1``'s target would be lost to the stream."""
    import os
    import subprocess
    import sys

    script = ("from staa_snn._io import write_text_atomic\nprint('before', flush=True)\n"
              "write_text_atomic('/dev/stdout', 'JSON\\n')\nprint('after')\n")
    out = tmp_path / "out.txt"
    out.write_text("")
    inode = out.stat().st_ino
    with open(out, "a") as f:  # >> out.txt
        subprocess.run([sys.executable, "-c", script], stdout=f, check=True, timeout=120)
    assert out.read_text() == "before\nJSON\nafter\n" and out.stat().st_ino == inode
    assert os.path.islink("/dev/stdout") and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    piped = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert piped.stdout == "before\nJSON\nafter\n"


def test_a_pipe_gets_the_whole_output_and_stays_a_pipe(tmp_path):
    import os
    import stat
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_text_atomic(fifo, "x" * 100_000)  # over a pipe's buffer
    reader.join(timeout=60)
    assert got == ["x" * 100_000] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_file_this_user_may_not_write_or_replace_is_refused_and_kept(tmp_path, monkeypatch):
    """(As root writes anything, the test plays the answers of a read-only file and of a sticky
    folder's file that belongs to someone else.)"""
    import os

    target = tmp_path / "a.json"
    target.write_text("theirs")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and (p != target or not mode & os.W_OK))
    with pytest.raises(PermissionError, match=rf"^cannot write {target}: this user may not write this file "
                                              rf"\(read-only\)$"):
        write_text_atomic(target, "mine")
    monkeypatch.setattr(os, "access", real)
    sticky = tmp_path / "shared"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "b.json").write_text("theirs")
    monkeypatch.setattr(os, "geteuid", lambda: 4321)  # not root, not the owner of the file or the folder
    with pytest.raises(PermissionError, match=r"belongs to another user, and its folder .*shared \(sticky, like "
                                              r"/tmp\) lets only them replace it$"):
        write_text_atomic(sticky / "b.json", "mine")
    write_text_atomic(sticky / "c.json", "mine")  # a new file there is this user's
    assert target.read_text() == "theirs" and (sticky / "b.json").read_text() == "theirs"
    assert sorted(p.name for p in sticky.iterdir()) == ["b.json", "c.json"]


def test_a_tilde_is_the_home_folder_not_a_folder_named_tilde(tmp_path, monkeypatch):
    from staa_snn._io import check_writable

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    assert check_writable("~/out/a.json") == tmp_path / "home" / "out" / "a.json"
    write_text_atomic("~/out/a.json", "x")
    assert (tmp_path / "home" / "out" / "a.json").read_text() == "x" and not (tmp_path / "~").exists()
