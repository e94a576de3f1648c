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


__all__ = ["aedat2_bytes", "aedat3_bytes", "davis_aedat2_bytes", "random_events", "write_bytes", "write_cifar", "write_gesture",
           "write_image_folder"]

