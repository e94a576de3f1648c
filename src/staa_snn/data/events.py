"""Event streams to frames (docs/data.md, "Event data").

An event stream is four equal-length 1-D arrays ``t, x, y, p`` in time order:
timestamps in microseconds, image coordinates (x = column, y = row) on the
sensor's ``sensor x sensor`` grid, and polarity (1 = ON, 0 = OFF). A sample
becomes ``T`` frames ``[T, 2, size, size]`` of per-pixel event counts, channel
0 counting OFF events and channel 1 ON events, as SpikingJelly does.

Everything is one vectorised pass: each event's frame index, polarity and
(down-sampled) pixel give one flat bin, and ``np.bincount`` counts the bins.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

SPLIT_MODES = ("number", "time")


def frame_indices(t: np.ndarray, T: int, split_by: str = "number", dtype=np.int64) -> np.ndarray:
    """Frame index in ``[0, T)`` of every event of a time-ordered stream.

    - ``"number"``: each frame gets ``N // T`` consecutive events and the last
      frame the rest (SpikingJelly's fixed-frame-number split).
    - ``"time"``: ``T`` equal time windows between the first and the last
      event, ``[t0 + k*D/T, t0 + (k+1)*D/T)``, the last one closed; an empty
      window is an all-zero frame. Exact integer arithmetic, no rounding of
      the window edges.
    """
    if T < 1:
        raise DataError(f"T must be a positive number of frames, got {T}")
    n = len(t)
    if split_by == "number":
        per_frame = n // T
        if per_frame == 0:  # fewer events than frames: all of them are "the rest"
            return np.full(n, T - 1, dtype=dtype)
        idx = np.repeat(np.arange(T, dtype=dtype), per_frame)  # cheaper than arange(n) // per_frame
        return np.concatenate([idx, np.full(n - len(idx), T - 1, dtype=dtype)])
    if split_by == "time":
        if n == 0:
            return np.zeros(0, dtype=dtype)
        t = np.asarray(t, dtype=np.int64)
        t0 = t.min()
        span = max(int(t.max() - t0), 1)
        return np.minimum((t - t0) * T // span, T - 1).astype(dtype, copy=False)
    raise DataError(f"split_by must be one of {SPLIT_MODES}, got {split_by!r}")


def events_to_frames(
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    T: int,
    *,
    split_by: str = "number",
    sensor: int | tuple[int, int] = 128,
    size: int | None = None,
) -> np.ndarray:
    """Integrate an event stream into ``[T, 2, size, size]`` count frames.

    ``sensor``: the sensor's side, or its ``(width, height)``. ``size`` (default: the sensor's
    shorter side) down-samples by binning event coordinates, ``x * size // width`` and
    ``y * size // height``: every output pixel counts the events of the sensor pixels it covers, so
    counts are preserved (at ``size = sensor / 2`` this is exactly 2x2 sum pooling of the
    full-resolution frames; a non-square sensor is stretched to the square). Returns int64 counts.
    """
    width, height = (sensor, sensor) if np.isscalar(sensor) else (int(sensor[0]), int(sensor[1]))
    size = min(width, height) if size is None else int(size)
    if not 1 <= size <= min(width, height):
        what = f"{width}" if width == height else f"{min(width, height)}, the {width}x{height} sensor's shorter side"
        raise DataError(f"size must be in [1, {what}] (the sensor resolution), got {size}")
    n = len(t)
    if not (len(x) == len(y) == len(p) == n):
        raise DataError(f"t, x, y, p must have equal lengths, got {len(t)}, {len(x)}, {len(y)}, {len(p)}")
    # int32 bins where they fit (always, for real sensors): half the memory traffic of int64
    itype = np.int32 if T * 2 * size * size < 2**31 else np.int64
    flat = frame_indices(t, T, split_by, itype)
    x = np.asarray(x).astype(itype, copy=False)
    y = np.asarray(y).astype(itype, copy=False)
    if n and (x.min() < 0 or y.min() < 0 or x.max() >= width or y.max() >= height):
        bounds = f"x in [0, {width}), y in [0, {height})" if width != height else f"[0, {width})"
        raise DataError(f"event coordinates must lie in {bounds}, got x in [{x.min()}, {x.max()}], "
                         f"y in [{y.min()}, {y.max()}]")
    if size != width:
        x = x * size // width
    if size != height:
        y = y * size // height
    flat *= 2  # the flat bin, built in place: no temporaries
    flat += np.asarray(p) > 0
    flat *= size
    flat += y
    flat *= size
    flat += x
    return np.bincount(flat, minlength=T * 2 * size * size).reshape(T, 2, size, size)


# The one event array of every reader: time (us), coordinates and polarity (0/1).
EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])

def pack_events(t, x, y, p) -> np.ndarray:
    """``t, x, y, p`` as one :data:`EVENT_DTYPE` array."""
    out = np.empty(len(t), dtype=EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = t, x, y, p
    return out
