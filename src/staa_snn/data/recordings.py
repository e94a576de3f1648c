"""One reader for every event-camera recording: :func:`read_events` (docs/data.md, "Formats").

``read_events(path)`` returns a :class:`Recording` ``(events, sensor_size)``: ``events`` a NumPy
structured array of :data:`EVENT_DTYPE` (fields ``t`` int64 microseconds, ``x``, ``y`` int16 image
coordinates, ``p`` uint8 polarity, 1 = ON, 0 = OFF) in time order, ``sensor_size`` the sensor's
``(width, height)`` as the file states it (``None`` where the format holds none). The format is
found from the file's first bytes (:func:`detect_format`); only the header-less N-MNIST ``.bin``
is known by its suffix.

Every reader is vectorised NumPy (no Python loop per event; AEDAT 4 and AEDAT 3.1 loop over
packets), and each is tested event for event against the field's reader (dv-processing / aedat,
expelliarmus, tonic; the ``dev`` extra). Only AEDAT 4's compressed packets need more than NumPy:
``lz4`` or ``zstandard`` (the ``events`` extra). A file that cannot be read raises a
:class:`~.aedat.CorruptFileError` whose one line names the file, the format found and what was
expected; a missing package raises :class:`MissingExtraError` naming the extra.
"""

from __future__ import annotations

import math
import os
import struct
import xml.etree.ElementTree as ET
import zipfile
from typing import NamedTuple

import numpy as np

from .._io import first_line
from ..errors import CorruptFileError, DataError
from .aedat import CAMERAS, read_aedat2, read_aedat3
from .events import EVENT_DTYPE, pack_events
from .prophesee import prophesee_header, raw_encoding, read_dat, read_evt2, read_evt3

FORMATS = ("aedat2", "aedat3", "aedat4", "dat", "evt2", "evt3", "nmnist", "npz", "npy")
FORMAT_NAMES = {"aedat2": "AEDAT 2.0", "aedat3": "AEDAT 3.1", "aedat4": "AEDAT 4.0", "dat": "Prophesee .dat",
                "evt2": "Prophesee EVT 2.0 .raw", "evt3": "Prophesee EVT 3.0 .raw",
                "nmnist": "N-MNIST / N-Caltech101 .bin", "npz": "NumPy .npz events", "npy": "NumPy .npy events"}
SUFFIXES = {".aedat": ("aedat2", "aedat3"), ".aedat4": ("aedat4",), ".dat": ("dat",), ".raw": ("evt2", "evt3"),
            ".bin": ("nmnist",), ".npz": ("npz",), ".npy": ("npy",)}
NMNIST_SENSOR = (34, 34)
ATIS_SENSOR = (304, 240)  # N-Caltech101 (and N-CARS' camera), Prophesee Gen1


def _article(name: str) -> str:
    """``a`` or ``an`` before a format's name, as it is read aloud: an AEDAT, an N-MNIST, a NumPy."""
    return "an" if name.startswith(("A", "E", "I", "O", "U", "N-")) else "a"


class MissingExtraError(ImportError):
    """A recording needs an optional package; the message names the pip extra."""


class Recording(NamedTuple):
    """``events`` (:data:`EVENT_DTYPE`, time-ordered) and ``sensor_size`` (``(width, height)`` or ``None``)."""

    events: np.ndarray
    sensor_size: tuple[int, int] | None


# -- detection -------------------------------------------------------------------------------------

def detect_format(path: str | os.PathLike) -> str:
    """The format of a recording (one of :data:`FORMATS`), from its first bytes: the AEDAT magic
    lines, the ZIP / NumPy magic, Prophesee's ``%`` header (``.raw`` headers name their ``evt``
    encoding; ``.dat`` headers do not). The N-MNIST ``.bin`` has no header: it is known by its
    suffix, as is a ``.dat`` without header lines (older Prophesee / ATIS files). Anything else is a
    :class:`CorruptFileError` naming what was found and expected."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    suffix = os.path.splitext(path)[1].lower()
    if not head:
        raise CorruptFileError(f"{path}: empty file (0 bytes), expected an event recording")
    if head.startswith(b"#!AER-DAT"):
        version = head[9:12]
        found = {b"2.0": "aedat2", b"3.1": "aedat3", b"4.0": "aedat4"}.get(version)
        if found is None:
            raise CorruptFileError(f"{path}: AEDAT version {version.decode('latin1')!r}, expected AEDAT 2.0, "
                                   f"3.1 or 4.0")
        return found
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "npz"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"%"):
        header = prophesee_header(head)
        encoding = _raw_encoding_safe(path, header)
        if encoding is not None:
            return encoding
        if suffix == ".raw":
            raise CorruptFileError(f"{path}: a Prophesee .raw header that names no encoding (no '% evt 2.0|3.0' "
                                   f"or '% format EVT2|EVT3' line), expected EVT 2.0 or EVT 3.0")
        return "dat"
    if suffix == ".bin":
        return "nmnist"
    if suffix == ".dat":
        return "dat"  # a .dat without header lines (older Prophesee / ATIS files)
    raise CorruptFileError(f"{path}: not a recognised event recording (first bytes {head[:12]!r}); expected "
                           f"AEDAT 2.0/3.1/4.0 ('#!AER-DAT'), Prophesee .dat/.raw ('%' header), N-MNIST .bin, "
                           f"or NumPy .npz/.npy events")


def read_events(path: str | os.PathLike, *, format: str = "auto") -> Recording:
    """Read any supported recording: ``(events, sensor_size)``, see the module docs.

    ``format``: ``"auto"`` (from the header, :func:`detect_format`) or one of :data:`FORMATS`;
    a file of another format than the one named is refused. Events outside the sensor, or with a
    polarity other than 0/1, are refused (a damaged file, or another camera's).

    >>> from staa_snn.data import read_events
    >>> events, sensor = read_events("recording.aedat4")      # doctest: +SKIP
    >>> events["t"][:3], sensor                                 # doctest: +SKIP
    """
    path = os.fspath(path)
    if format != "auto" and format not in FORMATS:
        raise DataError(f"unknown event format {format!r}; expected 'auto' or one of {', '.join(FORMATS)}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        found = detect_format(path)
    except CorruptFileError:
        if format != "nmnist":  # the one header-less format: named, it needs no suffix
            raise
        found = "nmnist"
    if format != "auto" and found != format:
        raise CorruptFileError(f"{path}: {_article(FORMAT_NAMES[found])} {FORMAT_NAMES[found]} file, expected "
                               f"{FORMAT_NAMES[format]} (format={format!r})")
    events, sensor = _READERS[found](path)
    _check(path, found, events, sensor)
    if len(events) > 1 and (np.diff(events["t"]) < 0).any():
        events = events[np.argsort(events["t"], kind="stable")]
    return Recording(events, sensor)




def _check(path: str, fmt: str, ev: np.ndarray, sensor) -> None:
    if not len(ev):
        return
    if ev["x"].min() < 0 or ev["y"].min() < 0:
        raise CorruptFileError(f"{path}: {_article(FORMAT_NAMES[fmt])} {FORMAT_NAMES[fmt]} event at a negative "
                               f"coordinate: a damaged file")
    if sensor is not None:
        outside = (ev["x"] >= sensor[0]) | (ev["y"] >= sensor[1])
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            whose = ("the ATIS's, the largest a .bin records (it has no header)" if fmt == "nmnist" else
                     "its header states")
            raise CorruptFileError(f"{path}: {FORMAT_NAMES[fmt]} event {i} at x={ev['x'][i]}, y={ev['y'][i]} lies "
                                   f"outside the {sensor[0]}x{sensor[1]} sensor, {whose}: a damaged file, or not "
                                   f"{_article(FORMAT_NAMES[fmt])} {FORMAT_NAMES[fmt]} file")


# -- AEDAT 2.0 / 3.1 (the existing readers) -------------------------------------------------------

def _aedat2(path: str):
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    chip = None
    for line in head.split(b"\n"):
        if not line.startswith(b"#"):
            break
        s = line.strip().lstrip(b"#").strip().lower()
        if s.startswith(b"aechip:"):
            chip = s[7:].strip().decode("latin1")
    camera = "dvs128"
    if chip is not None and "davis346" in chip:
        camera = "davis346"
    elif chip is not None and "davis" in chip:
        camera = "davis240"
    ev = read_aedat2(path, camera=camera)
    return pack_events(ev["t"], ev["x"], ev["y"], ev["p"]), CAMERAS[camera]


def _aedat3(path: str):
    ev = read_aedat3(path)
    return pack_events(ev["t"], ev["x"], ev["y"], ev["p"]), (128, 128)


# -- AEDAT 4.0 -------------------------------------------------------------------------------------

_COMPRESSION = {0: None, 1: "lz4", 2: "lz4", 3: "zstd", 4: "zstd"}
_COMPRESSED = {"lz4": "an LZ4-compressed", "zstd": "a Zstd-compressed"}


def _u32(buf, pos):
    return struct.unpack_from("<I", buf, pos)[0]


def _table_field(buf: bytes, table: int, index: int) -> int | None:
    """Absolute position of field ``index`` of the FlatBuffers table at ``table``, or ``None``."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vsize = struct.unpack_from("<H", buf, vtable)[0]
    if 4 + 2 * index + 2 > vsize:
        return None
    off = struct.unpack_from("<H", buf, vtable + 4 + 2 * index)[0]
    return table + off if off else None


def _flat_root(buf: bytes, ident: bytes) -> int | None:
    """The root table of a (size-prefixed or plain) FlatBuffer carrying file identifier ``ident``."""
    if len(buf) >= 12 and buf[8:12] == ident:
        return 4 + _u32(buf, 4)
    if len(buf) >= 8 and buf[4:8] == ident:
        return _u32(buf, 0)
    return None


def _aedat4(path: str):
    """AEDAT 4.0: ``#!AER-DAT4.0\\r\\n``, an int32 length and the IOHeader FlatBuffer (compression,
    data-table position, XML info naming each stream's type and size), then packets ``<i4 stream,
    <i4 size`` + ``size`` bytes (a compressed FlatBuffer). Packets of the first ``EVTS`` stream are
    decoded (``Event`` structs: int64 t, int16 x, int16 y, bool on, 3 bytes padding); IMU, trigger
    and frame packets are skipped undecompressed."""
    with open(path, "rb") as f:
        data = f.read()
    what = "AEDAT 4.0"
    pos = 14
    if len(data) < pos + 4 or not data.startswith(b"#!AER-DAT4.0\r\n"):
        raise CorruptFileError(f"{path}: truncated {what} header (expected '#!AER-DAT4.0\\r\\n' and an IOHeader)")
    hsize = _u32(data, pos)
    header = data[pos:pos + 4 + hsize]
    if len(header) < 4 + hsize:
        raise CorruptFileError(f"{path}: truncated {what} header ({len(data) - pos - 4} of {hsize} bytes)")
    try:
        root = _flat_root(header, b"IOHE")
        if root is None:
            raise ValueError("no IOHE identifier")
        f0, f1, f2 = (_table_field(header, root, i) for i in range(3))
        compression = struct.unpack_from("<i", header, f0)[0] if f0 else 0
        table_pos = struct.unpack_from("<q", header, f1)[0] if f1 else -1
        xml = b""
        if f2:
            s = f2 + _u32(header, f2)
            xml = header[s + 4:s + 4 + _u32(header, s)]
    except (struct.error, ValueError) as e:
        raise CorruptFileError(f"{path}: unreadable {what} IOHeader ({e}), expected a FlatBuffers 'IOHE' "
                               f"table") from None
    if compression not in _COMPRESSION:
        raise CorruptFileError(f"{path}: {what} compression type {compression}, expected 0-4 (none, LZ4, Zstd)")
    streams = _aedat4_streams(path, xml)
    events_ids = [s for s, (kind, _) in streams.items() if kind == "EVTS"]
    if not events_ids:
        kinds = ", ".join(sorted({k for k, _ in streams.values()})) or "none"
        raise CorruptFileError(f"{path}: an {what} file without an event stream (streams: {kinds}), expected "
                               f"one of type EVTS")
    stream = events_ids[0]
    sensor = streams[stream][1]
    decompress = _decompressor(path, _COMPRESSION[compression])
    pos += 4 + hsize
    end = table_pos if 0 < table_pos <= len(data) else len(data)
    chunks = []
    while pos < end:
        if pos + 8 > len(data):
            raise CorruptFileError(f"{path}: truncated {what} packet header at byte {pos}")
        sid, size = struct.unpack_from("<ii", data, pos)
        pos += 8
        if size < 0 or pos + size > len(data):
            raise CorruptFileError(f"{path}: truncated {what} packet at byte {pos - 8} (size {size}, "
                                   f"{len(data) - pos} bytes left)")
        if sid == stream:
            chunks.append(_aedat4_events(path, decompress(data[pos:pos + size], pos - 8), pos - 8))
        pos += size
    ev = np.concatenate(chunks) if chunks else np.zeros(0, dtype=_DV_EVENT)
    return pack_events(ev["t"], ev["x"], ev["y"], ev["on"].astype(np.uint8)), sensor


_DV_EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])


def _aedat4_events(path: str, buf: bytes, at: int) -> np.ndarray:
    try:
        root = _flat_root(buf, b"EVTS")
        if root is None:
            raise ValueError(f"identifier {bytes(buf[4:8])!r} / {bytes(buf[8:12])!r}")
        field = _table_field(buf, root, 0)
        if field is None:
            return np.zeros(0, dtype=_DV_EVENT)
        vec = field + _u32(buf, field)
        n = _u32(buf, vec)
        if vec + 4 + 16 * n > len(buf):
            raise ValueError(f"{n} events in {len(buf)} bytes")
        return np.frombuffer(buf, dtype=_DV_EVENT, count=n, offset=vec + 4)
    except (struct.error, ValueError) as e:
        raise CorruptFileError(f"{path}: the AEDAT 4.0 packet at byte {at} is not an event packet ({e}), expected "
                               f"a FlatBuffers 'EVTS' table") from None


def _aedat4_streams(path: str, xml: bytes) -> dict[int, tuple[str, tuple[int, int] | None]]:
    """``{stream id: (type identifier, (sizeX, sizeY) or None)}`` from the IOHeader's XML."""
    try:
        tree = ET.fromstring(xml.rstrip(b"\x00").decode("utf-8", "replace"))
    except ET.ParseError as e:
        raise CorruptFileError(f"{path}: the AEDAT 4.0 header's XML is unreadable ({e}), expected the "
                               f"<dv> info node listing the streams") from None
    streams = {}
    for node in tree.iter("node"):
        name = node.get("name", "")
        if not name.isdigit():
            continue
        attrs = {a.get("key"): (a.text or "") for a in node.findall("attr")}
        info = {a.get("key"): (a.text or "") for n in node.findall("node") if n.get("name") == "info"
                for a in n.findall("attr")}
        kind = attrs.get("typeIdentifier")
        if kind is None:
            continue
        size = None
        if info.get("sizeX", "").isdigit() and info.get("sizeY", "").isdigit():
            size = (int(info["sizeX"]), int(info["sizeY"]))
        streams[int(name)] = (kind, size)
    return streams


def _decompressor(path: str, kind: str | None):
    """``decompress(packet, at)`` for ``kind``'s packets; a packet that does not decompress (``at``:
    its byte in the file) is a :class:`CorruptFileError` naming the file."""
    if kind is None:
        return lambda b, at: b
    module = "lz4.frame" if kind == "lz4" else "zstandard"
    try:
        if kind == "lz4":
            import lz4.frame as lz4f
            raw = lz4f.decompress
        else:
            import zstandard

            def raw(b, _d=zstandard.ZstdDecompressor()):
                return _d.decompressobj().decompress(b)
    except ImportError:
        raise MissingExtraError(f"{path}: an AEDAT 4.0 file with {kind.upper()}-compressed packets needs the "
                                f"{module.split('.')[0]} package: pip install 'staa-snn[events]'") from None

    def decompress(b, at: int):
        try:
            return raw(b)
        except Exception as e:  # lz4's RuntimeError, zstandard's ZstdError: a damaged packet
            raise CorruptFileError(f"{path}: the AEDAT 4.0 packet at byte {at} does not decompress ({e}), "
                                   f"expected {_COMPRESSED[kind]} event packet: the file is damaged") from None
    return decompress


# -- N-MNIST / N-Caltech101 ------------------------------------------------------------------------

def _nmnist(path: str):
    """Orchard's 40-bit events: byte 0 x, byte 1 y, byte 2 bit 7 polarity (1 = ON), bits 0-6 of byte
    2 and bytes 3-4 a 23-bit timestamp (big-endian). An event with y = 240 is a timestamp overflow
    marker: the official reader (Read_Ndataset.m, as tonic) adds 2^13 us to every later event."""
    raw = np.fromfile(path, dtype=np.uint8)
    if len(raw) % 5:
        raise CorruptFileError(f"{path}: truncated N-MNIST .bin ({len(raw)} bytes, not a whole number of 5-byte "
                               f"events)")
    raw = raw.reshape(-1, 5).astype(np.int64)
    x, y = raw[:, 0], raw[:, 1]
    ts = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    over = y == 240
    if over.any():
        ts = ts + (np.cumsum(over) << 13)
        keep = ~over
        raw, x, y, ts = raw[keep], x[keep], y[keep], ts[keep]
    fits = not len(x) or (x.max() < NMNIST_SENSOR[0] and y.max() < NMNIST_SENSOR[1])
    return pack_events(ts, x, y, raw[:, 2] >> 7), NMNIST_SENSOR if fits else ATIS_SENSOR


# -- NumPy -----------------------------------------------------------------------------------------

def read_npy(f, name: str, size: int, *, max_bytes: int | None = None, dtype_kinds: str = "biuf") -> np.ndarray:
    """One ``.npy`` array from an open binary file of ``size`` bytes, its header checked first: a plain
    numeric dtype (no pickled objects), and a shape whose bytes the file holds (a corrupt shape
    cannot make it allocate more than the file, or ``max_bytes``)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        shape, fortran, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0) else
                                 fmt.read_array_header_2_0(f) if version == (2, 0) else
                                 fmt._read_array_header(f, version))
    except Exception as e:  # numpy parses the header with ast.literal_eval: many ways to fail on damage
        raise CorruptFileError(f"{name}: not a .npy array ({type(e).__name__}: {first_line(e)})") from None
    if dtype.hasobject or dtype.kind not in dtype_kinds:
        raise CorruptFileError(f"{name}: unexpected dtype {dtype} (expected a plain number type)")
    count = math.prod(int(n) for n in shape)
    nbytes = count * dtype.itemsize
    header = f.tell() if hasattr(f, "tell") else 0
    limit = size - header if max_bytes is None else min(max(size - header, 0), max_bytes)
    if nbytes > max(limit, 0):
        raise CorruptFileError(f"{name}: its header says {list(shape)} {dtype} ({nbytes} bytes), but the file "
                               f"holds {max(size - header, 0)} bytes of data")
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise CorruptFileError(f"{name}: truncated ({len(data)} of {nbytes} bytes of data)")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")


def _from_fields(path: str, get, names) -> np.ndarray:
    missing = [k for k in "txyp" if k not in names]
    if missing:
        raise CorruptFileError(f"{path}: NumPy events without field(s) {', '.join(missing)} (found "
                               f"{', '.join(names) or 'none'}), expected t, x, y, p (SpikingJelly's .npz keys "
                               f"or tonic's structured array)")
    cols = {k: np.asarray(get(k)) for k in "txyp"}
    n = len(cols["t"])
    if any(c.ndim != 1 or len(c) != n for c in cols.values()):
        raise CorruptFileError(f"{path}: t, x, y, p must be 1-D arrays of one length, got shapes "
                               f"{[list(c.shape) for c in cols.values()]}")
    for k in "txy":
        if cols[k].dtype.kind not in "iu" and n:
            if cols[k].dtype.kind == "f" and np.array_equal(cols[k], np.round(cols[k])):
                continue
            raise CorruptFileError(f"{path}: field {k!r} holds {cols[k].dtype} values, expected integers "
                                   f"({'microseconds' if k == 't' else 'pixels'})")
    p = cols["p"].astype(np.int64)
    if n and p.min() < 0:  # tonic's -1 / 1 polarities
        if not np.isin(p, (-1, 1)).all():
            raise CorruptFileError(f"{path}: polarities {sorted(set(np.unique(p).tolist()))[:4]}, expected 0/1 "
                                   f"(or -1/1)")
        p = (p > 0).astype(np.int64)
    if n and p.max() > 1:
        raise CorruptFileError(f"{path}: polarity {int(p.max())}, expected 0/1 (or -1/1)")
    x, y = cols["x"].astype(np.int64), cols["y"].astype(np.int64)
    if n and max(x.max(), y.max()) > np.iinfo(np.int16).max:
        raise CorruptFileError(f"{path}: coordinate {max(x.max(), y.max())} beyond any sensor, expected pixels")
    return pack_events(cols["t"].astype(np.int64), x, y, p)


def _npz(path: str):
    try:
        with zipfile.ZipFile(path) as z:
            names = [n[:-4] for n in z.namelist() if n.endswith(".npy")]

            def get(key):
                info = z.getinfo(f"{key}.npy")
                with z.open(info) as f:
                    return read_npy(f, f"{path}:{key}.npy", info.file_size,
                                    max_bytes=64 * max(os.path.getsize(path), 1 << 16))

            if len(names) == 1 and "t" not in names:  # one structured array (np.savez(path, events=ev))
                with z.open(f"{names[0]}.npy") as f:
                    arr = _structured(path, f)
                return _from_fields(path, lambda k: arr[k], arr.dtype.names or ()), None
            return _from_fields(path, get, names), None
    except (CorruptFileError, MissingExtraError):
        raise
    except Exception as e:  # zipfile, zlib and numpy fail in many ways on a damaged archive
        raise CorruptFileError(f"{path}: not a readable NumPy .npz of events ({type(e).__name__}: {e}), expected "
                               f"arrays t, x, y, p") from None


def _structured(path: str, f) -> np.ndarray:
    try:
        arr = np.load(f, allow_pickle=False)
    except ValueError as e:
        raise CorruptFileError(f"{path}: not a readable NumPy array ({e}), expected a 1-D structured array with "
                               f"fields t, x, y, p") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.names is None or arr.ndim != 1:
        what = f"{arr.dtype} {list(arr.shape)}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise CorruptFileError(f"{path}: a NumPy array of {what}, expected a 1-D structured array with fields "
                               f"t, x, y, p (tonic's layout) or an .npz of arrays t, x, y, p")
    return arr


def _npy(path: str):
    try:
        with open(path, "rb") as f:
            arr = _structured(path, f)
    except CorruptFileError:
        raise
    except Exception as e:
        raise CorruptFileError(f"{path}: not a readable NumPy .npy ({type(e).__name__}: {e}), expected a "
                               f"structured array with fields t, x, y, p") from None
    return _from_fields(path, lambda k: arr[k], arr.dtype.names), None


_READERS = {"aedat2": _aedat2, "aedat3": _aedat3, "aedat4": _aedat4, "dat": read_dat, "evt2": read_evt2,
            "evt3": read_evt3, "nmnist": _nmnist, "npz": _npz, "npy": _npy}


def _raw_encoding_safe(path: str, header: list[str]) -> str | None:
    try:
        return raw_encoding(header)
    except CorruptFileError as e:
        raise CorruptFileError(f"{path}: {e}") from None


__all__ = ["ATIS_SENSOR", "EVENT_DTYPE", "FORMATS", "MissingExtraError", "NMNIST_SENSOR", "Recording",
           "detect_format", "read_events"]
