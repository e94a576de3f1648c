"""read_events: every format, written format-exact (by the field's writer where one exists), read
event for event against an independent reader (dv-processing, aedat, expelliarmus, tonic), and
the usual bad inputs. Tiny files, all in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest

from staa_snn.data import CorruptFileError, read_events
from staa_snn.data.prophesee import read_evt2, read_evt3
from staa_snn.data.recordings import EVENT_DTYPE, FORMATS, MissingExtraError, detect_format
from staa_snn.data.writers import (aedat2_bytes, aedat3_bytes, dat_bytes, evt2_bytes, evt3_bytes, nmnist_bytes,
                                   write_bytes)


def _events(rng, n, width, height, duration=200_000, t0=0):
    t = np.sort(rng.integers(t0, t0 + duration, n))
    return {"t": t, "x": rng.integers(0, width, n), "y": rng.integers(0, height, n), "p": rng.integers(0, 2, n)}


def _same(ev, ref):
    for k in "txyp":
        np.testing.assert_array_equal(np.asarray(ev[k], np.int64), np.asarray(ref[k], np.int64), err_msg=k)


def test_dtype_and_formats():
    assert EVENT_DTYPE.names == ("t", "x", "y", "p")
    assert EVENT_DTYPE["t"] == np.int64
    assert set(FORMATS) == {"aedat2", "aedat3", "aedat4", "dat", "evt2", "evt3", "nmnist", "npz", "npy"}


# -- AEDAT 2.0 / 3.1 --------------------------------------------------------------------------------

def test_aedat2_and_3(tmp_path):
    rng = np.random.default_rng(0)
    ev = _events(rng, 300, 128, 128)
    a2 = write_bytes(tmp_path / "a.aedat", aedat2_bytes(**ev, special=np.array([5, 50])))
    a3 = write_bytes(tmp_path / "b.aedat", aedat3_bytes(**ev, packet_size=64))
    for path, fmt in ((a2, "aedat2"), (a3, "aedat3")):
        assert detect_format(path) == fmt
        got, sensor = read_events(path)
        assert sensor == (128, 128) and got.dtype == EVENT_DTYPE
        _same(got, ev)


def test_aedat2_and_3_against_spikingjelly(tmp_path):
    sj = pytest.importorskip("spikingjelly.datasets")
    from spikingjelly.datasets import cifar10_dvs

    rng = np.random.default_rng(1)
    ev = _events(rng, 200, 128, 128)
    a2 = write_bytes(tmp_path / "a.aedat", aedat2_bytes(**ev))  # SpikingJelly keeps special events: none here
    a3 = write_bytes(tmp_path / "b.aedat", aedat3_bytes(**ev, packet_size=50))
    _same(read_events(a2).events, cifar10_dvs._load_origin_data(str(a2)))
    _same(read_events(a3).events, sj.load_aedat_v3(str(a3)))


# -- AEDAT 4.0 ---------------------------------------------------------------------------------------

def _dv_write(path, ev, size, compression):
    dv = pytest.importorskip("dv_processing")
    cfg = dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_test", size, getattr(dv.CompressionType, compression))
    writer = dv.io.MonoCameraWriter(str(path), cfg)
    chunk = 40
    for start in range(0, len(ev["t"]), chunk):  # several packets
        store = dv.EventStore()
        for i in range(start, min(start + chunk, len(ev["t"]))):
            store.push_back(int(ev["t"][i]), int(ev["x"][i]), int(ev["y"][i]), bool(ev["p"][i]))
        writer.writeEvents(store)
    del writer


@pytest.mark.parametrize("compression", ["LZ4", "ZSTD", "NONE"])
def test_aedat4_written_by_dv_processing(tmp_path, compression):
    pytest.importorskip("lz4")
    pytest.importorskip("zstandard")
    rng = np.random.default_rng(2)
    ev = _events(rng, 150, 64, 48, t0=1_600_000_000_000_000)
    path = tmp_path / "rec.aedat4"
    _dv_write(path, ev, (64, 48), compression)
    assert detect_format(path) == "aedat4"
    got, sensor = read_events(path)
    assert sensor == (64, 48)
    _same(got, ev)
    # the independent readers agree, event for event
    aedat = pytest.importorskip("aedat")
    ref = np.concatenate([p["events"] for p in aedat.Decoder(str(path)) if "events" in p])
    np.testing.assert_array_equal(got["t"], ref["t"])
    np.testing.assert_array_equal(got["x"], ref["x"])
    np.testing.assert_array_equal(got["p"], ref["on"].astype(np.uint8))


def test_aedat4_skips_imu_and_trigger_packets(tmp_path):
    dv = pytest.importorskip("dv_processing")
    pytest.importorskip("lz4")
    rng = np.random.default_rng(3)
    ev = _events(rng, 60, 32, 24, t0=1000)
    cfg = dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_test", (32, 24))
    cfg.addImuStream()
    cfg.addTriggerStream()
    path = tmp_path / "mixed.aedat4"
    writer = dv.io.MonoCameraWriter(str(path), cfg)
    for start in (0, 30):
        writer.writeImu(dv.IMU(int(ev["t"][start]), 25.0, 0.1, 0.2, 9.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
        trig = dv.Trigger(int(ev["t"][start]), dv.TriggerType.EXTERNAL_SIGNAL_RISING_EDGE)
        writer.writeTrigger(trig)
        store = dv.EventStore()
        for i in range(start, start + 30):
            store.push_back(int(ev["t"][i]), int(ev["x"][i]), int(ev["y"][i]), bool(ev["p"][i]))
        writer.writeEvents(store)
    del writer
    aedat = pytest.importorskip("aedat")
    assert sorted(s["type"] for s in aedat.Decoder(str(path)).id_to_stream().values()) == ["events", "imus",
                                                                                            "triggers"]
    got, sensor = read_events(path)
    assert sensor == (32, 24)
    _same(got, ev)


def test_aedat4_of_frames_only_is_refused(tmp_path):
    dv = pytest.importorskip("dv_processing")
    pytest.importorskip("lz4")
    path = tmp_path / "frames.aedat4"
    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.FrameOnlyConfig("DAVIS346_test", (32, 24)))
    writer.writeFrame(dv.Frame(1000, np.zeros((24, 32), np.uint8)))
    del writer
    with pytest.raises(CorruptFileError, match=r"frames\.aedat4: an AEDAT 4\.0 file without an event stream "
                                               r"\(streams: FRME\), expected one of type EVTS"):
        read_events(path)


def test_aedat4_without_lz4_names_the_extra(tmp_path, monkeypatch):
    pytest.importorskip("lz4")
    rng = np.random.default_rng(4)
    ev = _events(rng, 20, 16, 16)
    path = tmp_path / "r.aedat4"
    _dv_write(path, ev, (16, 16), "LZ4")
    import builtins

    real = builtins.__import__

    def no_lz4(name, *a, **k):
        if name.startswith("lz4"):
            raise ImportError("no lz4")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_lz4)
    with pytest.raises(MissingExtraError, match=r"r\.aedat4.*lz4.*staa-snn\[events\]"):
        read_events(path)


def test_aedat4_truncated_and_no_events(tmp_path):
    pytest.importorskip("lz4")
    rng = np.random.default_rng(5)
    ev = _events(rng, 100, 16, 16)
    path = tmp_path / "r.aedat4"
    _dv_write(path, ev, (16, 16), "LZ4")
    data = path.read_bytes()
    cut = write_bytes(tmp_path / "cut.aedat4", data[:len(data) - 200])
    with pytest.raises(CorruptFileError, match=r"cut\.aedat4: .*AEDAT 4\.0"):
        read_events(cut)
    head = write_bytes(tmp_path / "head.aedat4", data[:20])
    with pytest.raises(CorruptFileError, match=r"head\.aedat4: truncated AEDAT 4\.0 header"):
        read_events(head)


@pytest.mark.parametrize("compression, named", [("LZ4", "an LZ4"), ("ZSTD", "a Zstd")])
def test_aedat4_damaged_packet_is_a_corrupt_file_naming_it(tmp_path, compression, named):
    pytest.importorskip("lz4")
    pytest.importorskip("zstandard")
    rng = np.random.default_rng(6)
    path = tmp_path / "r.aedat4"
    _dv_write(path, _events(rng, 100, 16, 16), (16, 16), compression)
    data = bytearray(path.read_bytes())
    first = 14 + 4 + int.from_bytes(data[14:18], "little")  # the first packet, after the IOHeader
    data[first + 8:first + 12] = bytes(4)  # its compressed frame's magic number zeroed
    bad = write_bytes(tmp_path / "bad.aedat4", bytes(data))
    with pytest.raises(CorruptFileError, match=rf"bad\.aedat4: the AEDAT 4\.0 packet at byte {first} does not "
                                               rf"decompress \(.*\), expected {named}-compressed event "
                                               rf"packet: the file is damaged"):
        read_events(bad)


# -- Prophesee -----------------------------------------------------------------------------------------

def _written_by_expelliarmus(expelliarmus, encoding: str, path, ev: dict):
    """``(path, events)``: ``ev`` as expelliarmus' structured array, written by its own writer."""
    arr = np.zeros(len(ev["t"]), dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    for k, v in ev.items():
        arr[k] = v
    expelliarmus.Wizard(encoding=encoding).save(str(path), arr)
    return path, arr


def test_dat_against_expelliarmus(tmp_path):
    rng = np.random.default_rng(6)
    ev = _events(rng, 400, 304, 240)
    path = write_bytes(tmp_path / "cars.dat", dat_bytes(**ev))
    assert detect_format(path) == "dat"
    got, sensor = read_events(path)
    assert sensor == (304, 240)
    _same(got, ev)
    expelliarmus = pytest.importorskip("expelliarmus")
    _same(got, expelliarmus.Wizard(encoding="dat").read(str(path)))
    # and a file the field's writer wrote
    other, arr = _written_by_expelliarmus(expelliarmus, "dat", tmp_path / "exp.dat", _events(rng, 50, 120, 100))
    got, sensor = read_events(other)
    assert sensor is None  # expelliarmus writes no geometry
    _same(got, arr)


def test_evt2_against_expelliarmus(tmp_path):
    rng = np.random.default_rng(7)
    ev = _events(rng, 500, 640, 480, duration=3_000_000)
    path = write_bytes(tmp_path / "rec.raw", evt2_bytes(**ev, trigger_every=37))
    assert detect_format(path) == "evt2"
    got, sensor = read_events(path)
    assert sensor == (640, 480)
    _same(got, ev)
    expelliarmus = pytest.importorskip("expelliarmus")
    _same(got, expelliarmus.Wizard(encoding="evt2").read(str(path)))
    other, arr = _written_by_expelliarmus(expelliarmus, "evt2", tmp_path / "exp.raw",
                                          _events(rng, 80, 640, 480, duration=10**7))
    _same(read_events(other).events, arr)


def _rows(rng, n, width, height, duration):
    """Events sorted by (t, y, x) with runs along a row, as EVT 3.0 vectorises them."""
    t = np.sort(rng.integers(0, duration, n // 2))
    x = rng.integers(0, width - 40, n // 2)
    y = rng.integers(0, height, n // 2)
    p = rng.integers(0, 2, n // 2)
    run = np.concatenate([x + k for k in (0, 1, 3, 11, 12, 19)])  # a burst of 6 per event: vectors
    ev = {"t": np.tile(t, 6), "x": run, "y": np.tile(y, 6), "p": np.tile(p, 6)}
    order = np.lexsort((ev["x"], ev["y"], ev["t"]))
    ev = {k: v[order] for k, v in ev.items()}
    keep = np.ones(len(order), bool)
    keep[1:] = (np.diff(ev["t"]) != 0) | (np.diff(ev["y"]) != 0) | (np.diff(ev["x"]) != 0)
    return {k: v[keep] for k, v in ev.items()}


def test_evt3_vectors_and_time_high(tmp_path):
    rng = np.random.default_rng(8)
    ev = _rows(rng, 300, 1280, 720, 50_000_000)  # TIME_HIGH changes and one 2^24 us wrap
    path = write_bytes(tmp_path / "rec.raw", evt3_bytes(**ev))
    assert detect_format(path) == "evt3"
    got, sensor = read_events(path)
    assert sensor == (1280, 720)
    assert len(got) == len(ev["t"]) and got["t"].max() > 1 << 24
    _same(got, ev)


def test_evt3_against_expelliarmus(tmp_path):
    expelliarmus = pytest.importorskip("expelliarmus")
    rng = np.random.default_rng(9)
    # within one TIME_HIGH period the two readers must agree on vectors, singles and polarities
    ev = _rows(rng, 200, 1280, 720, 4000)
    path = write_bytes(tmp_path / "vec.raw", evt3_bytes(**ev))
    _same(read_events(path).events, expelliarmus.Wizard(encoding="evt3").read(str(path)))
    # expelliarmus' own files (no TIME_HIGH after the first: the low part's wraps carry; its writer
    # loses whole 4096 us periods between sparse events, so its reader, not the input, is the reference)
    other, _ = _written_by_expelliarmus(expelliarmus, "evt3", tmp_path / "exp.raw",
                                        _events(rng, 300, 1280, 720, duration=10**7))
    _same(read_events(other).events, expelliarmus.Wizard(encoding="evt3").read(str(other)))


def _evt3_by_hand(words):
    """EVT 3.0 decoded word by word, by the rules in read_evt3's docstring: the oracle."""
    out, y, x, pol, low, high, wraps, carries = [], 0, 0, 0, 0, 0, 0, 0
    last_high = last_low = None
    high_since_low = False
    for w in words:
        typ, v = w >> 12, w & 0xFFF
        if typ == 0:
            y = v & 0x7FF
        elif typ == 2:
            out.append(((high + 4096 * wraps + carries) * 4096 + low, v & 0x7FF, y, v >> 11))
        elif typ == 3:
            x, pol = v & 0x7FF, v >> 11
        elif typ in (4, 5):
            width = 12 if typ == 4 else 8
            out += [((high + 4096 * wraps + carries) * 4096 + low, x + i, y, pol) for i in range(width) if v >> i & 1]
            x += width
        elif typ == 6:
            carries += last_low is not None and v < last_low and not high_since_low
            low = last_low = v
            high_since_low = False
        elif typ == 8:
            wraps += last_high is not None and v < last_high
            high = last_high = v
            carries, high_since_low = 0, True
    t, x, y, p = (np.array([e[k] for e in out], dtype=np.int64) for k in range(4))
    return {"t": t, "x": (x + 2**15) % 2**16 - 2**15, "y": y, "p": p}  # x is 16-bit


@pytest.mark.parametrize("kinds", ["all", "no TIME_HIGH", "vectors only"])
def test_evt3_against_a_word_by_word_decoder(tmp_path, kinds):
    """Random word streams (every word type, TIME_HIGH wraps, TIME_LOW carries, events and vectors
    before any ADDR_Y / VECT_BASE_X / time word, a vector run that takes x past 2^15): read_evt3
    equals the plain state machine above, event for event."""
    rng = np.random.default_rng(len(kinds))
    p = np.array([8, 1, 14, 1, 14, 10, 10, 1, 8, 1, 1, 1, 1, 1, 1, 1], float)  # types 0-15
    if kinds == "no TIME_HIGH":
        p[8] = 0
    if kinds == "vectors only":
        p[2] = 0
    typ = rng.choice(16, size=3000, p=p / p.sum())
    typ = np.concatenate([[2, 4, 5, 6, 2, 4], typ, np.full(3000, 4)])  # events first; a long vector run
    words = ((typ << 12) | rng.integers(0, 4096, len(typ))).astype("<u2")
    path = write_bytes(tmp_path / "r.raw", b"% evt 3.0\n% end\n" + words.tobytes())
    assert detect_format(path) == "evt3"
    got, sensor = read_evt3(path)  # as written: read_events would sort the events by t
    ref = _evt3_by_hand(words.tolist())
    assert sensor is None and got.dtype == EVENT_DTYPE and len(got) > 10_000
    _same(got, ref)
    assert got["x"].min() < 0 and (kinds == "no TIME_HIGH") == (got["t"].max() < 1 << 24)


def _evt2_by_hand(words):
    """EVT 2.0 decoded word by word (read_evt2's docstring): the oracle."""
    out, high = [], 0
    for w in words:
        if w >> 28 == 8:
            high = w & 0x0FFFFFFF
        elif w >> 28 <= 1:
            out.append(((high << 6) | (w >> 22 & 0x3F), w >> 11 & 0x7FF, w & 0x7FF, w >> 28))
    return {k: np.array([e[i] for e in out], dtype=np.int64) for i, k in enumerate("txyp")}


def test_evt2_against_a_word_by_word_decoder(tmp_path):
    rng = np.random.default_rng(3)
    typ = np.concatenate([[0, 1], rng.choice([0, 1, 8, 10, 14, 15, 3], size=3000, p=[.3, .3, .2, .05, .05, .05, .05])])
    words = ((typ.astype(np.uint32) << 28) | rng.integers(0, 1 << 28, len(typ)).astype(np.uint32)).astype("<u4")
    path = write_bytes(tmp_path / "r.raw", b"% evt 2.0\n% end\n" + words.tobytes())
    got, _ = read_evt2(path)
    assert got.dtype == EVENT_DTYPE and len(got) > 1500
    _same(got, _evt2_by_hand(words.tolist()))


def test_raw_unknown_encoding(tmp_path):
    path = write_bytes(tmp_path / "r.raw", b"% evt 4.0\n% end\n" + bytes(8))
    with pytest.raises(CorruptFileError, match=r"r\.raw: the Prophesee encoding '4\.0' is not supported, expected EVT"):
        read_events(path)
    path = write_bytes(tmp_path / "s.raw", b"% date today\n% end\n" + bytes(8))
    with pytest.raises(CorruptFileError, match=r"s\.raw: a Prophesee \.raw header that names no encoding"):
        read_events(path)


# -- N-MNIST ---------------------------------------------------------------------------------------------

def test_nmnist_against_tonic(tmp_path):
    rng = np.random.default_rng(10)
    ev = _events(rng, 500, 34, 34, duration=300_000)
    ev["t"] = ev["t"] + np.where(np.arange(500) >= 300, 1 << 13, 0)  # the events after a marker
    path = write_bytes(tmp_path / "00002.bin", nmnist_bytes(**ev, overflow_at=np.array([300])))
    assert detect_format(path) == "nmnist"
    got, sensor = read_events(path)
    assert sensor == (34, 34)
    _same(got, ev)
    tonic = pytest.importorskip("tonic")
    ref = tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
    _same(got, ref)
    sj = pytest.importorskip("spikingjelly.datasets")  # it keeps overflow markers as events: a file without
    plain = {k: v[:300] for k, v in ev.items()}
    path = write_bytes(tmp_path / "00003.bin", nmnist_bytes(**plain))
    _same(read_events(path).events, sj.load_ATIS_bin(str(path)))


def test_nmnist_larger_sensor_is_atis(tmp_path):
    ev = {"t": np.array([1, 2]), "x": np.array([3, 200]), "y": np.array([4, 150]), "p": np.array([1, 0])}
    got, sensor = read_events(write_bytes(tmp_path / "image_0001.bin", nmnist_bytes(**ev)))
    assert sensor == (304, 240)
    _same(got, ev)
    # beyond the ATIS (y 241..255: not N-MNIST/N-Caltech101's; a .bin has no header to blame)
    bad = write_bytes(tmp_path / "bad.bin", nmnist_bytes(t=[1, 2], x=[3, 0], y=[4, 245], p=[1, 0]))
    with pytest.raises(CorruptFileError, match=r"bad\.bin: N-MNIST / N-Caltech101 \.bin event 1 at x=0, y=245 lies "
                                               r"outside the 304x240 sensor, the ATIS's, the largest a \.bin records "
                                               r"\(it has no header\): a damaged file, or not an N-MNIST"):
        read_events(bad)
    # a format named that the file is not: "an", as read aloud
    with pytest.raises(CorruptFileError, match=r"image_0001\.bin: an N-MNIST / N-Caltech101 \.bin file, expected "
                                               r"AEDAT 4\.0"):
        read_events(tmp_path / "image_0001.bin", format="aedat4")


# -- NumPy -------------------------------------------------------------------------------------------------

def test_npz_spikingjelly_and_npy_tonic(tmp_path):
    rng = np.random.default_rng(11)
    ev = _events(rng, 100, 128, 128)
    np.savez(tmp_path / "sj.npz", **{k: v.astype(np.int32) for k, v in ev.items()})
    got, sensor = read_events(tmp_path / "sj.npz")
    assert sensor is None
    _same(got, ev)
    tonic_dtype = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    arr = np.zeros(100, tonic_dtype)
    for k, v in ev.items():
        arr[k] = v
    np.save(tmp_path / "tonic.npy", arr)
    _same(read_events(tmp_path / "tonic.npy").events, ev)
    np.savez(tmp_path / "one.npz", events=arr)
    _same(read_events(tmp_path / "one.npz").events, ev)
    arr["p"] = np.where(arr["p"] > 0, 1, -1)  # -1 / 1 polarities
    np.save(tmp_path / "pm.npy", arr)
    _same(read_events(tmp_path / "pm.npy").events, ev)


def test_unsorted_events_are_sorted(tmp_path):
    ev = {"t": np.array([5, 3, 9]), "x": np.array([1, 2, 3]), "y": np.array([0, 0, 0]), "p": np.array([1, 0, 1])}
    np.savez(tmp_path / "u.npz", **ev)
    got = read_events(tmp_path / "u.npz").events
    assert got["t"].tolist() == [3, 5, 9] and got["x"].tolist() == [2, 1, 3]


# -- bad inputs --------------------------------------------------------------------------------------------

def test_bad_inputs(tmp_path):
    empty = write_bytes(tmp_path / "e.aedat4", b"")
    with pytest.raises(CorruptFileError, match=r"e\.aedat4: empty file"):
        read_events(empty)
    magic = write_bytes(tmp_path / "m.aedat", b"#!AER-DAT1.0\r\n" + bytes(16))
    with pytest.raises(CorruptFileError, match=r"m\.aedat: AEDAT version '1\.0', expected AEDAT 2\.0, 3\.1 or 4\.0"):
        read_events(magic)
    junk = write_bytes(tmp_path / "j.xyz", b"GIF89a....")
    with pytest.raises(CorruptFileError, match=r"j\.xyz: not a recognised event recording .*expected AEDAT"):
        read_events(junk)
    trunc = write_bytes(tmp_path / "t.bin", bytes(12))
    with pytest.raises(CorruptFileError, match=r"t\.bin: truncated N-MNIST \.bin \(12 bytes"):
        read_events(trunc)
    rng = np.random.default_rng(12)
    ev = _events(rng, 10, 304, 240)
    data = dat_bytes(**ev)
    with pytest.raises(CorruptFileError, match=r"d\.dat: truncated Prophesee \.dat"):
        read_events(write_bytes(tmp_path / "d.dat", data[:-3]))
    ev["x"][4] = 400  # outside the 304x240 the header states
    with pytest.raises(CorruptFileError, match=r"o\.dat: Prophesee \.dat event 4 at x=400, y=\d+ lies outside the 304x240"):
        read_events(write_bytes(tmp_path / "o.dat", dat_bytes(**ev)))
    ev["x"][4] = 1
    with pytest.raises(CorruptFileError, match=r"q\.dat: Prophesee \.dat polarity 3, expected 0 or 1"):
        read_events(write_bytes(tmp_path / "q.dat", dat_bytes(**{**ev, "p": np.full(10, 3)})))
    raw = evt2_bytes(**_events(rng, 10, 640, 480))
    with pytest.raises(CorruptFileError, match=r"r\.raw: truncated Prophesee \.raw"):
        read_events(write_bytes(tmp_path / "r.raw", raw[:-1]))
    np.savez(tmp_path / "pol.npz", t=np.arange(3), x=np.zeros(3), y=np.zeros(3), p=np.array([0, 2, 1]))
    with pytest.raises(CorruptFileError, match=r"pol\.npz: polarity 2, expected 0/1"):
        read_events(tmp_path / "pol.npz")
    np.savez(tmp_path / "keys.npz", a=np.arange(3), b=np.arange(3))
    with pytest.raises(CorruptFileError, match=r"keys\.npz: NumPy events without field\(s\) t, x, y, p"):
        read_events(tmp_path / "keys.npz")
    np.save(tmp_path / "plain.npy", np.zeros((4, 4)))
    with pytest.raises(CorruptFileError, match=r"plain\.npy: a NumPy array of float64 \[4, 4\], expected a 1-D structured"):
        read_events(tmp_path / "plain.npy")
    a3 = write_bytes(tmp_path / "big.aedat", aedat3_bytes(t=[1], x=[200], y=[3], p=[1]))
    with pytest.raises(CorruptFileError, match=r"big\.aedat: event at x=200, y=3 lies outside the 128x128"):
        read_events(a3)


def test_format_named_must_match(tmp_path):
    rng = np.random.default_rng(13)
    path = write_bytes(tmp_path / "rec.dat", dat_bytes(**_events(rng, 5, 304, 240)))
    with pytest.raises(CorruptFileError, match=r"rec\.dat: a Prophesee \.dat file, expected AEDAT 4\.0 \(format='aedat4'\)"):
        read_events(path, format="aedat4")
    with pytest.raises(ValueError, match="unknown event format 'mp4'"):
        read_events(path, format="mp4")
    # the header-less N-MNIST format, named, needs no .bin suffix
    ev = _events(rng, 5, 34, 34)
    other = write_bytes(tmp_path / "sample.events", nmnist_bytes(**ev))
    _same(read_events(other, format="nmnist").events, ev)
