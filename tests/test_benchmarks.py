"""benchmarks/gpu_check.py in its CPU mode (tiny shapes), so the script a GPU machine runs cannot rot."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu_and_reports(tmp_path):
    pytest.importorskip("spikingjelly", reason="the report's SpikingJelly row (the dev extra installs it)")
    before = sorted(p.name for p in ROOT.iterdir())
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in ROOT.iterdir()) == before  # everything under --out, nothing in the checkout
    assert (tmp_path / "kernel_tests.xml").is_file()
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["ok"] and report["environment"]["tiny"]
    kernel = report["correctness"]["kernel_tests"]
    assert kernel["ok"] and kernel["tests"] >= 10 and kernel["failures"] == kernel["errors"] == 0
    assert {(r["neuron"], r["backend"]) for r in report["correctness"]["nets"]} == {("lif", "fused"), ("staa", "fused")}
    assert all(r["logits_max_abs_diff"] < 1e-5 for r in report["correctness"]["nets"])
    assert [r["amp"] for r in report["correctness"]["trainer"]] == ["none", "bf16"]
    for workload in report["speed"]:
        rows = {r["variant"]: r for r in workload["rows"]}
        assert list(rows) == ["ANN", "LIF", "STAA", "SJ-LIFNode"]
        assert rows["ANN"]["time_x_ann"] == 1.0 and rows["ANN"]["memory_x_ann"] == 1.0
        for r in rows.values():
            assert r["step_ms"] > 0 and r["images_per_s"] == pytest.approx(workload["batch"] * 1e3 / r["step_ms"])
        assert rows["STAA"]["memory_mib"] > rows["LIF"]["memory_mib"]  # STAA saves its gate inputs too
    projection = report["projection"]
    assert projection["steps_per_epoch"] == 391 and projection["eval_batches"] == 79
    assert projection["epoch_s"] == pytest.approx(projection["train_s_per_epoch"] + projection["eval_s_per_epoch"])
    text = (tmp_path / "gpu_check.md").read_text()
    assert "Overall: **correct**" in text and "| STAA |" in text


@pytest.mark.slow
def test_frameworks_bench_runs_every_peer_on_the_same_neuron(tmp_path):
    """benchmarks/frameworks_bench.py at a tiny size: every peer installed by the dev extra runs, and
    all of them compute the same spikes as ours (the neuron constants are matched). Sinabs is not in
    the dev extra (its nir pin conflicts with NIR export's): where it is absent, its row says how to
    install it instead of failing the run."""
    for peer in ("spikingjelly", "snntorch", "norse"):
        pytest.importorskip(peer, reason="the frameworks bench's peers (the dev extra installs them)")
    has_sinabs = importlib.util.find_spec("sinabs") is not None
    out = tmp_path / "fb.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "frameworks_bench.py"), "--sizes", "48",
                           "--T", "40", "--batch", "3", "--reps", "1", "--threads", "1", "--no-memory",
                           "--rows", "staa-snn fused", "SpikingJelly", "snnTorch", "Norse", "Sinabs",
                           "--json", str(out), "--md", str(tmp_path / "fb.md")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["row"]: r for r in json.loads(out.read_text())["sizes"]["48"]}
    assert list(rows) == ["staa-snn fused", "SpikingJelly", "snnTorch", "Norse", "Sinabs"]
    if not has_sinabs:
        assert rows.pop("Sinabs")["note"] == 'not installed (sinabs): pip install -e ".[bench]"'
    for name, r in rows.items():
        assert r["spikes_equal"] == 1.0, name        # the same neuron, spike for spike
        assert 0.05 < r["firing_rate"] < 0.5, name   # and a real spike pattern
        assert r["step_s"] > 0 and r["forward_s"] > 0 and len(r["step_runs_s"]) == 1
        assert r["saved_bytes"] > 0, name            # every neuron keeps something for its backward
    assert rows["staa-snn fused"]["saved_bytes"] == 40 * 3 * 48 * 4  # ours keeps H, float32, and nothing else
    assert "| snnTorch |" in (tmp_path / "fb.md").read_text()


def test_evt_speed_help_says_each_option_and_its_default():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "evt_speed.py"), "--help"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "400"}, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip().startswith("--")}
    for option, default in (("--format", "evt3"), ("--events", "5000000"), ("--rounds", "5"), ("--old", "2ccec0a")):
        assert f"(default: {default}" in lines[option], proc.stdout
