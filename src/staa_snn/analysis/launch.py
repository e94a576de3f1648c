"""Where an ablation grid's runs execute: here, one after another (``local``), or as one
submitit job array (``submitit-local`` on this machine, ``slurm`` on a cluster).

Every element of an array is one run folder. A run checkpoints when SLURM warns it (SIGUSR2,
``--signal`` from submitit, before the time limit) or preempts it (SIGTERM): the trainer writes a mid-epoch checkpoint
and stops (:mod:`staa_snn.training.preemption`), then :class:`GridRun` hands over to
submitit's own handler, which requeues the element; the next allocation continues with
``--resume auto``, exactly. Nothing here is a scheduler: submitit submits, requeues and keeps
the logs, in ``<out>/<grid>/.submitit/``.

``grid.json`` in ``<out>/<grid>/`` records what was launched (the base config, the grid, its
rows, seeds, epochs, and the job of each run), so that ``staa-snn ablate --gather`` and
``--status`` can read the runs back later, from another process or machine.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import shlex
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .._io import first_line, write_text_atomic
from ..training import Config, ConfigError, RunFolder, TrainingPreempted, load_checkpoint, run_time, train
from ..training.resume import config_differences

__all__ = ["LAUNCHERS", "SlurmOptions", "GridRun", "executor", "submit", "run_states", "read_run", "parse_time",
           "read_launch", "write_launch", "merge_launch", "check_same_config"]

LAUNCHERS = ("local", "submitit-local", "slurm")
SIGNAL_DELAY_S = 180  # submitit's signal (USR2) this long before the time limit: time to checkpoint a large net
DEFAULT_TIME = "24:00:00"  # --time


def parse_time(text: str) -> int:
    """SLURM's time formats (``MM``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``, ``MM:SS``) to whole minutes."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise ConfigError(f"--time: {text!r} is not a SLURM time (e.g. 24:00:00, 90, 1-12:00:00)")
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        minutes = days * 1440 + a * 60 + (b or 0) + ((c or 0) + 59) // 60
    elif b is None:  # MM
        minutes = a
    elif c is None:  # MM:SS
        minutes = a + (b + 59) // 60
    else:  # HH:MM:SS
        minutes = a * 60 + b + (c + 59) // 60
    if minutes < 1:
        raise ConfigError(f"--time: {text!r} is under a minute")
    return minutes


@dataclass
class SlurmOptions:
    """What ``--launcher slurm`` asks of each array element (one run)."""

    partition: str | None = None
    gpus_per_run: int = 1
    time: str = DEFAULT_TIME
    account: str | None = None
    extra: dict[str, "str | bool"] = field(default_factory=dict)  # --slurm KEY=VALUE (KEY= : a bare flag)
    cpus_per_gpu: int = 8

    @staticmethod
    def parse_extra(items: list[str] | None) -> dict[str, "str | bool"]:
        out = {}
        for item in items or ():
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--slurm: expected KEY=VALUE (an sbatch option, e.g. qos=high), got {item!r}")
            out[key.strip().replace("-", "_")] = value.strip() or True  # KEY=: a flag (exclusive=)
        return out


class GridRun:
    """One run of a grid, as a submitit job: trains ``config`` with ``--resume auto``; under a
    multi-GPU allocation (one task per GPU), starts DDP from SLURM's environment first."""

    def __init__(self, config: dict, *, gpus: int = 1) -> None:
        self.config, self.gpus = config, gpus

    def __call__(self) -> dict:
        if self.gpus > 1:
            import submitit

            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        cfg = Config.from_dict(self.config)
        try:
            result = train(cfg, resume="auto")
        except TrainingPreempted as e:
            print(f"staa-snn: {e}", file=sys.stderr, flush=True)
            self._hand_over()
            raise
        return result.history[-1] if result.history else {}

    def checkpoint(self, *args, **kwargs):
        """submitit's hook on requeue: the same run again; ``--resume auto`` finds its checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(GridRun(self.config, gpus=self.gpus))

    @staticmethod
    def _hand_over() -> None:
        """The run is checkpointed: let submitit's handler (back in place now, on its preemption
        signal, USR2 unless ``SUBMITIT_PREEMPT_SIGNAL`` says otherwise) requeue the job and exit.
        Outside submitit there is none, and the exception goes on."""
        for name in ("SIGUSR2", "SIGUSR1"):
            signum = getattr(signal, name, None)
            handler = signal.getsignal(signum) if signum is not None else None
            owner = getattr(handler, "__self__", None)
            if callable(handler) and type(owner).__module__.startswith("submitit"):
                handler(signum, None)
                return


def executor(launcher: str, folder: Path, slurm: SlurmOptions | None = None):
    """The submitit executor of a launcher, its logs in ``folder``."""
    try:
        import submitit
    except ImportError:
        raise ConfigError(f'--launcher {launcher} needs submitit: pip install "staa-snn[cluster]" '
                          f'(in the repository: pip install -e ".[cluster]")') from None
    slurm = slurm or SlurmOptions()
    minutes = parse_time(slurm.time)
    if slurm.gpus_per_run < 1:
        raise ConfigError(f"--gpus-per-run must be >= 1, got {slurm.gpus_per_run}")
    if launcher == "submitit-local":  # --gpus-per-run G: G processes per run, DDP (gloo on the CPU)
        ex = submitit.LocalExecutor(folder=str(folder))
        ex.update_parameters(timeout_min=minutes, signal_delay_s=min(SIGNAL_DELAY_S, max(minutes * 60 // 10, 5)),
                             tasks_per_node=slurm.gpus_per_run)
        return ex
    if launcher != "slurm":
        raise ConfigError(f"--launcher: unknown {launcher!r}; valid: {', '.join(LAUNCHERS)}")
    if not slurm.partition:
        raise ConfigError("--launcher slurm needs --partition (the SLURM partition to run on)")
    try:
        ex = submitit.SlurmExecutor(folder=str(folder))
    except RuntimeError as e:  # no srun on this machine
        raise ConfigError(f"--launcher slurm: {e} Run it on a machine that submits to SLURM (a login node), "
                          f"or use --launcher submitit-local here") from None
    valid = ex._valid_parameters()
    extra = {k: v for k, v in slurm.extra.items() if k in valid}
    additional = {k: v for k, v in slurm.extra.items() if k not in valid}
    params = dict(partition=slurm.partition, time=minutes, nodes=1, gpus_per_node=slurm.gpus_per_run,
                  ntasks_per_node=slurm.gpus_per_run, cpus_per_task=slurm.cpus_per_gpu,
                  signal_delay_s=SIGNAL_DELAY_S, job_name="staa-snn-ablate")
    if slurm.account:
        params["account"] = slurm.account
    params.update(extra)
    if additional:
        params["additional_parameters"] = additional
    ex.update_parameters(**params)
    return ex


def submit(ex, runs: list[tuple[str, Config]], gpus: int = 1) -> dict:
    """Submit each ``(run name, config)`` as one element of a job array; ``{run name: submitit job}``."""
    with ex.batch():
        jobs = [(name, ex.submit(GridRun(cfg.to_dict(), gpus=gpus))) for name, cfg in runs]
    return dict(jobs)


def write_launch(folder: Path, record: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "grid.json", json.dumps(record, indent=1) + "\n")


def read_launch(path: str | Path, grid: str | None = None) -> tuple[Path, dict]:
    """``(grid folder, grid.json)`` from a grid folder, its grid.json, or the ``--out`` folder above
    it (``grid``: which grid, where it holds several)."""
    path = Path(path)
    if path.name == "grid.json" and path.is_file():
        path = path.parent
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (give the --out folder of a launched grid, or its grid's "
                                f"folder)")
    if (path / "grid.json").is_file():
        record = _grid_record(path / "grid.json")
        if grid is not None and record.get("grid") != grid:
            raise ConfigError(f"{path} holds the grid {record.get('grid')!r}, not {grid!r}")
        return path, record
    every = sorted(p.parent for p in path.glob("*/grid.json")) if path.is_dir() else []
    found = [p for p in every if grid is None or p.name == grid]
    if len(found) == 1:
        return found[0], _grid_record(found[0] / "grid.json")
    if every and not found:
        raise ConfigError(f"{path} holds the grid(s) {', '.join(p.name for p in every)}, not {grid!r}")
    if not found:
        raise FileNotFoundError(f"{path}: no grid.json here or in a folder below (written when a grid is launched: "
                                f"staa-snn ablate ... --out {path})")
    names = ", ".join(p.name for p in found)
    raise ConfigError(f"{path} holds several grids ({names}): name one with --grid, or give its folder")


def _grid_record(where: Path) -> dict:
    """A grid.json, read and checked for the fields a launch writes (a damaged one is one line
    naming it, not a failure further down)."""
    try:
        record = json.loads(where.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where} is not JSON ({first_line(e)}); {_REWRITE}") from None
    checks = {"grid": lambda v: isinstance(v, str), "rows": lambda v: isinstance(v, list) and v != []
              and all(isinstance(r, str) for r in v), "seeds": lambda v: isinstance(v, int) and v >= 1,
              "epochs": lambda v: isinstance(v, int) and v >= 1, "base": lambda v: isinstance(v, dict),
              "jobs": lambda v: isinstance(v, dict)}
    if not isinstance(record, dict):
        raise ConfigError(f"{where} is not a grid's record (expected an object with {', '.join(checks)}); "
                          f"{_REWRITE}")
    bad = [k for k, ok in checks.items() if not ok(record.get(k, {} if k == "jobs" else None))]
    if bad:
        raise ConfigError(f"{where}: {', '.join(bad)} missing or not what a launch writes (grid: a name, rows: "
                          f"labels, seeds and epochs: whole numbers >= 1, base: the config, jobs: run -> job); "
                          f"{_REWRITE}")
    return record


_REWRITE = ("a launch writes it: delete it and launch the grid again with its command (finished runs are read "
            "back, not trained again)")


def check_same_config(asked: Config, used: Config, what: str) -> None:
    """Refuse (``ConfigError``, naming up to 4 keys) a config that computes differently from the
    one ``used`` before: ``what`` starts the message (\"<grid> in this folder was launched with\")."""
    differ = config_differences(asked, used)
    if differ:
        shown = ", ".join(f"{k}={v[1]!r}" for k, v in list(differ.items())[:4]) + (", ..." if len(differ) > 4 else "")
        asked_for = ", ".join(f"{k}={v[0]!r}" for k, v in list(differ.items())[:4])
        raise ConfigError(f"{what} {shown}, not {asked_for}: every run of a grid is trained alike (rows and seeds "
                          f"aside); give the same config and overrides, or another --out")


def merge_launch(old: dict, new: dict) -> dict:
    """The record of a grid launched in parts: the rows of every part (in the grid's order, by the
    caller), the most seeds asked for, the jobs of all; the epochs and the base config (but how
    the runs are carried out: the data's path, threads, checkpoints, ...) must agree, so that
    every row of one table was trained alike."""
    if old and old.get("epochs") != new["epochs"]:
        raise ConfigError(f"{new['grid']} in this folder was launched with {old.get('epochs')} epochs a run, not "
                          f"{new['epochs']}: use that, or another --out")
    if old.get("base") and new.get("base"):
        check_same_config(Config.from_dict(new["base"]), Config.from_dict(old["base"]),
                          f"{new['grid']} in this folder was launched with")
    merged = dict(new)
    merged["rows"] = list(dict.fromkeys([*old.get("rows", []), *new["rows"]]))
    merged["seeds"] = max(old.get("seeds", 0), new["seeds"])
    merged["jobs"] = {**old.get("jobs", {}), **new.get("jobs", {})}
    return merged


def _job_outcome(submitit_dir: Path, job_id: str | None) -> tuple[str | None, str]:
    """``(outcome, log tail)`` from submitit's files: ``"success"``, ``"error"`` or ``None`` (none yet)."""
    if not job_id:
        return None, ""
    result = submitit_dir / f"{job_id}_0_result.pkl"
    err = submitit_dir / f"{job_id}_0_log.err"
    tail = ""
    if err.is_file():
        lines = [x for x in err.read_text(errors="replace").splitlines() if x.strip()]
        tail = "\n".join(lines[-12:])
    if not result.is_file():
        return None, tail
    try:
        with open(result, "rb") as f:
            outcome, payload = pickle.load(f)
    except Exception:  # noqa: BLE001 -- a result being written, or of another version: not decided
        return None, tail
    if outcome == "error" and not tail:
        tail = "\n".join(str(payload).strip().splitlines()[-12:])
    return outcome, tail


def read_run(run: Path) -> tuple[int, list[dict], dict] | None:
    """``(epochs trained, history, config tree)`` of a run folder, from its ``last.pt``; or, where
    its checkpoints were deleted (to save disk once a sweep has finished), from the
    ``metrics.jsonl`` and ``config.yaml`` it wrote beside them, which hold the same history and
    config: checked record by record, so that a damaged file is one line naming it and its line,
    never a wrong table. ``None`` for a folder with neither."""
    last = run / "last.pt"
    if last.is_file():
        ckpt = load_checkpoint(last)
        return ckpt["epoch"], ckpt["history"], ckpt["config"]
    metrics, config = run / "metrics.jsonl", run / "config.yaml"
    if not metrics.is_file():
        return None
    if not config.is_file():
        raise ConfigError(f"{run} has a metrics.jsonl but neither last.pt nor config.yaml, which reading the run "
                          f"back needs: restore its config.yaml, or delete the folder to train the run again")
    try:
        tree = yaml.safe_load(config.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{config} is not YAML ({first_line(e)})") from None
    if not isinstance(tree, dict) or not isinstance(tree.get("model"), dict):
        raise ConfigError(f"{config} is not a run's config (expected the YAML staa-snn train writes)")
    history = []
    for i, line in enumerate(metrics.read_text(errors="replace").splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError as e:
            raise ConfigError(f"{metrics}: line {i} is not JSON ({first_line(e)})") from None
        problem = _record_problem(record, len(history) + 1, tree["model"].get("T"))
        if problem:
            raise ConfigError(f"{metrics}: line {i}: {problem} (not the history staa-snn train writes)")
        history.append(record)
    return len(history), history, tree


def _record_problem(record, epoch: int, T) -> str | None:
    """What is wrong with one epoch's record of ``metrics.jsonl`` (``None``: nothing)."""
    def fraction(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1  # NaN fails too

    if not isinstance(record, dict):
        return "not an epoch's record (a JSON object)"
    if record.get("epoch") != epoch:
        return f"epoch {record.get('epoch')!r} where {epoch} was expected (epochs 1, 2, ... in order)"
    if not fraction(record.get("test_acc")):
        return f"test_acc {record.get('test_acc')!r} is not an accuracy in [0, 1]"
    steps = record.get("test_acc_per_step")
    if steps is not None and not (isinstance(steps, list) and (not isinstance(T, int) or len(steps) == T)
                                  and all(map(fraction, steps))):
        return f"test_acc_per_step {steps!r} is not {T} accuracies in [0, 1] (one after each step)"
    time = record.get("epoch_time_s")
    if time is not None and not (isinstance(time, (int, float)) and math.isfinite(time) and time >= 0):
        return f"epoch_time_s {time!r} is not a time in seconds"
    return None


def shell_line(argv: list[str]) -> str:
    """``argv`` as one shell line, the program by its name (``staa-snn``), not by this machine's
    path to it."""
    return shlex.join([Path(argv[0]).name, *argv[1:]])


def run_provenance(run: Path) -> dict:
    """The command line that trained a run and the commit of its code, as its ``meta.json``
    recorded them (``{"command": "staa-snn ...", "git_commit": ...}``): a grid's ``grid.json``
    keeps only its last launch's command, which for a grid launched a row or a seed at a time is
    not the one that trained every run. ``{}`` where the run has no readable ``meta.json``."""
    try:
        meta = json.loads((run / "meta.json").read_text())
    except (OSError, ValueError):
        return {}
    argv = meta.get("command") if isinstance(meta, dict) else None
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        return {}
    commit = meta.get("git_commit")
    return {"command": shell_line(argv), "git_commit": commit if isinstance(commit, str) else None}


def run_states(folder: Path, record: dict, runs: list[tuple[str, int]]) -> dict[str, dict]:
    """Per run name: ``state`` (``done``, ``failed``, ``pending``, ``running``, ``interrupted``:
    checkpointed but not running, resumed by the same command, ``queued``: not started, while a
    local ``staa-snn ablate`` trains this grid's runs one after another (``by``: its pid), or
    ``missing``), the epochs done, and a failed run's log tail, the epochs asked and its median
    epoch's seconds (``epoch_s``, ``None`` before its first epoch). ``runs``: ``(run name, epochs
    asked)``. A run is ``running`` while its folder's lock is held (a local run too:
    :meth:`RunFolder.holder`)."""
    jobs = record.get("jobs", {})
    states, ablating = {}, None
    for name, epochs in runs:
        last = folder / name / "last.pt"
        run = read_run(folder / name)
        done_epochs = run[0] if run else 0
        outcome, tail = _job_outcome(folder / ".submitit", jobs.get(name))
        holder = RunFolder(folder / name).holder()
        if done_epochs >= epochs:
            state = "done"
        elif outcome == "error" or (outcome == "success" and done_epochs < epochs):
            state = "failed"
        elif holder is not None:
            state = "running"
            if name not in jobs and " ablate " in f" {holder.get('command', '')} ":
                ablating = holder.get("pid")
        elif name in jobs:
            state = "running" if last.is_file() or (folder / name).is_dir() else "pending"
        else:
            state = "interrupted" if last.is_file() else "missing"  # no checkpoint: the run starts again
        states[name] = {"state": state, "epochs": done_epochs, "epochs_asked": epochs, "job": jobs.get(name),
                        "epoch_s": run_time(run[1]).median_epoch_s if run else None,
                        "log_tail": tail if state == "failed" else ""}
    for s in states.values():  # its turn comes (not: missing, to be launched again)
        if s["state"] == "missing" and ablating is not None:
            s.update(state="queued", by=ablating)
    return states


