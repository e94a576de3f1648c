"""staa-snn ablate through submitit: the local executor on this CPU; SLURM's parameters and
sbatch script without a cluster."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from staa_snn import cli
from staa_snn.analysis import ablate, launch
from staa_snn.training import Config, ConfigError, load_checkpoint, load_config, train
from staa_snn.training.checkpoint import save_checkpoint
from tiny_runs import DIGITS, strip, tiny

submitit = pytest.importorskip("submitit", reason='submitit is the [cluster] extra')

TINY = ["data.size=8", "model.T=2", "train.max_batches=2", "output.tensorboard=false"]


def test_a_grid_through_submitit_gathers_the_same_table_as_local(tmp_path, capsys):
    grid = ["ablate", "--grid", "pe_kind", "--seeds", "2", "--epochs", "1", *TINY]
    assert cli.main([*grid, "--out", str(tmp_path / "local")]) == 0
    assert cli.main([*grid, "--out", str(tmp_path / "sub"), "--launcher", "submitit-local"]) == 0
    here = json.loads((tmp_path / "local" / "pe_kind" / "results.json").read_text())
    there = json.loads((tmp_path / "sub" / "pe_kind" / "results.json").read_text())
    for a, b in zip(here["rows"], there["rows"], strict=True):
        assert (a["row"], a["accs"], a["accs_step1"]) == (b["row"], b["accs"], b["accs_step1"])
    record = json.loads((tmp_path / "sub" / "pe_kind" / "grid.json").read_text())
    assert record["launcher"] == "submitit-local" and sorted(record["jobs"]) == [
        "fixed_seed0", "fixed_seed1", "learnable_seed0", "learnable_seed1"]
    for run in record["jobs"]:  # each job is one run folder, trained to the end
        assert load_checkpoint(tmp_path / "sub" / "pe_kind" / run / "last.pt")["epoch"] == 1
    capsys.readouterr()
    assert cli.main(["ablate", "--gather", str(tmp_path / "sub")]) == 0  # the --out above the grid works too
    assert "| fixed |" in capsys.readouterr().out
    assert cli.main(["ablate", "--status", str(tmp_path / "sub" / "pe_kind" / "grid.json")]) == 0
    out = capsys.readouterr().out  # the states are --status's output: stdout
    assert "4/4 runs finished" in out and "fixed_seed1: done (epoch 1/1, job " in out  # every run, by name


def _task_pid(job) -> int:
    """The process running the job's function (a child of submitit's local controller)."""
    todo = [int(job.job_id)]
    while todo:
        pid = todo.pop()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"submitit.core._submit" in cmdline:
            return pid
        for task in Path(f"/proc/{pid}/task").iterdir():
            todo += [int(c) for c in (task / "children").read_text().split()]
    raise AssertionError("no task process under the job")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the task's process through /proc (Linux)")
def test_a_signal_mid_run_requeues_it_and_it_resumes_exactly(tmp_path):
    cfg = tiny(tmp_path, "train.epochs=3", "train.checkpoint_every=1", name="preempted", batches=20)
    straight = train(tiny(tmp_path, "train.epochs=3", name="straight", batches=20))
    ex = launch.executor("submitit-local", tmp_path / ".submitit")
    job = launch.submit(ex, [("preempted", cfg)])["preempted"]
    last = tmp_path / "preempted" / "last.pt"
    deadline = time.time() + 240
    while time.time() < deadline and not last.exists() and not job.done():
        time.sleep(0.02)
    assert not job.done(), "the run ended before the signal could be sent"
    os.kill(_task_pid(job), signal.SIGUSR2)  # what SLURM sends the task before its time limit (submitit's --signal)
    result = job.result()
    log = job.stderr() or ""
    assert "stopped by SIGUSR2 after batch" in log and "checkpointed in" in log
    assert "resuming preempted from epoch" in log  # the requeued job continued from the checkpoint
    assert result["epoch"] == 3  # the job's result: the run's last epoch record
    resumed = load_checkpoint(last)
    assert strip(resumed["history"]) == strip(straight.history)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed["model"].values(), strict=True):
        assert torch.equal(a, b), k


def test_a_run_of_two_processes_is_ddp_inside_its_allocation(tmp_path):
    """--gpus-per-run 2: two tasks per job, the rendezvous from submitit's environment (gloo here)."""
    cfg = tiny(tmp_path, "train.epochs=1", "train.device=cpu", name="ddp", batches=2)
    ex = launch.executor("submitit-local", tmp_path / ".submitit", launch.SlurmOptions(gpus_per_run=2))
    job = launch.submit(ex, [("ddp", cfg)], gpus=2)["ddp"]
    first, second = job.results()
    assert first["epoch"] == second["epoch"] == 1 and first["test_acc"] == second["test_acc"]
    assert json.loads((tmp_path / "ddp" / "meta.json").read_text())["world_size"] == 2


def test_a_failed_run_is_named_with_its_log(tmp_path, capsys):
    (tmp_path / "pe_kind").mkdir()
    (tmp_path / "pe_kind" / "fixed_seed0").write_text("a file where the run folder should be")
    args = ["ablate", "--grid", "pe_kind", "--seeds", "1", "--epochs", "1", "--out", str(tmp_path),
            "--launcher", "submitit-local", *TINY]
    assert cli.main(args) == 1  # the rows that finished are summarised; the failure decides the exit status
    err = capsys.readouterr().err
    assert "1/2 runs finished" in err and "fixed_seed0: failed (epoch 0/1, job " in err
    assert "fixed_seed0" in err.split("failed", 1)[1]  # the log's tail: the error that stopped it
    assert cli.main(["ablate", "--status", str(tmp_path)]) == 1
    assert "fixed_seed0: failed" in capsys.readouterr().out
    summary = json.loads((tmp_path / "pe_kind" / "results.json").read_text())
    assert [r["row"] for r in summary["rows"]] == ["learnable"]


@pytest.fixture
def srun_here(monkeypatch):
    """submitit's SlurmExecutor looks for srun first; these tests need no cluster."""
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", lambda *a: 1)


def test_slurm_parameters_and_sbatch_script(tmp_path, srun_here):
    options = launch.SlurmOptions(partition="gpu", gpus_per_run=4, time="1-12:00:00", account="snn",
                                  extra=launch.SlurmOptions.parse_extra(["qos=high", "mem=64G", "exclude=node7"]))
    ex = launch.executor("slurm", tmp_path, options)
    p = ex.parameters
    assert (p["partition"], p["time"], p["gpus_per_node"], p["ntasks_per_node"], p["nodes"]) == ("gpu", 2160, 4, 4, 1)
    assert (p["account"], p["qos"], p["mem"], p["exclude"]) == ("snn", "high", "64G", "node7")
    assert p["signal_delay_s"] == launch.SIGNAL_DELAY_S
    script = ex._make_submission_file_text("python -m submitit.core._submit FOLDER", "UID")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=4", "#SBATCH --ntasks-per-node=4",
                 "#SBATCH --time=2160", "#SBATCH --account=snn", "#SBATCH --qos=high", "#SBATCH --mem=64G",
                 f"#SBATCH --signal=USR2@{launch.SIGNAL_DELAY_S}", "#SBATCH --open-mode=append"):
        assert line in script, line
    unknown = launch.executor("slurm", tmp_path, launch.SlurmOptions(
        partition="gpu", extra=launch.SlurmOptions.parse_extra(["reservation_x=1", "exclusive="])))
    assert unknown.parameters["additional_parameters"] == {"reservation_x": "1"}
    assert "#SBATCH --exclusive\n" in unknown._make_submission_file_text("CMD", "UID")  # KEY= : a bare flag


@pytest.mark.parametrize("args, message", [
    (["--launcher", "slurm"], "--launcher slurm needs --partition"),
    (["--launcher", "slurm", "--partition", "gpu", "--time", "soon"], "--time: 'soon' is not a SLURM time"),
    (["--launcher", "slurm", "--partition", "gpu", "--slurm", "qos"], "--slurm: expected KEY=VALUE"),
    (["--launcher", "slurm", "--partition", "gpu", "--gpus-per-run", "0"], "--gpus-per-run must be >= 1, got 0"),
    (["--partition", "gpu"], "--partition apply to --launcher slurm (this is --launcher local)"),
    (["--launcher", "submitit-local", "--slurm", "qos=high"], "--slurm apply to --launcher slurm"),
    (["--time", "2:00:00"], "--time and --gpus-per-run apply to --launcher submitit-local or slurm"),
    (["--seeds", "0"], "--seeds must be >= 1, got 0"),
    (["--rows", ","], "--rows: no row labels in ','"),
])
def test_bad_cluster_options_are_one_line_errors(tmp_path, capsys, srun_here, args, message):
    assert cli.main(["ablate", "--grid", "pe_kind", "--epochs", "1", "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "pe_kind" / "grid.json").exists()  # nothing was launched


def test_slurm_without_srun_says_where_to_run_it(tmp_path, capsys):
    if __import__("shutil").which("srun"):
        pytest.skip("srun is here")
    assert cli.main(["ablate", "--grid", "pe_kind", "--epochs", "1", "--out", str(tmp_path), "--launcher", "slurm",
                     "--partition", "gpu"]) == 2
    assert "a login node), or use --launcher submitit-local here" in capsys.readouterr().err


def test_slurm_times():
    assert [launch.parse_time(t) for t in ("90", "24:00:00", "1-00:00:00", "2-6", "30:30", "0:0:1")] == \
        [90, 1440, 1440, 2 * 1440 + 6 * 60, 31, 1]


def test_gather_without_a_launched_grid_says_so(tmp_path, capsys):
    assert cli.main(["ablate", "--gather", str(tmp_path)]) == 2
    assert "no grid.json here or in a folder below" in capsys.readouterr().err
    assert cli.main(["ablate", "--status", str(tmp_path / "nowhere")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    assert cli.main(["ablate", "--status", str(tmp_path), "--gather", str(tmp_path)]) == 2
    assert "give --gather DIR or --status DIR, not both" in capsys.readouterr().err


def test_a_grid_launched_in_parts_is_read_back_whole(tmp_path, capsys):
    """Parts into one --out: grid.json keeps every part's rows (in the grid's order) and jobs."""
    base = load_config(DIGITS, TINY)
    ablate.run_grid(base, "pe_kind", seeds=1, epochs=1, out=tmp_path, progress=False, rows=["fixed"])
    ablate.run_grid(base, "pe_kind", seeds=2, epochs=1, out=tmp_path, progress=False, rows=["learnable"])
    record = json.loads((tmp_path / "pe_kind" / "grid.json").read_text())
    assert (record["rows"], record["seeds"]) == (["learnable", "fixed"], 2)
    states = ablate.status(tmp_path)
    assert {k: v["state"] for k, v in states.items()} == {"learnable_seed0": "done", "learnable_seed1": "done",
                                                          "fixed_seed0": "done", "fixed_seed1": "missing"}
    assert cli.main(["ablate", "--status", str(tmp_path)]) == 1
    assert "fixed_seed1: missing (epoch 0/1)" in capsys.readouterr().out
    # a local run in progress holds its folder's lock: running, not missing; a dead holder's lock is no run
    run = tmp_path / "pe_kind" / "fixed_seed1"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for pid, state in ((os.getpid(), "running"), (int(dead.stdout), "missing")):
        (run / ".lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "now"}))
        assert ablate.status(tmp_path)["fixed_seed1"]["state"] == state
    # checkpointed, not finished, not running: interrupted (the same command resumes it)
    ckpt = load_checkpoint(tmp_path / "pe_kind" / "fixed_seed0" / "last.pt")
    save_checkpoint(run / "last.pt", {**ckpt, "epoch": 0})
    assert ablate.status(tmp_path)["fixed_seed1"]["state"] == "interrupted"
    (run / "last.pt").unlink()
    (run / ".lock").unlink()
    with pytest.raises(ConfigError, match="launched with 1 epochs a run, not 2: use that, or another --out"):
        ablate.run_grid(base, "pe_kind", seeds=1, epochs=2, out=tmp_path, progress=False)
    summary, _ = ablate.gather(tmp_path)
    assert [(r["row"], len(r["accs"])) for r in summary["rows"]] == [("learnable", 2), ("fixed", 1)]
    md = ablate.to_markdown(summary)
    assert "| fixed | 1 | " in md and " ± " not in md.split("| fixed | 1 |")[1].split("|")[1]  # one seed: no spread
    assert "**Not every seed has finished:** fixed (1 of 2);" in md
    # a part with another config is refused, naming the keys; how a run is carried out may differ
    with pytest.raises(ConfigError, match=r"pe_kind in this folder was launched with optim.lr=0.003, not "
                                          r"optim.lr=0.5: every run of a grid is trained alike"):
        ablate.run_grid(load_config(DIGITS, [*TINY, "optim.lr=0.5"]), "pe_kind", seeds=1, epochs=1, out=tmp_path,
                        progress=False, rows=["fixed"])
    ablate.run_grid(load_config(DIGITS, [*TINY, "train.checkpoint_every=10min", "model.backend=reference"]),
                    "pe_kind", seeds=1, epochs=1, out=tmp_path, progress=False, rows=["fixed"])
    # a run trained otherwise than its grid says (grid.json rewritten by hand, or by an old version) is refused
    record = json.loads((tmp_path / "pe_kind" / "grid.json").read_text())
    record["base"]["optim"]["lr"] = 0.5
    (tmp_path / "pe_kind" / "grid.json").write_text(json.dumps(record))
    for read_back in (ablate.gather, ablate.status):  # --status does not call such a run done
        with pytest.raises(ConfigError, match=r"learnable_seed0 was trained with optim.lr=0.003, not optim.lr=0.5"):
            read_back(tmp_path)


def test_a_finished_grid_read_back_needs_no_base_config(tmp_path):
    base = load_config(DIGITS, TINY)
    ablate.run_grid(base, "pe_kind", seeds=1, epochs=1, out=tmp_path, progress=False)
    record = json.loads((tmp_path / "pe_kind" / "grid.json").read_text())
    assert Config.from_dict(record["base"]).to_dict() == base.to_dict() and record["launcher"] == "local"
    summary, states = ablate.gather(tmp_path / "pe_kind")
    assert [r["row"] for r in summary["rows"]] == ["learnable", "fixed"]
    assert {s["state"] for s in states.values()} == {"done"}
