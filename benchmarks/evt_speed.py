"""Speed of the Prophesee EVT 3.0 (and 2.0) readers: ours now vs ours before (git) vs expelliarmus.

Writes a synthetic ``.raw`` of about ``--events`` events (default 5 M) to a temp dir. EVT 3.0 (the
default) as a camera writes a busy scene: per step of 0-39 us a TIME_HIGH (when it changes) and a
TIME_LOW, then an ADDR_Y, a VECT_BASE_X, 1-3 VECT_12 words with random masks, sometimes a VECT_8,
and 0-2 ADDR_X words (about 14 events per row; half the words carry events, 37% are vectors; no
2^24 us wrap).
``--format evt2``: random events over 10 s, sorted by time, an EXT_TRIGGER word every 1000
(``staa_snn.data.writers.evt2_bytes``). Then times, interleaved, ``--rounds`` rounds of:

* new: ``staa_snn.data.prophesee.read_evt3`` / ``read_evt2`` (this checkout);
* old: the same function as it was at git revision ``--old`` (the commit before the rewrite),
  loaded from ``git show`` into a temp module (skipped when git or the revision is missing);
* expelliarmus: ``Wizard(encoding=...).read`` (skipped when not installed).

First says, field by field, whether each agrees with new event for event (old must; expelliarmus
agrees on x, y, p but adds 4096 us to t where a TIME_LOW goes back after a TIME_HIGH, so its t
differs on camera-like EVT 3.0 files), then prints every run and the medians (seconds and
M events/s). One thread. Run by hand, never in CI:

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/evt_speed.py [--format evt3|evt2] [--events 5000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from staa_snn.data import prophesee
from staa_snn.data.writers import evt2_bytes

HEADER = b"% evt 3.0\n% format EVT3;height=720;width=1280\n% geometry 1280x720\n% end\n"  # EVT 3.0
OLD_REV = "2ccec0a"  # the last commit with the argsort-based read_evt3


def synthetic_words(n_events: int, seed: int = 0) -> np.ndarray:
    """A camera-like EVT 3.0 word stream of about ``n_events`` events, vectorised (see the module doc)."""
    rng = np.random.default_rng(seed)
    g = n_events // 14 + 1  # rows
    t = np.cumsum(rng.integers(0, 40, g))
    new_hi = np.r_[True, np.diff(t >> 12) != 0]
    new_lo = np.r_[True, np.diff(t) != 0]
    k, v8, s = rng.integers(1, 4, g), rng.random(g) < 0.3, rng.integers(0, 3, g)
    length = new_hi.astype(int) + new_lo + 2 + k + v8 + s
    row = np.repeat(np.arange(g), length)
    # each word's slot in the full pattern: 0 TIME_HIGH, 1 TIME_LOW, 2 ADDR_Y, 3 VECT_BASE_X, then
    # k VECT_12, the VECT_8 and the ADDR_X words
    slot = np.arange(len(row)) - np.repeat(np.cumsum(length) - length, length) + (2 - new_hi - new_lo)[row]
    val = rng.integers(0, 4096, len(row))
    typ = np.full(len(row), 2)
    typ[slot == 0], typ[slot == 1], typ[slot == 2], typ[slot == 3] = 8, 6, 0, 3
    vect = slot - 4
    typ[(vect >= 0) & (vect < k[row])] = 4
    typ[(vect == k[row]) & v8[row]] = 5
    val[slot == 0], val[slot == 1] = (t[row] >> 12)[slot == 0] & 0xFFF, t[row][slot == 1] & 0xFFF
    val[slot == 2] %= 720
    x = val % 1232  # ADDR_X / VECT_BASE_X: x within the 1280 pixels, bit 11 the polarity
    single = (typ == 2) | (typ == 3)
    val[single] = (val[single] & 0x800) | x[single]
    return ((typ << 12) | val).astype("<u2")


def evt2_file(n_events: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 10_000_000, n_events))
    return evt2_bytes(t, rng.integers(0, 640, n_events), rng.integers(0, 480, n_events), rng.integers(0, 2, n_events),
                      trigger_every=1000)


def old_reader(rev: str, name: str):
    try:
        src = subprocess.run(["git", "show", f"{rev}:src/staa_snn/data/prophesee.py"], capture_output=True,
                             text=True, check=True, cwd=Path(__file__).parent).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"old: skipped ({e})")
        return None
    src = src.replace("from ..errors", "from staa_snn.errors").replace("from .events", "from staa_snn.data.events")
    path = Path(tempfile.mkdtemp()) / "old_prophesee.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_prophesee", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--format", choices=("evt3", "evt2"), default="evt3",
                    help="evt3: a camera-like busy scene; evt2: random events over 10 s (default: %(default)s)")
    ap.add_argument("--events", type=int, default=5_000_000,
                    help="about how many events the synthetic file holds (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="timed rounds, each reader once per round, interleaved (default: %(default)s)")
    ap.add_argument("--old", default=OLD_REV,
                    help="git revision of the old reader, read with git show (default: %(default)s, the last "
                         "commit with the argsort-based read_evt3)")
    a = ap.parse_args()
    path = Path(tempfile.mkdtemp()) / "busy.raw"
    if a.format == "evt3":
        words = synthetic_words(a.events)
        path.write_bytes(HEADER + words.tobytes())
        kinds = {k: int((words >> 12 == v).sum()) for k, v in (("VECT_12", 4), ("VECT_8", 5), ("ADDR_X", 2))}
        print(f"EVT 3.0, {len(words):,} words ({', '.join(f'{v:,} {k}' for k, v in kinds.items())})")
    else:
        path.write_bytes(evt2_file(a.events))
        print("EVT 2.0")
    name = f"read_{a.format}"
    new = getattr(prophesee, name)
    readers = {"new": lambda: new(str(path))[0]}
    old = old_reader(a.old, name)
    if old is not None:
        readers["old"] = lambda: old(str(path))[0]
    try:
        import expelliarmus
        wizard = expelliarmus.Wizard(encoding=a.format)
        readers["expelliarmus"] = lambda: wizard.read(str(path))
    except ImportError:
        print("expelliarmus: not installed, skipped")
    ref = readers["new"]()
    n = len(ref)
    print(f"{path.stat().st_size / 1e6:.1f} MB, {n:,} events")
    for name, fn in list(readers.items())[1:]:
        got = fn()
        same = {c: len(got) == n and np.array_equal(np.asarray(got[c], np.int64), np.asarray(ref[c], np.int64))
                for c in "txyp"}
        print(f"{name}: {len(got):,} events; equal to new event for event: {same}")
    times: dict[str, list[float]] = {k: [] for k in readers}
    for _ in range(a.rounds):
        for name, fn in readers.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    print(f"\n{'reader':13s} {'median s':>9s} {'M ev/s':>8s}  every run (s)")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:13s} {med:9.3f} {n / med / 1e6:8.1f}  " + " ".join(f"{x:.3f}" for x in ts))
    if "old" in times:
        print(f"new is {statistics.median(times['old']) / statistics.median(times['new']):.1f}x old (medians)")

if __name__ == "__main__":
    sys.exit(main())
