"""nmnist, eventfolder and tonic:<Name> datasets, recording_to_frames, and event datasets' class
names reaching the checkpoint. Every folder is written here, format-exact and tiny."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from staa_snn.data import (CIFAR10DVS, DVSGesture, CorruptFileError, dataset_info, events_to_frames, get_dataset,
                           recording_to_frames)
from staa_snn.data.writers import dat_bytes, evt2_bytes, nmnist_bytes, write_bytes


def _ev(rng, n, width, height):
    return {"t": np.sort(rng.integers(0, 300_000, n)), "x": rng.integers(0, width, n),
            "y": rng.integers(0, height, n), "p": rng.integers(0, 2, n)}


def _frames(ev, T, sensor, size, split_by="number"):
    return events_to_frames(ev["t"], ev["x"], ev["y"], ev["p"], T, split_by=split_by, sensor=sensor,
                            size=size).astype(np.float32)


def _write_nmnist(base, per_digit, seed=0, digits=range(10)):
    rng = np.random.default_rng(seed)
    written = {}
    for d in digits:
        for i in range(per_digit):
            ev = _ev(rng, 40 + 5 * i + d, 34, 34)
            path = write_bytes(base / str(d) / f"{d:02d}{i:03d}.bin", nmnist_bytes(**ev))
            written[path.name] = (d, ev)
    return written


def test_nmnist_frames_labels_and_holdout(tmp_path):
    train = _write_nmnist(tmp_path / "Train", 3)
    test = _write_nmnist(tmp_path / "Test", 1, seed=1)
    info = dataset_info("nmnist")
    assert (info.num_classes, info.in_channels, info.size) == (10, 2, 34)
    ds = get_dataset("nmnist", tmp_path, "train", T=3, augment=False, workers=1)
    assert len(ds) == 30 and ds.classes == [str(d) for d in range(10)]
    names = sorted(train)  # sorted by digit folder, then name: the dataset's order
    for i in (0, 7, 29):
        x, label = ds[i]
        digit, ev = train[names[i]]
        assert label == digit
        torch.testing.assert_close(x, torch.from_numpy(_frames(ev, 3, (34, 34), 34)))
    te = get_dataset("nmnist", tmp_path, "test", T=3, size=17, split_by="time", workers=1)
    assert len(te) == 10
    digit, ev = test[sorted(test)[4]]
    torch.testing.assert_close(te[4][0], torch.from_numpy(_frames(ev, 3, (34, 34), 17, "time")))
    # val_per_class: one recording per digit out of Train/, disjoint, the same whatever else
    held = get_dataset("nmnist", tmp_path, "test", T=3, val_per_class=1, val_seed=5, workers=1)
    rest = get_dataset("nmnist", tmp_path, "train", T=3, val_per_class=1, val_seed=5, workers=1)
    assert len(held) == 10 and len(rest) == 20 and sorted(held.targets) == list(range(10))
    assert not set(held.files) & set(rest.files)
    again = get_dataset("nmnist", tmp_path, "test", T=3, val_per_class=1, val_seed=5, workers=1)
    assert again.files == held.files


def test_nmnist_layout_errors(tmp_path):
    _write_nmnist(tmp_path / "Train", 1)
    with pytest.raises(FileNotFoundError, match=r"no Test/: expected Test/<digit>/\*\.bin, or hold a validation"):
        get_dataset("nmnist", tmp_path, "test", T=2)
    with pytest.raises(FileNotFoundError, match="N-MNIST not found at"):
        get_dataset("nmnist", tmp_path / "nothing", "train", T=2)
    with pytest.raises(ValueError, match="val_per_class=1 leaves nothing to train on in class '0'"):
        get_dataset("nmnist", tmp_path, "train", T=2, val_per_class=1)
    # a recording from a bigger sensor (N-Caltech101 coordinates) in N-MNIST
    write_bytes(tmp_path / "Train" / "3" / "big.bin", nmnist_bytes(t=[1, 2], x=[100, 3], y=[4, 5], p=[1, 0]))
    # (a header-less .bin's sensor is read off its events: the error is where they lie, not a header's sensor)
    with pytest.raises(CorruptFileError, match=r"big\.bin: events up to x=100, y=5 lie outside this dataset's "
                                               r"34x34 sensor: another camera's recording"):
        get_dataset("nmnist", tmp_path, "train", T=2, workers=1)



def test_a_missing_test_split_is_said_before_the_training_split_is_converted(tmp_path):
    from staa_snn import cli
    from staa_snn.training import load_config
    from staa_snn.training.builders import build_datasets

    _write_nmnist(tmp_path / "Train", 2)

    def config(*extra):
        return load_config(cli.resolve_config("nmnist"), [f"data.root={tmp_path}", "model.T=2", "data.size=8",
                                                         f"data.cache_dir={tmp_path / 'cache'}", "data.workers=1",
                                                         *extra])

    with pytest.raises(FileNotFoundError, match=r"has no Test/: .*data\.options\.val_per_class=N"):
        build_datasets(config())
    assert not list((tmp_path / "cache").rglob("*.npy"))  # nothing of Train/ converted first
    (tmp_path / "Train").rename(tmp_path / "Test")  # and the other way round
    with pytest.raises(FileNotFoundError, match=r"has no Train/: expected Train/<digit>/\*\.bin$"):
        build_datasets(config())
    assert not list((tmp_path / "cache").rglob("*.npy"))  # nothing of Test/ converted first
    (tmp_path / "Test").rename(tmp_path / "Train")
    train, test = build_datasets(config("data.options.val_per_class=1"))
    assert (len(train), len(test)) == (10, 10) and not set(train.files) & set(test.files)
    assert sorted(test.targets) == list(range(10))

def _event_folder(root, rng):
    """Two classes of 304x240 recordings in three formats (.dat, EVT 2.0 .raw, SpikingJelly .npz)."""
    written = {}
    for split, n in (("train", 3), ("val", 1)):
        for cls in ("background", "cars"):
            for i in range(n):
                ev = _ev(rng, 60 + i, 304, 240)
                kind = ("dat", "raw", "npz")[i % 3]
                path = root / split / cls / f"rec{i}.{kind}"
                if kind == "dat":
                    write_bytes(path, dat_bytes(**ev))
                elif kind == "raw":
                    write_bytes(path, evt2_bytes(**ev, width=304, height=240))
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.savez(path, **ev)
                written[(split, cls, path.name)] = ev
    (root / "train" / "cars" / "notes.txt").write_text("not a recording: ignored")
    return written


def test_eventfolder_any_format(tmp_path):
    rng = np.random.default_rng(2)
    written = _event_folder(tmp_path, rng)
    ds = get_dataset("eventfolder", tmp_path, "train", T=2, size=24, augment=False, workers=1)
    assert ds.classes == ["background", "cars"] and ds.sensor == (304, 240) and len(ds) == 6
    for i, name in enumerate(["rec0.dat", "rec1.raw", "rec2.npz"] * 2):
        cls = ds.classes[ds.targets[i]]
        torch.testing.assert_close(ds[i][0], torch.from_numpy(_frames(written[("train", cls, name)], 2,
                                                                      (304, 240), 24)))
    val = get_dataset("eventfolder", tmp_path, "test", T=2, size=24, workers=1)
    assert len(val) == 2 and val.targets == [0, 1] and val.classes == ds.classes
    torch.testing.assert_close(val[1][0], torch.from_numpy(_frames(written[("val", "cars", "rec0.dat")], 2,
                                                                   (304, 240), 24)))


def test_eventfolder_holdout_sensor_and_errors(tmp_path):
    rng = np.random.default_rng(3)
    _event_folder(tmp_path, rng)
    with pytest.raises(ValueError, match="has its own val/: val_per_class holds"):
        get_dataset("eventfolder", tmp_path, "train", T=2, size=24, val_per_class=1)
    import shutil

    shutil.rmtree(tmp_path / "val")
    held = get_dataset("eventfolder", tmp_path, "test", T=2, size=24, val_per_class=1, workers=1)
    rest = get_dataset("eventfolder", tmp_path, "train", T=2, size=24, val_per_class=1, workers=1)
    assert sorted(held.targets) == [0, 1] and len(rest) == 4 and not set(held.files) & set(rest.files)
    with pytest.raises(FileNotFoundError, match=r"has train/ but no val/ or test/: expected "
                                                r".*/val\|test/<class>/<recording> class folders beside train/"):
        get_dataset("eventfolder", tmp_path, "test", T=2, size=24)
    with pytest.raises(ValueError, match=r"size must be in \[1, 240\] \(the sensor is 304x240\), got 256"):
        get_dataset("eventfolder", tmp_path, "train", T=2, size=256, val_per_class=1)
    # the sensor comes from the first training file; a file of another sensor is refused
    shutil.copytree(tmp_path / "train", tmp_path / "val")
    write_bytes(tmp_path / "train" / "cars" / "rec9.dat", dat_bytes(**_ev(rng, 10, 640, 480), width=640, height=480))
    with pytest.raises(CorruptFileError, match=r"rec9\.dat: recorded on a 640x480 sensor .* dataset's recordings are "
                                               r"304x240"):
        get_dataset("eventfolder", tmp_path, "train", T=2, size=24, workers=1, cache_dir=tmp_path / "c2")
    # NumPy recordings state no sensor: the option gives it
    npz = tmp_path / "np"
    for cls in ("a", "b"):
        for i in range(2):
            (npz / "train" / cls).mkdir(parents=True, exist_ok=True)
            np.savez(npz / "train" / cls / f"{i}.npz", **_ev(rng, 20, 50, 40))
    with pytest.raises(ValueError, match=r"0\.npz: its format states no sensor size; set it with "
                                         r"data\.options\.sensor_size"):
        get_dataset("eventfolder", npz, "train", T=2, size=16, val_per_class=1)
    ds = get_dataset("eventfolder", npz, "train", T=2, size=16, val_per_class=1, sensor_size=[50, 40], workers=1)
    assert ds.sensor == (50, 40) and len(ds) == 2


def test_tonic_nmnist_on_disk(tmp_path):
    tonic = pytest.importorskip("tonic")
    written = _write_nmnist(tmp_path / "NMNIST" / "Train", 2)
    _write_nmnist(tmp_path / "NMNIST" / "Test", 1, seed=1)
    info = dataset_info("tonic:NMNIST")
    assert (info.num_classes, info.size, info.kind) == (10, 34, "events")
    ds = get_dataset("tonic:NMNIST", tmp_path, "train", T=2, augment=False)
    assert len(ds) == 20 and ds.classes == list(tonic.datasets.NMNIST.classes)
    names = sorted(written)
    for i in (0, 19):
        digit, ev = written[names[i]]
        assert ds[i][1] == digit
        torch.testing.assert_close(ds[i][0], torch.from_numpy(_frames(ev, 2, (34, 34), 34)))
    assert len(get_dataset("tonic:NMNIST", tmp_path, "test", T=2)) == 10
    # the same files through this project's own nmnist reader: the same frames
    own = get_dataset("nmnist", tmp_path / "NMNIST", "train", T=2, augment=False, workers=1)
    torch.testing.assert_close(own[5][0], ds[5][0])
    from staa_snn.training import load_config
    from tiny_runs import DIGITS

    assert load_config(DIGITS, ["data.name=tonic:NMNIST", f"data.root={tmp_path}"]).run_name.startswith(
        "tonic-NMNIST_")  # a portable folder name
    with pytest.raises(FileNotFoundError, match=r"tonic's DVSGesture not found under .*never downloads"):
        get_dataset("tonic:DVSGesture", tmp_path, "train", T=2)
    with pytest.raises(ValueError, match="tonic has no event-camera dataset 'SHD'"):
        dataset_info("tonic:SHD")
    _write_nmnist(tmp_path / "only" / "NMNIST" / "Train", 1)  # no Test/: the way out is named
    with pytest.raises(FileNotFoundError, match=r"has no test samples: .*or hold a validation split out of the "
                                                r"training samples with data\.options\.val_per_class=N"):
        get_dataset("tonic:NMNIST", tmp_path / "only", "test", T=2)


def test_recording_to_frames(tmp_path):
    rng = np.random.default_rng(4)
    ev = _ev(rng, 80, 304, 240)
    path = write_bytes(tmp_path / "r.dat", dat_bytes(**ev))
    frames = recording_to_frames(path, T=4, size=48, split_by="time")
    np.testing.assert_array_equal(frames, _frames(ev, 4, (304, 240), 48, "time"))
    assert frames.dtype == np.float32 and frames.shape == (4, 2, 48, 48)
    small = write_bytes(tmp_path / "s.bin", nmnist_bytes(**_ev(rng, 20, 34, 34)))
    with pytest.raises(ValueError, match=r"s\.bin: its file states a 34x34 sensor, too small for the net's 48x48 "
                                         r"input: frames are never up-sampled$"):
        recording_to_frames(small, T=4, size=48, sensor_size=(304, 240))  # the file's own sensor, not sensor_size
    np.savez(tmp_path / "n.npz", **ev)
    with pytest.raises(ValueError, match="states no sensor size, and neither the net nor the caller gives one"):
        recording_to_frames(tmp_path / "n.npz", T=4, size=48)
    np.testing.assert_array_equal(recording_to_frames(tmp_path / "n.npz", T=4, size=48, sensor_size=(304, 240)),
                                  _frames(ev, 4, (304, 240), 48))


def test_event_datasets_name_their_classes():
    assert CIFAR10DVS.classes[:3] == ["airplane", "automobile", "bird"] and len(CIFAR10DVS.classes) == 10
    assert len(DVSGesture.classes) == 11 and DVSGesture.classes[0] == "hand_clapping"
    assert DVSGesture.classes[-1] == "other_gestures"


def test_checkpoint_of_an_event_folder_carries_class_names(tmp_path):
    from staa_snn.training import load_checkpoint, load_config, train
    from tiny_runs import DIGITS

    rng = np.random.default_rng(5)
    _event_folder(tmp_path / "data", rng)
    cfg = load_config(DIGITS, ["data.name=eventfolder", f"data.root={tmp_path / 'data'}", "data.size=8",
                               "data.batch_size=3", "model.T=2", "train.epochs=1", "train.progress=false",
                               "output.tensorboard=false", f"output.dir={tmp_path}", "output.name=ev"])
    result = train(cfg)
    assert result.model.classifier.out_features == 2
    ckpt = load_checkpoint(tmp_path / "ev" / "last.pt")
    assert ckpt["input"]["classes"] == ["background", "cars"] and ckpt["input"]["kind"] == "events"
    assert ckpt["input"]["in_channels"] == 2
    assert ckpt["input"]["sensor"] == [304, 240]  # the camera, for recordings whose files state none


def test_checkpoint_of_nmnist_carries_digits(tmp_path):
    import json

    from staa_snn.export import export_checkpoint
    from staa_snn.models import load_pretrained
    from staa_snn.training import load_checkpoint, load_config, load_trained, train
    from tiny_runs import DIGITS

    _write_nmnist(tmp_path / "data" / "Train", 2)
    cfg = load_config(DIGITS, ["data.name=nmnist", f"data.root={tmp_path / 'data'}", "data.size=8",
                               "data.options.val_per_class=1", "data.batch_size=5", "model.T=2", "train.epochs=1",
                               "train.progress=false", "output.tensorboard=false", f"output.dir={tmp_path}",
                               "output.name=nm"])
    train(cfg)
    ckpt = load_checkpoint(tmp_path / "nm" / "last.pt")
    assert ckpt["input"]["classes"] == [str(d) for d in range(10)] and ckpt["input"]["size"] == 8
    assert ckpt["input"]["sensor"] == [34, 34]
    assert load_trained(tmp_path / "nm" / "last.pt", require_root=False)[1].pretrained_cfg["sensor"] == [34, 34]
    export_checkpoint(tmp_path / "nm" / "last.pt", "safetensors", tmp_path / "out", profile_batches=1)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["input"]["sensor"] == [34, 34]
    assert load_pretrained(tmp_path / "out").pretrained_cfg["sensor"] == [34, 34]
