"""read_events against the field's readers on real recordings, event for event, and its speed.

    python benchmarks/event_readers_check.py SAMPLES_DIR [NMNIST_TRAIN_DIR]

SAMPLES_DIR holds tonic's test-fixture recordings (sample.aedat4 from a DVXplorer, sample_ncars.dat,
sample_nmnist.bin, sample_aedat_header.aedat, sample_stmnist.mat); NMNIST_TRAIN_DIR, optionally, N-MNIST's
Train/ (every .bin under it is read and counted). Needs the dev extra (dv-processing, aedat, tonic,
expelliarmus). Each line: our count and sensor, the other reader's count, and whether every event's
t, x, y, p agree (True). The figures are in docs/results/nmnist.md and docs/data.md.
"""
import os
import sys
import time

import numpy as np

from staa_snn.data import read_events

S = os.path.join(sys.argv[1], "")

def rate(path, reps=20):
    best = 1e9
    for _ in range(reps):
        t0 = time.perf_counter(); ev, _ = read_events(path); best = min(best, time.perf_counter() - t0)
    return len(ev), best, len(ev) / best

def same(a, b, keys="txyp"):
    return all(np.array_equal(np.asarray(a[k], np.int64), np.asarray(b[k], np.int64)) for k in keys)

# AEDAT 4.0: dv-processing and aedat
ev, sensor = read_events(S + "sample.aedat4")
import dv_processing as dv  # noqa: E402
r = dv.io.MonoCameraRecording(S + "sample.aedat4"); parts = []
while r.isRunning():
    b = r.getNextEventBatch()
    if b is not None: parts.append(b.numpy())
ref = np.concatenate(parts)
print("aedat4", len(ev), sensor, "dv-processing", len(ref), r.getEventResolution(),
      same(ev, {"t": ref["timestamp"], "x": ref["x"], "y": ref["y"], "p": ref["polarity"]}))
import aedat
ref2 = np.concatenate([p["events"] for p in aedat.Decoder(S + "sample.aedat4") if "events" in p])
print("aedat4 vs aedat", len(ref2), same(ev, {"t": ref2["t"], "x": ref2["x"], "y": ref2["y"], "p": ref2["on"]}))
import tonic
ref3 = tonic.io.read_aedat4(S + "sample.aedat4")
print("aedat4 vs tonic.io.read_aedat4", len(ref3), same(ev, ref3))
# Prophesee .dat: expelliarmus
import expelliarmus
ev, sensor = read_events(S + "sample_ncars.dat")
ref = expelliarmus.Wizard(encoding="dat").read(S + "sample_ncars.dat")
print("dat", len(ev), sensor, "expelliarmus", len(ref), same(ev, ref), "x max", ev["x"].max(), "y max", ev["y"].max())
# N-MNIST: tonic
ev, sensor = read_events(S + "sample_nmnist.bin")
ref = tonic.io.read_mnist_file(S + "sample_nmnist.bin", dtype=tonic.datasets.NMNIST.dtype)
print("nmnist", len(ev), sensor, "tonic", len(ref), same(ev, ref), "t max", ev["t"].max())
ev, sensor = read_events(S + "sample_aedat_header.aedat")
print("aedat2 header only", len(ev), sensor)
try:
    read_events(S + "sample_stmnist.mat")
except Exception as e:
    print("stmnist:", type(e).__name__, e)

print("\n# events/s (best of 20 reads, one thread)")
for f in ("sample.aedat4", "sample_ncars.dat", "sample_nmnist.bin"):
    n, dt, r = rate(S + f)
    print(f"{f}: {n} events in {dt*1e3:.2f} ms = {r/1e6:.2f} M events/s")
if len(sys.argv) > 2:
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(sys.argv[2]) for f in fs if f.endswith(".bin")]
    t0 = time.perf_counter()
    counts = [read_events(f) for f in files]
    dt = time.perf_counter() - t0
    n = sum(len(r.events) for r in counts)
    print(f"N-MNIST, {len(files)} real files: {n} events, sensors {sorted({r.sensor_size for r in counts})}, "
          f"{n / dt / 1e6:.2f} M events/s ({len(files) / dt:.0f} files/s)")
