"""predict and stream take every recording read_events reads (AEDAT 4, Prophesee .dat, N-MNIST
.bin here) and print the net's class names; a recording from a sensor smaller than the net's
input is refused in one line naming both sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from staa_snn import cli, inference
from staa_snn.data import CorruptFileError, DataError, eventsets, recording_to_frames, recordings
from staa_snn.data.writers import dat_bytes, nmnist_bytes, write_bytes
from staa_snn.models import create_model

CLASSES = ["zero", "one", "two"]


@pytest.fixture()
def net(monkeypatch):
    torch.manual_seed(3)
    net = create_model("vgg_small", num_classes=3, T=3, in_channels=2, neuron="staa").eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    net.pretrained_cfg = {"classes": CLASSES, "normalization": None, "size": 16, "in_channels": 2,
                          "kind": "events", "T": 3}
    monkeypatch.setattr(inference, "load_net", lambda source, **kw: net)
    return net


def _events(seed, n, width, height):
    rng = np.random.default_rng(seed)
    return {"t": np.sort(rng.integers(0, 300_000, n)), "x": rng.integers(0, width, n),
            "y": rng.integers(0, height, n), "p": rng.integers(0, 2, n)}


def _aedat4(path, ev, size):
    dv = pytest.importorskip("dv_processing")
    pytest.importorskip("lz4")
    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_test", size,
                                                                                      dv.CompressionType.LZ4))
    store = dv.EventStore()
    for t, x, y, p in zip(*(ev[k] for k in "txyp")):
        store.push_back(int(t) + 1_600_000_000_000_000, int(x), int(y), bool(p))
    writer.writeEvents(store)
    del writer
    return path


def test_predict_and_stream_take_aedat4_prophesee_and_nmnist(net, tmp_path, capsys):
    files = [write_bytes(tmp_path / "cars.dat", dat_bytes(**_events(1, 600, 304, 240))),
             write_bytes(tmp_path / "digit.bin", nmnist_bytes(**_events(2, 500, 34, 34)))]
    try:
        files.append(_aedat4(tmp_path / "dvx.aedat4", _events(3, 400, 320, 240), (320, 240)))
    except pytest.skip.Exception:
        pass  # the dev extra has dv-processing; without it the other two formats still run
    capsys.readouterr()
    assert cli.main(["predict", "--weights", "any", *map(str, files), "--json", str(tmp_path / "p.json")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(files) and all(line.split(": ")[1].split()[0] in CLASSES for line in printed)
    got = json.loads((tmp_path / "p.json").read_text())
    for path, entry in zip(files, got["predictions"] if isinstance(got, dict) else got):
        x = torch.from_numpy(recording_to_frames(path, T=3, size=16))
        assert x.shape == (3, 2, 16, 16) and float(x.sum()) == {"cars.dat": 600, "digit.bin": 500}.get(path.name, 400)
        with torch.no_grad():
            probs = torch.softmax(net(x.unsqueeze(0)), -1)[0]
        assert entry["file"] == str(path)
        assert [name for name, _ in entry["predictions"]] == [CLASSES[i] for i in probs.argsort(descending=True)]
        assert entry["predictions"][0][1] == pytest.approx(float(probs.max()), abs=1e-6)
    for path in files:
        assert cli.main(["stream", "--weights", "any", str(path), "--split-by", "number"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 3 and all(any(f"-> {c} (" in line for c in CLASSES) for line in lines)



def test_a_damaged_aedat4_among_recordings_is_one_line_and_the_others_are_predicted(net, tmp_path, capsys):
    good = write_bytes(tmp_path / "cars.dat", dat_bytes(**_events(1, 600, 304, 240)))
    data = bytearray(_aedat4(tmp_path / "dvx.aedat4", _events(3, 400, 320, 240), (320, 240)).read_bytes())
    first = 14 + 4 + int.from_bytes(data[14:18], "little")
    data[first + 8:first + 12] = bytes(4)  # the event packet's LZ4 frame no longer decompresses
    bad = write_bytes(tmp_path / "bad.aedat4", bytes(data))
    capsys.readouterr()
    assert cli.main(["predict", "--weights", "any", str(bad), str(good)]) == 2
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 1 and out.out.startswith(f"{good}: ")
    errors = [line for line in out.err.splitlines() if "bad.aedat4" in line]
    assert len(errors) == 1 and "does not decompress" in errors[0] and "Traceback" not in out.err, out.err

def test_a_recording_from_a_smaller_sensor_is_refused_naming_both_sizes(net, tmp_path, capsys):
    net.pretrained_cfg = {**net.pretrained_cfg, "size": 48}
    path = write_bytes(tmp_path / "digit.bin", nmnist_bytes(**_events(2, 200, 34, 34)))
    capsys.readouterr()
    assert cli.main(["predict", "--weights", "any", str(path)]) == 2
    assert "34x34 sensor, too small for the net's 48x48 input" in capsys.readouterr().err
    assert cli.main(["stream", "--weights", "any", str(path)]) == 2
    assert "34x34 sensor, too small for the net's 48x48 input" in capsys.readouterr().err


def test_a_file_stating_no_sensor_is_taken_as_the_camera_the_net_was_trained_on(net, tmp_path, capsys):
    ev = _events(4, 300, 34, 34)
    npz = tmp_path / "digit.npz"
    np.savez(npz, **ev)  # SpikingJelly's layout: no sensor size anywhere in the file
    capsys.readouterr()
    for command in (["predict", "--weights", "any", str(npz)], ["stream", "--weights", "any", str(npz)]):
        assert cli.main(command) == 2  # the net records no camera and none is given: asked for, never guessed
        err = capsys.readouterr().err
        assert "states no sensor size" in err and "--sensor WIDTHxHEIGHT" in err and len(err.splitlines()) == 1
    net.pretrained_cfg = {**net.pretrained_cfg, "sensor": [34, 34]}  # trained on N-MNIST's camera
    same = write_bytes(tmp_path / "digit.bin", nmnist_bytes(**ev))  # the same events, in a file stating 34x34
    out = tmp_path / "p.json"
    assert cli.main(["predict", "--weights", "any", str(npz), str(same), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got[0]["predictions"] == got[1]["predictions"]
    x = inference.prepare_recording(npz, net.pretrained_cfg, 3)
    assert torch.equal(x, inference.prepare_recording(same, net.pretrained_cfg, 3)) and float(x.sum()) == 300
    # --sensor says otherwise: binned as a 68x68 camera's (every event in the top-left quarter)
    assert cli.main(["predict", "--weights", "any", str(npz), "--sensor", "68x68", "--json", str(out)]) == 0
    wide = torch.from_numpy(recording_to_frames(npz, T=3, size=16, sensor_size=(68, 68)))
    assert float(wide[..., 8:, :].sum() + wide[..., :, 8:].sum()) == 0 and float(wide.sum()) == 300
    with torch.no_grad():
        probs = torch.softmax(net(wide.unsqueeze(0)), -1)[0]
    assert json.loads(out.read_text())[0]["predictions"][0][1] == pytest.approx(float(probs.max()), abs=1e-6)
    assert cli.main(["stream", "--weights", "any", str(npz), "--sensor", "68x68"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        cli.main(["predict", "--weights", "any", str(npz), "--sensor", "68"])
    assert e.value.code == 2 and "expected WIDTHxHEIGHT in pixels (e.g. 346x260), got '68'" in capsys.readouterr().err


def _err(capsys) -> str:
    """The one line a command wrote on stderr."""
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err.strip()


# -- bad weights are bad input: one line without the exception's name, exit 2 --------------------------------------

def test_weights_of_another_kind_or_a_broken_export_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.savez("rec.npz", **_events(8, 20, 34, 34))
    Path("nm.onnx").write_bytes(b"\x08\x07")
    expected = ("nm.onnx: an ONNX file (it runs in onnxruntime), not exported weights: expected a folder with "
                "model.safetensors and config.json")
    capsys.readouterr()
    for command in (["predict", "--weights", "nm.onnx", "rec.npz"], ["stream", "--weights", "nm.onnx", "rec.npz"],
                    ["eval", "--weights", "nm.onnx"]):
        assert cli.main(command) == 2
        assert _err(capsys).startswith(f"staa-snn {command[0]}: error: {expected}")
    export = Path("export")
    export.mkdir()
    model = create_model("vgg_small", num_classes=3, T=2, in_channels=2)
    import safetensors.torch
    safetensors.torch.save_file(model.state_dict(), "export/model.safetensors")
    spec = {"format": "staa-snn-weights-1", "model": {"name": "vgg_small", "T": 2, "num_classes": 3,
                                                      "in_channels": 2}}
    for config, message in [
            ("{oops", "export/config.json: not valid JSON (Expecting property name enclosed in double quotes: line 1 "
                      "column 2 (char 1)); expected the config.json written by staa-snn export --format safetensors"),
            ('{"format": "timm"}', "export/config.json: not a staa-snn weights config (format 'timm', expected "
                                   "'staa-snn-weights-1': the config.json written by staa-snn export --format "
                                   "safetensors)"),
            ('{"format": "staa-snn-weights-1"}', "export/config.json: no model section with the net's name (a "
                                                 "staa-snn weights config always has one): the file is damaged"),
            (json.dumps({**spec, "model": {**spec["model"], "name": "vgg99"}}),
             "export/config.json: its model section builds no net here (unknown model 'vgg99'; expected one of "
             "['resnet18', 'resnet19', 'resnet20', 'resnet34', 'vgg13', 'vgg_quick', 'vgg_small', 'vgg_tiny']); "
             "expected one written by staa-snn export --format safetensors of this version"),
            (json.dumps({**spec, "model": {**spec["model"], "num_classes": 5}}),
             "the weights in export/model.safetensors do not fit this net: 2 of another shape (e.g. classifier.")]:
        (export / "config.json").write_text(config)
        assert cli.main(["predict", "--weights", "export", "rec.npz"]) == 2
        assert _err(capsys).startswith(f"staa-snn predict: error: {message}")
    (export / "config.json").write_text(json.dumps(spec))
    assert cli.main(["eval", "--weights", "export"]) == 2  # no training config: eval cannot know its test data
    assert _err(capsys).startswith("staa-snn eval: error: export: its config.json has no config section")
    (export / "model.safetensors").write_bytes(b"\x00" * 4)
    assert cli.main(["predict", "--weights", "export", "rec.npz"]) == 2
    assert _err(capsys).startswith("staa-snn predict: error: export/model.safetensors: not a readable safetensors "
                                   "file (")
    assert cli.main(["predict", "--weights", "hf://net", "rec.npz"]) == 2
    assert _err(capsys) == ("staa-snn predict: error: 'hf://net' is not a Hub model: expected hf://owner/name or "
                            "hf://owner/name@revision")
    with pytest.raises(ValueError):  # Python callers catching ValueError are unaffected
        inference.load_net("nm.onnx")


# -- the sensor a recording is taken to be of: each message says where its size came from -------------------------

def test_a_too_small_sensor_is_said_to_come_from_the_file_or_from_sensor(net, tmp_path, capsys):
    net.pretrained_cfg = {**net.pretrained_cfg, "sensor": [34, 34]}  # a 16x16 net trained on a 34x34 camera
    npz = tmp_path / "digit.npz"
    np.savez(npz, **_events(5, 50, 12, 12))
    capsys.readouterr()
    for command in ("predict", "stream"):  # 12x12 is what the user said, not the camera the net was trained on
        assert cli.main([command, "--weights", "any", "--sensor", "12x12", str(npz)]) == 2
        assert _err(capsys) == (f"staa-snn {command}: error: {npz}: its format states no sensor size, so it was "
                                f"taken as 12x12 (the sensor given, --sensor), too small for the net's 16x16 input: "
                                f"frames are never up-sampled")
    small = write_bytes(tmp_path / "small.dat", dat_bytes(**_events(5, 50, 12, 12), width=12, height=12))
    assert cli.main(["predict", "--weights", "any", "--sensor", "34x34", str(small)]) == 2  # the header wins
    assert _err(capsys) == (f"staa-snn predict: error: {small}: its file states a 12x12 sensor, too small for the "
                            f"net's 16x16 input: frames are never up-sampled")


def test_events_outside_the_sensor_taken_for_a_file_say_where_it_came_from_and_what_is_needed(net, tmp_path, capsys,
                                                                                               monkeypatch):
    net.pretrained_cfg = {**net.pretrained_cfg, "sensor": [34, 34]}
    ev = _events(6, 200, 34, 34)
    ev["x"][7], ev["y"][9] = 77, 41  # an N-CARS-like recording, fed to a net trained on N-MNIST
    cars = write_bytes(tmp_path / "sample_ncars.dat", dat_bytes(**ev, width=None, height=None))  # no geometry line
    capsys.readouterr()
    for command in ("predict", "stream"):
        assert cli.main([command, "--weights", "any", str(cars)]) == 2
        assert _err(capsys) == (f"staa-snn {command}: error: {cars}: its format states no sensor size, so it was "
                                f"taken as 34x34 (the camera the net was trained on), but its events reach x=77, "
                                f"y=41: give the recording's camera with --sensor WIDTHxHEIGHT (at least 78x42; "
                                f"sensor_size=(width, height) in Python)")
        assert cli.main([command, "--weights", "any", "--sensor", "77x41", str(cars)]) == 2
        assert _err(capsys) == (f"staa-snn {command}: error: {cars}: its format states no sensor size, so it was "
                                f"taken as 77x41 (the sensor given, --sensor), but its events reach x=77, y=41: give "
                                f"the recording's camera with --sensor WIDTHxHEIGHT (at least 78x42; "
                                f"sensor_size=(width, height) in Python)")
        assert cli.main([command, "--weights", "any", "--sensor", "78x42", str(cars)]) == 0  # the least that holds it
        capsys.readouterr()
    # the least sensor named is also at least the net's input on each side (frames are never up-sampled)
    narrow = {k: v[:3] for k, v in _events(7, 3, 5, 5).items()}
    narrow["x"][0] = 40
    npz = tmp_path / "narrow.npz"
    np.savez(npz, **narrow)
    with pytest.raises(DataError, match=r"reach x=40, y=\d: .*\(at least 41x16; "):
        inference.prepare_recording(npz, net.pretrained_cfg, 3)
    # a file whose own header contradicts its events is damaged: --sensor cannot mend it (the readers of formats
    # with a header refuse such a file themselves; read_for_net checks what any reader returns)
    bad = write_bytes(tmp_path / "bad.dat", dat_bytes(**ev, width=34, height=34))
    with pytest.raises(CorruptFileError, match=r"bad\.dat: .*x=77, y=5 lies outside the 34x34 sensor, its header states"):
        inference.prepare_recording(bad, net.pretrained_cfg, 3, sensor=(78, 42))
    real = recordings.read_events(cars)
    monkeypatch.setattr(eventsets, "read_events", lambda path, **kw: recordings.Recording(real.events, (34, 34)))
    with pytest.raises(CorruptFileError, match=r"sample_ncars\.dat: its file states a 34x34 sensor, but its events "
                                               r"reach x=77, y=41: the file is damaged or its header wrong$"):
        inference.prepare_recording(cars, net.pretrained_cfg, 3, sensor=(78, 42))


def test_stream_of_a_folder_says_it_takes_one_recording(tmp_path, capsys):
    folder = tmp_path / "some_folder"
    folder.mkdir()
    np.savez(folder / "a.npz", **_events(9, 20, 34, 34))
    capsys.readouterr()
    assert cli.main(["stream", "--weights", "cifar10_quick", str(folder)]) == 2  # refused before the net is loaded
    assert _err(capsys) == (f"staa-snn stream: error: {folder} is a folder: stream takes one recording (predict "
                            f"takes folders)")


def test_an_image_net_given_an_event_recording_says_so(tmp_path, capsys):
    rec = tmp_path / "rec.npz"
    np.savez(rec, **_events(10, 20, 34, 34))
    capsys.readouterr()
    assert cli.main(["predict", "--weights", "cifar10_quick", str(rec)]) == 2
    assert _err(capsys) == (f"staa-snn predict: error: the net takes images, got the event recording {rec} (only a "
                            f"net trained on event frames takes recordings)")
