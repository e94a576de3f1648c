"""Format-exact writers of the dataset releases (docs/data.md).

They produce small files exactly as the originals are laid out, so the
loaders can be checked without the real data (no dataset can be downloaded
here): the tests and ``benchmarks/data_bench.py`` use them, and so can anyone
who wants to check a loader change. Event inputs are in image coordinates
(``x`` column, ``y`` row, ``p`` 1 = ON), the readers' output convention.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

from .aedat import _PACKET, POLARITY_EVENT


class _Py2Pickler(pickle._Pickler):
    """Pickles ``bytes`` as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), as
    the CIFAR release was written: loaded with ``encoding="bytes"`` they come
    back as bytes, with ``encoding="latin1"`` as str."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _b(s: str) -> bytes:
    return s.encode("latin1")


def write_cifar(root, name: str, images: dict[str, np.ndarray], labels: dict[str, list[int]],
                classes: list[str], *, py2: bool = True) -> Path:
    """Write ``cifar-10-batches-py/`` or ``cifar-100-python/`` under ``root``.

    ``images[file]`` is uint8 ``[N, 3, 32, 32]``, ``labels[file]`` its labels;
    file names as in the release (``data_batch_1`` .. ``test_batch``, or
    ``train`` / ``test``). ``py2=True`` writes Python 2 pickles (byte-string
    keys); ``py2=False`` writes Python 3 pickles with str keys.
    """
    folder = Path(root) / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    label_key = "labels" if name == "cifar10" else "fine_labels"

    def dump(path: Path, d: dict) -> None:
        with open(path, "wb") as f:
            if py2:
                _Py2Pickler(f, protocol=2).dump({_b(k): (_b(v) if isinstance(v, str) else v) for k, v in d.items()})
            else:
                pickle.dump(d, f, protocol=2)

    for fname, arr in images.items():
        arr = np.ascontiguousarray(arr, dtype=np.uint8)
        d = {"batch_label": f"{fname} fixture", label_key: list(labels[fname]), "data": arr.reshape(len(arr), -1),
             "filenames": [_b(f"img_{i}.png") if py2 else f"img_{i}.png" for i in range(len(arr))]}
        if name == "cifar100":
            d["coarse_labels"] = [0] * len(arr)
        dump(folder / fname, d)
    names = [_b(c) if py2 else c for c in classes]
    if name == "cifar10":
        dump(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": 10000, "num_vis": 3072})
    else:
        dump(folder / "meta", {"fine_label_names": names, "coarse_label_names": names})
    return folder


def aedat2_bytes(t, x, y, p, *, special: np.ndarray | None = None, chip: str | None = None) -> bytes:
    """An AEDAT 2.0 (jAER, DVS128) file: ``\\r\\n`` header lines, then big-endian
    ``(address, timestamp)`` pairs. ``special``: positions at which to insert a
    special (sync, bit 15) event, which readers must skip. ``chip``: an ``# AEChip:``
    header line (jAER writes one; CIFAR10-DVS's: ``ch.unizh.ini.jaer.chip.retina.DVS128``)."""
    x, y, p = (np.asarray(a, dtype=np.int64) for a in (x, y, p))
    addr = ((127 - x) << 8) | ((127 - y) << 1) | (1 - p)  # raw_y = 127 - x, raw_x = 127 - y, bit0 = 1 - p
    words = np.stack([addr, np.asarray(t, dtype=np.int64)], axis=1)
    if special is not None and len(special):
        sync = np.stack([np.full(len(special), 0x8000), np.asarray(t, np.int64)[np.minimum(special, len(t) - 1)]], 1)
        words = np.insert(words, special, sync, axis=0)
    return _aedat2_header(chip) + words.astype(">u4").tobytes()


def _aedat2_header(chip: str | None) -> bytes:
    return (b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
            b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
            b"# Timestamps tick is 1 us\r\n# created by staa_snn.data.writers\r\n"
            + (f"# AEChip: {chip}\r\n".encode() if chip else b""))


def davis_aedat2_bytes(t, x, y, p, *, chip: str | None = "eu.seebetter.ini.chips.davis.DAVIS240C",
                       aps_every: int = 0) -> bytes:
    """An AEDAT 2.0 file of a DAVIS camera (jAER's layout): x = bits 12-21, y = bits 22-30,
    polarity = bit 11; with ``aps_every``, an APS sample (bit 31 set) after every that many events."""
    addr = (np.asarray(y, np.int64) << 22) | (np.asarray(x, np.int64) << 12) | (np.asarray(p, np.int64) << 11)
    words = np.stack([addr, np.asarray(t, dtype=np.int64)], axis=1)
    if aps_every:
        at = np.arange(aps_every, len(words), aps_every)
        aps = np.stack([np.full(len(at), (1 << 31) | (5 << 22) | (7 << 12)), words[at, 1]], axis=1)
        words = np.insert(words, at, aps, axis=0)
    return _aedat2_header(chip) + words.astype(">u4").tobytes()


def aedat3_bytes(t, x, y, p, *, packet_size: int = 4096, special_every: int = 3,
                 invalid: np.ndarray | None = None, spare_capacity: int = 0) -> bytes:
    """An AEDAT 3.1 file: text header ending ``#!END-HEADER``, then packets
    (28-byte header ``<hhiiiiii``, ``capacity`` 8-byte events). Events are cut
    into polarity packets of at most ``packet_size``, never across a timestamp
    overflow (``t >> 31``); a special-event packet (type 0) follows every
    ``special_every``-th one. ``invalid``: positions of extra events, with the
    valid bit clear, inserted before those positions (readers drop them);
    ``spare_capacity``: unused event slots at the end of each packet."""
    t = np.asarray(t, dtype=np.int64)
    data = (np.asarray(x, np.int64) << 17) | (np.asarray(y, np.int64) << 2) | (np.asarray(p, np.int64) << 1) | 1
    if invalid is not None and len(invalid):
        data = np.insert(data, invalid, 0)  # valid bit 0
        t = np.insert(t, invalid, t[np.minimum(invalid, len(t) - 1)])
    header = (b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n"
              b"#Start-Time: 2017-01-01 00:00:00 (TZ+0000)\r\n#!END-HEADER\r\n")
    out = [header]
    overflow = t >> 31
    cuts = np.flatnonzero(np.diff(overflow)) + 1
    n_packets = 0
    for seg in np.split(np.arange(len(t)), cuts):
        for start in range(0, len(seg), packet_size):
            idx = seg[start:start + packet_size]
            ev = np.zeros((len(idx) + spare_capacity, 2), dtype="<u4")
            ev[:len(idx), 0] = data[idx]
            ev[:len(idx), 1] = t[idx] & 0x7FFFFFFF
            cap = len(ev)
            out.append(_PACKET.pack(POLARITY_EVENT, 1, 8, 4, int(overflow[idx[0]]), cap, len(idx), len(idx)))
            out.append(ev.tobytes())
            n_packets += 1
            if special_every and n_packets % special_every == 0:
                sp = np.array([[0x12345, 7], [0x2, 9]], dtype="<u4")
                out.append(_PACKET.pack(0, 1, 8, 4, 0, len(sp), len(sp), len(sp)) + sp.tobytes())
    return b"".join(out)


def write_bytes(path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_gesture(root, recordings: dict[str, tuple[dict, list[tuple[int, int, int]]]],
                  train: list[str], test: list[str]) -> Path:
    """Write a ``DvsGesture/`` folder: for each ``name -> (events, rows)``,
    ``name.aedat`` (AEDAT 3.1; ``events`` a dict of t, x, y, p) and
    ``name_labels.csv`` (rows ``(class 1..11, start_us, end_us)``), plus the
    trials lists."""
    folder = Path(root) / "DvsGesture"
    folder.mkdir(parents=True, exist_ok=True)
    for name, (ev, rows) in recordings.items():
        write_bytes(folder / f"{name}.aedat", aedat3_bytes(ev["t"], ev["x"], ev["y"], ev["p"]))
        lines = ["class,startTime_usec,endTime_usec"] + [f"{c},{s},{e}" for c, s, e in rows]
        (folder / f"{name}_labels.csv").write_text("\r\n".join(lines) + "\r\n")
    (folder / "trials_to_train.txt").write_text("".join(f"{n}.aedat\n" for n in train))
    (folder / "trials_to_test.txt").write_text("".join(f"{n}.aedat\n" for n in test))
    return folder


def random_events(rng: np.random.Generator, n: int, *, sensor: int = 128, t0: int = 0,
                  duration: int = 1_000_000) -> dict[str, np.ndarray]:
    """``n`` time-sorted random events (int64 arrays t, x, y, p)."""
    return {"t": np.sort(rng.integers(t0, t0 + duration, n)).astype(np.int64),
            "x": rng.integers(0, sensor, n).astype(np.int64),
            "y": rng.integers(0, sensor, n).astype(np.int64),
            "p": rng.integers(0, 2, n).astype(np.int64)}


def write_image_folder(root, split_dirs: dict[str, dict[str, list[np.ndarray]]], ext: str = "JPEG") -> Path:
    """``root/<split>/<class>/<i>.<ext>`` from uint8 ``[H, W, 3]`` arrays, with PIL."""
    from PIL import Image

    root = Path(root)
    for split, classes in split_dirs.items():
        for cls, imgs in classes.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(imgs):
                Image.fromarray(img).save(d / f"{cls}_{i}.{ext}", quality=95 if ext.upper() in ("JPG", "JPEG") else None)
    return root


def nmnist_bytes(t, x, y, p, *, overflow_at: np.ndarray | None = None) -> bytes:
    """Orchard's N-MNIST / N-Caltech101 ``.bin``: 5 bytes an event, x, y, then polarity (bit 7) and a
    23-bit big-endian timestamp. ``overflow_at``: positions before which to insert a timestamp
    overflow marker (y = 240); the events after it must then carry ``t`` minus 2^13 per marker
    before them, as the official reader adds it back (give ``t`` as the reader returns it)."""
    t, x, y, p = (np.asarray(a, dtype=np.int64) for a in (t, x, y, p))
    rows = np.stack([x, y, t, p], axis=1)
    if overflow_at is not None and len(overflow_at):
        rows = np.insert(rows, overflow_at, [0, 240, 0, 0], axis=0)
        marks = np.zeros(len(rows), np.int64)
        marks[np.flatnonzero(rows[:, 1] == 240)] = 1
        rows[:, 2] -= np.cumsum(marks) << 13
        rows[rows[:, 1] == 240, 2] = 0
    ts = rows[:, 2]
    if (ts < 0).any() or (ts >= 1 << 23).any():
        raise ValueError("N-MNIST timestamps must fit 23 bits (add overflow markers for longer recordings)")
    out = np.stack([rows[:, 0], rows[:, 1], (rows[:, 3] << 7) | (ts >> 16), (ts >> 8) & 0xFF, ts & 0xFF], axis=1)
    return out.astype(np.uint8).tobytes()


def dat_bytes(t, x, y, p, *, width: int | None = 304, height: int | None = 240) -> bytes:
    """A Prophesee ``.dat`` (EventCD, version 2): ``%`` header lines (with ``Width`` / ``Height``
    when given), event type 0 and size 8, then ``<u4 t, <u4 data`` (x bits 0-13, y 14-27, p 28-31)."""
    header = "% Data file containing CD events.\n% Version 2\n% Date 2017-10-31 11:29:21\n"
    if width and height:
        header += f"% Height {height}\n% Width {width}\n"
    d = np.asarray(x, np.uint64) | (np.asarray(y, np.uint64) << 14) | (np.asarray(p, np.uint64) << 28)
    words = np.stack([np.asarray(t, np.uint64) & 0xFFFFFFFF, d], axis=1).astype("<u4")
    return header.encode() + bytes([0, 8]) + words.tobytes()


def _raw_header(evt: str, width: int, height: int) -> bytes:
    return (f"% camera_integrator_name Prophesee\n% date 2023-01-01 00:00:00\n% evt {evt}\n"
            f"% format EVT{evt[0]};height={height};width={width}\n% geometry {width}x{height}\n"
            f"% end\n").encode()


def evt2_bytes(t, x, y, p, *, width: int = 640, height: int = 480, trigger_every: int = 0) -> bytes:
    """A Prophesee EVT 2.0 ``.raw``: header (``% evt 2.0``, geometry, ``% end``), then 32-bit words:
    an EVT_TIME_HIGH (type 8, t >> 6) whenever it changes, CD_OFF / CD_ON (type p) with t & 63,
    x, y; ``trigger_every``: an EXT_TRIGGER word (type 0xA) after every that many events."""
    t, x, y, p = (np.asarray(a, dtype=np.int64) for a in (t, x, y, p))
    cd = (p << 28) | ((t & 0x3F) << 22) | (x << 11) | y
    high = t >> 6
    new = np.ones(len(t), bool)
    new[1:] = high[1:] != high[:-1]
    words = np.stack([np.where(new, (8 << 28) | high, -1), cd], axis=1).ravel()
    words = words[words >= 0]
    if trigger_every:
        at = np.arange(trigger_every, len(words), trigger_every)
        words = np.insert(words, at, (0xA << 28) | 5)
    return _raw_header("2.0", width, height) + words.astype("<u4").tobytes()


def evt3_bytes(t, x, y, p, *, width: int = 1280, height: int = 720) -> bytes:
    """A Prophesee EVT 3.0 ``.raw`` as a camera writes it: header, then 16-bit words: TIME_HIGH
    (t >> 12 & 0xFFF) and TIME_LOW (t & 0xFFF) when they change, ADDR_Y when y changes, and the
    events of one (t, y, p) run as vectors: VECT_BASE_X, then VECT_12 / VECT_8 masks (runs of 2 or
    more events within 12 pixels), or single ADDR_X words. Events must be sorted by t, then y,
    then x (unique)."""
    t, x, y, p = (np.asarray(a, dtype=np.int64) for a in (t, x, y, p))
    words: list[int] = []
    last_hi = last_lo = last_y = None
    i, n = 0, len(t)
    while i < n:
        hi, lo = (t[i] >> 12) & 0xFFF, t[i] & 0xFFF
        if hi != last_hi:
            words.append((8 << 12) | hi)
            last_hi, last_lo = hi, None
        if lo != last_lo:
            words.append((6 << 12) | lo)
            last_lo = lo
        if y[i] != last_y:
            words.append(y[i])
            last_y = y[i]
        j = i + 1
        while j < n and t[j] == t[i] and y[j] == y[i] and p[j] == p[i] and x[j] - x[i] < 20:
            j += 1
        if j - i == 1:
            words.append((2 << 12) | (p[i] << 11) | x[i])
        else:
            base = x[i]
            words.append((3 << 12) | (p[i] << 11) | base)
            span = x[i:j] - base
            while len(span):
                width12 = 8 if span.max() < 8 else 12
                mask = int(sum(1 << int(b) for b in span[span < width12]))
                words.append(((4 if width12 == 12 else 5) << 12) | mask)
                span = span[span >= width12] - width12
        i = j
    return _raw_header("3.0", width, height) + np.asarray(words, dtype="<u2").tobytes()


__all__ = ["aedat2_bytes", "aedat3_bytes", "dat_bytes", "davis_aedat2_bytes", "evt2_bytes", "evt3_bytes",
           "nmnist_bytes", "random_events", "write_bytes", "write_cifar", "write_gesture", "write_image_folder"]

