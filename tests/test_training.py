"""Training engine: configs, schedule, resume, checkpoints, NaN, seeds, eval, CLI."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from staa_snn import cli
from staa_snn.training import (Config, ConfigError, TrainingDiverged, TrainingPreempted, evaluate_checkpoint,
                               load_checkpoint, load_config, lr_factor, train)
from staa_snn.training import builders, engine
from staa_snn.training.losses import mean_logits_loss
from staa_snn.training.distributed import GlobalBatchNorm, GlobalBatchSampler
from tiny_runs import DIGITS, strip, tiny



# --- config ------------------------------------------------------------------

def test_bundled_default_config():
    cfg = load_config(DIGITS)
    assert (cfg.data.name, cfg.model.name, cfg.model.neuron, cfg.model.T) == ("digits", "vgg_small", "staa", 4)
    assert cfg.run_name == "digits_vgg_small_staa_t4"
    assert Config.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()  # round trip


def test_overrides_are_typed_and_reach_the_neuron():
    cfg = load_config(DIGITS, ["optim.lr=0.05", "model.tsrd_p=0", "model.gc_ratio=8", "train.max_batches=null",
                               "optim.betas=[0.8, 0.9]", "data.name=cifar10dvs", "data.root=/data/CIFAR10-DVS",
                               "data.options={holdout: first}"])
    assert cfg.optim.lr == 0.05 and cfg.train.max_batches is None and cfg.optim.betas == (0.8, 0.9)
    assert cfg.model.neuron_options == {"tsrd_p": 0, "gc_ratio": 8} and cfg.data.options == {"holdout": "first"}
    net = engine.build_model(cfg)
    neuron = net.features[2].neuron
    assert neuron.tsrd_p == 0 and neuron.gc.down.out_features == 32 // 8  # the GC bottleneck of 32 channels


@pytest.mark.parametrize("override, message", [
    ("model.T=0", r"model.T must be >= 1, got 0"),
    ("model.tsrd_p=1.5", r"model.tsrd_p must be in \[0, 1\], got 1.5"),
    ("optim.lr=-0.1", r"optim.lr must be >= 0, got -0.1"),
    ("model.name=resnet50", r"model.name: unknown value 'resnet50'; valid values: resnet18, .*vgg_small"),
    ("data.name=mnist", r"data.name: unknown value 'mnist'; valid values: cifar10, .*imagenet"),
    ("model.neuron=izhikevich", r"model.neuron: unknown value 'izhikevich'; valid values: adaptive, lif, staa"),
    ("optim.lrr=0.1", r"unknown key 'optim.lrr'; valid keys in optim: \['betas', .*'lr'"),
    ("model.gc_ration=8", r"unknown key\(s\) \['model.gc_ration'\] for model.neuron='staa'; .*'gc_ratio'"),
    ("train.epochs=two", r"train.epochs: expected int, got 'two'"),
    ("optim.name=adam", r"optim.name: unknown value 'adam'; valid values: sgd, adamw"),
    ("trian.epochs=1", r"expected section.key with a section in \['data', 'model'"),
    ("data.name=cifar10", r"data.root is required for data.name='cifar10'"),
])
def test_bad_config_names_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(DIGITS, [override])


def test_lif_options_are_checked_against_lif(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['model.tsrd_p'\] for model.neuron='lif'"):
        load_config(DIGITS, ["model.neuron=lif", "model.tsrd_p=0.2"])


def test_bad_neuron_value_fails_before_any_data_is_read(tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("data was read before the config was checked")

    monkeypatch.setattr(builders, "get_dataset", no_data)
    with pytest.raises(ConfigError, match="model: .*gc_ratio"):
        train(tiny(tmp_path, "model.gc_ratio=0"))


def test_yaml_base_chain(tmp_path):
    (tmp_path / "a.yaml").write_text(f"base: {DIGITS}\noptim:\n  lr: 0.3\nmodel:\n  T: 3\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nmodel:\n  neuron: lif\n")
    cfg = load_config(tmp_path / "b.yaml")
    assert (cfg.optim.lr, cfg.model.T, cfg.model.neuron, cfg.model.name) == (0.3, 3, "lif", "vgg_small")
    (tmp_path / "c.yaml").write_text("base: c.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("model:\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match="d.yaml: not valid YAML"):
        load_config(tmp_path / "d.yaml")


# --- schedule and sampler ------------------------------------------------------

def test_lr_factor_warmup_and_cosine_by_hand():
    f = [lr_factor(s, total=10, warmup=2, schedule="cosine", floor=0.1) for s in range(11)]
    assert f[0] == pytest.approx(0.5) and f[1] == pytest.approx(1.0)
    assert f[2] == pytest.approx(1.0)  # start of the cosine
    assert f[6] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f[10] == pytest.approx(0.1)
    assert lr_factor(7, total=10, warmup=0, schedule="constant", floor=0.0) == 1.0


def test_global_batch_sampler_splits_each_global_batch():
    single = list(GlobalBatchSampler(23, 6, seed=3))
    ranks = [list(GlobalBatchSampler(23, 6, rank=r, world_size=2, seed=3)) for r in range(2)]
    assert len(single) == 18 and all(len(r) == 9 for r in ranks)  # the incomplete last batch is dropped
    for b in range(3):
        assert single[6 * b:6 * b + 6] == ranks[0][3 * b:3 * b + 3] + ranks[1][3 * b:3 * b + 3]
    s = GlobalBatchSampler(23, 6, seed=3)
    s.set_epoch(1)
    assert list(s) != single  # a new permutation each epoch
    ev = [list(GlobalBatchSampler(7, 2, rank=r, world_size=2, shuffle=False, drop_last=False)) for r in range(2)]
    assert sorted(ev[0] + ev[1]) == list(range(7))
    with pytest.raises(ValueError, match="divisible by the number of processes"):
        GlobalBatchSampler(10, 5, world_size=2)


def test_global_batchnorm_is_batchnorm_outside_a_process_group():
    bn, ref = GlobalBatchNorm(4), torch.nn.BatchNorm2d(4)
    x = torch.randn(6, 4, 3, 3)
    torch.testing.assert_close(bn(x), ref(x))
    torch.testing.assert_close(bn.running_var, ref.running_var)


def test_weight_decay_reaches_conv_and_linear_weights_only():
    model = engine.build_model(load_config(DIGITS, ["model.neuron_preset=mpbn", "model.pe=fixed"]), num_classes=10)
    groups = engine.parameter_groups(model, 0.01, "weights")
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in groups[0]["params"])
    assert groups[0]["weight_decay"] == 0.01 and groups[1]["weight_decay"] == 0.0
    assert decayed == sorted(n for n, p in model.named_parameters() if n.endswith("weight") and p.dim() >= 2)
    assert any(".gc.key.weight" in n for n in decayed) and any(".sa.fc1.weight" in n for n in decayed)
    kept = {names[id(p)].rsplit(".", 1)[-1] for p in groups[1]["params"]}
    assert kept == {"weight", "bias", "m", "n"}  # BN, BN_mp and LayerNorm affines, biases, M, N
    assert any(".bn_mp." in names[id(p)] for p in groups[1]["params"])
    everything = engine.parameter_groups(model, 0.01, "all")
    assert len(everything) == 1 and len(everything[0]["params"]) == len(names)
    optimizer = engine.build_optimizer(load_config(DIGITS, ["optim.weight_decay_on=all"]), model)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01]


def test_the_blocks_get_their_own_lr_and_weight_decay():
    """optim.block_lr_scale / block_weight_decay: PE, GC and SA parameters (and only they) in groups
    of their own; the schedule scales each group's own LR; the default keeps the two plain groups."""
    cfg = load_config(DIGITS, ["model.neuron=staa", "optim.name=adamw", "optim.lr=0.01", "optim.weight_decay=0.05",
                               "optim.block_lr_scale=0.1", "optim.block_weight_decay=0"])
    model = engine.build_model(cfg, num_classes=10)
    names = {id(p): n for n, p in model.named_parameters()}
    optimizer = engine.build_optimizer(cfg, model)
    got = [(g["lr"], g["weight_decay"], sorted(names[id(p)] for p in g["params"])) for g in optimizer.param_groups]
    blocks = sorted(n for n in names.values() if any(f".{b}." in n for b in ("pe", "gc", "sa")))
    assert blocks and sorted(n for lr, wd, ns in got if lr == pytest.approx(0.001) for n in ns) == blocks
    assert [(lr, wd) for lr, wd, _ in got] == [(0.01, 0.05), (0.01, 0.0), (pytest.approx(0.001), 0.0),
                                               (pytest.approx(0.001), 0.0)]
    assert sorted(n for _, _, ns in got[:2] for n in ns) == sorted(set(names.values()) - set(blocks))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.005, 0.005, 0.0005, 0.0005])
    del scheduler
    plain = engine.build_optimizer(load_config(DIGITS, ["model.neuron=staa"]), model)
    assert len(plain.param_groups) == 2
    with pytest.raises(ConfigError, match="optim.block_lr_scale must be >= 0, got -1"):
        load_config(DIGITS, ["optim.block_lr_scale=-1"]).validate()


def test_mpbn_initialisation():
    torch.manual_seed(0)
    net = engine.build_model(load_config(DIGITS, ["model.name=resnet20", "model.init=mpbn",
                                                  "model.neuron_preset=mpbn"]), num_classes=100)
    conv = net.features[3]  # stem conv 64 -> 64, 3x3: std sqrt(2 / (9 * 64))
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.03)
    assert net.classifier.weight.std().item() == pytest.approx(1 / 512, rel=0.03)
    assert not net.classifier.bias.any()
    blocks = [m for m in net.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 8 and all(not b.conv2[1].weight.any() for b in blocks)  # blocks start as shortcuts
    staa = net.features[2].neuron
    assert not staa.gc.up.weight.any() and torch.equal(staa.bn_mp.weight, torch.ones(64))  # neurons untouched
    with pytest.raises(ConfigError, match="model.init: unknown value 'xavier'"):
        load_config(DIGITS, ["model.init=xavier"])


# --- training runs -------------------------------------------------------------

def test_resume_is_exact(tmp_path):
    straight = train(tiny(tmp_path, name="straight"))
    first = train(tiny(tmp_path, name="split"), stop_after=1)
    assert [h["epoch"] for h in first.history] == [1]
    path = first.run_dir / "last.pt"
    resumed = train(tiny(tmp_path, name="split"), resume=path)
    assert strip(resumed.history) == strip(straight.history)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    lines = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert strip(lines) == strip(straight.history)


@pytest.mark.parametrize("at_call, where, saved", [(2, "batch 2/3 of epoch 1/2", (0, 2)),
                                                    (3, "epoch 1/2", (1, 0))])
def test_a_stop_signal_checkpoints_where_it_lands_and_the_resume_is_exact(tmp_path, at_call, where,
                                                                         saved):
    """SIGUSR1 (a scheduler's warning) during a step: a checkpoint at the next step, or, on an
    epoch's last step, after that epoch; TrainingPreempted says where; --resume auto is exact."""
    straight = train(tiny(tmp_path, name="straight"))
    before = signal.getsignal(signal.SIGUSR1)
    calls = []

    def loss_then_signal(steps, targets):  # optim.loss (mean_logits), with a signal at one call
        calls.append(1)
        if len(calls) == at_call:
            os.kill(os.getpid(), signal.SIGUSR1)
        return mean_logits_loss(steps, targets)

    with pytest.raises(TrainingPreempted, match=rf"stopped by SIGUSR1 after {where}: checkpointed in "
                                                rf".*last.pt; continue with --resume auto") as stopped:
        train(tiny(tmp_path, name="split"), loss_fn=loss_then_signal)
    assert stopped.value.exit_code == 128 + signal.SIGUSR1 and signal.getsignal(signal.SIGUSR1) == before
    ckpt = load_checkpoint(tmp_path / "split" / "last.pt")
    assert (ckpt["epoch"], ckpt["batch"]) == saved
    resumed = train(tiny(tmp_path, name="split"), resume="auto")
    assert strip(resumed.history) == strip(straight.history)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    if saved[1]:  # the epoch's time counts the part before the stop too
        assert ckpt["sums"][0]["elapsed"] > 0
        assert resumed.history[0]["epoch_time_s"] > ckpt["sums"][0]["elapsed"]


def test_a_progress_line_after_a_resume_counts_only_the_batches_this_process_trained(capsys):
    """Resumed at batch 1300 of an epoch, 100 batches of 32 in 40 s are 80 img/s (not the 1,400
    restored batches over 40 s), and the epoch's time includes the 300 s before the stop."""
    from types import SimpleNamespace

    from staa_snn.training.epoch import EpochLoop, EpochSums

    sums = EpochSums.zeros(torch.device("cpu"))
    sums.seen += 1400 * 32
    sums.elapsed = 300.0
    loop = SimpleNamespace(batch=1400, timed_from=1300, steps_per_epoch=1406, epoch=11,
                           tic=time.perf_counter() - 40.0, ctx=SimpleNamespace(world_size=1),
                           cfg=SimpleNamespace(data=SimpleNamespace(batch_size=32), train=SimpleNamespace(epochs=20)))
    loop._progress = lambda s: EpochLoop._progress(loop, s)
    assert float(EpochLoop._progress(loop, sums)["img_s"]) == pytest.approx(80, abs=1)
    EpochLoop._log_line(loop, sums)
    line = capsys.readouterr().err
    assert line.startswith("epoch 12/20 step 1400/1406:") and "| 80 img/s | epoch 340 s, about 2 s left" in line


def test_same_seed_same_metrics_other_seed_differs(tmp_path):
    a = train(tiny(tmp_path, "train.epochs=1", name="a"))
    b = train(tiny(tmp_path, "train.epochs=1", name="b"))
    c = train(tiny(tmp_path, "train.epochs=1", "train.seed=1", name="c"))
    assert strip(a.history) == strip(b.history)
    assert a.history[0]["train_loss"] != c.history[0]["train_loss"]


def test_run_folder_contents_and_safe_checkpoint(tmp_path):
    result = train(tiny(tmp_path))
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.yaml", "last.pt", "meta.json",
                                                     "metrics.csv", "metrics.jsonl"]  # the lock is gone
    meta = json.loads((run / "meta.json").read_text())
    assert meta["staa_snn"] and "git_commit" in meta
    assert load_config(run / "config.yaml").to_dict() == tiny(tmp_path).to_dict()
    raw = torch.load(run / "last.pt", weights_only=True)  # a checkpoint holds no code
    assert raw["epoch"] == 2 and raw["step"] == 6 and set(raw["rng"][0]) >= {"torch", "numpy", "python"}
    assert {"model", "optimizer", "scheduler", "scaler", "config", "history"} <= set(raw)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(tiny(tmp_path))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    assert result.best["test_acc"] == max(h["test_acc"] for h in result.history)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def poisoned(steps, targets):  # optim.loss (mean_logits), NaN at one step
        calls["n"] += 1
        loss = mean_logits_loss(steps, targets)
        return loss * float("nan") if calls["n"] == 5 else loss  # step 2 of epoch 2

    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, step 5; the last good checkpoint"):
        train(tiny(tmp_path), loss_fn=poisoned)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_non_finite_weights_are_never_checkpointed(tmp_path, monkeypatch):
    # The last step of epoch 2 leaves an infinite weight while its loss was finite: the epoch-end
    # checkpoint refuses it, naming the last good one (epoch 1).
    real, calls = torch.optim.AdamW.step, {"n": 0}

    def step(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 6:
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = float("inf")
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    with pytest.raises(TrainingDiverged, match=r"weights became non-finite in epoch 2 \(by step 6, the loss still "
                                               r"finite\); the last good checkpoint is .*last.pt"):
        train(tiny(tmp_path))
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1


def test_a_nan_in_the_first_epoch_says_there_is_no_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1, step 3; no checkpoint was written yet"):
        train(tiny(tmp_path, "optim.lr=1e30", "optim.name=sgd"))
    assert not (tmp_path / "run" / "last.pt").exists()


def _host_reads(monkeypatch):
    """Record every read of a tensor's value back to Python made by staa-snn's own code (outside
    the data loaders, which run on the CPU in worker processes): on a GPU each is a synchronisation."""
    reads = []
    data_dir = os.path.join("staa_snn", "data")

    def counting(name, real):
        def read(self, *args, **kwargs):
            caller = sys._getframe(1)
            path = caller.f_code.co_filename
            if "staa_snn" in path and data_dir not in path:
                reads.append(f"{name} at {os.path.basename(path)}:{caller.f_lineno}")
            return real(self, *args, **kwargs)
        return read

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    return reads


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_a_training_epoch_reads_nothing_back_per_step(tmp_path, monkeypatch, backend):
    # Loss sums, correct counts and the finite flag stay on the device between check points:
    # an epoch of 8 steps reads exactly as many values back as an epoch of 2.
    reads = _host_reads(monkeypatch)
    counts = []
    for steps in (2, 8):
        del reads[:]
        train(tiny(tmp_path, "train.epochs=1", f"train.max_batches={steps}", "train.check_every=1000",
                   "model.tsrd_p=0.5", f"model.backend={backend}", name=f"{backend}{steps}"))
        counts.append(sorted(reads))
    assert counts[0] == counts[1], set(counts[1]) - set(counts[0])
    assert len(counts[0]) < 40  # the epoch's end: totals, the finite checks, the evaluation's sums


def test_bf16_mixup_adamw_and_eval_checkpoint(tmp_path):
    result = train(tiny(tmp_path, "train.amp=bf16", "data.mixup=0.4", "data.cutmix=1.0", "optim.name=adamw",
                        "optim.lr=0.003", "optim.grad_clip=1.0", "train.epochs=1"))
    assert math.isfinite(result.final["train_loss"])
    ev = evaluate_checkpoint(tmp_path / "run" / "last.pt", progress=False)
    assert len(ev["acc_per_step"]) == 2 and ev["acc"] == ev["acc_per_step"][-1] and ev["samples"] == 355
    assert ev["acc"] == pytest.approx(result.final["test_acc"]) and ev["loss"] == pytest.approx(result.final["test_loss"])


def test_digits_end_to_end_learns(tmp_path):
    """The one end-to-end run on the bundled data, at a tiny budget."""
    result = train(load_config(DIGITS, ["data.size=8", "model.T=2", "train.epochs=3", "train.progress=false",
                                        "output.tensorboard=false",
                                        f"output.dir={tmp_path}"]))
    assert result.final["test_acc"] > 0.85
    assert result.history[0]["test_acc"] < result.final["test_acc"]


# --- command line --------------------------------------------------------------

def test_cli_train_and_eval(tmp_path, capsys):
    args = ["train", "data.size=8", "model.T=2", "train.epochs=1", "train.max_batches=2", "train.progress=false",
            "output.tensorboard=false", f"output.dir={tmp_path}", "output.name=cli"]
    assert cli.main(args) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert cli.main(["eval", "--checkpoint", str(tmp_path / "cli" / "best.pt")]) == 0
    out = capsys.readouterr().out
    assert "read out after t steps" in out and "accuracy" in out
    saved = json.loads((tmp_path / "cli" / "best.pt.eval.json").read_text())
    assert len(saved["acc_per_step"]) == 2
    # early exit: with every step run, the readout after t steps is evaluate's acc_per_step
    ckpt = str(tmp_path / "cli" / "best.pt")
    assert cli.main(["eval", "--checkpoint", ckpt, "--exit", "confidence:0.9", "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "confidence >= 0.9" in out and "after 2 steps" in out
    curve = json.loads((tmp_path / "e.json").read_text())["exit_curve"]
    assert [p["acc"] for p in curve["fixed"]] == pytest.approx(saved["acc_per_step"])
    assert [p["mean_steps"] for p in curve["fixed"]] == [1.0, 2.0]
    assert 1.0 <= curve["confidence"][0]["mean_steps"] <= 2.0
    assert cli.main(["eval", "--checkpoint", ckpt, "--exit-sweep", "--json", str(tmp_path / "s.json")]) == 0
    assert (tmp_path / "s.json.exit.png").stat().st_size > 0
    assert len(json.loads((tmp_path / "s.json").read_text())["exit_curve"]["confidence"]) == 8
    capsys.readouterr()
    for bad in (["--exit", "confidence:1.5"], ["--exit", "entropy:0.5"], ["--exit-sweep", "0.5,x"]):
        with pytest.raises(SystemExit):
            cli.main(["eval", "--checkpoint", ckpt, *bad])
        assert "expected" in capsys.readouterr().err
    # resume auto with a longer budget continues from epoch 1
    assert cli.main([*args[:3], "train.epochs=2", *args[4:], "--resume", "auto"]) == 0
    assert load_checkpoint(tmp_path / "cli" / "last.pt")["epoch"] == 2
    assert cli.main(["train", "model.T=0"]) == 2
    assert "model.T must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_mid_epoch_leaves_a_loadable_checkpoint_and_resumes(tmp_path):
    """Killed whenever the kill lands (here: as soon as a mid-epoch checkpoint exists, while more are
    being written), the run folder holds a complete checkpoint, and --resume auto finishes the run."""
    base = [sys.executable, "-m", "staa_snn.cli", "train", "data.size=8", "model.T=2", "train.epochs=3",
            "train.progress=false", "output.tensorboard=false", f"output.dir={tmp_path}", "output.name=killed",
            "train.checkpoint_every=1"]
    proc = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None and not last.exists():
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    ckpt = load_checkpoint(last)
    assert ckpt["epoch"] * 45 + ckpt["batch"] >= 1
    model = engine.build_model(Config.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    done = subprocess.run([*base, "--resume", "auto"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming killed from epoch" in done.stderr
    assert load_checkpoint(last)["epoch"] == 3


def test_image_folder_run_counts_classes_and_logs_tensorboard(tmp_path):
    pytest.importorskip("torch.utils.tensorboard", reason='TensorBoard is the [tensorboard] extra')
    import numpy as np

    from staa_snn.data import writers

    rng = np.random.default_rng(0)
    imgs = {c: [rng.integers(0, 256, (20, 20, 3), dtype=np.uint8) for _ in range(3)] for c in ("cat", "dog", "owl")}
    writers.write_image_folder(tmp_path / "data", {"train": imgs, "val": imgs}, ext="png")
    cfg = load_config(DIGITS, ["data.name=imagefolder", f"data.root={tmp_path / 'data'}", "data.size=16",
                               "data.batch_size=3", "model.T=2", "train.epochs=1", "train.progress=false",
                               f"output.dir={tmp_path}", "output.name=folder"])
    result = train(cfg)
    assert result.model.classifier.out_features == 3 and result.final["step"] == 3
    assert list((tmp_path / "folder" / "tensorboard").glob("events.out.tfevents.*"))


def test_unavailable_device_is_a_config_error(tmp_path):
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available here"):
            train(tiny(tmp_path, "train.device=cuda"))
    with pytest.raises(ConfigError, match="not a device"):
        train(tiny(tmp_path, "train.device=cudax"))


# --- losses ------------------------------------------------------------------

def test_mean_logits_and_tet_by_hand():
    """Two steps, one sample, class 0: logits [0, ln 3] then [ln 3, 0]. Their mean [ln3/2, ln3/2]
    gives CE ln 2; TET is the mean of the steps' CEs, (ln 4 + ln 4/3) / 2."""
    steps = torch.tensor([[[0.0, math.log(3)]], [[math.log(3), 0.0]]])
    target = torch.tensor([[1.0, 0.0]])
    assert engine.mean_logits_loss(steps, target).item() == pytest.approx(math.log(2))
    assert engine.tet_loss(steps, target).item() == pytest.approx((math.log(4) + math.log(4 / 3)) / 2)


def test_tet_option_and_loss_fn_train_the_same(tmp_path):
    """optim.loss=tet and loss_fn=tet_loss are one thing; a loss_fn sees [T, B, K] logits and
    [B, K] probabilities; mean_logits differs from tet."""
    seen = []

    def recording_tet(steps, targets):
        seen.append((tuple(steps.shape), tuple(targets.shape), float(targets.sum(1).mean())))
        return engine.tet_loss(steps, targets)

    a = train(tiny(tmp_path, "train.epochs=1", "optim.loss=tet", name="a"))
    b = train(tiny(tmp_path, "train.epochs=1", name="b"), loss_fn=recording_tet)
    c = train(tiny(tmp_path, "train.epochs=1", name="c"))
    assert strip(a.history) == strip(b.history)
    assert a.history[0]["train_loss"] != c.history[0]["train_loss"]
    assert seen[0][:2] == ((2, 32, 10), (32, 10)) and seen[0][2] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="optim.loss"):
        tiny(tmp_path, "optim.loss=sum").validate()
    with pytest.raises(TypeError, match="loss_fn must be a function"):
        train(tiny(tmp_path, name="d"), loss_fn="tet")
    for bad, got in ((lambda s, y: engine.tet_loss(s, y).expand(3), r"shape \(3,\)"),
                     (lambda s, y: 1.0, "got float"), (lambda s, y: engine.tet_loss(s, y).detach(), "requires_grad=False")):
        with pytest.raises(TypeError, match="must return a 0-d floating tensor that requires grad.*" + got):
            train(tiny(tmp_path, name="e"), loss_fn=bad)
    with pytest.warns(UserWarning, match="optim.loss=tet is not"):
        d = train(tiny(tmp_path, "train.epochs=1", "optim.loss=tet", name="f"), loss_fn=engine.tet_loss)
    assert json.loads((d.run_dir / "meta.json").read_text())["loss"] == "staa_snn.training.losses.tet_loss"
