"""Parse + integrate an AEDAT 3.1 recording: our vectorised reader vs a per-event loop.

Writes a synthetic DVS128 Gesture-style file (``--events``, default 5 M, in
packets of 4096 with special packets between) and times, alternately,

* ours: ``read_aedat3`` + ``events_to_frames`` (T = 16, split by number);
* loop: a plain Python loop over packets and then over events
  (``struct.iter_unpack``), decoding each event's bits and adding it to its
  frame -- the way per-event readers work -- on the first ``--loop-events``
  events (the rate does not depend on the file length).

Prints the median events per second of each and the ratio. Run by hand:

    python benchmarks/data_bench.py [--events 5000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from staa_snn.data import events_to_frames, read_aedat3, writers
from staa_snn.data.aedat import _PACKET


def ours(path: Path, T: int) -> np.ndarray:
    ev = read_aedat3(path)
    return events_to_frames(ev["t"], ev["x"], ev["y"], ev["p"], T)


def per_event_loop(path: Path, T: int, limit: int) -> tuple[np.ndarray, int]:
    data = path.read_bytes()
    pos = data.index(b"#!END-HEADER") + len(b"#!END-HEADER\r\n")
    events = []
    while pos < len(data) and len(events) < limit:
        etype, _, esize, _, overflow, capacity, number, _ = _PACKET.unpack_from(data, pos)
        pos += _PACKET.size
        if etype == 1:
            for d, ts in struct.iter_unpack("<Ii", data[pos:pos + number * esize]):
                if d & 1:
                    events.append(((d >> 17) & 0x7FFF, (d >> 2) & 0x7FFF, (d >> 1) & 1, overflow << 31 | ts))
        pos += capacity * esize
    events = events[:limit]
    frames = np.zeros((T, 2, 128, 128), dtype=np.int64)
    per = len(events) // T
    for i, (x, y, p, _t) in enumerate(events):
        frames[min(i // per, T - 1), p, y, x] += 1
    return frames, len(events)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--loop-events", type=int, default=500_000)
    ap.add_argument("--T", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    ev = writers.random_events(rng, args.events, t0=2**31 - 2_000_000, duration=6_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        path = writers.write_bytes(Path(tmp) / "user01_lab.aedat", writers.aedat3_bytes(**ev, packet_size=4096))
        print(f"{args.events:,} events, {path.stat().st_size / 2**20:.0f} MiB AEDAT 3.1, T = {args.T}")
        # the loop's frames on its prefix must equal ours on the same prefix
        loop_frames, n_loop = per_event_loop(path, args.T, args.loop_events)
        prefix = {k: v[:n_loop] for k, v in ev.items()}
        assert np.array_equal(loop_frames, events_to_frames(prefix["t"], prefix["x"], prefix["y"], prefix["p"], args.T))
        t_ours, t_loop = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            frames = ours(path, args.T)
            t_ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            per_event_loop(path, args.T, args.loop_events)
            t_loop.append(time.perf_counter() - t0)
        assert frames.sum() == args.events
    r_ours = args.events / statistics.median(t_ours)
    r_loop = n_loop / statistics.median(t_loop)
    print(f"ours (vectorised): {r_ours / 1e6:8.1f} M events/s  (median of {args.repeats}: "
          f"{statistics.median(t_ours):.2f} s for the file)")
    print(f"per-event loop:    {r_loop / 1e6:8.2f} M events/s  (on the first {n_loop:,} events)")
    print(f"ratio: {r_ours / r_loop:.0f}x")


if __name__ == "__main__":
    main()
