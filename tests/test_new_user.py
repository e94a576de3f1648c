"""What a new user tripped over (issue 22), each pinned: a net of one's own, the command line's
bad inputs, runs the CLI cannot reopen, library calls and process-wide state."""

import json
import random
import re
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from staa_snn import cli
from staa_snn.training import ConfigError, TrainResult, evaluate_checkpoint, load_config, load_trained, train
from tiny_runs import DIGITS, tiny


class MyNet(nn.Module):
    """A user's own net: [B, K] logits, and the obvious ``self.T`` attribute."""

    def __init__(self):
        super().__init__()
        self.T = 4
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        return self.body(x)


def _digits_sets():
    from staa_snn.data import get_dataset

    return get_dataset("digits", split="train"), get_dataset("digits", split="test")


def test_a_net_of_ones_own_with_a_T_attribute_trains_and_is_reopened_with_it(tmp_path, capsys):
    train_set, test_set = _digits_sets()
    cfg = load_config(DIGITS, ["data.size=8", "train.epochs=1", "train.max_batches=3", "train.progress=false",
                               "output.tensorboard=false", f"output.dir={tmp_path}"])
    result = train(cfg, model=MyNet(), train_set=train_set, test_set=test_set)
    assert len(result.final["test_acc_per_step"]) == 1  # one read-out step: the output's shape, not net.T
    assert result.run_dir.name == "digits_mynet"  # not digits_vgg_small_staa_t4, a net it never used
    config_text = (result.run_dir / "config.yaml").read_text()
    assert config_text.startswith("# trained on a model passed in from Python: test_new_user.MyNet")
    best = result.run_dir / "best.pt"
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", str(best)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained on a model passed in from Python (test_new_user.MyNet)" in err[0]
    assert "load_trained(" in err[0] and "model=MyNet(...)" in err[0]
    _, net, _ = load_trained(best, model=MyNet(), require_root=False)
    assert torch.equal(net.body[1].weight, result.model.body[1].weight)


def test_debug_is_taken_after_the_command_too(tmp_path):
    assert cli.main(["eval", "--checkpoint", str(tmp_path / "x.pt")]) == 2
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cli.main(["eval", "--checkpoint", str(tmp_path / "x.pt"), "--debug"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cli.main(["--debug", "eval", "--checkpoint", str(tmp_path / "x.pt")])


def test_a_users_yaml_starts_from_a_bundled_config(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: digits\ntrain:\n  epochs: 3\n")
    cfg = load_config(tmp_path / "mine.yaml")
    assert cfg.train.epochs == 3 and cfg.model.name == "vgg_small" and cfg.optim.name == "adamw"
    (tmp_path / "bad.yaml").write_text("base: nosuch\n")
    with pytest.raises(ConfigError, match=r"'base: nosuch' is neither a file next to it .* nor a bundled config"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match=r"a list of section.key=value strings, got one string 'train.epochs=3'"):
        load_config("digits", "train.epochs=3")


@pytest.mark.parametrize("args, message", [
    (["optim.betas=[0.9, fast]"], r"optim.momentum and optim.betas must lie in \[0, 1\)"),
    (["data.options.nosuch=3"], r"data: unknown option\(s\) \['nosuch'\] for dataset 'digits'; valid dataset-specific "
                                r"options: none"),
    (["model.pe=banana", "--print-config"], r"model: unknown pe 'banana'"),
    (["data.batch_size=5000"], r"the training set \(1442 samples\) is smaller than one batch \(data.batch_size=5000\)"),
])
def test_bad_values_exit_2_in_one_line_and_leave_no_run_folder(args, message, tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli.main(["train", *args, f"output.dir={out}", "train.progress=false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert re.search(message, err[0]), err[0]
    assert not out.exists() or not any(out.iterdir())  # a refused run leaves nothing behind


def test_eval_flags_are_named_in_their_errors(tmp_path, capsys):
    result = train(tiny(tmp_path, "train.epochs=1"))
    best = str(result.run_dir / "best.pt")
    capsys.readouterr()  # the run's epoch line
    assert cli.main(["eval", "--checkpoint", best, "--batch-size", "0"]) == 2
    assert capsys.readouterr().err.strip() == "staa-snn eval: error: --batch-size must be >= 1, got 0"
    assert cli.main(["eval", "--checkpoint", best, "--device", "tpu"]) == 2
    assert "--device 'tpu' is not a device here" in capsys.readouterr().err


def test_eval_reads_only_the_test_split(tmp_path, monkeypatch):
    result = train(tiny(tmp_path, "train.epochs=1"))
    from staa_snn.training import builders

    asked = []
    real = builders.get_dataset
    monkeypatch.setattr(builders, "get_dataset", lambda name, root, split, **kw: asked.append(split) or
                        real(name, root, split, **kw))
    evaluate_checkpoint(result.run_dir / "best.pt", progress=False)
    assert asked == ["test"]


def test_the_best_epoch_of_a_tie_is_the_one_best_pt_holds():
    history = [{"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "test_acc": 0.5}, {"epoch": 3, "test_acc": 0.4}]
    assert TrainResult(nn.Identity(), history).best["epoch"] == 2  # best.pt is rewritten on a tie


def test_progress_lines_without_a_terminal(tmp_path, capsys):
    train(tiny(tmp_path, "train.epochs=1", "train.progress=true", "train.log_every=2", "train.check_every=1",
               batches=4))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("epoch 1/1 step")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/1 step 2/4", "epoch 1/1 step 4/4"]
    assert "img/s" in lines[0] and "s left" in lines[0]


def test_a_library_call_leaves_the_callers_random_streams_alone(tmp_path):
    torch.manual_seed(123)
    np.random.seed(7)
    random.seed(5)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    train(tiny(tmp_path, "train.epochs=1", "model.tsrd_p=0.5"))
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]


def test_load_pretrained_takes_a_checkpoint(tmp_path):
    from staa_snn import load_pretrained

    result = train(tiny(tmp_path, "train.epochs=1"))
    net = load_pretrained(result.run_dir / "best.pt")
    assert net.pretrained_cfg["classes"] == [str(i) for i in range(10)] and not net.training
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), load_trained(result.run_dir / "best.pt", require_root=False)[1](x))


def test_outputs_into_a_missing_folder_make_it_and_a_file_in_the_way_is_named(tmp_path, capsys):
    """Every output makes its folder (--out runs/x.png on a fresh clone); a file where a folder is
    needed, or a folder where a file is, is one line, before the work (nothing printed for --json)."""
    result = train(tiny(tmp_path, "train.epochs=1"))
    assert cli.main(["plot", str(result.run_dir), "--out", str(tmp_path / "new" / "sub" / "x.png")]) == 0
    assert (tmp_path / "new" / "sub" / "x.png").read_bytes()[:4] == b"\x89PNG"
    profile = ["profile", "--config", str(DIGITS), "--random", "model.T=2", "--no-layers"]
    assert cli.main([*profile, "--json", str(tmp_path / "more" / "p.json")]) == 0
    assert json.loads((tmp_path / "more" / "p.json").read_text())["input"] == "random"
    capsys.readouterr()
    (tmp_path / "afile").write_text("x")
    for out, message in ((tmp_path / "afile" / "p.json", f"{tmp_path / 'afile'} is a file, not a folder"),
                         (tmp_path / "more", f"cannot write {tmp_path / 'more'}: it is a folder")):
        assert cli.main([*profile, "--json", str(out)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and message in captured.err and len(captured.err.splitlines()) == 1
    assert cli.main(["plot", str(result.run_dir), "--out", str(tmp_path / "afile" / "x.png")]) == 2
    assert f"cannot write {tmp_path / 'afile' / 'x.png'}: {tmp_path / 'afile'} is a file" in capsys.readouterr().err
    for out, message in ((f"{tmp_path / 'new2'}/", "new2/: it names a folder (expected a file's path)"),):
        assert cli.main([*profile, "--json", out]) == 2 and message in capsys.readouterr().err
    for out, got in ((tmp_path / "new3" / "curves", "no suffix"), (tmp_path / "new3" / "x.pngg", "its suffix .pngg")):
        assert cli.main(["plot", str(result.run_dir), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"cannot write {out}: expected an image file name ending in .png, .pdf or .svg (or " in err
        assert err.strip().endswith(f"got {got}") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new2").exists() and not (tmp_path / "new3").exists()  # refused before any folder is made


def test_an_output_into_a_folder_this_user_cannot_write_is_refused_before_the_work(tmp_path, monkeypatch, capsys):
    """--json into a folder that refuses files: one line naming the folder, exit 2, before the
    profile runs (root writes anywhere, so the test plays a folder that refuses it); into /proc,
    which takes no files from anyone: the same, for profile, plot and export, and a folder to be
    made there names where it would be made. The check makes nothing (a command that fails
    later leaves no empty folder); a device (/dev/null) is written in place, never replaced by a
    file. eval's default JSON, beside a checkpoint in a read-only folder, is a warning: the
    evaluation is still printed."""
    import staa_snn._io as io

    locked = tmp_path / "locked"
    locked.mkdir()
    real, denied = tempfile.mkstemp, [locked]

    def mkstemp(*args, dir=None, **kwargs):  # what a read-only folder answers
        if Path(dir) in denied:
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(io.tempfile, "mkstemp", mkstemp)
    profile = ["profile", "--config", str(DIGITS), "--random", "model.T=2", "--no-layers"]
    assert cli.main([*profile, "--json", str(locked / "p.json")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert f"cannot write {locked / 'p.json'}: its folder {locked} takes no new files (Permission denied)" in captured.err
    assert list(locked.iterdir()) == []
    result = train(tiny(tmp_path, "train.epochs=1"))
    capsys.readouterr()
    export = ["export", "--checkpoint", str(result.run_dir / "best.pt"), "--format"]
    for command, out, where in (
            ([*profile, "--json"], "/proc/p.json", "its folder /proc"),
            (["plot", str(result.run_dir), "--out"], "/proc/x.png", "its folder /proc"),
            ([*export, "onnx", "--out"], "/proc/x.onnx", "its folder /proc"),
            ([*export, "safetensors", "--out"], "/proc/new", "/proc, where its folder would be made,")):
        assert cli.main([*command, out]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, captured.err
        assert f"cannot write {out}" in captured.err and f": {where} takes no new files (the file system makes " \
            "no files there)" in captured.err
    # a command that fails after the check leaves no folder of its own behind
    assert cli.main(["export", "--checkpoint", str(tmp_path / "no.pt"), "--format", "safetensors",
                     "--out", str(tmp_path / "new" / "sub")]) == 2
    assert cli.main(["plot", str(tmp_path / "norun"), "--out", str(tmp_path / "new" / "x.png")]) == 2
    assert not (tmp_path / "new").exists() and not (tmp_path / "norun").exists()
    # a device is written into, not replaced
    assert cli.main([*profile, "--json", os.devnull]) == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    capsys.readouterr()
    # eval of someone else's run (its folder read-only): the evaluation, and a warning for the JSON beside it
    denied.append(result.run_dir)
    with pytest.warns(UserWarning) as warned:
        assert cli.main(["eval", "--checkpoint", str(result.run_dir / "best.pt")]) == 0
    assert [str(w.message) for w in warned] == [
        f"the JSON is not written beside the checkpoint (cannot write {result.run_dir / 'best.pt.eval.json'}: its "
        f"folder {result.run_dir} takes no new files (Permission denied)); --json PATH writes it elsewhere"]
    assert "accuracy" in capsys.readouterr().out and not (result.run_dir / "best.pt.eval.json").exists()
    assert cli.main(["plot", str(result.run_dir)]) == 2  # its default beside the run: where else to write it
    assert capsys.readouterr().err.strip().endswith(f"{result.run_dir} takes no new files (Permission denied); "
                                                    f"--out PATH writes the plot elsewhere")
    # eval --json -: the JSON alone on stdout; into a device, no plot beside it
    assert cli.main(["eval", "--checkpoint", str(result.run_dir / "best.pt"), "--json", "-"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["acc"] <= 1 and not Path("-").exists()
    assert cli.main(["eval", "--checkpoint", str(result.run_dir / "best.pt"), "--exit-sweep", "--json", os.devnull]) == 0
    assert "the curve's plot is drawn beside a JSON file, not beside a device" in capsys.readouterr().out
    assert not Path(os.devnull + ".exit.png").exists() and stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_visualize_names_the_valid_layers(tmp_path, capsys):
    pytest.importorskip("pytorch_grad_cam", reason='Grad-CAM is the [viz] extra')
    result = train(tiny(tmp_path, "train.epochs=1"))
    assert cli.main(["visualize", "--checkpoint", str(result.run_dir / "best.pt"), "--layer", "features.99",
                     "--out", str(tmp_path / "fig")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--layer features.99: no such neuron layer" in err and "features.2, features.5" in err


def test_configs_describes_each_config():
    lines = cli.describe_configs().splitlines()
    assert len(lines) == len(cli.bundled_configs())
    described = dict(line.split(None, 1) for line in lines)
    assert set(described) == set(cli.bundled_configs()) and all(described.values())
    assert described["digits"].startswith("a small STAA-SNN on scikit-learn's digits")
    assert described["cifar10_quick_lif"].startswith("cifar10_quick with plain LIF neurons")


def test_profile_json_into_a_closed_pipe_is_quiet():
    proc = subprocess.run(f"{sys.executable} -m staa_snn.cli profile --random --batch-size 1 --json - | head -c 20",
                          shell=True, capture_output=True, text=True, timeout=300)
    assert proc.stdout.startswith("{") and "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr


def test_configs_into_a_pipe_closed_before_it_writes_is_quiet():
    """staa-snn configs | head -1: the reader may leave before the first write (here: always)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "staa_snn.cli", "configs"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_onnx_carries_the_class_names(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="ONNX export is the [export] extra")
    result = train(tiny(tmp_path, "train.epochs=1", "model.neuron=lif"))
    out = tmp_path / "net.onnx"
    assert cli.main(["export", "--checkpoint", str(result.run_dir / "best.pt"), "--format", "onnx",
                     "--out", str(out)]) == 0
    meta = ort.InferenceSession(str(out)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == [str(i) for i in range(10)]
    assert json.loads(meta["normalization"]) is None and json.loads(meta["T"]) == 2 and json.loads(meta["size"]) == 8


def test_predict_names_the_classes_of_images_and_recordings(tmp_path, capsys):
    from PIL import Image

    from staa_snn import create_model
    from staa_snn.data import get_dataset, writers
    from staa_snn.data.events import events_to_frames
    from staa_snn.inference import predict_files

    result = train(tiny(tmp_path, "train.epochs=1"))
    best = str(result.run_dir / "best.pt")
    test_set = get_dataset("digits", split="test", size=8)
    files = []
    for i in range(3):
        x, _ = test_set[i]
        path = tmp_path / f"digit{i}.png"
        Image.fromarray((x[0].numpy() * 255).round().astype(np.uint8)).save(path)
        files.append(str(path))
    net = load_trained(best, require_root=False)[1]
    capsys.readouterr()
    assert cli.main(["predict", "--checkpoint", best, files[0], "--top", "2", *files[1:], "--json", "-"]) == 0
    got = json.loads(capsys.readouterr().out)
    for i, r in enumerate(got):
        with torch.no_grad():
            probs = torch.softmax(net(test_set[i][0].unsqueeze(0)), -1)[0]
        assert r["file"] == files[i] and len(r["predictions"]) == 2
        assert r["predictions"][0][0] == str(int(probs.argmax()))
        assert r["predictions"][0][1] == pytest.approx(float(probs.max()), abs=2e-3)  # PNG: 8-bit levels
    assert cli.main(["predict", "--checkpoint", best, str(tmp_path / "nope.png")]) == 2
    assert "no such file" in capsys.readouterr().err
    # a recording for a net trained on event frames: T frames of the whole recording
    events = create_model("vgg_small", num_classes=3, T=2, in_channels=2, neuron="lif").eval()
    events.pretrained_cfg = {"classes": ["a", "b", "c"], "normalization": None, "size": 16, "in_channels": 2,
                             "kind": "events", "T": 2}
    ev = writers.random_events(np.random.default_rng(0), 300)
    writers.write_bytes(tmp_path / "rec.aedat", writers.aedat2_bytes(**ev))
    [r] = predict_files(events, [tmp_path / "rec.aedat"], top=3)
    frames = torch.from_numpy(events_to_frames(ev["t"], ev["x"], ev["y"], ev["p"], 2, size=16).astype(np.float32))
    with torch.no_grad():
        want = torch.softmax(events(frames.unsqueeze(0)), -1)[0]
    assert [name for name, _ in r["predictions"]] == [["a", "b", "c"][j] for j in want.argsort(descending=True)]
    assert [p for _, p in r["predictions"]] == pytest.approx(sorted(want.tolist(), reverse=True))
    with pytest.raises(ValueError, match=r"the net takes event recordings"):
        predict_files(events, files[:1])


def test_export_says_when_the_cards_energy_comes_from_a_random_input(tmp_path, monkeypatch, capsys):
    pytest.importorskip("safetensors", reason="safetensors export is the [export] extra")
    from staa_snn.analysis import loading

    result = train(tiny(tmp_path, "train.epochs=1"))

    def moved(*args, **kwargs):
        raise FileNotFoundError("image folder not found at /moved")

    monkeypatch.setattr(loading, "dataset_batches", moved)
    with pytest.warns(UserWarning, match=r"the model card's firing rates, #AC and energy are measured on a random "
                                         r"input: the test data could not be read \(image folder not found at /moved\)"):
        assert cli.main(["export", "--checkpoint", str(result.run_dir / "best.pt"), "--format", "safetensors",
                         "--out", str(tmp_path / "w")]) == 0
    assert "a random input" in (tmp_path / "w" / "README.md").read_text()
