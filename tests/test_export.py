"""Export: ONNX (onnxruntime gives PyTorch's logits), NIR (a small interpreter reproduces the spikes),
safetensors with a model card (load_pretrained gives the same net back); training curves."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from staa_snn import cli
from staa_snn.analysis.plot import load_history, plot_runs
from staa_snn.models import SpikingNeuron, create_model, fold_mpbn, load_pretrained
from staa_snn.neurons import MultiStepNeuron
from staa_snn.training import load_config, train


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A LIF and an STAA digits run, 2 epochs at T = 4 (tiny budget)."""
    out = tmp_path_factory.mktemp("runs")
    folders = {}
    for neuron in ("lif", "staa"):
        cfg = load_config("digits", ["data.size=12", "model.T=4", f"model.neuron={neuron}", "train.epochs=2",
                                     "train.max_batches=6", "train.progress=false", f"output.dir={out}",
                                     f"output.name={neuron}"])
        folders[neuron] = train(cfg).run_dir
    return folders


def _test_batch(n=16, size=12):
    from staa_snn.data import get_dataset

    ds = get_dataset("digits", split="test", size=size)
    return torch.stack([ds[i][0] for i in range(n)])


@pytest.mark.parametrize("neuron", ["lif", "staa"])
def test_onnx_runs_in_onnxruntime_with_pytorchs_logits(runs, neuron, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime", reason='ONNX export is the [export] extra')
    out = tmp_path / f"{neuron}.onnx"
    assert cli.main(["export", "--checkpoint", str(runs[neuron] / "best.pt"), "--format", "onnx",
                     "--out", str(out)]) == 0
    model = load_pretrained_from_checkpoint(runs[neuron] / "best.pt")
    session = ort.InferenceSession(str(out))
    for batch in (16, 5):  # the batch size is free
        x = _test_batch(batch)
        got = session.run(None, {"x": x.numpy()})[0]
        with torch.no_grad():
            want = model(x).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize("neuron", ["lif", "staa"])
def test_onnx_step_graph_matches_net_step(runs, neuron, tmp_path):
    """export --format onnx --step: onnxruntime fed its own state back, step by step, gives
    net.step's logits at every step (STAA reads its PE row from the t input), any batch size."""
    ort = pytest.importorskip("onnxruntime", reason='ONNX export is the [export] extra')
    out = tmp_path / f"{neuron}.step.onnx"
    assert cli.main(["export", "--checkpoint", str(runs[neuron] / "best.pt"), "--format", "onnx", "--step",
                     "--out", str(out)]) == 0
    net = load_pretrained_from_checkpoint(runs[neuron] / "best.pt")
    session = ort.InferenceSession(str(out))
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    assert meta["step"] is True and meta["T"] == 4 and len(meta["state_layers"]) == len(meta["state_shapes"]) == 4
    for batch in (5, 2):
        x = _test_batch(batch) + 0.3 * torch.randn(batch, 1, 12, 12)  # not the same frame on every step
        states = [np.full((batch, *shape), rest, np.float32) for shape, rest in
                  zip(meta["state_shapes"], meta["state_rest"], strict=True)]
        state = net.init_state(batch)
        for t in range(4):
            frame = x * (1 + 0.2 * t)
            logits, *states = session.run(None, {"x": frame.numpy(), "t": np.array(t, np.int64),
                                                 **{f"state.{i}": s for i, s in enumerate(states)}})
            with torch.no_grad():
                want, state = net.step(frame, state)
            np.testing.assert_allclose(logits, want.numpy(), atol=1e-4, rtol=0)
    assert cli.main(["export", "--checkpoint", str(runs[neuron] / "best.pt"), "--format", "nir", "--step",
                     "--out", str(tmp_path / "x.nir")]) == 2


def load_pretrained_from_checkpoint(path):
    from staa_snn.training import load_trained

    return load_trained(path, require_root=False)[1]


def test_safetensors_with_a_model_card_load_back(runs, tmp_path):
    pytest.importorskip("safetensors", reason="safetensors export is the [export] extra")
    out = tmp_path / "shared"
    assert cli.main(["export", "--checkpoint", str(runs["staa"] / "best.pt"), "--format", "safetensors",
                     "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (out / "README.md").read_text()
    record = next(h for h in load_history(runs["staa"]) if h["test_acc"] == max(r["test_acc"] for r in
                                                                                 load_history(runs["staa"])))
    assert f"| test accuracy | {record['test_acc']:.2%}" in card and "| energy (45 nm) |" in card
    last = load_history(runs["staa"])[-1]  # best.pt was chosen by this accuracy on this split: the card says so
    assert (f"; best.pt, the best of the run's 2 epochs by this accuracy, so chosen on this split and an optimistic "
            f"figure; after its last epoch: {last['test_acc']:.2%}) |") in card
    assert cli.main(["export", "--checkpoint", str(runs["staa"] / "last.pt"), "--format", "safetensors",
                     "--out", str(tmp_path / "last")]) == 0
    assert "chosen on this split" not in (tmp_path / "last" / "README.md").read_text()
    assert "vgg_small" in card and "load_pretrained" in card and "staa-snn" in card
    spec = json.loads((out / "config.json").read_text())
    assert spec["model"]["neuron"] == "staa" and spec["model"]["T"] == 4 and spec["model"]["num_classes"] == 10
    trained = load_pretrained_from_checkpoint(runs["staa"] / "best.pt")
    loaded = load_pretrained(out)
    again = create_model("vgg_small", num_classes=10, T=4, in_channels=1, neuron="staa",
                         weights=out / "model.safetensors").eval()
    x = _test_batch()
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x)) and torch.equal(again(x), trained(x))
    with pytest.raises(ValueError, match=r"do not fit this net: \d+ unexpected \(e.g. features.12.neuron.gc"):
        create_model("vgg_small", num_classes=10, T=4, in_channels=1, neuron="adaptive", weights=out)



def test_a_card_notes_heading_is_the_cards_title(runs, tmp_path):
    """A --card-note whose first line is '# TITLE' names the card (the loader's name, imagefolder,
    says less than CIFAR-10); without one the title is the net's, and a '#' alone is no title."""
    pytest.importorskip("safetensors", reason="safetensors export is the [export] extra")
    from staa_snn.export.weights import card_title

    assert card_title("# CIFAR-10, STAA-LIF\n\nTrained on *one* thread.\n", "d") == ("CIFAR-10, STAA-LIF",
                                                                                   "Trained on *one* thread.")
    assert card_title("## A section\ntext", "d") == ("d", "## A section\ntext")
    assert card_title("#\ntext", "d") == ("d", "#\ntext") and card_title(None, "d") == ("d", "")
    cards = {}
    for name, note in (("titled", "# Digits, LIF, seed 0\nOne thread."), ("plain", "One thread.")):
        assert cli.main(["export", "--checkpoint", str(runs["lif"] / "best.pt"), "--format", "safetensors",
                         "--out", str(tmp_path / name), "--card-note", note]) == 0
        cards[name] = (tmp_path / name / "README.md").read_text().splitlines()
    titles = {name: next(line for line in card if line.startswith("# ")) for name, card in cards.items()}
    assert titles["titled"] == "# Digits, LIF, seed 0" and titles["plain"] == "# vgg_small, lif neurons, T = 4 (digits)"
    first = next(i for i, line in enumerate(cards["titled"]) if line.startswith("Spiking network trained with"))
    assert cards["titled"][first + 1:first + 4] == ["", "One thread.", ""]


def test_card_note_and_provenance_make_the_folder_reproducible(runs, tmp_path, capsys):
    """export --card-note @FILE: the note stands under the card's first sentence and in
    config.json's provenance with the epochs and hours; exporting the same checkpoint again with
    the same note and command writes the same folder, byte for byte, so a shipped folder is
    regenerated from its run, not edited by hand. The card's command is the one run, quoted for a
    shell. A note for ONNX, an unreadable @FILE or an empty note, and an --out that cannot be
    written, are bad input (exit 2) before anything is written."""
    pytest.importorskip("safetensors", reason="safetensors export is the [export] extra")
    from staa_snn.export.weights import training_time_text
    from staa_snn.training import load_checkpoint

    note = tmp_path / "note.md"
    note.write_text("Trained on **one thread** of a 2-core CPU, seed 0.\n", encoding="utf-8")
    ckpt = load_checkpoint(runs["lif"] / "best.pt")
    written = []
    out = tmp_path / "w"
    args = ["export", "--checkpoint", str(runs["lif"] / "best.pt"), "--format", "safetensors",
            "--out", str(out), "--card-note", f"@{note}"]
    for _ in range(2):  # the second export overwrites the first, from the same checkpoint, note and command
        assert cli.main(args) == 0
        written.append(((out / "README.md").read_text(), (out / "config.json").read_text(),
                        (out / "model.safetensors").read_bytes()))
    assert written[0] == written[1]
    card, config, _ = written[0]
    lines = card.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("Spiking network trained with staa-snn"))
    assert lines[first + 1:first + 4] == ["", "Trained on **one thread** of a 2-core CPU, seed 0.", ""]
    provenance = json.loads(config)["provenance"]
    times = sorted(h["epoch_time_s"] for h in ckpt["history"] if h["epoch"] <= ckpt["epoch"])
    median = (times[(len(times) - 1) // 2] + times[len(times) // 2]) / 2
    assert provenance == {"data": "digits", "epochs": ckpt["epoch"], "training_hours": round(sum(times) / 3600, 3),
                          "median_epoch_s": round(median, 1),
                          "note": "Trained on **one thread** of a 2-core CPU, seed 0."}
    assert f"| training time | {training_time_text(ckpt)} |" in card
    assert "mJ per sample (32 of the test images) |" in card  # 2 batches of 16; the digits run has no hold-out
    # a note of quotes, backticks and a semicolon: the card's command line gives back the arguments
    literal = ["export", "--checkpoint", str(runs["lif"] / "best.pt"), "--format", "safetensors",
               "--out", str(tmp_path / "lit"), "--card-note", "it's a `smoke` test; *2* epochs"]
    assert cli.main(literal) == 0
    card = (tmp_path / "lit" / "README.md").read_text().splitlines()
    command = card[card.index("## Exported with") + 3]
    assert command.startswith("staa-snn export ") and shlex.split(command) == ["staa-snn", *literal]
    (tmp_path / "afile").write_text("keep me")
    (tmp_path / "empty.md").write_text(" \n")
    for bad, message in ((["--format", "onnx", "--out", str(tmp_path / "x.onnx"), "--card-note", "hi"],
                          "--card-note goes into the model card of safetensors weights"),
                         (["--format", "safetensors", "--out", str(tmp_path / "x"), "--card-note",
                           f"@{tmp_path / 'missing.md'}"], "cannot read"),
                         (["--format", "safetensors", "--out", str(tmp_path / "x"), "--card-note",
                           f"@{tmp_path / 'empty.md'}"], "the note is empty"),
                         (["--format", "safetensors", "--out", str(tmp_path / "x"), "--card-note", "#\nA note."],
                          "its first line '#' is a heading without text; expected '# TITLE'"),
                         (["--format", "safetensors", "--out", str(tmp_path / "afile")],
                          "is a file; safetensors weights are written as a folder"),
                         (["--format", "safetensors", "--out", str(tmp_path / "afile" / "x")],
                          "afile is a file, not a folder"),
                         (["--format", "onnx", "--out", str(tmp_path / "w")], "is a folder; onnx writes one file"),
                         (["--format", "onnx", "--out", f"{tmp_path / 'x'}/"], "x/ names a folder; onnx writes one"),
                         (["--format", "safetensors", "--out", str(runs["lif"])],  # a run folder, not an export's
                          "holds other files (best.pt, config.yaml, last.pt, ...): safetensors weights go into")):
        capsys.readouterr()
        assert cli.main(["export", "--checkpoint", str(runs["lif"] / "best.pt"), *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x").exists()
    assert (tmp_path / "afile").read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "model.safetensors"]


def test_export_and_plot_follow_links_and_the_home_folder(runs, tmp_path, monkeypatch, capsys):
    """--out through a link (to a folder, to none yet, to an image without a suffix) writes its
    target; '~' is the home folder (its "holds other files" check too), never a folder named '~';
    ONNX into stdout gets the ONNX alone, the path printed on stderr."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home" / "busy").mkdir(parents=True)
    (tmp_path / "home" / "busy" / "notes.txt").write_text("mine")
    export = ["export", "--checkpoint", str(runs["lif"] / "best.pt"), "--format", "safetensors", "--out"]
    assert cli.main([*export, "~/busy"]) == 2
    assert f"--out {tmp_path / 'home' / 'busy'} holds other files (notes.txt)" in capsys.readouterr().err
    assert cli.main([*export, "~/new"]) == 0 and (tmp_path / "home" / "new" / "model.safetensors").is_file()
    (tmp_path / "latest").symlink_to("v2")  # a link to a folder still to be made
    assert cli.main([*export, "latest"]) == 0
    assert (tmp_path / "latest").is_symlink() and (tmp_path / "v2" / "config.json").is_file()
    assert not (tmp_path / "~").exists()
    (tmp_path / "curves.png").symlink_to("store_v1")  # a target without an image suffix: drawn as the link says
    assert cli.main(["plot", str(runs["lif"]), "--out", "curves.png"]) == 0
    assert (tmp_path / "store_v1").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "curves.png").is_symlink()
    pytest.importorskip("onnx", reason="ONNX export is the [export] extra")
    capsys.readouterr()
    script = (f"from staa_snn import cli; cli.main(['export', '--checkpoint', {str(runs['lif'] / 'best.pt')!r}, "
              f"'--format', 'onnx', '--out', '/dev/stdout'])")
    with open(tmp_path / "net.onnx", "wb") as f:
        done = subprocess.run([sys.executable, "-c", script], stdout=f, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr.strip().endswith("/dev/stdout"), done.stderr
    import onnx

    onnx.checker.check_model(onnx.load(tmp_path / "net.onnx"))  # no path printed after the model


def test_same_weights_make_the_same_file(tmp_path):
    """save_weights writes the same bytes for the same net every time (safetensors writes metadata
    keys in a random order, so with two keys 8 saves would differ with probability 1 - 2**-7)."""
    pytest.importorskip("safetensors", reason="safetensors export is the [export] extra")
    from staa_snn.export import save_weights

    net = create_model("vgg_small", num_classes=10, T=2, in_channels=1, neuron="lif")
    files = {save_weights(net, tmp_path / f"w{k}", {"model": {}}).joinpath("model.safetensors").read_bytes()
             for k in range(8)}
    assert len(files) == 1


def test_training_time_of_a_paused_run_is_told_at_its_usual_pace_too():
    """A run suspended for an hour in its 2nd epoch: the sum of the epochs' times (1.2 h) says
    the wall clock, the median epoch times the epochs (3 x 120 s = 0.10 h) the usual pace; epochs
    after the checkpoint's and untimed ones do not count."""
    from staa_snn.export.weights import run_provenance, training_hours, training_time_text
    from staa_snn.training import format_duration, run_time

    ckpt = {"epoch": 3, "history": [{"epoch": 1, "epoch_time_s": 120.0}, {"epoch": 2, "epoch_time_s": 3720.0},
                                    {"epoch": 3, "epoch_time_s": 120.0}, {"epoch": 4, "epoch_time_s": 9.0}]}
    assert run_time(ckpt["history"]) == run_time(ckpt["history"], 4) != run_time(ckpt["history"], 3)
    t = run_time(ckpt["history"], 3)
    assert (t.total_s, t.median_epoch_s, t.epochs, t.usual_s) == (3960.0, 120.0, 3, 360.0)
    assert run_time([{"epoch": 1}]).usual_s is None and run_time([{"epoch": 1}]).epochs == 0
    assert training_hours(ckpt) == pytest.approx(3960 / 3600)
    assert training_time_text(ckpt) == ("66.0 min, the sum of the 3 epochs' wall-clock times; the run was paused or "
                                        "shared its cores: at its median epoch (2.0 min) the 3 epochs take 6.0 min")
    assert [format_duration(x) for x in (42, 89.4, 750, 5399, 7092)] == ["42 s", "89 s", "12.5 min", "90.0 min", "1.97 h"]
    quiet = {"epoch": 2, "history": [{"epoch": 1, "epoch_time_s": 100.0}, {"epoch": 2, "epoch_time_s": 110.0}]}
    assert training_time_text(quiet) == "3.5 min, the sum of the 2 epochs' wall-clock times"
    assert run_provenance(ckpt) == {"epochs": 3, "training_hours": 1.1, "median_epoch_s": 120.0}
    untimed = {"epoch": 1, "history": [{"epoch": 1}]}
    assert training_time_text(untimed) == "not recorded" and run_provenance(untimed) == {"epochs": 1, "training_hours": 0.0}


def test_shared_config_leaves_the_data_path_and_hold_out_to_provenance():
    """The config that travels with weights has no path of the training machine (the data
    folder; the run folder is the default's again) and no hold-out options (eval --weights then
    takes a folder's own test/); the hold-out is provenance."""
    from staa_snn.export.weights import shareable_config

    cfg = load_config("cifar10_quick", ["data.root=/home/me/cifar10", "data.options.val_per_class=500",
                                        "output.dir=/home/me/study/table4", "output.name=gc_seed0"])
    config, provenance = shareable_config(cfg)
    assert config["data"]["root"] is None and config["data"]["options"] == {}
    assert config["output"]["dir"] == "runs" and config["output"]["name"] is None
    assert provenance == {"data": "imagefolder", "held_out": {"val_per_class": 500}}
    assert cfg.data.root == "/home/me/cifar10" and cfg.data.options == {"val_per_class": 500}  # not changed
    assert cfg.output.dir == "/home/me/study/table4" and cfg.output.name == "gc_seed0"
    config["data"]["root"], config["data"]["options"] = cfg.data.root, cfg.data.options
    config["output"]["dir"], config["output"]["name"] = cfg.output.dir, cfg.output.name
    assert config == cfg.to_dict()  # nothing else differs

def test_class_names_and_normalisation_travel_with_the_weights(runs, tmp_path, monkeypatch, capsys):
    """The checkpoint, config.json, the model card and load_pretrained's net all say what the inputs
    are and what each output means; shipped names resolve like folders, for the CLI's eval too."""
    pytest.importorskip("safetensors", reason="safetensors export is the [export] extra")
    from staa_snn.models import pretrained
    from staa_snn.training import load_checkpoint, load_trained

    ckpt = load_checkpoint(runs["lif"] / "best.pt")
    digits = {"classes": [str(i) for i in range(10)], "normalization": None, "size": 12, "in_channels": 1,
              "kind": "static"}
    assert ckpt["input"] == digits
    assert load_trained(runs["lif"] / "best.pt", require_root=False)[1].pretrained_cfg["classes"] == digits["classes"]
    shipped = tmp_path / "shipped"
    assert cli.main(["export", "--checkpoint", str(runs["lif"] / "best.pt"), "--format", "safetensors",
                     "--out", str(shipped / "tiny_digits")]) == 0
    spec = json.loads((shipped / "tiny_digits" / "config.json").read_text())
    assert spec["input"] == digits
    card = (shipped / "tiny_digits" / "README.md").read_text()
    assert "| classes (index order) | 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 |" in card and "| normalisation | none" in card
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", shipped)
    assert pretrained.list_pretrained() == ["tiny_digits"]
    net = load_pretrained("tiny_digits")
    assert net.pretrained_cfg == {"name": "vgg_small", "T": 4, "dataset": "digits", **digits}
    again = create_model("vgg_small", num_classes=10, T=4, in_channels=1, neuron="lif", weights="tiny_digits").eval()
    x = _test_batch()
    with torch.no_grad():
        assert torch.equal(net(x), again(x))
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.iterdir())
    assert cli.main(["eval", "--weights", "tiny_digits"]) == 0
    out = capsys.readouterr().out
    assert sorted(tmp_path.iterdir()) == before  # weights have no folder of the user's: nothing written (issue 36)
    want = load_history(runs["lif"])
    best = max(want, key=lambda h: h["test_acc"])
    assert f"accuracy {best['test_acc']:.2%} on 355 samples" in out
    assert cli.main(["eval", "--weights", "tiny_digits", "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["acc_per_step"] == best["test_acc_per_step"]
    with pytest.raises(FileNotFoundError, match=r"or the name of shipped weights: tiny_digits"):
        load_pretrained("tiny_digit")


class FakeHub:
    """huggingface_hub's calls we make, against a folder standing for the Hub: upload_folder copies the
    allowed files of a folder to <remote>/<repo>, snapshot_download returns that folder. The keyword
    arguments we pass are bound against the real library's signatures when it is installed."""

    def __init__(self, remote: Path):
        self.remote, self.calls = remote, []
        hub = self

        class HfApi:
            def __init__(self, **kwargs):
                hub._record("HfApi", kwargs)

            def create_repo(self, **kwargs):
                hub._record("create_repo", kwargs)
                (hub.remote / kwargs["repo_id"]).mkdir(parents=True, exist_ok=True)

            def upload_folder(self, **kwargs):
                hub._record("upload_folder", kwargs)
                import shutil

                for name in kwargs["allow_patterns"]:
                    shutil.copy(Path(kwargs["folder_path"]) / name, hub.remote / kwargs["repo_id"] / name)

        self.HfApi = HfApi

    def _record(self, name, kwargs):
        self.calls.append((name, kwargs))
        try:
            import huggingface_hub as real
        except ImportError:
            return
        fn = {"HfApi": real.HfApi.__init__, "create_repo": real.HfApi.create_repo,
              "upload_folder": real.HfApi.upload_folder, "snapshot_download": real.snapshot_download}[name]
        import inspect

        inspect.signature(fn).bind(*([None] if name != "snapshot_download" else []), **kwargs)  # TypeError if not

    def snapshot_download(self, **kwargs):
        self._record("snapshot_download", kwargs)
        folder = self.remote / kwargs["repo_id"]
        if not folder.is_dir():
            raise FileNotFoundError(f"no repository {kwargs['repo_id']}")
        return str(folder)


def test_weights_go_to_the_hub_and_come_back(runs, tmp_path, monkeypatch, capsys):
    """export --push-to-hub uploads the export's three files; load_pretrained("hf://...") and
    create_model(weights="hf://...") build the same net from them (a local folder stands for the Hub)."""
    pytest.importorskip("safetensors", reason="safetensors export is the [export] extra")
    import sys

    hub = FakeHub(tmp_path / "remote")
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    out = tmp_path / "shared"
    assert cli.main(["export", "--checkpoint", str(runs["lif"] / "best.pt"), "--format", "safetensors",
                     "--out", str(out), "--push-to-hub", "me/digits-lif", "--private"]) == 0
    assert capsys.readouterr().out.split() == [str(out), "hf://me/digits-lif"]
    assert sorted(p.name for p in (tmp_path / "remote/me/digits-lif").iterdir()) == \
        ["README.md", "config.json", "model.safetensors"]
    create = next(k for n, k in hub.calls if n == "create_repo")
    assert create["repo_id"] == "me/digits-lif" and create["private"] is True and create["exist_ok"] is True
    trained = load_pretrained_from_checkpoint(runs["lif"] / "best.pt")
    loaded = load_pretrained("hf://me/digits-lif")
    again = create_model("vgg_small", num_classes=10, T=4, in_channels=1, neuron="lif",
                         weights="hf://me/digits-lif@main").eval()
    downloads = [k for n, k in hub.calls if n == "snapshot_download"]
    assert [(d["repo_id"], d["revision"]) for d in downloads] == [("me/digits-lif", None), ("me/digits-lif", "main")]
    assert downloads[0]["allow_patterns"] == ["model.safetensors", "config.json", "README.md"]
    x = _test_batch()
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x)) and torch.equal(again(x), trained(x))


def test_a_failed_upload_keeps_the_export_and_says_so(runs, tmp_path, monkeypatch, capsys):
    pytest.importorskip("safetensors", reason="safetensors export is the [export] extra")
    import sys

    hub = FakeHub(tmp_path / "remote")

    def offline(**kwargs):
        raise ConnectionError("no route to huggingface.co")

    hub.HfApi.upload_folder = lambda self, **kwargs: offline()
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    out = tmp_path / "shared"
    assert cli.main(["export", "--checkpoint", str(runs["lif"] / "best.pt"), "--format", "safetensors",
                     "--out", str(out), "--push-to-hub", "me/net"]) == 1
    err = capsys.readouterr().err
    assert "uploading to me/net failed (ConnectionError: no route to huggingface.co)" in err
    assert f"the export is in {out}" in err and len(err.strip().splitlines()) == 1
    assert load_pretrained(out) is not None


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx", "--push-to-hub", "me/net"], "uploads safetensors weights, not onnx"),
    (["--format", "safetensors", "--push-to-hub", "no-owner"], "takes a Hub model repository OWNER/NAME"),
    (["--format", "safetensors", "--push-to-hub", "me/net@dev"], "got 'me/net@dev'"),
    (["--format", "safetensors", "--private"], "--private goes with --push-to-hub"),
])
def test_hub_arguments_checked_before_the_export(runs, tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert cli.main(["export", "--checkpoint", str(runs["lif"] / "best.pt"), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_hub_missing_says_which_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[hub\]"'):
        load_pretrained("hf://me/net")

# -- NIR ---------------------------------------------------------------------------------------

def run_nir(graph, x: torch.Tensor, T: int):
    """A small interpreter of the NIR graphs written here: dt = 1, Euler, each LIF starting at rest
    (v = v_leak); NIR's LIF fires on v > threshold.
    Returns the per-step outputs and every LIF node's spikes per step."""
    preds = {name: [s for s, d in graph.edges if d == name] for name in graph.nodes}
    order, done = [], set()
    while len(order) < len(graph.nodes):
        for name in graph.nodes:
            if name not in done and all(p in done for p in preds[name]):
                order.append(name)
                done.add(name)
    state = {n: None for n, node in graph.nodes.items() if type(node).__name__ == "LIF"}
    outputs, spikes = [], {n: [] for n in state}
    t64 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    for _ in range(T):
        values = {}
        for name in order:
            node = graph.nodes[name]
            kind = type(node).__name__
            inp = x if kind == "Input" else sum(values[p] for p in preds[name])
            if kind == "Conv2d":
                out = F.conv2d(inp[None], t64(node.weight), t64(node.bias), tuple(node.stride), tuple(node.padding),
                               tuple(node.dilation), node.groups)[0]
            elif kind == "AvgPool2d":
                out = F.avg_pool2d(inp[None], tuple(node.kernel_size), tuple(node.stride), tuple(node.padding))[0]
            elif kind == "Flatten":
                out = inp.reshape(-1)
            elif kind == "Affine":
                out = t64(node.weight) @ inp + t64(node.bias)
            elif kind == "LIF":
                v = state[name] if state[name] is not None else t64(node.v_leak).expand_as(inp)  # at rest
                v = v + (t64(node.v_leak) - v + t64(node.r) * inp) / t64(node.tau)
                s = (v > t64(node.v_threshold)).double()
                state[name] = torch.where(s.bool(), t64(node.v_reset), v)
                spikes[name].append(s)
                out = s
            else:  # Input, Output
                out = inp
            values[name] = out
        outputs.append(values["output"])
    return torch.stack(outputs), {n: torch.stack(v) for n, v in spikes.items()}


def _our_spikes(model, x):
    got = {}
    hooks = [m.register_forward_hook(lambda mod, a, out, name=name: got.__setitem__(name, out.detach()))
             for name, m in model.named_modules() if isinstance(m, SpikingNeuron)]
    with torch.no_grad():
        steps = model.forward_steps(x[None])
    for h in hooks:
        h.remove()
    return steps[:, 0], {n: s.unflatten(0, (model.T, -1))[:, 0] for n, s in got.items()}


@pytest.mark.parametrize("name, neuron, options", [
    ("vgg_small", "lif", {}),
    ("vgg_small", "adaptive", {"neuron_preset": "mpbn"}),  # per-channel M, N; BN_mp folded into thresholds
    ("resnet20", "lif", {"tau": 3.0, "v_reset": -0.2}),   # residual edges, AvgPool shortcuts
])
def test_nir_graph_reproduces_the_spikes(name, neuron, options, tmp_path):
    nir = pytest.importorskip("nir", reason="NIR export is the [export] extra")
    from staa_snn.export import to_nir

    torch.manual_seed(0)
    size = 16
    model = create_model(name, num_classes=5, T=3, in_channels=1, neuron=neuron, **options).double()
    with torch.no_grad():  # a trained-looking net: BN statistics away from (0, 1), some weights negative
        model.train()
        model(torch.rand(8, 1, size, size, dtype=torch.float64) * 3)
        for m in model.modules():
            if isinstance(m, MultiStepNeuron) and m.bn_mp is not None:
                m.bn_mp.weight.uniform_(0.5, 1.5)
                m.bn_mp.bias.uniform_(-0.3, 0.3)
            if hasattr(m, "m") and isinstance(getattr(m, "m"), torch.nn.Parameter):
                m.m.uniform_(0.1, 0.6)
                m.n.uniform_(0.5, 1.5)
    model.eval()
    path = tmp_path / "net.nir"
    nir.write(path, to_nir(model, (1, size, size)))
    graph = nir.read(path)
    x = torch.rand(1, size, size, dtype=torch.float64) * 3
    reference = fold_mpbn(model)
    logits, ours = _our_spikes(reference, x)
    out, theirs = run_nir(graph, x, model.T)
    assert set(theirs) == {f"{n}" for n in ours} and sum(s.sum() for s in ours.values()) > 0
    for n, s in ours.items():
        assert torch.equal(theirs[n], s), n
    torch.testing.assert_close(out, logits, rtol=1e-9, atol=1e-9)


def test_nir_refuses_what_it_cannot_express(tmp_path, runs, capsys):
    pytest.importorskip("nir", reason="NIR export is the [export] extra")
    from staa_snn.export import NIRExportError, to_nir

    staa = create_model("vgg_small", num_classes=5, T=2, in_channels=1, neuron="staa")
    with pytest.raises(NIRExportError, match=r"STAA-LIF layers have no NIR primitive .*features.2.neuron"):
        to_nir(staa, (1, 8, 8))
    mpbn = create_model("vgg_small", num_classes=5, T=2, in_channels=1, neuron="lif", neuron_preset="mpbn")
    with torch.no_grad():
        mpbn.features[2].neuron.bn_mp.weight[3] = -1.0
    with pytest.raises(NIRExportError, match="negative BN weight fire below their threshold"):
        to_nir(mpbn.eval(), (1, 8, 8))
    assert cli.main(["export", "--checkpoint", str(runs["staa"] / "best.pt"), "--format", "nir",
                     "--out", str(tmp_path / "x.nir")]) == 2
    err = capsys.readouterr().err
    assert "STAA-LIF layers have no NIR primitive" in err and len(err.strip().splitlines()) == 1


def test_nir_export_names_the_nir_it_needs(monkeypatch):
    """nir<=1.0.5 has no LIF reset potential (Sinabs pins nir<=1.0.4): the export says which nir it
    needs before it builds anything, instead of a TypeError from the LIF's constructor."""
    nir = pytest.importorskip("nir", reason="NIR export is the [export] extra")
    import dataclasses

    from staa_snn.export import to_nir

    @dataclasses.dataclass
    class OldLIF:                                   # nir 1.0.4's fields
        tau: np.ndarray
        r: np.ndarray
        v_leak: np.ndarray
        v_threshold: np.ndarray

    monkeypatch.setattr(nir, "LIF", OldLIF)
    lif = create_model("vgg_small", num_classes=5, T=2, in_channels=1, neuron="lif")
    with pytest.raises(ImportError, match=r"NIR export needs nir>=1\.0\.6, .* pip install 'nir>=1\.0\.6'"):
        to_nir(lif, (1, 8, 8))


# -- curves --------------------------------------------------------------------------------------

def test_plot_draws_every_run_from_its_metrics(runs, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert cli.main(["plot", str(runs["lif"]), str(runs["staa"]), "--out", str(out)]) == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.size[0] > 500 and im.size[1] > 400
    curves = plot_runs([runs["lif"], runs["staa"]], tmp_path / "again.png")
    for panel in ("train_loss", "test_loss", "train_acc", "test_acc", "test_acc_per_step", "firing_rate"):
        assert sorted(curves.series[panel]) == ["lif", "staa"], panel  # one line per run
    for neuron in ("lif", "staa"):
        history = load_history(runs[neuron])
        assert curves.series["test_acc"][neuron] == ([1, 2], [h["test_acc"] for h in history])
        assert curves.series["test_acc_per_step"][neuron][1] == history[-1]["test_acc_per_step"]
        rates = history[-1]["firing_rates"]
        assert curves.series["firing_rate"][neuron][1][-1] == pytest.approx(sum(rates.values()) / len(rates))
    assert curves.split == "test"                 # digits has a test split: the solid lines are named so
    import shutil

    held = shutil.copytree(runs["lif"], tmp_path / "held")  # the same run, as if 5 per class were held out
    text = (held / "config.yaml").read_text()
    assert "options: {}" in text
    (held / "config.yaml").write_text(text.replace("options: {}", "options:\n    val_per_class: 5"))
    assert plot_runs([held], tmp_path / "held.png").split == "validation"
    assert plot_runs([held, runs["staa"]], tmp_path / "mixed.png").split == "held-out"
    assert cli.main(["plot", str(tmp_path / "nowhere")]) == 2
    assert "metrics.jsonl does not exist (no such folder)" in capsys.readouterr().err


SHIPPED_CIFAR = {"cifar10_quick": "staa", "cifar10_quick_lif": "lif"}
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.mark.parametrize("name", sorted(SHIPPED_CIFAR))
def test_shipped_cifar10_weights_load_by_name(name):
    """The weights inside the package: listed, loaded by name (load_pretrained and create_model
    alike), with CIFAR-10's classes and normalisation, at most 5 MB, their card naming the split,
    the epochs and the CPU-hours."""
    pytest.importorskip("safetensors", reason="safetensors export is the [export] extra")
    from staa_snn.models import pretrained

    assert name in pretrained.list_pretrained()
    folder = pretrained.PRETRAINED_DIR / name
    assert (folder / "model.safetensors").stat().st_size <= 5 * 2**20
    net = load_pretrained(name)
    cfg = net.pretrained_cfg
    assert (cfg["name"], cfg["T"], cfg["size"], cfg["in_channels"]) == ("vgg_quick", 2, 32, 3)
    assert cfg["classes"] == CIFAR_CLASSES and cfg["normalization"]["mean"] == [0.4914, 0.4822, 0.4465]
    again = create_model("vgg_quick", num_classes=10, T=2, neuron=SHIPPED_CIFAR[name], weights=name).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = net(x)
        assert out.shape == (2, 10) and torch.isfinite(out).all() and torch.equal(out, again(x))
    card = (folder / "README.md").read_text()
    assert "| validation accuracy (500 images per class held out of the training images) |" in card
    assert "| trained | 20 of 20 epochs" in card and "CPU-hours" in card
    assert "/work" not in card and "/work" not in (folder / "config.json").read_text()


def test_eval_shipped_weights_on_a_folder(tmp_path, capsys):
    """staa-snn eval --weights cifar10_quick data.root=DIR: DIR/test/<class>/ of tiny generated
    images, every class; the accuracy after each step is printed."""
    pytest.importorskip("safetensors", reason="safetensors export is the [export] extra")
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in CIFAR_CLASSES:
            (tmp_path / split / c).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / split / c / "0.png")
    assert cli.main(["eval", "--weights", "cifar10_quick", f"data.root={tmp_path}", "--json",
                     str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "on 10 samples" in out and "read out after t steps" in out
    assert len(json.loads((tmp_path / "e.json").read_text())["acc_per_step"]) == 2
    # no data, or a folder without test/ or val/: what evaluation needs, not what training needs
    (tmp_path / "empty").mkdir()
    for extra, message in (([], "cifar10_quick is evaluated on imagefolder data: give data.root=DIR"),
                           ([f"data.root={tmp_path / 'empty'}"],
                            f"expected {tmp_path / 'empty'}/test/<class>/<image> (or val/) class folders to evaluate on")):
        assert cli.main(["eval", "--weights", "cifar10_quick", *extra]) == 2
        assert message in capsys.readouterr().err
