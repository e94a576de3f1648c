"""What a new user still tripped over (issue 36), each pinned by a test that failed before its fix."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from staa_snn.training.loaders import EpochSampler, SeededSamples, collate_skipping
from staa_snn.training.distributed import GlobalBatchSampler


# -- 5: a Subset as the training set ---------------------------------------------------------------

def test_seeded_samples_over_a_subset_loads_the_subsets_samples():
    base = TensorDataset(torch.arange(10.0).view(10, 1), torch.arange(10))
    subset = Subset(base, [9, 7, 5, 3, 1])
    wrapped = SeededSamples(subset, seed=0)
    assert not hasattr(wrapped, "__getitems__")  # the DataLoader would hand Subset (epoch, index) keys
    assert wrapped.indices == [9, 7, 5, 3, 1]  # ordinary attributes still come through
    sampler = EpochSampler(GlobalBatchSampler(5, 5, shuffle=False, drop_last=False))
    (x, y, skipped), = list(DataLoader(wrapped, batch_size=5, sampler=sampler, collate_fn=collate_skipping))
    assert y.tolist() == [9, 7, 5, 3, 1] and x.view(-1).tolist() == [9.0, 7.0, 5.0, 3.0, 1.0] and skipped == 0


def test_train_takes_a_subset(tmp_path):
    from staa_snn.data import get_dataset
    from staa_snn.training import train
    from tiny_runs import tiny

    full = get_dataset("digits", split="train")
    test = Subset(get_dataset("digits", split="test"), range(40))
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    result = train(tiny(tmp_path, "train.epochs=1"), model=net, train_set=Subset(full, range(96)), test_set=test)
    assert result.history[0]["epoch"] == 1 and result.history[0]["step"] == 3


# -- 6: convert_neurons on LIF() built without channels= -----------------------------------------------

def test_convert_neurons_infers_channels_of_a_lif_without_channels():
    from staa_snn.models import convert_neurons
    from staa_snn.neurons import LIF

    net = convert_neurons(nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), LIF()), "staa", T=4)
    assert net[2].channels == 8


# -- 3 and 22: 16-bit grayscale and transparent images -----------------------------------------------

def _png(path, array, mode=None):
    from PIL import Image

    Image.fromarray(array, mode=mode).save(path)
    return path


def test_sixteen_bit_grayscale_is_scaled_to_8_bits_not_clipped_to_white(tmp_path):
    from PIL import Image

    from staa_snn.data.images import read_image

    values = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    path = _png(tmp_path / "g16.png", values)
    assert Image.open(path).mode == "I;16"
    assert np.asarray(read_image(path, channels=1)).tolist() == [[0, 1, 128, 255]]  # round(v * 255 / 65535)
    assert np.asarray(read_image(path, channels=3))[0, :, 0].tolist() == [0, 1, 128, 255]


def test_predict_reads_a_16_bit_png_as_its_8_bit_equivalent(tmp_path):
    from staa_snn.inference import prepare_image

    ramp = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1024).astype(np.uint16)
    eight = ((ramp.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)
    cfg = {"in_channels": 3, "size": 8, "normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}
    x16 = prepare_image(_png(tmp_path / "g16.png", ramp), cfg)
    x8 = prepare_image(_png(tmp_path / "g8.png", eight), cfg)
    assert torch.equal(x16, x8) and x16.max() < 2.0  # white would be (1 - 0.5) / 0.25 = 2 everywhere it clipped


def test_a_floating_point_image_is_refused_naming_its_mode(tmp_path):
    from PIL import Image

    from staa_snn.data import CorruptFileError
    from staa_snn.data.images import read_image

    path = tmp_path / "f.tif"
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), mode="F").save(path)
    with pytest.raises(CorruptFileError, match=r"f\.tif: a floating-point image \(PIL mode F\)"):
        read_image(path)


def test_transparent_pixels_take_the_background_colour(tmp_path):
    from staa_snn.data.images import read_image

    rgba = np.zeros((1, 3, 4), dtype=np.uint8)
    rgba[0, 0] = (200, 100, 50, 255)  # opaque: as it is
    rgba[0, 1] = (200, 100, 50, 0)  # transparent: the background
    rgba[0, 2] = (200, 100, 0, 128)  # half: 128/255 of the colour over the background
    path = _png(tmp_path / "a.png", rgba, "RGBA")
    out = np.asarray(read_image(path, background=(0.4, 0.6, 0.2))).astype(int)
    assert out[0, 0].tolist() == [200, 100, 50] and out[0, 1].tolist() == [102, 153, 51]
    expected = [round((c * 128 + b * 127) / 255) for c, b in zip((200, 100, 0), (102, 153, 51))]
    assert np.abs(out[0, 2] - expected).max() <= 1
    assert np.asarray(read_image(path))[0, 1].tolist() == [0, 0, 0]  # no background given: black


def test_an_image_folder_reads_transparent_pixels_as_the_mean(tmp_path):
    from staa_snn.data import get_dataset

    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            _png(tmp_path / split / c / "x.png", np.zeros((8, 8, 4), dtype=np.uint8), "RGBA")  # all transparent
    mean, std = (0.2, 0.4, 0.6), (0.5, 0.5, 0.5)
    x, _ = get_dataset("imagefolder", tmp_path, "test", mean=mean, std=std)[0]
    assert x.shape == (3, 8, 8) and x.abs().max() <= 0.5 / 255 / 0.5 + 1e-6  # the mean, normalised to ~0


# -- 8: the data layer's errors found before training are bad input (exit 2) ----------------------------

def _folder(root, layout):
    for split, classes in layout.items():
        for c in classes:
            (root / split / c).mkdir(parents=True)
            _png(root / split / c / "x.png", np.full((8, 8, 3), 100, dtype=np.uint8))
    return root


@pytest.mark.parametrize("layout, extra, says", [
    ({"train": ["a", "b"], "val": ["a", "c"]}, [], r"class folder\(s\) c in .*val are not in"),
    ({"train": ["a", "b"], "val": ["a", "b"]}, ["data.options.val_per_class=1"], r"has its own val/"),
    ({"train": ["a"], "val": ["a"]}, [], r"has one class folder \(a\): a classifier needs at least 2 classes"),
])
def test_image_folder_errors_are_bad_input_exit_2(tmp_path, capsys, monkeypatch, layout, extra, says):
    import re

    from staa_snn import cli

    root = _folder(tmp_path / "data", layout)
    code = cli.main(["train", "--config", "digits", "data.name=imagefolder", f"data.root={root}", "data.size=8",
                     "train.epochs=1", "train.progress=false", "output.tensorboard=false",
                     f"output.dir={tmp_path / 'runs'}", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(says, err[0]), err
    assert "unexpected" not in err[0] and "--debug" not in err[0]


def test_every_data_layer_refusal_is_a_data_error():
    from staa_snn.data import CorruptFileError, DataError, get_dataset

    assert issubclass(CorruptFileError, DataError) and issubclass(DataError, ValueError)  # callers' except ValueError
    with pytest.raises(DataError, match="unknown dataset"):
        get_dataset("nope")
    with pytest.raises(DataError, match="T and split_by apply to event datasets only"):
        get_dataset("digits", T=4)


# -- 7: eval --weights on a folder with only test/<class>/ ----------------------------------------------

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_eval_weights_on_a_folder_with_only_test(tmp_path, monkeypatch, capsys):
    from staa_snn import cli

    rng = np.random.default_rng(0)
    for c in CIFAR10_CLASSES:
        (tmp_path / "data" / "test" / c).mkdir(parents=True)
        _png(tmp_path / "data" / "test" / c / "0.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    monkeypatch.chdir(tmp_path)
    code = cli.main(["eval", "--weights", "cifar10_quick", f"data.root={tmp_path / 'data'}", "--device", "cpu",
                     "--json", str(tmp_path / "eval.json")])
    out = capsys.readouterr()
    assert code == 0, out.err
    import json

    from staa_snn.inference import prepare_image
    from staa_snn.models import load_pretrained

    result = json.loads((tmp_path / "eval.json").read_text())
    net = load_pretrained("cifar10_quick")
    x = torch.stack([prepare_image(tmp_path / "data" / "test" / c / "0.png", net.pretrained_cfg)
                     for c in CIFAR10_CLASSES])
    with torch.no_grad():
        hits = (net(x).argmax(-1) == torch.arange(10)).sum().item()
    assert result["samples"] == 10 and result["acc"] == pytest.approx(hits / 10)  # labels = the net's class order


def test_a_test_only_folder_is_still_refused_for_training(tmp_path):
    from staa_snn.data import get_dataset

    for c in ("a", "b"):
        (tmp_path / "test" / c).mkdir(parents=True)
        _png(tmp_path / "test" / c / "0.png", np.zeros((8, 8, 3), dtype=np.uint8))
    assert get_dataset("imagefolder", tmp_path, "test").classes == ["a", "b"]
    with pytest.raises(FileNotFoundError, match=r"expected .*/train/<class>/<image>"):
        get_dataset("imagefolder", tmp_path, "train")


# -- 9: the shipped weights load after a plain `pip install -e .` ----------------------------------------

def test_safetensors_is_a_core_dependency_and_loading_needs_no_export_extra():
    import re
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[<>=!~ \[]", d)[0] for d in project["dependencies"]}
    assert "safetensors" in core
    extras = {re.split(r"[<>=!~ \[]", d)[0] for ds in project["optional-dependencies"].values() for d in ds}
    block = sorted(extras - core - {"safetensors"})  # none of the extras' packages may be needed
    code = ("import sys\n" + "".join(f"sys.modules[{m.replace('-', '_')!r}] = None\n" for m in block)
            + "from staa_snn.models import load_pretrained\nnet = load_pretrained('cifar10_quick')\n"
            "print(net.pretrained_cfg['classes'][2])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "bird", out.stderr


# -- 13: load_pretrained on an ONNX file, or a file without config.json beside it ---------------------------

def test_load_pretrained_refuses_an_onnx_file_naming_it(tmp_path, monkeypatch):
    from staa_snn.models import load_pretrained

    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"^model\.onnx: an ONNX file \(it runs in onnxruntime\), not exported weights"):
        load_pretrained("model.onnx")
    (tmp_path / "w.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"^no config\.json beside w\.safetensors \(.*/config\.json does not"):
        load_pretrained("w.safetensors")
    with pytest.raises(FileNotFoundError, match=r"^gone\.pt does not exist \(expected a \.pt checkpoint"):
        load_pretrained("gone.pt")


# -- 15: no documented command writes over a file of the repository -------------------------------------------

def test_documented_commands_write_no_tracked_file():
    import re
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    # the guides; docs/results/*.md's commands regenerate their own tracked figures on purpose
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    listed = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True)
    tracked = set(listed.stdout.split()) if listed.returncode == 0 else None
    outputs = []
    for doc in docs:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S):
            outputs += [(doc.name, m) for m in re.findall(r"--(?:out|json)\s+(\S+)", block)]
    assert ("README.md", "runs/digits_curves.png") in outputs  # the parser sees the README's plot command
    clobbered = [(doc, out) for doc, out in outputs
                 if (out in tracked if tracked is not None else (root / out).exists())]
    assert not clobbered
    if tracked is not None:  # and a fresh clone's `git status` stays clean: outputs go where git ignores them
        local = sorted({out for _, out in outputs if not out.startswith(("/", "$", "~"))})
        ignored = subprocess.run(["git", "check-ignore", "--no-index", *local], cwd=root, capture_output=True,
                                 text=True).stdout.split()
        assert [out for out in local if out not in ignored] == []


# -- 21: the compiled backend on a CPU-only machine says nothing about a missing CUDA runtime ---------------

def test_compiled_backend_on_cpu_prints_no_cuda_runtime_notice(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "bin").mkdir()
    nvcc = tmp_path / "bin" / "nvcc"  # a CUDA toolkit on the PATH, as on many CPU-only machines
    nvcc.write_text("#!/bin/sh\nexit 0\n")
    nvcc.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("CUDA_HOME", None), env.pop("CUDA_PATH", None)
    code = ("import torch\nfrom staa_snn.kernels._compile import compiled\n"
            "compiled(lambda x: x + 1)\n"  # what the compiled backend calls first
            "import torch.utils.cpp_extension\n"  # what Inductor imports on its first compile
            "print(torch.utils.cpp_extension.CUDA_HOME)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tmp_path)  # torch did find the toolkit ...
    assert "No CUDA runtime" not in out.stderr  # ... and said nothing about it


# -- 17: a one-epoch run's curves are visible ------------------------------------------------------------------

def test_plot_of_a_one_epoch_run_marks_its_points(tmp_path, monkeypatch):
    import json

    import matplotlib.axes

    from staa_snn.analysis.plot import plot_runs

    run = tmp_path / "run"
    run.mkdir()
    record = {"epoch": 1, "train_loss": 1.0, "test_loss": 0.9, "train_acc": 0.5, "test_acc": 0.6,
              "test_acc_per_step": [0.5, 0.6], "firing_rates": {"a": 0.1}}
    (run / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    lines = []
    plot = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", lambda self, *a, **k: lines.extend(plot(self, *a, **k)) or [])
    plot_runs([run], tmp_path / "c.png")
    one_point = [line for line in lines if len(line.get_xdata()) == 1]
    assert len(one_point) == 5  # train/test loss, train/test accuracy, firing rate
    assert all(line.get_marker() not in (None, "None", "", " ") for line in one_point)


# -- 23: benchmarks/gpu_check.py with a relative --out, run from another folder --------------------------------

def test_gpu_check_kernel_tests_land_under_a_relative_out_of_the_callers_folder(tmp_path, monkeypatch):
    import importlib.util
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("gpu_check", root / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    runs = []

    def fake_pytest(cmd, cwd, **kwargs):  # writes its report where pytest would: --junitxml against cwd
        junit = Path(cwd) / next(c for c in cmd if c.startswith("--junitxml=")).split("=", 1)[1]
        runs.append(junit)
        if junit.is_relative_to(tmp_path):  # (never into the checkout, where the old code sent it)
            junit.write_text('<testsuite tests="7" failures="0" errors="0" skipped="1"></testsuite>')
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(gpu_check.subprocess, "run", fake_pytest)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "report").mkdir()
    result = gpu_check.run_kernel_tests(gpu_check.torch.device("cpu"), True, Path("report"))
    assert runs == [tmp_path / "report" / "kernel_tests.xml"]  # not <checkout>/report/kernel_tests.xml
    assert result["tests"] == 7 and result["skipped"] == 1 and result["ok"]


# -- 19: print(TrainResult) is one line --------------------------------------------------------------------------

def test_train_result_repr_is_one_line_without_the_model():
    from pathlib import Path

    from staa_snn.training import TrainResult

    history = [{"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "test_acc": 0.75}, {"epoch": 3, "test_acc": 0.625}]
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    text = repr(TrainResult(net, history, Path("runs/x")))
    assert text == ("TrainResult(model=Sequential, epochs=3, final_test_acc=0.6250, best_test_acc=0.7500 (epoch 2), "
                    "run_dir='runs/x')")
    assert repr(TrainResult(net)) == "TrainResult(model=Sequential, epochs=0, run_dir=None)"


# -- 2: every training sample is used, the last partial batch included ------------------------------------------

@pytest.mark.parametrize("n, world, kept, batches", [(67, 1, 67, 3), (60, 1, 60, 2), (65, 1, 64, 2), (64, 1, 64, 2),
                                                      (70, 2, 70, 3), (67, 2, 64, 2), (69, 2, 68, 3)])
def test_the_training_sampler_keeps_the_partial_batch_unless_it_is_one_sample_a_process(n, world, kept, batches):
    from staa_snn.training.distributed import GlobalBatchSampler

    samplers = [GlobalBatchSampler(n, 32, rank=r, world_size=world, seed=3, keep_partial=True) for r in range(world)]
    seen = [list(s) for s in samplers]
    assert sum(map(len, seen)) == kept and len({i for s in seen for i in s}) == kept  # each kept sample once
    assert all(len(s) == len(list(s)) and s.num_batches == batches for s in samplers)
    assert samplers[0].left_out == n - kept
    assert len(seen[0]) == len(seen[-1])  # every process the same number of samples (and batches)
    old = GlobalBatchSampler(n, 32, rank=0, world_size=world, seed=3)  # the old behaviour, for resumed old runs
    assert len(old) == (n // 32) * (32 // world) and old.num_batches == n // 32


def _digits_head(n):
    from staa_snn.data import get_dataset
    from staa_snn.data.static import TensorImages

    ds = get_dataset("digits", split="train", size=8)
    return TensorImages(ds.images[:n], ds.targets[:n], classes=ds.classes)


@pytest.mark.parametrize("n, steps, note", [(67, 3, None), (65, 2, "1 of the 65 training samples are left out")])
def test_training_uses_the_last_partial_batch(tmp_path, capsys, n, steps, note):
    from staa_snn.training import train
    from tiny_runs import tiny

    cfg = tiny(tmp_path, "train.epochs=1", "train.max_batches=null", "data.augment=false")
    result = train(cfg, train_set=_digits_head(n), test_set=_digits_head(40))
    assert result.history[0]["step"] == steps  # 67 at batch 32: 32 + 32 + 3 (it was 2 steps, 64 samples)
    err = capsys.readouterr().err
    assert (note in err) if note else "left out" not in err


def test_a_run_checkpointed_before_partial_batches_resumes_as_it_was_trained(tmp_path):
    from staa_snn.training import load_checkpoint, save_checkpoint, train
    from tiny_runs import tiny

    cfg = tiny(tmp_path, "train.max_batches=null", "data.augment=false")
    sets = dict(train_set=_digits_head(67), test_set=_digits_head(40))
    first = train(cfg, stop_after=1, **sets)
    assert first.history[-1]["step"] == 3
    last = first.run_dir / "last.pt"
    ckpt = load_checkpoint(last)
    assert ckpt.pop("partial_batch") is True
    ckpt["step"], ckpt["history"][-1]["step"] = 2, 2  # as the old trainer wrote it: 2 whole batches
    save_checkpoint(last, ckpt)
    resumed = train(cfg, resume="auto", **sets)
    assert [h["step"] for h in resumed.history] == [2, 4]  # the old sampler: the partial batch dropped


# -- 1: --resume with a --config that is not the run's -----------------------------------------------------------

def test_resume_refuses_a_config_that_is_not_the_runs(tmp_path, capsys):
    from staa_snn import cli

    common = ["data.size=8", "model.T=2", "train.max_batches=2", "train.progress=false", "output.tensorboard=false",
              f"output.dir={tmp_path}", "output.name=run"]
    assert cli.main(["train", "--config", "digits", *common, "train.epochs=1"]) == 0
    capsys.readouterr()
    for other, shown in (("digits_lif", "model.neuron='lif' vs 'staa'"), ("cifar10_quick", "data.name='imagefolder' vs 'digits'")):
        assert cli.main(["train", "--config", other, "--resume", "auto", *common, "train.epochs=2"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--config {other} is not the config of the run in {tmp_path / 'run'}" in err[0]
        assert shown in err[0] and "data.root" not in err[0].split("(")[0], err[0]
    assert cli.main(["train", "--config", "digits", "--resume", "auto", *common, "train.epochs=2"]) == 0
    assert "resuming run from epoch 1/2" in capsys.readouterr().err
    assert cli.main(["train", "--resume", "auto", *common, "train.epochs=3"]) == 0  # no --config: the run's own


# -- 4: class names from any dataset that has them (event data, wrapped datasets) ----------------------------------

class FakeEvents(torch.utils.data.Dataset):
    """A tiny event dataset, as the event datasets are: [T, 2, H, W] frames of counts, and ``classes``."""

    classes = ["left", "right"]

    def __init__(self, n):
        g = torch.Generator().manual_seed(n)
        self.x = torch.poisson(torch.full((n, 2, 2, 8, 8), 0.5), generator=g)
        self.y = [i % 2 for i in range(n)]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


@pytest.mark.parametrize("wrap", [False, True])
def test_a_net_trained_on_event_data_keeps_its_class_names(tmp_path, wrap):
    from staa_snn.inference import load_net
    from staa_snn.training import train
    from tiny_runs import tiny

    cfg = tiny(tmp_path, "data.name=cifar10dvs", f"data.root={tmp_path}", "train.epochs=1", "data.augment=false")
    train_set, test_set = FakeEvents(64), FakeEvents(8)
    if wrap:  # a Subset hides the dataset's attributes behind .dataset
        train_set, test_set = Subset(train_set, range(64)), Subset(test_set, range(8))
    result = train(cfg, train_set=train_set, test_set=test_set)
    net = load_net(result.run_dir / "best.pt")
    assert net.pretrained_cfg["classes"] == ["left", "right"] and net.pretrained_cfg["kind"] == "events"


# -- 14: train.progress=false keeps the line per epoch -----------------------------------------------------------

def test_progress_false_still_prints_each_epochs_line(tmp_path, capsys):
    import re

    from staa_snn.training import train
    from tiny_runs import tiny

    result = train(tiny(tmp_path, "train.progress=false", "train.epochs=2"))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and all(re.match(r"epoch [12]/2: train loss \d\.\d{4} acc .* img/s$", line) for line in lines)
    assert f"{100 * result.history[1]['test_acc']:.2f}%" in lines[1]


# -- 16: the usage line names every command, and every command's --help says what it does ----------------------------

def test_usage_names_every_command_and_each_has_a_description():
    from staa_snn import cli

    from staa_snn.cli.main import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    usage = parser.format_usage()
    assert "stream" in commands and all(name in usage for name in commands)
    assert all(p.description for p in commands.values()), [n for n, p in commands.items() if not p.description]


# -- 10: predict / stream --checkpoint answer as a checkpoint, not as exported weights --------------------------------

def test_predict_and_stream_checkpoint_errors_speak_of_checkpoints(tmp_path, capsys):
    from staa_snn import cli

    (tmp_path / "x.png").write_bytes(b"")
    (tmp_path / "r.aedat").write_bytes(b"")
    (tmp_path / "run").mkdir()
    for command in (["predict", str(tmp_path / "x.png")], ["stream", str(tmp_path / "r.aedat")]):
        assert cli.main([*command, "--checkpoint", str(tmp_path / "missing.pt")]) == 2
        err = capsys.readouterr().err
        assert f"checkpoint {tmp_path / 'missing.pt'} does not exist" in err and "safetensors" not in err
        assert cli.main([*command, "--checkpoint", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / 'run'} is a folder, not a checkpoint file" in err and "safetensors" not in err


# -- 11 and 18: predict takes a folder's images; broken files are one line each, the others still predicted -----------

def test_predict_takes_the_images_of_a_folder(tmp_path, capsys):
    from staa_snn import cli

    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for name, value in (("b.png", 200), ("a.jpg", 20)):
        _png(tmp_path / "imgs" / name, np.full((32, 32, 3), value, dtype=np.uint8))
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    assert cli.main(["predict", "--weights", "cifar10_quick", str(tmp_path / "imgs"), "--top", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [str(tmp_path / "imgs" / "a.jpg"), str(tmp_path / "imgs" / "b.png")]
    assert cli.main(["predict", "--weights", "cifar10_quick", str(tmp_path / "imgs" / "sub")]) == 2
    assert f"{tmp_path / 'imgs' / 'sub'} is a folder with no images in it" in capsys.readouterr().err


def test_predict_reports_broken_files_and_predicts_the_others(tmp_path, capsys):
    import json

    from staa_snn import cli

    good = _png(tmp_path / "good.png", np.full((32, 32, 3), 90, dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    files = [str(tmp_path / "broken.png"), str(good), str(tmp_path / "missing.png")]
    code = cli.main(["predict", "--weights", "cifar10_quick", *files, "--top", "2", "--json", str(tmp_path / "p.json")])
    out, err = capsys.readouterr()
    assert code == 2
    assert out.splitlines()[0].startswith(f"{good}: ") and len(out.splitlines()) == 1
    assert err.splitlines() == [f"staa-snn predict: error: {tmp_path / 'broken.png'}: not a readable image "
                                f"(cannot identify image file '{tmp_path / 'broken.png'}')",
                                f"staa-snn predict: error: no such file: {tmp_path / 'missing.png'}"]
    written = json.loads((tmp_path / "p.json").read_text())
    assert [("error" in r, len(r.get("predictions", []))) for r in written] == [(True, 0), (False, 2), (True, 0)]


# -- 20: eval's JSON: one per kind of measurement beside a checkpoint; none in the current folder for weights ---------

def test_eval_exit_and_exit_sweep_keep_their_own_json(tmp_path, monkeypatch, capsys):
    import json

    from staa_snn import cli
    from staa_snn.training import train
    from tiny_runs import tiny

    best = train(tiny(tmp_path, "train.epochs=1", batches=1)).run_dir / "best.pt"
    monkeypatch.chdir(tmp_path)
    assert cli.main(["eval", "--checkpoint", str(best)]) == 0
    assert cli.main(["eval", "--checkpoint", str(best), "--exit", "confidence:0.9"]) == 0
    assert cli.main(["eval", "--checkpoint", str(best), "--exit-sweep", "0.5,0.9"]) == 0
    written = sorted(p.name for p in best.parent.glob("best.pt.eval*"))
    assert written == ["best.pt.eval.exit-sweep.json", "best.pt.eval.exit-sweep.json.exit.png",
                       "best.pt.eval.exit0.9.json", "best.pt.eval.json"]
    assert "exit_curve" not in json.loads((best.parent / "best.pt.eval.json").read_text())
    sweep = json.loads((best.parent / "best.pt.eval.exit-sweep.json").read_text())["exit_curve"]
    assert [p["threshold"] for p in sweep["confidence"]] == [0.5, 0.9]
    single = json.loads((best.parent / "best.pt.eval.exit0.9.json").read_text())["exit_curve"]
    assert [p["threshold"] for p in single["confidence"]] == [0.9]
    for c in CIFAR10_CLASSES:
        (tmp_path / "data" / "test" / c).mkdir(parents=True)
        _png(tmp_path / "data" / "test" / c / "0.png", np.full((32, 32, 3), 50, dtype=np.uint8))
    capsys.readouterr()
    here = sorted(tmp_path.iterdir())
    assert cli.main(["eval", "--weights", "cifar10_quick", f"data.root={tmp_path / 'data'}", "--device", "cpu"]) == 0
    assert sorted(tmp_path.iterdir()) == here  # was cifar10_quick.eval.json in the current folder
    assert "JSON not written: --json PATH writes it" in capsys.readouterr().out
