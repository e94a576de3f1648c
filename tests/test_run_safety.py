"""Nothing lost, nothing confusing: one run per folder, honest resume, bad files named in one line,
exact resume with loader workers and in the middle of an epoch, no host sync per step."""

import functools
import json
import os
import socket
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

from staa_snn import cli
from staa_snn.data import writers
from staa_snn.training import RunFolderError, RunLocked, load_checkpoint, train
from staa_snn.training import epoch, trainer
from staa_snn.training.run_folder import RunFolder

import tiny_runs
from tiny_runs import strip

tiny = functools.partial(tiny_runs.tiny, batches=4)


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


# -- 1. one run per folder ----------------------------------------------------------

def test_a_second_run_into_a_busy_folder_is_refused_naming_the_holder(tmp_path):
    holder = RunFolder(tmp_path / "run")
    holder.lock()  # this process holds it, as a run started earlier would
    with pytest.raises(RunLocked, match=rf"in use by another run \(pid {os.getpid()} on {socket.gethostname()}"):
        train(tiny(tmp_path))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock"]  # nothing written
    holder.unlock()
    assert train(tiny(tmp_path)).final["epoch"] == 2


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                        "started": "earlier"}))
    with pytest.warns(UserWarning, match="taking over the lock of a run that is no longer running"):
        train(tiny(tmp_path, "train.epochs=1"))
    assert not (tmp_path / "run" / ".lock").exists()


# -- 4, 7. resume that says what it does -----------------------------------------------

def test_new_values_on_a_finished_run_are_refused_unless_it_continues(tmp_path, capsys):
    args = ["train", "data.size=8", "model.T=2", "train.epochs=1", "train.max_batches=2", "output.tensorboard=false",
            f"output.dir={tmp_path}", "output.name=done"]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main([*args, "optim.lr=0.01", "--resume", "auto"]) == 2
    err = capsys.readouterr().err
    assert "done has finished (epoch 1/1); optim.lr (0.003 -> 0.01) would change nothing: raise train.epochs" in err
    assert len(err.strip().splitlines()) == 1
    assert cli.main([*args, "optim.lr=0.01", "train.epochs=2", "--resume", "auto"]) == 0
    err = capsys.readouterr().err
    assert "resuming done from epoch 1/2 (changed: optim.lr 0.003 -> 0.01, train.epochs 1 -> 2)" in err
    assert load_checkpoint(tmp_path / "done" / "last.pt")["epoch"] == 2
    assert cli.main([*args, "train.epochs=2", "model.name=resnet20", "--resume", "auto"]) == 2
    assert "with a different model.name ('vgg_small' -> 'resnet20')" in capsys.readouterr().err


def test_resume_auto_without_a_checkpoint_starts_afresh_and_clears_leftovers(tmp_path, capsys):
    run = tmp_path / "fresh"
    (run / "tensorboard").mkdir(parents=True)  # what a run killed in its first epoch leaves
    (run / "tensorboard" / "events.out.tfevents.old").write_text("old")
    (run / "metrics.jsonl").write_text('{"epoch": 7}\n')
    (run / "config.yaml").write_text("stale: true\n")
    (run / "notes.txt").write_text("mine")
    args = ["train", "data.size=8", "model.T=2", "train.epochs=1", "train.max_batches=2", "output.tensorboard=false",
            f"output.dir={tmp_path}", "output.name=fresh"]
    assert cli.main([*args, "--resume", "auto"]) == 0
    err = capsys.readouterr().err
    assert "no checkpoint in" in err and "starting fresh from the beginning" in err
    assert "cleared what an unfinished run left" in err and "tensorboard/" in err
    assert not (run / "tensorboard").exists() and (run / "notes.txt").read_text() == "mine"
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1]


# -- 5, 6. bad checkpoints and folders, one line each -----------------------------------

def test_bad_checkpoint_files_get_one_line(tmp_path, capsys):
    good = tmp_path / "good"
    train(tiny(tmp_path, "train.epochs=1", name="good"))
    capsys.readouterr()  # the run's epoch line
    (tmp_path / "empty.pt").write_bytes(b"")
    data = (good / "last.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    expected = {"empty.pt": "the file is empty (0 bytes)", "cut.pt": "truncated or damaged",
                "other.pt": "not a staa-snn checkpoint (a dict without the staa-snn format tag",
                "text.pt": "not a PyTorch checkpoint", "good": f"is a folder, not a checkpoint file; did you mean "
                                                            f"{good / 'best.pt'}?"}
    for name, message in expected.items():
        for command in (["eval", "--checkpoint"], ["profile", "--random", "--checkpoint"]):
            assert cli.main([*command, str(tmp_path / name)]) == 2
            err = capsys.readouterr().err
            assert message in err and len(err.strip().splitlines()) == 1, (name, err)
    assert cli.main(["train", "--resume", str(tmp_path / "cut.pt")]) == 2
    assert "truncated or damaged" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_refused_before_any_data_is_read(tmp_path, monkeypatch, capsys):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    monkeypatch.setattr(trainer, "build_datasets", lambda cfg: pytest.fail("data were read"))
    try:
        assert cli.main(["train", "train.progress=false", f"output.dir={locked}"]) == 2
    finally:
        locked.chmod(stat.S_IRWXU)
    assert "cannot write to the output folder" in capsys.readouterr().err


def test_unwritable_output_folder_is_refused_before_any_data_is_read(tmp_path, monkeypatch, capsys):
    """The same check where permissions cannot stop root: the output 'folder' is a file."""
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(trainer, "build_datasets", lambda cfg: pytest.fail("data were read"))
    assert cli.main(["train", "train.progress=false", f"output.dir={tmp_path / 'file'}"]) == 2
    err = capsys.readouterr().err
    assert "cannot write to the output folder" in err and len(err.strip().splitlines()) == 1


# -- 3. a corrupt image names its file; skip_bad_files counts -------------------------------

def _folder_with_a_truncated_png(root):
    rng = np.random.default_rng(0)
    imgs = {c: [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(4)] for c in ("a", "b")}
    writers.write_image_folder(root, {"train": imgs, "val": imgs}, ext="png")
    bad = sorted((root / "train" / "b").glob("*.png"))[1]
    bad.write_bytes(bad.read_bytes()[:60])
    return bad


def test_a_truncated_image_is_named_or_skipped_and_counted(tmp_path, capsys):
    bad = _folder_with_a_truncated_png(tmp_path / "data")
    args = ["train", "data.name=imagefolder", f"data.root={tmp_path / 'data'}", "data.size=8", "data.batch_size=4",
            "model.T=1", "train.epochs=1", "train.progress=false", "output.tensorboard=false",
            f"output.dir={tmp_path}"]
    assert cli.main([*args, "output.name=strict"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: not a readable image" in err and len(err.strip().splitlines()) == 1
    result_args = [*args, "output.name=lenient", "data.options={skip_bad_files: true}"]
    assert cli.main(result_args) == 0
    record = json.loads((tmp_path / "lenient" / "metrics.jsonl").read_text())
    assert record["skipped_samples"] == 1 and record["step"] == 2
    assert "skipped 1 unreadable sample(s)" in capsys.readouterr().err


# -- 9. exact resume with workers, in the middle of an epoch -------------------------------

@pytest.mark.slow
def test_workers_and_stops_do_not_change_the_run(tmp_path):
    """Augmentation and mixing draw from (seed, epoch, sample) and (seed, epoch, step): any number of
    loader workers, and a stop and resume at an epoch end or mid-epoch, give identical weights."""
    opts = ["data.mixup=0.5", "model.tsrd_p=0.3", "train.epochs=2", "train.max_batches=5"]
    straight = train(tiny(tmp_path, *opts, "data.workers=0", name="w0"))
    two = train(tiny(tmp_path, *opts, "data.workers=2", name="w2"))
    assert same_weights(straight.model, two.model) and strip(straight.history) == strip(two.history)

    cfg = tiny(tmp_path, *opts, "data.workers=2", name="mid")
    first = train(cfg, stop_after_steps=7)  # epoch 2, batch 2
    ckpt = load_checkpoint(tmp_path / "mid" / "last.pt")
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (1, 2, 7) and len(first.history) == 1
    resumed = train(cfg, resume="auto")
    assert same_weights(straight.model, resumed.model) and strip(resumed.history) == strip(straight.history)

    cfg = tiny(tmp_path, *opts, "data.workers=2", name="edge")
    train(cfg, stop_after=1)
    assert same_weights(straight.model, train(cfg, resume="auto").model)


def test_checkpoint_every_writes_mid_epoch_checkpoints(tmp_path, monkeypatch):
    saved = []
    real = epoch.save_checkpoint

    def spy(path, payload):
        saved.append((payload["epoch"], payload["batch"]))
        real(path, payload)

    monkeypatch.setattr(epoch, "save_checkpoint", spy)
    train(tiny(tmp_path, "train.checkpoint_every=2", "train.epochs=1"))
    # mid-epoch at batches 2 of 4 (the epoch end writes last.pt and best.pt)
    assert saved == [(0, 2), (1, 0), (1, 0)]


# -- issue 14: no host synchronisation per step -------------------------------------------

def test_a_training_epoch_reads_the_device_only_at_check_points(tmp_path, monkeypatch):
    """Reads of tensor values (.item(), .tolist(), bool(), float(), int()) by the package's own code
    (the loop and the model, not the data transforms or the optimiser's CPU step counters) do not
    grow with the number of steps."""
    reads = {"n": 0}
    package = os.path.dirname(trainer.__file__).rsplit(os.sep, 1)[0]

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(package) and os.sep + "data" + os.sep not in caller:
                reads["n"] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    monkeypatch.setattr(trainer.Trainer, "finish_epoch", lambda self, sums: setattr(self, "epoch", self.epoch + 1))
    counts = {}
    for steps in (4, 12):
        reads["n"] = 0
        train(tiny(tmp_path, f"train.max_batches={steps}", "train.epochs=1", "train.check_every=100",
                   f"output.name=sync{steps}"))
        counts[steps] = reads["n"]
    assert counts[4] == counts[12] <= 3  # the sampler's order and the end-of-epoch check
