"""Analysis: operation counting, energy, Grad-CAM and figures, ablation sweeps."""

import json
import statistics
import sys
import types

import numpy as np
import pytest
import scipy.stats
import torch
from PIL import Image
import torch.nn.functional as F
from torch import nn

from staa_snn import cli
from staa_snn.analysis import profile_model
from staa_snn.analysis import ablate as ablate_mod
from staa_snn.analysis import ablate_table
from staa_snn.analysis.visualize import gradcam, neuron_slots, visualize
from staa_snn.models import create_model
from staa_snn.neurons import LIF
from staa_snn.training import load_checkpoint, load_config, train


def test_resnet20_counts_match_the_paper():
    net = create_model("resnet20", num_classes=100, T=4, neuron="staa")
    r = profile_model(net, torch.rand(2, 3, 32, 32))
    assert 0.86e9 <= r.dense_macs <= 0.88e9  # the paper's 0.87 G "FLOPs"
    assert r.params == pytest.approx(12.69e6, rel=0.01)
    assert r.energy_mj == pytest.approx((0.9 * r.ac + 4.6 * r.mac) * 1e-9)
    assert set(r.firing_rates) == {n + ".neuron" for n in neuron_slots(net)}


class HandSet(nn.Module):
    """A spike source of the test's own: hand-set spikes, as an activation of the forward."""

    def __init__(self, spikes: torch.Tensor):
        super().__init__()
        self.spikes = spikes

    def forward(self, y):
        return self.spikes + 0 * y


class HandSpikes(nn.Module):
    """Real conv (MAC) -> spikes set by hand -> conv (AC) -> real-valued linear (MAC)."""

    def __init__(self, spikes: torch.Tensor):
        super().__init__()
        self.enc = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.fire = HandSet(spikes)
        self.conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.conv(self.fire(self.enc(x))) * 1.5, 1))


def test_ac_is_the_firing_rate_weighted_count_on_hand_set_spikes():
    spikes = torch.zeros(5, 2, 6, 6)
    spikes[:, 0, :3, :] = 1  # 18 of 72 positions per sample fire: rate 0.25
    model = HandSpikes(spikes)
    r = profile_model(model, torch.randn(5, 1, 6, 6), spike_sources=(HandSet,))
    enc_macs = 2 * 36 * 9  # per sample: outputs x (C_in x k x k)
    conv_macs = 4 * 36 * 2 * 9
    fc_macs = 144 * 3
    assert r.dense_macs == enc_macs + conv_macs + fc_macs
    assert r.ac == pytest.approx(0.25 * conv_macs)
    assert r.mac == enc_macs + fc_macs  # real inputs, counted in full
    assert r.energy_mj == pytest.approx((0.9 * 0.25 * conv_macs + 4.6 * (enc_macs + fc_macs)) * 1e-9)
    kinds = {(l["module"], l["kind"]) for l in r.layers}
    assert kinds == {("enc", "MAC"), ("conv", "AC"), ("fc", "MAC")}
    custom = profile_model(model, torch.randn(5, 1, 6, 6), e_ac_pj=1.0, e_mac_pj=2.0, spike_sources=(HandSet,))
    assert custom.energy_mj == pytest.approx((custom.ac + 2 * custom.mac) * 1e-9)
    # without declaring the source, the same 0/1 values are just real numbers: MAC
    plain = profile_model(model, torch.randn(5, 1, 6, 6))
    assert plain.ac == 0 and plain.mac == plain.dense_macs


def test_counts_average_over_batches_and_ignore_zero_weights():
    spikes = torch.zeros(2, 2, 6, 6)
    spikes[0] = 1  # sample 0 all ones, sample 1 silent: rate 0.5 over the batch
    model = HandSpikes(spikes)
    nn.init.zeros_(model.conv.weight)  # an all-zero weight is binary, but it is a weight, not a spike operand
    one = profile_model(model, torch.randn(2, 1, 6, 6), spike_sources=(HandSet,))
    two = profile_model(model, [torch.randn(2, 1, 6, 6), torch.randn(2, 1, 6, 6)], spike_sources=(HandSet,))
    assert one.ac == pytest.approx(0.5 * 4 * 36 * 2 * 9) and two.ac == pytest.approx(one.ac)
    assert two.samples == 4


class Provenance(nn.Module):
    """Layers after operations on spikes: those that keep them binary (AC) and those that do not (MAC)."""

    def __init__(self):
        super().__init__()
        self.fire = LIF()
        self.after_maxpool = nn.Conv2d(2, 3, 1, bias=False)
        self.after_pad_cat = nn.Conv2d(4, 3, 1, bias=False)
        self.after_avgpool = nn.Conv2d(2, 3, 1, bias=False)
        self.on_binary_pixels = nn.Conv2d(2, 3, 1, bias=False)
        self.flat = nn.Linear(2 * 16, 3)

    def forward(self, x):  # x: [B, 2, 4, 4], binary pixels
        s = self.fire((x * 3).unsqueeze(0)).squeeze(0)
        out = self.after_maxpool(F.max_pool2d(s, 2)).sum() + self.after_avgpool(F.avg_pool2d(s, 2)).sum()
        out = out + self.after_pad_cat(torch.cat([F.pad(s, (1, 1, 1, 1)), F.pad(s, (1, 1, 1, 1))], 1)).sum()
        return out + self.on_binary_pixels(x).sum() + self.flat(s.flatten(1)).sum()


def test_spikes_are_known_by_provenance_not_by_value():
    x = (torch.rand(3, 2, 4, 4) > 0.5).float()  # 0/1 pixels: real input that happens to be binary
    r = profile_model(Provenance(), x)
    kinds = {l["module"]: l["kind"] for l in r.layers}
    assert kinds == {"after_maxpool": "AC", "after_pad_cat": "AC", "flat": "AC", "after_avgpool": "MAC",
                     "on_binary_pixels": "MAC"}
    rate = x.mean().item()  # LIF(tau=2) on 3x fires exactly where x = 1 (H = 1.5)
    flat = next(l for l in r.layers if l["module"] == "flat")
    assert flat["rate"] == pytest.approx(rate) and flat["counted"] == pytest.approx(rate * flat["macs"])


@pytest.mark.parametrize("scale", [0.0, 1.0, 20.0])
def test_lif_resnet20_mac_is_exact_whatever_it_fires(scale):
    """51.32 M MAC per image: encoder conv, stage-1's first conv (after the stem's AvgPool), three AvgPool
    shortcuts and the classifier (after the global average pool), times T = 4."""
    torch.manual_seed(0)
    net = create_model("resnet20", num_classes=100, T=4, neuron="lif")
    r = profile_model(net, torch.rand(2, 3, 32, 32) * scale)
    per_step = 64 * 27 * 32 * 32 + 64 * 576 * 16 * 16 + 3 * (128 * 64 * 8 * 8) + 512 * 100
    assert r.mac == 4 * per_step == 51_322_880
    assert r.dense_macs == 862_920_704
    assert (r.ac == 0) == (scale == 0.0)


def test_ac_agrees_with_spikingjellys_synop_counter():
    """On a plain LIF net whose spike-driven layers have no padding (linear and 1x1 conv), our #AC is
    SpikingJelly's SynOp count. (With padding they differ: theirs counts each spike's actual weight
    uses, ours the firing rate times the dense MACs, as the paper.)"""
    op_counter = pytest.importorskip("spikingjelly.activation_based.op_counter",
                                     reason="SpikingJelly is an optional dependency ([dev] installs it)")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(2), nn.Linear(2 * 16, 24), LIF(), nn.Linear(24, 16), LIF(), nn.Linear(16, 5))
    x = torch.rand(4, 6, 2, 4, 4) * 4  # [T, B, ...]: 6 samples
    r = profile_model(net, x, time_first=True)
    counter = op_counter.SynOpCounter()
    with torch.no_grad(), op_counter.DispatchCounterMode([counter]):
        net(x)
    assert r.samples == 6
    assert r.ac > 0 and r.ac * 6 == pytest.approx(counter.get_total())  # ours per sample, theirs per batch


def test_profile_counts_a_spikingjelly_net_per_sample_with_its_firing_rates():
    """A SpikingJelly multi-step net takes [T, B, ...] as it is: time_first=True counts per true
    sample (B, not T), and its LIFNodes' firing rates are read off their spikes."""
    sj = pytest.importorskip("spikingjelly.activation_based", reason="SpikingJelly is an optional dependency")
    from spikingjelly.activation_based import layer, neuron

    torch.manual_seed(0)
    net = nn.Sequential(layer.Flatten(), layer.Linear(2 * 16, 24), neuron.LIFNode(step_mode="m"),
                        layer.Linear(24, 5))
    sj.functional.set_step_mode(net, "m")
    T, B = 4, 6
    x = torch.rand(T, B, 2, 4, 4) * 4
    r = profile_model(net, x, time_first=True)
    assert r.samples == B
    assert r.dense_macs == pytest.approx(T * (2 * 16 * 24 + 24 * 5))  # per sample, over the T steps
    sj.functional.reset_net(net)
    with torch.no_grad():
        spikes = net[:3](x)
    assert r.firing_rates == {"2": pytest.approx(float(spikes.mean()))}
    assert r.ac == pytest.approx(float(spikes.mean()) * T * 24 * 5)


def test_profile_firing_rates_are_the_neurons():
    net = create_model("vgg_small", num_classes=10, T=2, neuron="lif", in_channels=1)
    x = torch.rand(3, 1, 8, 8) * 4
    r = profile_model(net, x)
    spikes = {}  # each neuron layer's output, caught by a hook: the rate computed here, not read from the net
    hooks = [net.get_submodule(n).neuron.register_forward_hook(
        lambda module, args, out, name=n + ".neuron": spikes.__setitem__(name, out.detach().float()))
        for n in neuron_slots(net)]
    with torch.no_grad():
        net.eval()
        net(x)
    for hook in hooks:
        hook.remove()
    assert set(spikes) == set(r.firing_rates) and len(spikes) == len(neuron_slots(net)) > 0
    assert all(set(s.unique().tolist()) <= {0.0, 1.0} for s in spikes.values())
    assert 0 < sum(float(s.mean()) for s in spikes.values())
    assert r.firing_rates == {name: pytest.approx(float(s.mean())) for name, s in spikes.items()}


def test_gradcam_equals_a_hand_computation_on_the_first_layer():
    pytest.importorskip("pytorch_grad_cam", reason='Grad-CAM is the [viz] extra (pip install -e ".[viz]" (in the repository))')
    torch.manual_seed(0)
    net = create_model("vgg_small", num_classes=10, T=2, neuron="lif", in_channels=1).eval()
    x = torch.rand(2, 1, 8, 8) * 3
    targets = [3, 7]
    maps = gradcam(net, x, "features.2", targets)  # before any pooling: feature map = input size
    acts = {}
    net.get_submodule("features.2").register_forward_hook(lambda m, a, out: acts.setdefault("a", out))
    acts_out = net(x)
    a = acts["a"]  # [T*B, C, H, W]
    grads = torch.autograd.grad(acts_out[range(2), targets].sum(), a)[0]
    A, G = a.unflatten(0, (2, -1)).mean(0), grads.unflatten(0, (2, -1)).mean(0)
    cam = torch.relu((G.mean((2, 3), keepdim=True) * A).sum(1)).detach().numpy()
    cam = cam - cam.min(axis=(1, 2), keepdims=True)
    cam = cam / (1e-7 + cam.max(axis=(1, 2), keepdims=True))
    np.testing.assert_allclose(maps, cam, atol=1e-5)


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpts")
    paths = []
    for neuron in ("lif", "staa"):
        cfg = load_config(cli.resolve_config("digits"), [
            "data.size=8", "model.T=2", f"model.neuron={neuron}", "train.epochs=1", "train.max_batches=3",
            "train.progress=false", "output.tensorboard=false", f"output.dir={out}"])
        paths.append(train(cfg).run_dir / "last.pt")
    return paths


def test_visualize_writes_the_figures(two_checkpoints, tmp_path, capsys):
    pytest.importorskip("pytorch_grad_cam", reason='Grad-CAM is the [viz] extra (pip install -e ".[viz]" (in the repository))')
    args = ["visualize", "--checkpoint", str(two_checkpoints[0]), "--checkpoint", str(two_checkpoints[1]),
            "--samples", "3", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["firing_rates.png", "gradcam.png", "pe_mn.png", "sa_gates.png"]
    for p in tmp_path.glob("*.png"):
        with Image.open(p) as im:
            assert im.size[0] > 100 and im.size[1] > 100


def test_visualize_api_without_sa(two_checkpoints, tmp_path):
    pytest.importorskip("pytorch_grad_cam", reason='Grad-CAM is the [viz] extra (pip install -e ".[viz]" (in the repository))')
    from staa_snn.analysis.loading import dataset_batches, model_from

    cfg, model, _ = model_from(None, [], two_checkpoints[0])
    xs, ys = dataset_batches(cfg, 1, 2)
    files = visualize({"lif": model}, xs[0], ys[0], tmp_path)
    assert sorted(f.name for f in files) == ["firing_rates.png", "gradcam.png"]  # LIF: no SA gates, PE, M, N


def test_profile_command(two_checkpoints, tmp_path, capsys):
    assert cli.main(["profile", "--checkpoint", str(two_checkpoints[1]), "--batches", "2", "--batch-size", "4",
                     "--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "dense MACs" in out and "energy" in out and "features.2.neuron" in out
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["samples"] == 8 and {"params", "dense_macs", "ac", "mac", "energy_mj", "firing_rates"} <= set(report)
    assert cli.main(["profile", "--config", "cifar100_resnet20_t4", "--random", "--json", "-"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert 0.86e9 <= r["dense_macs"] <= 0.88e9
    assert cli.main(["profile", "--config", "cifar100_resnet20_t4"]) == 2  # data needed without --random
    assert "data.root is required" in capsys.readouterr().err


def test_ablate_runs_resumes_and_summarises(tmp_path, monkeypatch, capsys):
    args = ["ablate", "--grid", "pe_kind", "--seeds", "2", "--epochs", "1", "--out", str(tmp_path),
            "data.size=8", "model.T=2", "train.max_batches=2", "output.tensorboard=false"]
    monkeypatch.setattr(sys, "argv", ["staa-snn", *args])  # what each run records as its command
    assert cli.main(args) == 0
    folder = tmp_path / "pe_kind"
    summary = json.loads((folder / "results.json").read_text())
    assert [r["row"] for r in summary["rows"]] == ["learnable", "fixed"] and summary["seeds"] == 2
    for r in summary["rows"]:
        assert len(r["accs"]) == 2 and r["mean"] == pytest.approx(sum(r["accs"]) / 2)
        assert len(r["accs_step1"]) == 2 and r["mean_step1"] == pytest.approx(sum(r["accs_step1"]) / 2)
        assert len(r["run_time_s"]) == 2 and all(t > 0 for t in r["run_time_s"])
    assert summary["metric"] == "test accuracy after the last epoch"
    assert summary["rows"][1]["delta"] == pytest.approx(summary["rows"][1]["mean"] - summary["rows"][0]["mean"])
    md = (folder / "results.md").read_text()
    assert "staa-snn ablate --grid pe_kind" in md and "| fixed |" in md
    assert (folder / "pe_kind.png").is_file() and (folder / "pe_kind_curves.png").is_file()
    for r in summary["rows"]:  # every seed's curve is its run's history, epoch by epoch
        for seed, curve in enumerate(r["curves"]):
            history = load_checkpoint(folder / f"{r['row']}_seed{seed}" / "last.pt")["history"]
            assert curve == [h["test_acc"] for h in history] and curve[-1] == r["accs"][seed]
            assert r["curves_step1"][seed] == [h["test_acc_per_step"][0] for h in history]
            assert r["epoch_times_s"][seed] == [h["epoch_time_s"] for h in history]
            assert sum(r["epoch_times_s"][seed]) == pytest.approx(r["run_time_s"][seed])
            times = sorted(r["epoch_times_s"][seed])  # 2 epochs: the median is their mean
            assert r["usual_run_time_s"][seed] == pytest.approx(len(times) * statistics.median(times))

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(ablate_mod, "train", no_training)
    assert cli.main(args) == 0  # everything finished: read back, nothing retrained
    assert json.loads((folder / "results.json").read_text())["rows"] == summary["rows"]
    assert cli.main([*args, "--rows", "fixed"]) == 0  # a part of the grid: that row alone, read back
    part = json.loads((folder / "results.json").read_text())
    assert [r["row"] for r in part["rows"]] == ["fixed"] and part["rows"][0]["delta"] is None
    assert "| fixed |" in (folder / "results.md").read_text()
    capsys.readouterr()
    assert cli.main([*args, "--rows", "learnable,banana"]) == 2
    assert "--rows: grid pe_kind has no row 'banana'; its rows: learnable, fixed" in capsys.readouterr().err

    # checkpoints deleted to save disk: the same table from each run's metrics.jsonl and config.yaml
    for pt in folder.glob("*/*.pt"):
        pt.unlink()
    assert cli.main(["ablate", "--gather", str(folder)]) == 0
    assert json.loads((folder / "results.json").read_text())["rows"] == summary["rows"]
    assert cli.main(["ablate", "--status", str(folder)]) == 0 and "4/4 runs finished" in capsys.readouterr().out
    assert cli.main(args) == 0  # and the grid's command reads them back too, training nothing
    assert json.loads((folder / "results.json").read_text())["rows"] == summary["rows"]
    # a damaged record is one line naming its file (and line), exit 2: never a traceback or a wrong table
    run = folder / "fixed_seed1"
    metrics, config, grid_json = run / "metrics.jsonl", run / "config.yaml", folder / "grid.json"
    good = {f: f.read_text() for f in (metrics, config, grid_json)}
    record = json.loads(good[metrics])
    damaged = [
        (metrics, json.dumps({**record, "epoch": 2}), "metrics.jsonl: line 1: epoch 2 where 1 was expected"),
        (metrics, json.dumps({**record, "test_acc": 1.5}), "line 1: test_acc 1.5 is not an accuracy in [0, 1]"),
        (metrics, json.dumps({**record, "test_acc": float("nan")}), "line 1: test_acc nan is not an accuracy"),
        (metrics, json.dumps({k: v for k, v in record.items() if k != "test_acc"}), "test_acc None is not"),
        (metrics, json.dumps({**record, "test_acc_per_step": [0.5]}), "is not 2 accuracies in [0, 1]"),
        (metrics, good[metrics][:40], "metrics.jsonl: line 1 is not JSON"),
        (config, "model: [", "config.yaml is not YAML"),
        (config, good[config].replace("model:\n", "model:\n  bogus: 1\n"),
         "config.yaml: its config is not one this version reads (unknown key(s) ['model.bogus']"),
        (grid_json, "garbage", "grid.json is not JSON"),
        (grid_json, "[1]", "grid.json is not a grid's record"),
        (grid_json, good[grid_json].replace('"seeds": 2', '"seeds": "two"'), "grid.json: seeds missing or not"),
        (grid_json, good[grid_json].replace('"fixed"', '"banana"'), "grid.json: grid pe_kind has no row 'banana'"),
    ]
    for path, text, message in damaged:
        path.write_text(text)
        capsys.readouterr()
        assert cli.main(["ablate", "--gather", str(folder)]) == 2, message
        err = capsys.readouterr().err
        assert message in err and str(path.parent) in err and len(err.strip().splitlines()) == 1, (message, err)
        path.write_text(good[path])
    config.unlink()  # metrics without their config: named, not taken for a run never trained
    assert cli.main(["ablate", "--gather", str(folder)]) == 2
    assert f"{run} has a metrics.jsonl but neither last.pt nor config.yaml" in capsys.readouterr().err
    metrics.unlink()  # neither checkpoint nor metrics: missing, and the others still summarised
    assert cli.main(["ablate", "--status", str(folder)]) == 1 and "fixed_seed1: missing (epoch 0/1)" in capsys.readouterr().out


def test_a_grid_launched_a_seed_at_a_time_shows_the_commands_its_runs_recorded(tmp_path, monkeypatch):
    """grid.json keeps its last launch's command (here --seeds 2), which did not train the seed-0
    runs: results.md shows the commands the runs recorded in their meta.json, each once, in the
    table's order, the program by its name, with the commit of their code; where no run recorded
    one, the grid's command."""
    tiny = ["data.size=8", "model.T=2", "train.max_batches=2", "output.tensorboard=false"]
    commands = []
    for seeds in (1, 2):
        args = ["ablate", "--grid", "pe_kind", "--seeds", str(seeds), "--epochs", "1", "--out", str(tmp_path), *tiny]
        monkeypatch.setattr(sys, "argv", ["/opt/venv/bin/staa-snn", *args])
        assert cli.main(args) == 0
        commands.append("staa-snn " + " ".join(args))
    folder = tmp_path / "pe_kind"
    summary = json.loads((folder / "results.json").read_text())
    assert summary["command"] == commands[1] and summary["run_commands"] == commands
    commit = json.loads((folder / "fixed_seed0" / "meta.json").read_text())["git_commit"]
    assert summary["git_commits"] == ([commit] if commit else [])
    md = (folder / "results.md").read_text()
    title = "Commands (as the runs recorded them" + (f"; code at commit {commit[:7]}):" if commit else "):")
    assert f"{title}\n\n```bash\n{commands[0]}\n{commands[1]}\n```" in md
    for run in ("learnable_seed1", "fixed_seed1"):  # the seed-1 runs' records gone: seed 0's command alone
        (folder / run / "meta.json").write_text("{not json")
    summary, _ = ablate_mod.gather(folder)
    assert summary["run_commands"] == commands[:1]
    assert "Command (as the runs recorded it" in ablate_mod.to_markdown(summary)
    for meta in folder.glob("*/meta.json"):
        meta.unlink()
    summary, _ = ablate_mod.gather(folder)
    assert summary["run_commands"] == [] and f"Command:\n\n```bash\n{commands[1]}\n```" in ablate_mod.to_markdown(summary)


def test_ablate_status_says_how_long_the_runs_left_take():
    """Each unfinished run: its epochs left at its median epoch (15 x 300 s = 75 min); the grid:
    those, plus a run not started at the median of the others' median epochs ((100 + 300) / 2 =
    200 s, 20 epochs: 4000 s), together 8500 s = 2.36 h; nothing said before any epoch."""
    def state(kind, epochs, epoch_s):
        return {"state": kind, "epochs": epochs, "epochs_asked": 20, "epoch_s": epoch_s, "job": None}

    states = {"a": state("done", 20, 100.0), "b": state("running", 5, 300.0), "c": state("missing", 0, None)}
    assert ablate_mod.describe_states(states, every=True).splitlines() == [
        "1/3 runs finished; about 2.36 h of training left, the runs one after another",
        "a: done (epoch 20/20)",
        "b: running (epoch 5/20; about 75.0 min left: 15 epochs at its median 5.0 min)",
        "c: missing (epoch 0/20)"]
    assert ablate_mod.describe_states({"c": state("missing", 0, None)}) == "0/1 runs finished\nc: missing (epoch 0/20)"


def test_a_run_a_local_ablate_has_still_to_train_is_queued_not_missing(tmp_path):
    """A local ``staa-snn ablate`` trains its grid's runs one after another, holding the lock of
    the one it trains: the runs after it are queued (a launch leaves them to it), not missing; a
    local ``train`` holding a run's lock queues nothing."""
    import json as json_mod
    import os
    import socket

    from staa_snn.analysis import launch

    run = tmp_path / "a_seed0"
    run.mkdir()
    lock = {"pid": os.getpid(), "host": socket.gethostname(), "started": "now",
            "command": "staa-snn ablate --grid table4 --seeds 2 --epochs 1"}
    (run / ".lock").write_text(json_mod.dumps(lock))
    names = [("a_seed0", 1), ("a_seed1", 1)]
    states = launch.run_states(tmp_path, {}, names)
    assert [states[n]["state"] for n, _ in names] == ["running", "queued"] and states["a_seed1"]["by"] == os.getpid()
    assert ablate_mod.describe_states(states).splitlines()[1:] == [
        "a_seed0: running (epoch 0/1)", f"a_seed1: queued (epoch 0/1; the local ablate, pid {os.getpid()}, trains it "
                                        f"in its turn)"]
    (run / ".lock").write_text(json_mod.dumps({**lock, "command": "staa-snn train --config digits"}))
    assert launch.run_states(tmp_path, {}, names)["a_seed1"]["state"] == "missing"


def test_ablate_says_after_which_epochs_a_row_leads_its_baseline():
    """Mean curves over seeds, compared epoch by epoch: a row below its baseline after epochs 1-2
    and above it from epoch 3 on (after all steps), and above it only after epoch 2 after one step;
    a seed with a shorter curve limits the mean to the epochs every seed has."""
    base = load_config(cli.resolve_config("cifar10_quick"), ["data.root=/data", "data.options.val_per_class=500"])
    rows = ablate_mod.select_rows("T", ["LIF T=1", "STAA T=2"])

    def run(curve, step1):
        return {"test_acc": curve[-1], "test_acc_per_step": [step1[-1]], "curve": curve, "curve_step1": step1}

    results = {"LIF T=1": [run([0.30, 0.50, 0.62, 0.70], [0.2, 0.5, 0.4, 0.5]),
                           run([0.34, 0.46, 0.60, 0.72], [0.2, 0.5, 0.4, 0.5])],   # mean 0.32, 0.48, 0.61, 0.71
               "STAA T=2": [run([0.40, 0.50, 0.60, 0.70], [0.3, 0.4, 0.5, 0.6]),
                            run([0.40, 0.50, 0.60, 0.70], [0.3, 0.4, 0.5, 0.6])]}
    s = ablate_mod.summarise("T", rows, "STAA T=2", results, base, seeds=2, epochs=4, command=None)
    lif, staa = s["rows"]
    assert lif["epochs_above_baseline"] == [3, 4] and lif["epochs_above_baseline_step1"] == [2]
    assert staa["epochs_above_baseline"] is None
    md = ablate_mod.to_markdown(s)
    assert "- LIF T=1: above the baseline after epochs 3-4; after 1 step, above the baseline after epoch 2 (of 4 epochs)" \
        in md
    results["LIF T=1"][1] = run([0.34, 0.46], [0.2, 0.5])  # a seed with 2 epochs: the mean has 2
    s = ablate_mod.summarise("T", rows, "STAA T=2", results, base, seeds=2, epochs=4, command=None)
    assert s["rows"][0]["epochs_above_baseline"] == [] and "never above the baseline; after 1 step, above the baseline after epoch 2 (of 2 epochs)" in \
        ablate_mod.to_markdown(s)
    assert ablate_table._epochs([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-8" and ablate_table._epochs([4]) == "4"


def test_ablate_names_a_held_out_split_and_reads_the_first_step():
    base = load_config(cli.resolve_config("cifar10_quick"), ["data.root=/data", "data.options.val_per_class=500"])
    rows = ablate_mod.select_rows("T", ["LIF T=1", "STAA T=2"])
    results = {"LIF T=1": [{"test_acc": 0.5, "test_acc_per_step": [0.5], "run_time_s": 60.0},
                           {"test_acc": 0.7, "test_acc_per_step": [0.7], "run_time_s": 120.0}],
               "STAA T=2": [{"test_acc": 0.8, "test_acc_per_step": [0.6, 0.8], "run_time_s": 180.0},
                            {"test_acc": 0.9, "test_acc_per_step": [0.7, 0.9], "run_time_s": 240.0}]}
    s = ablate_mod.summarise("T", rows, "STAA T=2", results, base, seeds=2, epochs=1, command=None)
    lif, staa = s["rows"]
    assert s["metric"].startswith("validation accuracy (500 images per class held out")
    assert (lif["mean"], lif["delta"], lif["mean_step1"]) == (pytest.approx(0.6), pytest.approx(-0.25),
                                                              pytest.approx(0.6))
    assert lif["std"] == pytest.approx(0.1414, abs=1e-4) and lif["mean_run_time_s"] == 90.0
    assert staa["mean_step1"] == pytest.approx(0.65) and staa["series"] == "STAA" and staa["value"] == 2
    # Welch's t by hand: se^2 = 0.02/2 + 0.005/2 = 0.0125, t = -0.25 / sqrt(0.0125) = -sqrt(5),
    # df = 0.0125^2 / (0.01^2 + 0.0025^2) = 25/17; p from an independent implementation
    assert lif["welch"]["t"] == pytest.approx(-5 ** 0.5) and lif["welch"]["df"] == pytest.approx(25 / 17)
    ref = scipy.stats.ttest_ind([0.5, 0.7], [0.8, 0.9], equal_var=False)
    assert lif["welch"]["p"] == pytest.approx(ref.pvalue) and 0.19 < ref.pvalue < 0.21
    assert lif["delta_step1"] == pytest.approx(-0.05) and staa["welch"] is None and staa["delta"] is None
    md = ablate_mod.to_markdown(s)
    ref1 = scipy.stats.ttest_ind([0.5, 0.7], [0.6, 0.7], equal_var=False)  # after 1 step
    assert lif["welch_step1"]["p"] == pytest.approx(ref1.pvalue)
    assert (f"| LIF T=1 | 2 | 60.00 ± 14.14 | -25.00 | -2.24, {ref.pvalue:.2g} | 60.00 ± 14.14 | -5.00 "
            f"| {ref1.statistic:+.2f}, {ref1.pvalue:.2g} | 50.00, 70.00 | 1.5 min |") in md
    # a row whose runs were paused: the sum of the epochs' times, and the usual pace beside it
    paused = {**lif, "mean_run_time_s": 600.0, "mean_usual_run_time_s": 300.0}
    assert ablate_mod.to_markdown({**s, "rows": [paused]}).splitlines()[-1].endswith(
        "| 10.0 min (5.0 min at the median epoch) |")
    quiet = {**lif, "mean_run_time_s": 600.0, "mean_usual_run_time_s": 570.0}
    assert ablate_mod.to_markdown({**s, "rows": [quiet]}).splitlines()[-1].endswith("| 50.00, 70.00 | 10.0 min |")
    assert "after the last epoch, mean ± sample std over 2 seeds a row, 1 epoch; difference" in md
    assert "| STAA T=2 | 2 | 85.00 ± 7.07 | — | — | 65.00 ± 7.07 | — | — |" in md
    assert "over 2 seeds a row" in md and "Not every seed" not in md
    assert md.splitlines()[2].startswith("Validation accuracy (500 images per class")


def test_table4_grid_rows():
    baseline, rows = ablate_mod.grid_rows("table4")
    assert baseline == "baseline"
    assert [r.label for r in rows] == ["LIF", "baseline", "+GC", "+GC+PE", "+GC+PE+TSRD", "+GC+PE+SA",
                                       "+GC+PE+SA+TSRD"]
    assert load_config(cli.resolve_config("digits"), list(rows[0].overrides)).model.neuron == "lif"
    cfg = load_config(cli.resolve_config("digits"), list(rows[1].overrides))
    assert cfg.model.neuron_options == {"gc": False, "pe": "none", "sa": False, "tsrd_p": 0}
    with pytest.raises(ValueError, match="unknown grid 'foo'; valid grids: table4"):
        ablate_mod.grid_rows("foo")


def test_table4_runs_on_the_mpbn_reading(tmp_path, monkeypatch):
    """ablate --config <row>_mpbn: every row keeps MPBN's neuron and recipe; the baseline is MPBN's net."""
    seen = []

    def fake_train(cfg, resume=None):
        seen.append(cfg)
        return types.SimpleNamespace(history=[{"test_acc": 0.5 + 0.01 * len(seen)}])

    monkeypatch.setattr(ablate_mod, "train", fake_train)
    base = load_config(cli.resolve_config("cifar100_resnet20_t4_mpbn"), ["data.root=/data"])
    summary = ablate_mod.run_grid(base, "table4", seeds=1, epochs=3, out=tmp_path, progress=False)
    assert len(seen) == 7 and summary["neuron_preset"] == "mpbn"
    for cfg in seen:
        assert cfg.model.neuron_options["neuron_preset"] == "mpbn" and cfg.model.init == "mpbn"
        assert cfg.train.epochs == 3 and cfg.optim.warmup_epochs == 0
    assert seen[0].model.neuron == "lif" and seen[0].model.neuron_options == {"neuron_preset": "mpbn"}
    assert seen[1].model.neuron_options == {"neuron_preset": "mpbn", "gc": False, "pe": "none", "sa": False,
                                            "tsrd_p": 0}
    assert "neuron_preset=mpbn" in (tmp_path / "table4" / "results.md").read_text().splitlines()[0]


def test_figure_data_are_the_models_numbers(two_checkpoints):
    from staa_snn.analysis.loading import dataset_batches, model_from
    from staa_snn.analysis.visualize import learned_parameters, sa_gate_table

    cfg, model, _ = model_from(None, [], two_checkpoints[1])  # the STAA net
    xs, _ = dataset_batches(cfg, 1, 4)
    with torch.no_grad():
        model(xs[0])
    params, gates = learned_parameters(model), sa_gate_table(model)
    assert list(params) == list(gates) == neuron_slots(model)
    for name in neuron_slots(model):
        neuron = model.get_submodule(name).neuron
        np.testing.assert_array_equal(params[name]["m"], neuron.m.detach().flatten().numpy())
        np.testing.assert_array_equal(params[name]["n"], neuron.n.detach().flatten().numpy())
        np.testing.assert_allclose(params[name]["pe"], neuron.pe.p.detach().flatten(1).mean(1).numpy())
        assert gates[name].shape == (cfg.model.T, 2)
        np.testing.assert_allclose(gates[name], neuron.last_sa_gates.mean(dim=(1, 3)).numpy())
        assert not np.allclose(gates[name], 1.0)  # trained SA: the gates moved away from their initial 1


def test_counts_are_the_methods_whatever_the_backend():
    from staa_snn.analysis import profile_model
    from staa_snn.models import create_model

    x = torch.rand(3, 1, 8, 8)
    reports = {}
    for backend in ("fused", "reference"):
        torch.manual_seed(0)
        net = create_model("vgg_small", num_classes=10, T=2, in_channels=1, backend=backend)
        reports[backend] = profile_model(net, x)
        assert all(m.backend == backend for m in net.modules() if hasattr(m, "backend"))  # restored
    fused, ref = reports["fused"], reports["reference"]
    assert fused.dense_macs == ref.dense_macs and fused.ac == ref.ac and fused.mac == ref.mac
    assert [(r["module"], r["op"]) for r in fused.layers] == [(r["module"], r["op"]) for r in ref.layers]


def test_ablate_stopped_by_a_signal_says_how_to_continue(tmp_path, monkeypatch, capsys):
    """ablate has no --resume: the same command continues (the trainer's own hint is train's)."""
    from staa_snn.training import TrainingPreempted

    def stopped(*args, **kwargs):
        raise TrainingPreempted("stopped by SIGTERM after epoch 1/2: checkpointed in x/last.pt", signum=15, epoch=1,
                                step=3)

    monkeypatch.setattr(ablate_mod, "run_grid", stopped)
    capsys.readouterr()
    assert cli.main(["ablate", "--grid", "pe_kind", "--seeds", "1", "--epochs", "1", "--out", str(tmp_path)]) == 143
    assert capsys.readouterr().err == ("staa-snn ablate: stopped by SIGTERM after epoch 1/2: checkpointed in "
                                       "x/last.pt; run the same command again to continue (finished runs are read "
                                       "back)\n")
