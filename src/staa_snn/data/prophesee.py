"""Prophesee recordings (Metavision): ``.dat`` (EventCD) and ``.raw`` in EVT 2.0 and EVT 3.0, read
with NumPy, vectorised; :func:`staa_snn.data.read_events` detects them and calls these readers.
Formats byte for byte: ``docs/data.md``."""

from __future__ import annotations

import re

import numpy as np

from ..errors import CorruptFileError
from .events import pack_events


def prophesee_header(data: bytes) -> list[str]:
    lines = []
    pos = 0
    while data.startswith(b"%", pos):
        end = data.find(b"\n", pos)
        if end < 0:
            break
        line = data[pos + 1:end].strip().decode("latin1")
        lines.append(line)
        pos = end + 1
        if line.lower() == "end":
            break
    return lines


def _header_length(data: bytes) -> int:
    pos = 0
    while data.startswith(b"%", pos):
        end = data.find(b"\n", pos)
        if end < 0:
            return len(data)
        line = data[pos + 1:end].strip().lower()
        pos = end + 1
        if line == b"end":
            break
    return pos


def raw_encoding(header: list[str]) -> str | None:
    for line in header:
        s = line.lower().replace(" ", "")
        if s.startswith("evt2.0") or s.startswith("formatevt2"):
            return "evt2"
        if s.startswith("evt3.0") or s.startswith("formatevt3"):
            return "evt3"
        if s.startswith("evt") or s.startswith("format"):
            m = re.match(r"(?:evt|format)\s*([\w.]+)", line.strip(), re.I)
            raise CorruptFileError(f"the Prophesee encoding {m.group(1) if m else line!r} is not supported, "
                                   f"expected EVT 2.0 or EVT 3.0")
    return None


def _geometry(header: list[str]) -> tuple[int, int] | None:
    width = height = None
    for line in header:
        m = re.match(r"geometry\s+(\d+)\s*x\s*(\d+)", line, re.I)
        if m:
            return int(m.group(1)), int(m.group(2))
        m = re.search(r"width=(\d+)", line, re.I)
        if m:
            width = int(m.group(1))
        m = re.search(r"height=(\d+)", line, re.I)
        if m:
            height = int(m.group(1))
        m = re.match(r"(width|height)\s+(\d+)$", line, re.I)
        if m:
            if m.group(1).lower() == "width":
                width = int(m.group(2))
            else:
                height = int(m.group(2))
    return (width, height) if width and height else None


def read_dat(path: str):
    """Prophesee .dat: ``%`` header lines, then (version >= 2) two bytes, event type and event size
    (8), then ``<u4 t, <u4 data`` events: x = bits 0-13, y = bits 14-27, polarity = bits 28-31."""
    with open(path, "rb") as f:
        data = f.read()
    start = _header_length(data)
    header = prophesee_header(data[:start])
    if header:
        if len(data) < start + 2:
            raise CorruptFileError(f"{path}: truncated Prophesee .dat (no event type/size bytes after the header)")
        etype, esize = data[start], data[start + 1]
        start += 2
        if esize != 8:
            raise CorruptFileError(f"{path}: Prophesee .dat events of {esize} bytes (type {etype}), expected "
                                   f"8-byte CD events")
    body = len(data) - start
    if body % 8:
        raise CorruptFileError(f"{path}: truncated Prophesee .dat ({body} bytes of events, not a whole number "
                               f"of 8-byte events)")
    words = np.frombuffer(data, dtype="<u4", offset=start).reshape(-1, 2)
    t = words[:, 0].astype(np.int64)
    wraps = np.cumsum(np.diff(t, prepend=t[:1]) < -(1 << 31)) if len(t) else t
    t += wraps.astype(np.int64) << 32
    d = words[:, 1]
    p = d >> 28
    if len(p) and p.max() > 1:
        raise CorruptFileError(f"{path}: Prophesee .dat polarity {int(p.max())}, expected 0 or 1 (CD events)")
    return pack_events(t, d & 0x3FFF, (d >> 14) & 0x3FFF, p), _geometry(header)


def _rank(mask: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each position in ``at``: how many ``True`` of ``mask`` lie at or before it, minus one
    (the index, among the ``True`` positions, of the last one; -1 before the first)."""
    return np.cumsum(mask, dtype=np.int32)[at] - 1


def _take(values: np.ndarray, rank: np.ndarray, default=0) -> np.ndarray:
    """``values[rank]``, ``default`` where ``rank`` is -1."""
    if not len(values):
        return np.full(len(rank), default, dtype=np.int64)
    out = values[np.maximum(rank, 0)]
    return np.where(rank >= 0, out, default)


def _raw_body(path: str, word: int):
    with open(path, "rb") as f:
        data = f.read()
    start = _header_length(data)
    header = prophesee_header(data[:start])
    body = len(data) - start
    if body % word:
        raise CorruptFileError(f"{path}: truncated Prophesee .raw ({body} bytes after the header, not a whole "
                               f"number of {word}-byte words)")
    return np.frombuffer(data, dtype="<u2" if word == 2 else "<u4", offset=start), _geometry(header)


def read_evt2(path: str):
    """EVT 2.0: 32-bit words, type = bits 28-31. CD_OFF (0) / CD_ON (1): 6 low timestamp bits
    (22-27), x (11-21), y (0-10); EVT_TIME_HIGH (8): timestamp bits 6-33 (0-27). Triggers (0xA) and
    other words are skipped; events before the first time-high word get a high part of 0."""
    w, sensor = _raw_body(path, 4)
    typ = w >> 28
    is_high = typ == 8
    cd = np.flatnonzero(typ <= 1)
    high = _take((w[is_high] & 0x0FFFFFFF).astype(np.int64), _rank(is_high, cd))
    wc = w[cd]
    t = (high << 6) | ((wc >> 22) & 0x3F)
    return pack_events(t, (wc >> 11) & 0x7FF, wc & 0x7FF, typ[cd]), sensor


def read_evt3(path: str):
    """EVT 3.0: 16-bit words, type = bits 12-15, a state machine decoded vectorised: ADDR_Y (0) sets
    y; ADDR_X (2) is one event at x with its polarity (bit 11); VECT_BASE_X (3) sets x and the
    polarity of the vectors that follow, VECT_12 (4) / VECT_8 (5) are events at x + i for the set
    bits i, each moving x on by 12 / 8; TIME_LOW (6) and TIME_HIGH (8) set the timestamp's low and
    high 12 bits (a high part that goes back is a 24-bit wrap: +2^24; a low part that goes back
    with no TIME_HIGH between carries one into the high part, as in files that omit TIME_HIGH
    words, which expelliarmus writes; a camera sends a TIME_HIGH first, and nothing is added)."""
    w, sensor = _raw_body(path, 2)
    typ = (w >> 12).astype(np.uint8)
    val = w & 0xFFF
    single, vect = typ == 2, (typ == 4) | (typ == 5)
    words = np.flatnonzero(single | vect)  # the words that carry events
    is_high, is_low, is_y, is_base = typ == 8, typ == 6, typ == 0, typ == 3
    high_pos, low_pos = np.flatnonzero(is_high), np.flatnonzero(is_low)
    hv = val[high_pos].astype(np.int64)
    if len(hv):
        hv[1:] += np.cumsum(hv[1:] < hv[:-1]) << 12  # 24-bit wraps
    lows = val[low_pos].astype(np.int64)
    # TIME_LOW carries: a low below the previous one, no TIME_HIGH between them
    highs_seen = np.cumsum(is_high, dtype=np.int32)
    dec = np.zeros(len(lows) + 1, dtype=np.int64)
    if len(lows) > 1:
        dec[2:] = (lows[1:] < lows[:-1]) & (highs_seen[low_pos[1:]] == highs_seen[low_pos[:-1]])
    dec = np.cumsum(dec)  # dec[k]: carries among the first k lows
    lows_seen = np.cumsum(is_low, dtype=np.int32)
    hr, lr = highs_seen[words] - 1, lows_seen[words] - 1
    lows_before_high = lows_seen[high_pos]  # lows before each TIME_HIGH
    carried = dec[lr + 1] - np.where(hr >= 0, dec[lows_before_high[np.maximum(hr, 0)]], 0)
    t = ((_take(hv, hr) + carried) << 12) | _take(lows, lr)
    y = _take(val[is_y].astype(np.int64) & 0x7FF, _rank(is_y, words))
    x = (val[words] & 0x7FF).astype(np.int64)
    p = ((val[words] >> 11) & 1).astype(np.int64)
    if not vect.any():
        return pack_events(t, x, y, p), sensor
    # vectors: the base x of each vector word is the last VECT_BASE_X plus the widths of the
    # vector words between them; its polarity is that base's
    vpos = np.flatnonzero(vect)
    width = np.where(typ[vpos] == 4, 12, 8)
    widths_before = np.concatenate([[0], np.cumsum(width)])  # [k]: widths of the first k vector words
    base_pos = np.flatnonzero(is_base)
    br = _rank(is_base, vpos)
    vects_before_base = np.cumsum(vect, dtype=np.int32)[base_pos]  # a base word is not a vector word
    base_val = _take(val[base_pos].astype(np.int64), br)
    start = (base_val & 0x7FF) + widths_before[:-1] - _take(widths_before[vects_before_base], br)
    bits = np.arange(12)
    mask = ((val[vpos, None] >> bits) & 1).astype(bool) & (bits < width[:, None])
    rows, cols = np.nonzero(mask)
    is_vec_word = vect[words]
    k = np.flatnonzero(is_vec_word)  # positions, among the event words, of the vector words
    keep = ~is_vec_word
    order_key = np.concatenate([words[keep].astype(np.int64) * 12, vpos[rows].astype(np.int64) * 12 + cols])
    order = np.argsort(order_key, kind="stable")
    t_all = np.concatenate([t[keep], t[k][rows]])[order]
    y_all = np.concatenate([y[keep], y[k][rows]])[order]
    x_all = np.concatenate([x[keep], start[rows] + cols])[order]
    p_all = np.concatenate([p[keep], ((base_val >> 11) & 1)[rows]])[order]
    return pack_events(t_all, x_all, y_all, p_all), sensor


__all__ = ["prophesee_header", "raw_encoding", "read_dat", "read_evt2", "read_evt3"]
