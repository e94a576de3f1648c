"""Readers of untrusted files under random damage: byte flips, truncations and insertions of valid
files. Each case either reads (coordinates and labels in range) or raises a ValueError-family error
naming the file: never another exception, never an allocation beyond a bound set by the file's own
size (traced), never a hang. Seeded: the same cases on every run."""

import pickle
import signal
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from staa_snn import data
from staa_snn.data import dvs as dvs_mod
from staa_snn.data import writers
from staa_snn.data.static import _cifar_batch, _unpickle

CASES = 300


def mutate(raw: bytes, rng: np.random.Generator) -> bytes:
    """A damaged copy: flipped bytes, a truncation, or inserted random bytes (a few of each kind)."""
    buf = bytearray(raw)
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.integers(3)
        if kind == 0 and buf:
            for pos in rng.integers(0, len(buf), int(rng.integers(1, 9))):
                buf[pos] ^= int(rng.integers(1, 256))
        elif kind == 1 and buf:
            del buf[int(rng.integers(0, len(buf))):]
        else:
            pos = int(rng.integers(0, len(buf) + 1))
            buf[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    return bytes(buf)


@contextmanager
def deadline(seconds: int):
    def expired(*_):
        raise TimeoutError("a reader hung on a damaged file")
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def fuzz(read, check, valid: bytes, path: Path, seed: int, *, factor: int) -> dict:
    """Run ``CASES`` damaged copies of ``valid`` through ``read(path)``; returns the outcome counts."""
    rng = np.random.default_rng(seed)
    damaged = [mutate(valid, rng) for _ in range(CASES)]
    for raw in damaged[:50]:  # warm up: lazy imports and caches are allocated once, not per file
        path.write_bytes(raw)
        try:
            read(path)
        except ValueError:
            pass
    outcomes = {"read": 0, "refused": 0}
    for case, raw in enumerate(damaged):
        path.write_bytes(raw)
        out = error = None
        tracemalloc.start()
        try:
            with deadline(10):
                out = read(path)
        except ValueError as e:  # CorruptFileError is one
            error = e
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak <= factor * len(raw) + (1 << 20), f"case {case}: {peak} bytes allocated for a {len(raw)}-byte file"
        if error is not None:
            assert str(path) in str(error), f"case {case}: the error does not name the file: {error}"
            outcomes["refused"] += 1
        else:
            check(out)
            outcomes["read"] += 1
    return outcomes


def events_in_range(ev, width=128, height=128):
    n = len(ev["t"])
    assert all(len(v) == n for v in ev.values())
    if n:
        assert 0 <= ev["x"].min() and ev["x"].max() < width and 0 <= ev["y"].min() and ev["y"].max() < height
        assert set(np.unique(ev["p"]).tolist()) <= {0, 1}


def test_fuzz_aedat2(tmp_path):
    valid = writers.aedat2_bytes(**writers.random_events(np.random.default_rng(0), 300), special=np.array([5]),
                                 chip="ch.unizh.ini.jaer.chip.retina.DVS128")
    out = fuzz(data.read_aedat2, events_in_range, valid, tmp_path / "f.aedat", 1, factor=16)
    assert out["read"] > 0 and out["refused"] > 100  # both outcomes exercised


def test_fuzz_aedat3(tmp_path):
    valid = writers.aedat3_bytes(**writers.random_events(np.random.default_rng(0), 300), packet_size=64)
    out = fuzz(data.read_aedat3, events_in_range, valid, tmp_path / "f.aedat", 2, factor=16)
    assert out["read"] > 0 and out["refused"] > 100


def test_fuzz_spikingjelly_npz(tmp_path):
    ev = writers.random_events(np.random.default_rng(0), 300)
    np.savez(tmp_path / "valid.npz", **ev)
    events_in_range(dvs_mod.read_npz(tmp_path / "valid.npz"))
    out = fuzz(dvs_mod.read_npz, events_in_range, (tmp_path / "valid.npz").read_bytes(), tmp_path / "f.npz", 3,
               factor=16)
    assert out["refused"] > 100  # (nearly every change breaks the archive's CRC)


@pytest.mark.parametrize("py2", [True, False], ids=["python2", "python3"])
def test_fuzz_cifar_pickles(tmp_path, py2):
    rng = np.random.default_rng(0)
    writers.write_cifar(tmp_path, "cifar10", {"test_batch": rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)},
                        {"test_batch": [1, 2, 3, 9]}, [f"c{i}" for i in range(10)], py2=py2)
    valid = (tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes()

    def read(path):
        return _cifar_batch(path, "labels", 10)

    def check(out):
        arr, labels = out
        assert arr.dtype == np.uint8 and arr.shape[1] == 3072 and len(labels) == len(arr)
        assert all(0 <= v < 10 for v in labels)

    out = fuzz(read, check, valid, tmp_path / "batch", 4 + py2, factor=8)
    assert out["read"] > 0 and out["refused"] > 100
    meta = fuzz(_unpickle, lambda d: isinstance(d, dict), (tmp_path / "cifar-10-batches-py" / "batches.meta")
                .read_bytes(), tmp_path / "meta", 6, factor=8)
    assert meta["read"] > 0 and meta["refused"] > 100


def test_fuzz_gesture_labels(tmp_path):
    valid = b"class,startTime_usec,endTime_usec\r\n1,100,200\r\n11,300,900\r\n5,1000,1200\r\n"

    def check(rows):
        assert all(0 <= c < 11 and s < e for c, s, e in rows)

    out = fuzz(dvs_mod.read_gesture_labels, check, valid, tmp_path / "u_labels.csv", 7, factor=64)
    assert out["read"] > 0 and out["refused"] > 100


def test_fuzz_frame_cache(tmp_path):
    """A cached sample ([T, 2, size, size] counts in a .npy) damaged on disk."""
    frames = np.random.default_rng(0).integers(0, 5, (2, 2, 8, 8)).astype(np.uint8)
    valid = tmp_path / "valid.npy"
    np.save(valid, frames)
    holder = dvs_mod.EventFrames.__new__(dvs_mod.EventFrames)  # the loader of a dataset built for T=2, 8x8
    holder.T, holder.size = 2, 8

    def check(out):
        assert out.shape == (2, 2, 8, 8) and out.dtype == np.float32 and out.min() >= 0

    out = fuzz(lambda p: holder.load_frames(str(p)), check, valid.read_bytes(), tmp_path / "f.npy", 8, factor=16)
    assert out["read"] > 0 and out["refused"] > 100


def test_crafted_size_fields_allocate_nothing(tmp_path):
    """Headers that claim far more data than the file holds are refused before any allocation."""
    bad = tmp_path / "huge.npy"
    bad.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"
                    .ljust(10 + 118, b" ") + b"\n" + b"\x00" * 64)
    with pytest.raises(data.CorruptFileError, match=r"huge.npy: its header says \[1000000000000\] float64"):
        with open(bad, "rb") as f:
            dvs_mod.read_npy(f, str(bad), bad.stat().st_size)
    pk = tmp_path / "pickled"
    reconstruct = "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
    payload = (b"\x80\x02c" + reconstruct.encode() + b"\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01J\x00\xca\x9a;\x85q\x02"
               b"C\x01bq\x03\x87q\x04Rq\x05.")
    pk.write_bytes(payload)  # _reconstruct(ndarray, (10**9,), b"b"): a billion-element array from 70 bytes
    with pytest.raises(data.CorruptFileError, match=r"pickled: not a readable CIFAR pickle \(an array of 1000000000 "
                                                    r"elements in a file of"):
        _unpickle(pk)
    assert pickle.loads(payload).shape == (10**9,)  # (what an unrestricted unpickler would have allocated)
