"""Datasets: format-exact fixtures written with staa_snn.data.writers, read back exactly."""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from staa_snn import data
from staa_snn.data import dvs as dvs_mod
from staa_snn.data import writers
from staa_snn.data.static import digits_split


def reference_frames(t, x, y, p, T, split_by, sensor=128, size=128):
    """Obviously-correct per-event loop: window edges as exact fractions."""
    out = np.zeros((T, 2, size, size), dtype=np.int64)
    n = len(t)
    for i in range(n):
        if split_by == "number":
            q = n // T
            k = T - 1 if q == 0 else min(i // q, T - 1)
        else:
            t0, t1 = int(min(t)), int(max(t))
            span = max(t1 - t0, 1)
            k = next(j for j in range(T) if j == T - 1 or int(t[i]) < t0 + Fraction(span * (j + 1), T))
        out[k, int(p[i]), int(y[i]) * size // sensor, int(x[i]) * size // sensor] += 1
    return out


# --- events to frames ------------------------------------------------------

@pytest.mark.parametrize("split_by", ["number", "time"])
@pytest.mark.parametrize("size", [128, 48, 64])
@pytest.mark.parametrize("n, T", [(997, 7), (5, 8), (300, 1)])
def test_events_to_frames_matches_reference(split_by, size, n, T):
    rng = np.random.default_rng(n + T + size)
    ev = writers.random_events(rng, n, duration=10_000)
    got = data.events_to_frames(ev["t"], ev["x"], ev["y"], ev["p"], T, split_by=split_by, size=size)
    np.testing.assert_array_equal(got, reference_frames(ev["t"], ev["x"], ev["y"], ev["p"], T, split_by, size=size))
    assert got.sum() == n


def test_split_by_number_and_time_by_hand():
    t = np.array([0, 1, 2, 3, 4, 5, 6, 100])
    assert data.frame_indices(t, 3, "number").tolist() == [0, 0, 1, 1, 2, 2, 2, 2]  # N//T = 2, last gets the rest
    # time: windows [0, 33.3), [33.3, 66.7), [66.7, 100]: the middle one is empty, not an error
    assert data.frame_indices(t, 3, "time").tolist() == [0, 0, 0, 0, 0, 0, 0, 2]
    frames = data.events_to_frames(t, np.zeros(8, int), np.zeros(8, int), np.ones(8, int), 3, split_by="time")
    assert frames[:, 1, 0, 0].tolist() == [7, 0, 1] and frames[:, 0].sum() == 0  # ON -> channel 1


def test_downsample_64_is_2x2_sum_pooling():
    ev = writers.random_events(np.random.default_rng(1), 5000)
    full = data.events_to_frames(ev["t"], ev["x"], ev["y"], ev["p"], 4)
    half = data.events_to_frames(ev["t"], ev["x"], ev["y"], ev["p"], 4, size=64)
    pooled = full.reshape(4, 2, 64, 2, 64, 2).sum(axis=(3, 5))
    np.testing.assert_array_equal(half, pooled)


def test_events_to_frames_errors():
    with pytest.raises(ValueError, match="split_by must be one of"):
        data.frame_indices(np.arange(4), 2, "count")
    with pytest.raises(ValueError, match=r"coordinates must lie in \[0, 128\)"):
        data.events_to_frames(np.arange(2), np.array([0, 128]), np.zeros(2, int), np.zeros(2, int), 1)


# --- AEDAT readers ---------------------------------------------------------

def test_aedat2_exact_with_special_events(tmp_path):
    ev = writers.random_events(np.random.default_rng(2), 2000)
    raw = writers.aedat2_bytes(**ev, special=np.array([0, 10, 1999]))
    assert raw.startswith(b"#!AER-DAT2.0\r\n")
    got = data.read_aedat2(writers.write_bytes(tmp_path / "a.aedat", raw))
    for k in "txyp":
        np.testing.assert_array_equal(got[k], ev[k])


def test_aedat2_address_bits_by_hand(tmp_path):
    # raw x = 5, raw y = 9, bit0 = 1 (OFF): address = 9 << 8 | 5 << 1 | 1
    body = np.array([[9 << 8 | 5 << 1 | 1, 42], [0x8000 | 3, 43]], dtype=">u4").tobytes()
    got = data.read_aedat2(writers.write_bytes(tmp_path / "h.aedat", b"#!AER-DAT2.0\r\n# x\r\n" + body))
    assert {k: v.tolist() for k, v in got.items()} == {"t": [42], "x": [127 - 9], "y": [127 - 5], "p": [0]}


def test_aedat2_from_other_cameras_is_refused_or_read_as_asked(tmp_path):
    """A DAVIS240C recording (another address layout) is not read as a DVS128 (it once came back as
    99,761 events on one row): refused by its AEChip line, or, without one, by address bits above 15;
    camera='davis240' reads it exactly, dropping the APS samples."""
    rng = np.random.default_rng(4)
    n = 500
    ev = {"t": np.sort(rng.integers(0, 10**6, n)), "x": rng.integers(0, 240, n), "y": rng.integers(0, 180, n),
          "p": rng.integers(0, 2, n)}
    davis = writers.write_bytes(tmp_path / "davis.aedat", writers.davis_aedat2_bytes(**ev, aps_every=50))
    with pytest.raises(data.CorruptFileError, match=r"davis.aedat: recorded with a eu.seebetter.ini.chips.davis."
                                                    r"DAVIS240C \(its header's AEChip\), not a DVS128"):
        data.read_aedat2(davis)
    anonymous = writers.write_bytes(tmp_path / "anon.aedat", writers.davis_aedat2_bytes(**ev, chip=None))
    with pytest.raises(data.CorruptFileError, match=r"anon.aedat: address 0x[0-9a-f]{8} uses bits above 15"):
        data.read_aedat2(anonymous)
    got = data.read_aedat2(davis, camera="davis240")
    for k in "txyp":
        np.testing.assert_array_equal(got[k], ev[k])
    with pytest.raises(data.CorruptFileError, match=r"outside the 240x180 sensor of a davis240"):
        data.read_aedat2(writers.write_bytes(tmp_path / "big.aedat", writers.davis_aedat2_bytes(
            t=[1], x=[300], y=[10], p=[1], chip="eu.seebetter.ini.chips.davis.Davis346B")), camera="davis240")
    dvs = writers.write_bytes(tmp_path / "dvs.aedat", writers.aedat2_bytes(
        **writers.random_events(rng, 50), chip="ch.unizh.ini.jaer.chip.retina.DVS128"))
    assert len(data.read_aedat2(dvs)["t"]) == 50  # the DVS128 chip line is accepted
    with pytest.raises(data.CorruptFileError, match="not a DAVIS camera; read it with camera='dvs128'"):
        data.read_aedat2(dvs, camera="davis346")


def test_aedat3_exact_packets_overflow_special_invalid(tmp_path):
    ev = writers.random_events(np.random.default_rng(3), 3000, t0=2**31 - 400_000)
    raw = writers.aedat3_bytes(**ev, packet_size=256, invalid=np.array([5, 2000]), spare_capacity=3)
    assert raw.count(b"#!END-HEADER\r\n") == 1
    got = data.read_aedat3(writers.write_bytes(tmp_path / "g.aedat", raw))
    assert (ev["t"] >= 2**31).any() and (ev["t"] < 2**31).any()  # the fixture crosses an overflow
    for k in "txyp":
        np.testing.assert_array_equal(got[k], ev[k])


def test_aedat3_bits_by_hand(tmp_path):
    d = (17 << 17) | (33 << 2) | (1 << 1) | 1  # x 17, y 33, ON, valid
    pkt = data.aedat._PACKET.pack(1, 1, 8, 4, 2, 1, 1, 1) + np.array([[d, 5]], "<u4").tobytes()
    got = data.read_aedat3(writers.write_bytes(tmp_path / "h.aedat", b"#!AER-DAT3.1\r\n#!END-HEADER\r\n" + pkt))
    assert {k: v.tolist() for k, v in got.items()} == {"t": [2 << 31 | 5], "x": [17], "y": [33], "p": [1]}


@pytest.mark.parametrize("which", ["aedat2", "aedat3"])
def test_truncated_aedat_names_the_file(tmp_path, which):
    ev = writers.random_events(np.random.default_rng(4), 100)
    raw = (writers.aedat2_bytes if which == "aedat2" else writers.aedat3_bytes)(**ev)
    path = writers.write_bytes(tmp_path / "cut.aedat", raw[:-5])
    reader = data.read_aedat2 if which == "aedat2" else data.read_aedat3
    with pytest.raises(data.CorruptFileError, match=r"cut\.aedat: .*truncated"):
        reader(path)
    with pytest.raises(data.CorruptFileError, match="not an AER-DAT"):
        reader(writers.write_bytes(tmp_path / "txt.aedat", b"hello"))


# --- CIFAR10-DVS -----------------------------------------------------------

def make_cifar10dvs(root, per_class=10, n_events=400, seed=0):
    rng = np.random.default_rng(seed)
    events = {}
    for cls in dvs_mod.CIFAR10DVS_CLASSES:
        for i in range(per_class):
            ev = writers.random_events(rng, n_events + i)
            events[(cls, i)] = ev
            writers.write_bytes(Path(root) / cls / f"cifar10_{cls}_{i}.aedat",
                                writers.aedat2_bytes(**ev, special=np.array([3])))
    return events


@pytest.fixture(scope="module")
def dvs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10dvs")
    return root, make_cifar10dvs(root, per_class=11)


def test_cifar10dvs_split_labels_and_frames(dvs_root, tmp_path):
    root, events = dvs_root
    train = data.get_dataset("cifar10dvs", root, "train", T=4, size=48, augment=False, cache_dir=tmp_path, workers=1)
    test = data.get_dataset("cifar10dvs", root, "test", T=4, size=48, cache_dir=tmp_path, workers=1)
    assert (len(train), len(test)) == (100, 10)  # round(11 / 10) = 1 test recording per class
    # sorted by the numeric index: i = 10 is last (a lexicographic sort would put it after 1)
    assert Path(test.files[0]).name == "cifar10_airplane_10.npy"
    assert sorted(test.targets) == list(range(10)) and train.targets.count(3) == 10
    x, y = test[3]
    ev = events[(dvs_mod.CIFAR10DVS_CLASSES[3], 10)]
    assert y == 3 and x.dtype == torch.float32 and x.shape == (4, 2, 48, 48)
    want = reference_frames(ev["t"], ev["x"], ev["y"], ev["p"], 4, "number", size=48)
    np.testing.assert_array_equal(x.numpy(), want)
    first = data.get_dataset("cifar10dvs", root, "test", T=4, size=48, cache_dir=tmp_path, holdout="first")
    assert [Path(f).stem for f in first.files[:1]] == ["cifar10_airplane_0"]


def test_cifar10dvs_cache_reused_and_keyed(dvs_root, tmp_path, monkeypatch):
    root, _ = dvs_root
    a = data.get_dataset("cifar10dvs", root, "test", T=3, size=32, cache_dir=tmp_path, workers=1)
    assert a.converted == 10 and (a.cache / "cache.json").is_file()

    def boom(*args, **kwargs):
        raise AssertionError("converted although cached")

    monkeypatch.setattr(dvs_mod, "convert_source", boom)
    b = data.get_dataset("cifar10dvs", root, "test", T=3, size=32, cache_dir=tmp_path, workers=1)
    assert b.converted == 0 and torch.equal(a[0][0], b[0][0])
    monkeypatch.undo()
    for changed in ({"T": 5, "size": 32}, {"T": 3, "size": 16}, {"T": 3, "size": 32, "split_by": "time"}):
        c = data.get_dataset("cifar10dvs", root, "test", cache_dir=tmp_path, workers=1, **changed)
        assert c.converted == 10 and c.cache != a.cache


def test_default_cache_under_root_and_parallel_workers_agree(tmp_path):
    make_cifar10dvs(tmp_path, per_class=2, n_events=300)
    par = data.get_dataset("cifar10dvs", tmp_path, "train", T=2, size=64, augment=False, workers=2)
    assert par.cache.parent == tmp_path / "frames_cache"
    seq = data.get_dataset("cifar10dvs", tmp_path, "train", T=2, size=64, augment=False, workers=1,
                           cache_dir=tmp_path / "other")
    assert seq.converted == par.converted == 10
    for i in range(len(par)):
        assert torch.equal(par[i][0], seq[i][0])


def test_spikingjelly_npz_layout(tmp_path):
    rng = np.random.default_rng(5)
    ev = {}
    for cls in dvs_mod.CIFAR10DVS_CLASSES:
        for i in range(2):
            ev[cls, i] = writers.random_events(rng, 50)
            d = tmp_path / "events_np" / cls
            d.mkdir(parents=True, exist_ok=True)
            np.savez(d / f"cifar10_{cls}_{i}.npz", **ev[cls, i])
    ds = data.get_dataset("cifar10dvs", tmp_path, "test", T=2, size=128, cache_dir=tmp_path / "c", workers=1)
    x, y = ds[9]
    e = ev["truck", 1]
    assert y == 9
    np.testing.assert_array_equal(x.numpy(), reference_frames(e["t"], e["x"], e["y"], e["p"], 2, "number"))


def test_cifar10dvs_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected one folder per class.*figshare"):
        data.get_dataset("cifar10dvs", tmp_path / "nowhere")
    make_cifar10dvs(tmp_path, per_class=3, n_events=50)
    for f in (tmp_path / "cat").iterdir():
        f.unlink()
    with pytest.raises(FileNotFoundError, match=r"class folder .*cat has no \*\.aedat files"):
        data.get_dataset("cifar10dvs", tmp_path)


def test_corrupt_file_fails_or_is_skipped_without_partial_cache(tmp_path):
    make_cifar10dvs(tmp_path, per_class=2, n_events=80)
    bad = tmp_path / "dog" / "cifar10_dog_0.aedat"
    bad.write_bytes(bad.read_bytes()[:-3])
    cache = tmp_path / "cache"
    with pytest.raises(data.CorruptFileError, match="cifar10_dog_0.aedat"):
        data.get_dataset("cifar10dvs", tmp_path, "train", T=2, cache_dir=cache, workers=1)
    with pytest.warns(UserWarning, match="skipping a bad file: .*cifar10_dog_0.aedat"):
        ds = data.get_dataset("cifar10dvs", tmp_path, "train", T=2, cache_dir=cache, workers=2, skip_bad_files=True)
    assert len(ds) == 9 and 5 not in ds.targets
    left = {p.name for p in cache.rglob("*") if p.is_file()}
    assert not any(".tmp" in n for n in left) and "cifar10_dog_0.npy" not in left


# --- DVS128 Gesture ----------------------------------------------------------

def make_gesture(root, seed=0):
    rng = np.random.default_rng(seed)
    recs, train, test = {}, [], []
    for user in (1, 2, 24):
        for light in ("fluorescent", "lab"):
            name = f"user{user:02d}_{light}"
            ev = writers.random_events(rng, 3000, t0=2**31 - 1_000_000, duration=2_000_000)
            rows = [(c, 2**31 - 900_000 + 300_000 * j, 2**31 - 700_000 + 300_000 * j)
                    for j, c in enumerate(rng.permutation(11)[:4] + 1)]
            recs[name] = (ev, rows)
            (test if user >= 24 else train).append(name)
    writers.write_gesture(root, recs, train, test)
    return recs, train, test


def test_dvsgesture_samples_exact(tmp_path):
    recs, train_names, _ = make_gesture(tmp_path)
    train = data.get_dataset("dvsgesture", tmp_path, "train", T=3, size=64, augment=False,
                             cache_dir=tmp_path / "c", workers=1)
    test = data.get_dataset("dvsgesture", tmp_path / "DvsGesture", "test", T=3, size=64, cache_dir=tmp_path / "c")
    assert (len(train), len(test)) == (16, 8)
    ev, rows = recs[train_names[1]]
    for j, (cls, start, end) in enumerate(rows):
        x, y = train[4 + j]
        keep = (ev["t"] >= start) & (ev["t"] < end)
        want = reference_frames(ev["t"][keep], ev["x"][keep], ev["y"][keep], ev["p"][keep], 3, "number", size=64)
        assert y == cls - 1
        np.testing.assert_array_equal(x.numpy(), want)


def test_dvsgesture_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"DvsGesture/ folder of the IBM release.*trials_to_train.txt"):
        data.get_dataset("dvsgesture", tmp_path)
    make_gesture(tmp_path)
    csv = tmp_path / "DvsGesture" / "user02_lab_labels.csv"
    lines = csv.read_text().splitlines()
    lines[2] = "3,12x,500"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(data.CorruptFileError, match=r"user02_lab_labels.csv: line 3: expected three integers"):
        data.get_dataset("dvsgesture", tmp_path, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()  # nothing written before the inputs were checked
    with pytest.raises(data.CorruptFileError, match="expected a class in 1..11"):
        data.read_gesture_labels(writers.write_bytes(tmp_path / "l.csv", b"class,startTime_usec,endTime_usec\n12,1,2\n"))


# --- static images ---------------------------------------------------------

def test_digits_split_and_pixels():
    from sklearn.datasets import load_digits

    images, labels, train, test = digits_split()
    assert (train.sum(), test.sum()) == (1442, 355) and not (train & test).any() and (train | test).all()
    for c in range(10):  # every fifth sample of each class: a stratified 20%
        assert abs(test[labels == c].mean() - 0.2) < 0.01
    ds = data.get_dataset("digits", split="test")
    idx = np.flatnonzero(test)[7]
    x, y = ds[7]
    assert y == load_digits().target[idx]
    torch.testing.assert_close(x[0], torch.from_numpy(load_digits().images[idx] / 16).float(), rtol=0, atol=0)
    big = data.get_dataset("digits", split="test", size=32)
    assert big[7][0].shape == (1, 32, 32) and 0 <= big[7][0].min() and big[7][0].max() <= 1


def cifar_fixture(root, name, py2, seed=0):
    rng = np.random.default_rng(seed)
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if name == "cifar10" else ["train", "test"]
    k = 10 if name == "cifar10" else 100
    imgs = {f: rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8) for f in files}
    labels = {f: rng.integers(0, k, 3).tolist() for f in files}
    writers.write_cifar(root, name, imgs, labels, [f"c{i}" for i in range(k)], py2=py2)
    return files, imgs, labels


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("py2", [True, False], ids=["bytes-keys", "str-keys"])
def test_cifar_exact(tmp_path, name, py2):
    files, imgs, labels = cifar_fixture(tmp_path, name, py2)
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in data.NORMALIZATION[name])
    train = data.get_dataset(name, tmp_path, "train", augment=False)
    test = data.get_dataset(name, tmp_path, "test")
    assert len(train) == 3 * (len(files) - 1) and len(test) == 3
    assert train.classes[:2] == ["c0", "c1"]
    want = np.concatenate([imgs[f] for f in files[:-1]])
    for i in (0, len(train) - 1):
        x, y = train[i]
        torch.testing.assert_close(x, (torch.from_numpy(want[i]).float() / 255 - mean) / std)
        assert y == [v for f in files[:-1] for v in labels[f]][i]
    folder = tmp_path / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    assert len(data.get_dataset(name, folder, "test")) == 3  # the folder itself works too
    aug = data.get_dataset(name, tmp_path, "train")
    assert aug[0][0].shape == (3, 32, 32) and not torch.equal(aug[0][0], train[0][0])


@pytest.mark.parametrize("variant", ["numpy1-names-protocol2", "numpy2-names-protocol5"])
def test_cifar_repickled_under_either_numpy_loads(tmp_path, variant):
    """Re-pickles of the release by Python 3 under numpy 1 (numpy.core.multiarray) or numpy 2
    (numpy._core.multiarray), with the old or the newest protocol, load through the restricted unpickler."""
    files, imgs, labels = cifar_fixture(tmp_path, "cifar10", py2=False)
    folder = tmp_path / "cifar-10-batches-py"
    for f in files:
        import pickle

        with open(folder / f, "rb") as fh:
            d = pickle.load(fh)
        raw = pickle.dumps(d, protocol=2 if variant.endswith("2") else 5)
        if variant.startswith("numpy1"):
            assert b"numpy._core.multiarray\n" in raw or b"numpy.core.multiarray\n" in raw
            raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
        (folder / f).write_bytes(raw)
    test = data.get_dataset("cifar10", tmp_path, "test", augment=False)
    assert len(test) == 3 and [y for _, y in test] == labels["test_batch"]


def test_a_crafted_cifar_pickle_runs_no_code(tmp_path, capsys):
    """A test_batch whose payload would create a file is refused before anything of it runs, with a
    one-line error naming the file and the forbidden global (torchvision's loader runs it)."""
    import pickle

    from staa_snn import cli

    cifar_fixture(tmp_path, "cifar10", py2=True)
    marker = tmp_path / "owned"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

    bad = tmp_path / "cifar-10-batches-py" / "test_batch"
    bad.write_bytes(pickle.dumps({"data": Payload(), "labels": [0]}, protocol=2))
    with pytest.raises(data.CorruptFileError, match=r"test_batch: refused: the pickle references builtins.exec, "
                                                    r"which a CIFAR file never does"):
        data.get_dataset("cifar10", tmp_path, "test")
    assert not marker.exists()
    assert cli.main(["eval", "--checkpoint", str(tmp_path / "missing.pt")]) == 2  # (one line for any bad input)
    capsys.readouterr()
    assert cli.main(["profile", "--config", "cifar10_vgg13_t2", f"data.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "refused: the pickle references builtins.exec" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


def test_cifar_missing_names_layout_and_url(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py.*toronto.*missing data_batch_1"):
        data.get_dataset("cifar10", tmp_path)


def test_image_folder_jpeg(tmp_path):
    colors = {"n01": (200, 30, 60), "n02": (10, 120, 250)}
    writers.write_image_folder(tmp_path, {s: {c: [np.full((40, 48, 3), v, np.uint8)] * 2 for c, v in colors.items()}
                                          for s in ("train", "val")})
    ds = data.get_dataset("imagenet", tmp_path, "test", size=24)
    assert len(ds) == 4 and ds.classes == ["n01", "n02"] and [y for _, y in ds] == [0, 0, 1, 1]
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in data.NORMALIZATION["imagenet"])
    x, _ = ds[2]
    assert x.shape == (3, 24, 24)
    torch.testing.assert_close(x, ((torch.tensor(colors["n02"]).view(3, 1, 1) / 255 - mean) / std).expand(3, 24, 24),
                               atol=3 / 255 / 0.224, rtol=0)  # a solid JPEG decodes to within a few levels
    assert data.get_dataset("imagefolder", tmp_path, "train", size=16)[0][0].shape == (3, 16, 16)
    (tmp_path / "train" / "n03").mkdir()
    with pytest.raises(FileNotFoundError, match=r"class folder\(s\) with no files in .*train: n03"):
        data.get_dataset("imagenet", tmp_path, "test")
    with pytest.raises(FileNotFoundError, match=r"expected .*train/<class>/<image>.*image-net.org"):
        data.get_dataset("imagenet", tmp_path / "nothing")


def test_get_dataset_errors():
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'; valid names: cifar10, cifar100, cifar10dvs"):
        data.get_dataset("cifar")
    with pytest.raises(ValueError, match="split must be one of"):
        data.get_dataset("digits", split="val")
    with pytest.raises(ValueError, match="T and split_by apply to event datasets only"):
        data.get_dataset("digits", T=4)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['holdout'\] for dataset 'digits'"):
        data.get_dataset("digits", holdout="first")
    with pytest.raises(ValueError, match="needs root="):
        data.get_dataset("cifar10")
    with pytest.raises(ValueError, match="T must be a positive integer"):
        data.get_dataset("cifar10dvs", "/nonexistent", T=0)


def test_list_datasets_and_info():
    assert data.list_datasets() == sorted(["digits", "cifar10", "cifar100", "imagenet", "imagefolder",
                                           "cifar10dvs", "dvsgesture", "nmnist", "eventfolder"])
    info = data.dataset_info("cifar10dvs")
    assert (info.kind, info.num_classes, info.in_channels, info.size, info.T) == ("events", 10, 2, 48, 16)


# --- augmentation ------------------------------------------------------------

def test_cutout_zeroes_a_clipped_square():
    torch.manual_seed(0)
    sizes = []
    for _ in range(200):
        out = data.Cutout(16)(torch.ones(3, 32, 32))
        hole = out[0] == 0
        rows, cols = hole.any(1).nonzero(), hole.any(0).nonzero()
        assert (out == 0).all(0).equal(hole)  # same hole in every channel
        assert hole.sum() == len(rows) * len(cols) and len(rows) <= 16 and len(cols) <= 16  # a rectangle
        sizes.append(int(hole.sum()))
    assert max(sizes) == 256 and min(sizes) < 256  # whole squares inside, clipped at the border


def test_frame_flip_and_roll():
    x = torch.arange(2 * 2 * 6 * 6, dtype=torch.float32).view(2, 2, 6, 6)
    flips = sum(torch.equal(data.RandomFlipFrames()(x), x.flip(-1)) for _ in range(400))
    assert abs(flips / 400 - 0.5) < 5 * 0.025
    roll = data.RandomRollFrames(2)
    for _ in range(20):
        y = roll(x)
        assert any(torch.equal(y, x.roll((a, b), (-2, -1))) for a in range(-2, 3) for b in range(-2, 3))


def test_mixup_cutmix_targets_match_the_mix():
    torch.manual_seed(1)
    x = torch.rand(6, 3, 2, 8, 8)  # an event batch [B, T, C, H, W]
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    mix = data.MixupCutmix(5, mixup_alpha=0.5, label_smoothing=0.1)
    xm, t = mix(x, y)
    torch.testing.assert_close(t.sum(1), torch.ones(6))
    lam = float((t[1, 1] - 0.02) / 0.9)  # t[1] = lam * smooth(1) + (1 - lam) * smooth(4): 0.02 + 0.9 lam
    torch.testing.assert_close(xm, lam * x + (1 - lam) * x.flip(0))
    cut = data.MixupCutmix(5, cutmix_alpha=1.0)
    for _ in range(10):
        xc, t = cut(x, y)
        from_partner = (xc != x).float().mean().item()  # x and its partner never tie on random floats
        assert abs(t[1, 1].item() - (1 - from_partner)) < 1e-6 and (xc == x.flip(0))[xc != x].all()
    off = data.MixupCutmix(5)
    xo, t = off(x, y)
    assert xo is x and torch.equal(t, torch.nn.functional.one_hot(y, 5).float())


def _solid_folder(root, splits: dict[str, dict[str, int]], size=(8, 8)) -> dict:
    """PNG image folders (lossless): ``{split: {class: count}}``, image ``i`` of class ``c`` a solid
    colour that names both; returns ``{(split, class, i): colour}``."""
    colours, tree = {}, {}
    for split, classes in splits.items():
        tree[split] = {}
        for k, (name, count) in enumerate(sorted(classes.items())):
            imgs = []
            for i in range(count):
                colour = (10 * k + 5, 7 * i + 3, 200 if split == "train" else 100)
                colours[(split, name, i)] = colour
                imgs.append(np.full((*size, 3), colour, np.uint8))
            tree[split][name] = imgs
    writers.write_image_folder(root, tree, ext="png")
    return colours


def test_image_folder_classes_come_from_training(tmp_path):
    _solid_folder(tmp_path, {"train": {"cat": 2, "dog": 2, "eel": 2}, "val": {"cat": 1, "eel": 1}})
    val = data.get_dataset("imagefolder", tmp_path, "test")
    assert val.classes == ["cat", "dog", "eel"]
    assert [y for _, y in val] == [0, 2]  # eel is class 2, as in training (not 1)
    (tmp_path / "val" / "fox").mkdir()
    writers.write_image_folder(tmp_path, {"val": {"fox": [np.zeros((8, 8, 3), np.uint8)]}}, ext="png")
    with pytest.raises(ValueError, match=r"class folder\(s\) fox in .*val are not in .*train \(classes: cat, dog, eel\)"):
        data.get_dataset("imagefolder", tmp_path, "test")
    one = tmp_path / "one"
    _solid_folder(one, {"train": {"cat": 2}, "val": {"cat": 1}})
    with pytest.raises(ValueError, match=r"has one class folder \(cat\): a classifier needs at least 2 classes"):
        data.get_dataset("imagefolder", one, "train")


def test_val_per_class_holds_out_a_seeded_stratified_split(tmp_path):
    _solid_folder(tmp_path, {"train": {"a": 6, "b": 5, "c": 7}})
    get = lambda split, **kw: data.get_dataset("imagefolder", tmp_path, split, val_per_class=2, **kw)  # noqa: E731
    train, val = get("train"), get("test")
    assert len(train) == 12 and len(val) == 6
    assert sorted(val.targets) == [0, 0, 1, 1, 2, 2] and train.classes == val.classes == ["a", "b", "c"]
    held, kept = {p for p, _ in val.samples}, {p for p, _ in train.samples}
    every = {str(p) for p in (tmp_path / "train").rglob("*.png")}
    assert not held & kept and held | kept == every
    assert {p for p, _ in get("test").samples} == held  # the same split every time
    other = {p for p, _ in get("test", val_seed=1).samples}
    assert other != held and len(other) == 6
    # the labels follow the files: a held-out image of class b is b's colour
    x, y = val[2]
    assert y == 1 and val.samples[2][0].startswith(str(tmp_path / "train" / "b"))
    with pytest.raises(ValueError, match=r"val_per_class=5 leaves nothing to train on in class 'b' \(5 images\)"):
        data.get_dataset("imagefolder", tmp_path, "train", val_per_class=5)
    with pytest.raises(ValueError, match=r"val_per_class must be a positive number"):
        data.get_dataset("imagefolder", tmp_path, "train", val_per_class=0)
    _solid_folder(tmp_path / "both", {"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1}})
    with pytest.raises(ValueError, match=r"has its own val/: val_per_class holds a validation split out of train/ only"):
        data.get_dataset("imagefolder", tmp_path / "both", "test", val_per_class=1)
    with pytest.raises(FileNotFoundError, match=r"or hold a validation split out of train/ with data.options.val_per_class"):
        data.get_dataset("imagefolder", tmp_path, "test")


def test_small_images_get_the_cifar_recipe(tmp_path):
    from torchvision.transforms import v2

    colours = _solid_folder(tmp_path / "small", {"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1}}, size=(32, 32))
    _solid_folder(tmp_path / "large", {"train": {"a": 1, "b": 1}, "val": {"a": 1, "b": 1}}, size=(80, 96))
    kinds = lambda ds: [type(op).__name__ for op in ds.transform.transforms]  # noqa: E731
    train = data.get_dataset("imagefolder", tmp_path / "small", "train")
    assert kinds(train) == ["ToImage", "FitSize", "RandomCrop", "RandomHorizontalFlip", "AutoAugment", "ToDtype",
                            "Normalize", "Cutout"]
    crop = train.transform.transforms[2]
    assert crop.padding == [4, 4, 4, 4] and train[0][0].shape == (3, 32, 32)  # the images' own size by default
    quick = data.get_dataset("imagefolder", tmp_path / "small", "train", autoaugment=False, cutout=0)
    assert kinds(quick) == ["ToImage", "FitSize", "RandomCrop", "RandomHorizontalFlip", "ToDtype", "Normalize"]
    assert data.get_dataset("imagefolder", tmp_path / "small", "train", cutout=8).transform.transforms[-1].length == 8
    # evaluation: the image as it is, normalised by the given statistics (PNG: exact)
    mean, std = (0.5, 0.25, 0.125), (0.5, 0.25, 0.2)
    val = data.get_dataset("imagefolder", tmp_path / "small", "test", mean=mean, std=std)
    assert kinds(val) == ["ToImage", "FitSize", "ToDtype", "Normalize"]
    x, y = val[1]
    expect = (torch.tensor(colours[("val", "b", 0)], dtype=torch.float32) / 255 - torch.tensor(mean)) / torch.tensor(std)
    assert y == 1
    torch.testing.assert_close(x, expect.view(3, 1, 1).expand(3, 32, 32))
    large = data.get_dataset("imagefolder", tmp_path / "large", "train")
    assert isinstance(large.transform.transforms[1], v2.RandomResizedCrop) and large[0][0].shape == (3, 224, 224)
    assert data.get_dataset("imagefolder", tmp_path / "large", "train", recipe="cifar", size=32)[0][0].shape == (3, 32, 32)
    assert isinstance(data.get_dataset("imagefolder", tmp_path / "small", "train", recipe="imagenet",
                                       size=32).transform.transforms[1], v2.RandomResizedCrop)
    with pytest.raises(ValueError, match=r"autoaugment apply to the CIFAR recipe only; 'imagefolder' gets the imagenet"):
        data.get_dataset("imagefolder", tmp_path / "large", "train", autoaugment=False)
    with pytest.raises(ValueError, match=r"recipe='cifar' applies to image folders \(imagefolder, imagenet\); 'digits'"):
        data.get_dataset("digits", split="train", recipe="cifar")
    with pytest.raises(ValueError, match=r"unknown recipe 'fast'; valid recipes: auto, cifar, imagenet"):
        data.get_dataset("imagefolder", tmp_path / "small", "train", recipe="fast")
    with pytest.raises(ValueError, match=r"mean must be 3 numbers, one per channel, got \(0.5, 0.5\)"):
        data.get_dataset("imagefolder", tmp_path / "small", "train", mean=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"std must be positive"):
        data.get_dataset("imagefolder", tmp_path / "small", "train", std=(0.5, 0, 0.5))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['nosuch'\] for dataset 'imagefolder'; valid dataset-specific "
                                         r"options: \['skip_bad_files', 'val_per_class', 'val_seed'\]"):
        data.get_dataset("imagefolder", tmp_path / "small", "train", nosuch=3)
