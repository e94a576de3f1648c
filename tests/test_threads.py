"""Choosing torch's intra-op threads (staa_snn.training.threads): affinity, cgroup quota, busy
neighbours, the user's OMP_NUM_THREADS, and the hint when the throughput collapses (issue 36)."""

import pytest

from staa_snn.training.threads import (ThroughputWatch, busy_cpus, cgroup_cpu_limit, check_threads, choose_threads,
                                       usable_cpus)


def test_cgroup_v2_quota_is_the_smallest_along_the_path(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "a" / "b" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "self").write_text("0::/a/b\n")
    assert cgroup_cpu_limit(tmp_path, tmp_path / "self") == 1.5
    (tmp_path / "a" / "b" / "cpu.max").write_text("50000 100000\n")
    assert cgroup_cpu_limit(tmp_path, tmp_path / "self") == 0.5
    (tmp_path / "a" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "a" / "b" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path, tmp_path / "self") is None


def test_cgroup_v1_cfs_quota(tmp_path):
    base = tmp_path / "cpu,cpuacct" / "job"
    base.mkdir(parents=True)
    (base / "cpu.cfs_quota_us").write_text("200000\n")
    (base / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "self").write_text("4:memory:/job\n3:cpu,cpuacct:/job\n")
    assert cgroup_cpu_limit(tmp_path, tmp_path / "self") == 2.0
    (base / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(tmp_path, tmp_path / "self") is None
    assert cgroup_cpu_limit(tmp_path, tmp_path / "missing") is None


def test_usable_cpus_is_the_affinity_mask_capped_by_the_quota():
    assert usable_cpus([0, 1, 2, 3], None) == 4
    assert usable_cpus([0, 1, 2, 3], 1.5) == 1  # rounded down: a second thread would be throttled
    assert usable_cpus([0, 1, 2, 3], 0.5) == 1
    assert usable_cpus([2, 3], 8.0) == 2


def _stat(*cpus):
    """/proc/stat text: per CPU (user, nice, system, idle) jiffies."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{i} {u} {n} {s} {idle} 0 0 0 0 0 0" for i, (u, n, s, idle) in enumerate(cpus)]
    return "\n".join(lines) + "\nintr 0\n"


def test_busy_cpus_counts_normal_priority_time_not_niced_time():
    snapshots = iter([_stat((0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0)),
                      _stat((18, 0, 2, 5), (0, 25, 0, 0), (3, 0, 0, 22))])  # 80% busy, niced, 12%
    assert busy_cpus([0, 1, 2], sample_s=0, read=lambda: next(snapshots)) == 1  # 0.8 + 0 + 0.12 = 0.92
    snapshots = iter([_stat((0, 0, 0, 0), (0, 0, 0, 0)), _stat((10, 0, 0, 15), (12, 0, 1, 12))])
    assert busy_cpus([0, 1], sample_s=0, read=lambda: next(snapshots)) == 1  # one process moved between CPUs
    snapshots = iter([_stat((0, 0, 0, 0), (0, 0, 0, 0)), _stat((25, 0, 0, 0), (25, 0, 0, 0))])
    assert busy_cpus([1], sample_s=0, read=lambda: next(snapshots)) == 1  # only the CPUs asked about


def test_choose_threads():
    assert choose_threads(3).threads == 3
    assert choose_threads("auto", environ={"OMP_NUM_THREADS": "1"}, cpus=[0, 1], quota=None, busy=0).threads == 1
    quiet = choose_threads("auto", environ={}, cpus=[0, 1], quota=None, busy=0)
    assert quiet.threads == 2 and quiet.reason == "auto: 2 CPUs in the affinity mask"
    shared = choose_threads("auto", environ={}, cpus=[0, 1], quota=None, busy=1)
    assert shared.threads == 1 and shared.reason == "auto: 2 CPUs in the affinity mask, 1 kept busy by other processes"
    assert choose_threads("auto", environ={}, cpus=list(range(8)), quota=3.0, busy=5).threads == 1
    assert choose_threads("auto", environ={}, cpus=list(range(8)), quota=3.0, busy=0).threads == 3
    for bad in (0, -1, True, 1.5, "two"):
        with pytest.raises(ValueError, match="threads must be 'auto' or a positive number"):
            check_threads(bad)


def test_throughput_watch_says_once_when_the_throughput_collapses():
    watch = ThroughputWatch(threads=2)
    said = [watch.add(v) for v in (100, 110, 105, 30, 20, 10)]
    assert said[:4] == [None] * 4  # 30 > 110 / 4
    assert said[4].startswith("training slowed from 110 to 20 samples/s with 2 threads") and "train.threads=1" in said[4]
    assert said[5] is None  # once
    one = ThroughputWatch(threads=1)
    assert all(one.add(v) is None for v in (100, 110, 105, 10))  # one thread: nothing to wait for


def test_train_threads_sets_torchs_threads_for_the_run_and_restores_them(tmp_path):
    import json

    import torch

    from staa_snn.training import train
    from tiny_runs import tiny

    seen = []
    before = torch.get_num_threads()
    result = train(tiny(tmp_path, "train.threads=2", "train.epochs=1", batches=1), callbacks=[lambda r: seen.append(
        torch.get_num_threads())])
    assert seen == [2] and torch.get_num_threads() == before
    meta = json.loads((result.run_dir / "meta.json").read_text())
    assert meta["threads"] == 2 and meta["threads_reason"] == "threads=2"


def test_auto_leaves_omp_num_threads_as_the_user_set_it(tmp_path, monkeypatch):
    import json

    from staa_snn.training import train
    from tiny_runs import tiny

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    result = train(tiny(tmp_path, "train.epochs=1"))
    meta = json.loads((result.run_dir / "meta.json").read_text())
    assert meta["threads"] == 1 and meta["threads_reason"] == "auto: OMP_NUM_THREADS=1"


def test_the_trainer_says_once_when_its_throughput_collapses(tmp_path, capsys, monkeypatch):
    import time

    import torch

    from staa_snn.training import train, trainer

    # the run believes it has 2 threads, torch keeps its own (2 threads on a busy test machine: minutes)
    monkeypatch.setattr(trainer, "apply_threads", lambda choice: torch.get_num_threads())
    from staa_snn.training.losses import mean_logits_loss
    from tiny_runs import tiny

    calls = []

    def slowing(steps, targets):  # from the 7th step on, each step 6x as long: a neighbour took a core
        calls.append(time.perf_counter())
        if len(calls) > 6:
            time.sleep(5 * (calls[5] - calls[1]) / 4)  # whatever this machine's step time is
        return mean_logits_loss(steps, targets)

    cfg = tiny(tmp_path, "train.threads=2", "train.epochs=1", "train.check_every=2", "train.device=cpu",
               batches=14)
    train(cfg, loss_fn=slowing)
    err = capsys.readouterr().err
    hints = [line for line in err.splitlines() if "training slowed from" in line]
    assert len(hints) == 1 and "with 2 threads" in hints[0] and "train.threads=1" in hints[0], err


def test_eval_threads(tmp_path, monkeypatch, capsys):
    import numpy as np
    import torch
    from PIL import Image

    from staa_snn import cli

    for i, c in enumerate(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]):
        (tmp_path / "d" / "test" / c).mkdir(parents=True)
        Image.fromarray(np.full((32, 32, 3), 20 * i, dtype=np.uint8)).save(tmp_path / "d" / "test" / c / "0.png")
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    try:
        args = ["eval", "--weights", "cifar10_quick", f"data.root={tmp_path / 'd'}", "--device", "cpu"]
        assert cli.main([*args, "--threads", "2"]) == 0 and torch.get_num_threads() == 2
        with pytest.raises(SystemExit) as stop:
            cli.main([*args, "--threads", "0"])
        assert stop.value.code == 2 and "expected auto or a positive number of threads, got '0'" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_threads_bench_runs_and_reports(tmp_path):
    """benchmarks/threads_bench.py at a tiny size, so the script the docs' figures come from cannot rot."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "threads_bench.py"), "--batch", "4", "--steps", "1",
                           "--reps", "2", "--conditions", "quiet", "--json", str(tmp_path / "t.json"), "--md",
                           str(tmp_path / "t.md")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "t.json").read_text())
    rows = report["conditions"]["quiet"]["rows"]
    assert list(rows) == ["default", "1", "auto"] and rows["1"]["threads"] == 1
    assert rows["default"]["threads"] == report["default_threads"] and rows["default"]["x_default"] == 1.0
    assert all(r["images_per_s"] > 0 and r["min"] <= r["images_per_s"] <= r["max"] for r in rows.values())
    assert "| quiet |" in (tmp_path / "t.md").read_text()
    refused = subprocess.run([sys.executable, str(root / "benchmarks" / "threads_bench.py")], capture_output=True,
                             text=True, env={**env, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert refused.returncode == 2 and "run without it" in refused.stderr


def test_the_threads_notice_comes_after_the_data_so_bad_data_is_one_line(tmp_path, capsys, monkeypatch):
    import torch

    from staa_snn import cli
    from staa_snn.training import trainer
    from staa_snn.training.threads import ThreadChoice

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # as on a 2-core machine, one core busy
    monkeypatch.setattr(trainer, "choose_threads", lambda setting: ThreadChoice(1, "auto: 1 of 2 CPUs busy"))
    monkeypatch.setattr(trainer, "apply_threads", lambda choice: 2)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the run's close() restores "2": not here

    def run(*overrides):
        code = cli.main(["train", "--config", "digits", "data.size=8", "model.T=2", "train.epochs=1",
                         "train.max_batches=1", "train.progress=false", "output.tensorboard=false",
                         f"output.dir={tmp_path / 'runs'}", *overrides])
        return code, capsys.readouterr().err.strip().splitlines()

    code, err = run("data.name=imagefolder", f"data.root={tmp_path / 'nowhere'}")
    assert code == 2 and len(err) == 1 and "nowhere" in err[0] and "for torch's CPU" not in err[0], err
    code, err = run("output.name=good")  # good data: the notice is said, once
    notices = [line for line in err if "1 thread for torch's CPU operations, not 2 (auto: 1 of 2 CPUs busy" in line]
    assert code == 0 and len(notices) == 1, err
