"""Vectorised readers of the jAER / iniVation AEDAT files (docs/data.md).

Both readers return a dict of equal-length numpy arrays ``t`` (int64, us),
``x``, ``y`` (int32 image coordinates, x = column, y = row) and ``p`` (int32,
1 = ON, 0 = OFF). No Python loop runs per event: AEDAT 2.0 is one
``np.frombuffer`` over the whole body, AEDAT 3.1 a loop over packet headers
and one gather of their events.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from ..errors import CorruptFileError, DataError



def _split_header(data: bytes, path: str, magic: bytes, end_marker: bytes | None) -> int:
    """Byte offset of the first byte after the ``#`` header lines."""
    if not data.startswith(magic):
        raise CorruptFileError(f"{path}: not an {magic[2:].decode()} file "
                               f"(first bytes {data[:16]!r}, expected {magic!r})")
    pos = 0
    while data.startswith(b"#", pos):
        end = data.find(b"\n", pos)
        if end < 0:
            raise CorruptFileError(f"{path}: truncated header (no end of line after byte {pos})")
        line = data[pos:end].rstrip(b"\r")
        pos = end + 1
        if end_marker is not None and line == end_marker:
            return pos
    if end_marker is not None:
        raise CorruptFileError(f"{path}: header has no {end_marker.decode()} line")
    return pos


# jAER's AEDAT 2.0 address layouts: the DVS128 (CIFAR10-DVS) and the DAVIS cameras (240x180, 346x260).
CAMERAS = {"dvs128": (128, 128), "davis240": (240, 180), "davis346": (346, 260)}
_DVS128_CHIPS = ("dvs128", "tmpdiff128")


def _chip(data: bytes, start: int) -> str | None:
    """The ``# AEChip: <class>`` of a jAER header, if it has one."""
    for line in data[:start].split(b"\n"):
        line = line.strip().lstrip(b"#").strip()
        if line.lower().startswith(b"aechip:"):
            return line[7:].strip().decode("latin1")
    return None


def read_aedat2(path: str | os.PathLike, *, camera: str = "dvs128") -> dict[str, np.ndarray]:
    """Read a jAER AEDAT 2.0 file.

    Body: big-endian ``(address, timestamp)`` uint32 pairs. The address layout depends on the
    camera, which must be the one given (a file from another camera is refused, naming it: by the
    header's ``# AEChip:`` line when there is one, and by address bits the layout does not use):

    * ``camera="dvs128"`` (default; CIFAR10-DVS), in SpikingJelly's coordinates: bit 15 marks a
      special (sync) event, which is dropped; raw x = bits 1-7, raw y = bits 8-14, bit 0 = raw
      polarity (0 = ON). Mapped as ``x = 127 - raw_y``, ``y = 127 - raw_x``, ``p = 1 - bit0``.
      Bits 16-31 are never set.
    * ``camera="davis240"`` / ``"davis346"`` (240x180, 346x260): bit 31 set marks an APS (frame)
      or IMU sample, dropped; x = bits 12-21, y = bits 22-30, polarity = bit 11 (1 = ON), the
      coordinates as jAER stores them (y = 0 at the bottom row).
    """
    if camera not in CAMERAS:
        raise DataError(f"unknown camera {camera!r}; expected one of {sorted(CAMERAS)}")
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    start = _split_header(data, path, b"#!AER-DAT2.0", None)
    chip = _chip(data, start)
    dvs128 = chip is None or any(c in chip.lower() for c in _DVS128_CHIPS)
    if camera == "dvs128" and not dvs128:
        raise CorruptFileError(f"{path}: recorded with a {chip} (its header's AEChip), not a DVS128; this reader "
                               f"takes DVS128 recordings (CIFAR10-DVS), or DAVIS ones with camera='davis240' / "
                               f"'davis346'")
    if camera != "dvs128" and chip is not None and dvs128:
        raise CorruptFileError(f"{path}: recorded with a {chip} (its header's AEChip), not a DAVIS camera; "
                               f"read it with camera='dvs128'")
    body = len(data) - start
    if body % 8:
        raise CorruptFileError(f"{path}: truncated AEDAT 2.0 body ({body} bytes after the header, "
                               f"not a whole number of 8-byte events)")
    words = np.frombuffer(data, dtype=">u4", offset=start).reshape(-1, 2)
    addr = words[:, 0]
    if camera != "dvs128":
        return _davis_events(path, words, camera)
    high = addr >> 16
    if high.any():
        first = int(addr[np.flatnonzero(high)[0]])
        raise CorruptFileError(f"{path}: address 0x{first:08x} uses bits above 15, which a DVS128 never sets: "
                               f"not a DVS128 recording (a DAVIS camera? read it with camera='davis240' or "
                               f"'davis346')")
    keep = (addr & 0x8000) == 0
    addr = addr[keep].astype(np.int32)
    raw_x = (addr & 0xFE) >> 1
    raw_y = (addr & 0x7F00) >> 8
    return {
        "t": words[keep, 1].astype(np.int64),
        "x": 127 - raw_y,
        "y": 127 - raw_x,
        "p": 1 - (addr & 1),
    }


def _davis_events(path: str, words: np.ndarray, camera: str) -> dict[str, np.ndarray]:
    addr = words[:, 0]
    keep = (addr >> 31) == 0  # DVS events; APS and IMU samples have bit 31 set
    addr = addr[keep]
    x = ((addr >> 12) & 0x3FF).astype(np.int32)
    y = ((addr >> 22) & 0x1FF).astype(np.int32)
    _check_on_sensor(path, x, y, CAMERAS[camera], f" of a {camera}")
    return {"t": words[keep, 1].astype(np.int64), "x": x, "y": y, "p": ((addr >> 11) & 1).astype(np.int32)}


_PACKET = struct.Struct("<hhiiiiii")
POLARITY_EVENT = 1


def read_aedat3(path: str | os.PathLike, *, sensor: tuple[int, int] = (128, 128)) -> dict[str, np.ndarray]:
    """Read an AEDAT 3.1 file (DVS128 Gesture): polarity packets only.

    Each packet: a 28-byte header ``<hhiiiiii`` (type, source, size, TS
    offset, TS overflow, capacity, number, valid), then ``capacity`` events of
    ``size`` bytes; the first ``number`` are events. Polarity events are
    ``<u4 data, <i4 timestamp``: valid = bit 0, polarity = bit 1 (1 = ON),
    y = bits 2-16, x = bits 17-31; the full timestamp is ``overflow << 31 | ts``.
    Events whose valid bit is clear are dropped, as are non-polarity packets. An event outside
    the ``sensor`` (width, height; the DVS128's 128x128) means another camera or a damaged file.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    pos = _split_header(data, path, b"#!AER-DAT3.1", b"#!END-HEADER")
    # Walk the packet headers (a few thousand per file), noting where each
    # polarity packet's events lie; the events themselves are gathered at once.
    offsets, counts, overflows = [], [], []
    while pos < len(data):
        if pos + _PACKET.size > len(data):
            raise CorruptFileError(f"{path}: truncated packet header at byte {pos}")
        etype, _src, esize, _tsoff, overflow, capacity, number, _valid = _PACKET.unpack_from(data, pos)
        pos += _PACKET.size
        end = pos + capacity * esize
        if capacity < 0 or esize < 0 or not 0 <= number <= capacity or end > len(data):
            raise CorruptFileError(f"{path}: corrupt or truncated packet at byte {pos - _PACKET.size} "
                                   f"(capacity {capacity}, number {number}, size {esize}, "
                                   f"{len(data) - pos} bytes left)")
        if etype == POLARITY_EVENT and number:
            if esize != 8:
                raise CorruptFileError(f"{path}: polarity packet at byte {pos - _PACKET.size} has "
                                       f"{esize}-byte events, expected 8")
            offsets.append(pos)
            counts.append(number)
            overflows.append(overflow)
        pos = end
    pairs = [np.frombuffer(data, dtype="<u4", count=2 * n, offset=o) for o, n in zip(offsets, counts, strict=True)]
    ev = np.concatenate(pairs).reshape(-1, 2) if pairs else np.zeros((0, 2), "<u4")
    d, ts = ev[:, 0], ev[:, 1].view("<i4")
    t = np.repeat(np.asarray(overflows, dtype=np.int64) << 31, counts)
    t |= ts
    valid = (d & 1).astype(bool)
    if not valid.all():
        d, t = d[valid], t[valid]
    x, y = _bits(d, 17, 0x7FFF), _bits(d, 2, 0x7FFF)
    _check_on_sensor(path, x, y, sensor)
    return {"t": t, "x": x, "y": y, "p": _bits(d, 1, 1)}


def _check_on_sensor(path: str, x: np.ndarray, y: np.ndarray, sensor: tuple[int, int], of: str = "") -> None:
    """Refuse events outside the ``(width, height)`` sensor (``of``: which camera, for the message)."""
    outside = (x >= sensor[0]) | (y >= sensor[1])
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise CorruptFileError(f"{path}: event at x={x[i]}, y={y[i]} lies outside the {sensor[0]}x{sensor[1]} "
                               f"sensor{of}: another camera, or a damaged file")


def _bits(words: np.ndarray, shift: int, mask: int) -> np.ndarray:
    """``(words >> shift) & mask`` as int32, computed in place on one new array."""
    out = words >> shift
    out &= mask
    return out.view(np.int32)  # mask < 2**31: the bits are the same
