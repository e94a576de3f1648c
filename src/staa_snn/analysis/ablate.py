"""The paper's ablations (Sec. 4.3) as resumable sweeps of training runs.

Each grid is a list of rows, each row a set of config overrides; every row is
trained once per seed with :func:`staa_snn.training.train`, in its own run
folder. A run that finished is read back, not repeated; one that was
interrupted resumes from its ``last.pt`` (a finished one whose checkpoints were
deleted, from its metrics: :func:`.launch.read_run`). The summary
(:mod:`.ablate_table`: mean +- sample std over seeds of the final-epoch accuracy
on the evaluation split, after all steps and after the first step alone, the
difference to the grid's baseline row and the time per run, with Welch's
t-test of each row against the baseline) is written as markdown and JSON (with
every run's accuracy after each epoch), with a plot of the seeds and the rows'
accuracy-vs-epoch curves side by side.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from .._io import first_line, write_text_atomic
from ..training import Config, ConfigError, apply_override, checkpoint_config, format_duration, run_time, train
from . import launch
from .ablate_table import Row, plot, plot_curves, summarise, to_markdown

OFF = ("model.neuron=staa", "model.gc=false", "model.pe=none", "model.sa=false", "model.tsrd_p=0")

GRIDS: dict[str, tuple[str, list[Row]]] = {
    # Table 4: the baseline is STAA-LIF with every block off (= the adaptive LIF); plain LIF for reference.
    "table4": ("baseline", [
        Row("LIF", ("model.neuron=lif",)),
        Row("baseline", OFF),
        Row("+GC", (*OFF, "model.gc=true")),
        Row("+GC+PE", (*OFF, "model.gc=true", "model.pe=learnable")),
        Row("+GC+PE+TSRD", (*OFF, "model.gc=true", "model.pe=learnable", "model.tsrd_p=0.1")),
        Row("+GC+PE+SA", (*OFF, "model.gc=true", "model.pe=learnable", "model.sa=true")),
        Row("+GC+PE+SA+TSRD", ("model.neuron=staa", "model.gc=true", "model.pe=learnable", "model.sa=true",
                               "model.tsrd_p=0.1")),
    ]),
    # TSRD p, swept to 1 as in the paper (at p = 1 every training step is basic).
    "tsrd_p": ("p=0.1", [Row(f"p={p:g}", ("model.neuron=staa", f"model.tsrd_p={p}"), p)
                         for p in (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)]),
    "gc_ratio": ("r=4", [Row(f"r={r}", ("model.neuron=staa", f"model.gc_ratio={r}"), r) for r in (2, 4, 8, 16)]),
    "pe_position": ("input", [Row(p, ("model.neuron=staa", f"model.pe_position={p}"), p)
                              for p in ("input", "post_gc", "membrane", "both")]),
    "pe_kind": ("learnable", [Row(k, ("model.neuron=staa", f"model.pe={k}"), k) for k in ("learnable", "fixed")]),
    # Accuracy against the number of time steps, LIF and STAA-LIF.
    "T": ("STAA T=2", [Row(f"{name} T={t}", (f"model.neuron={neuron}", f"model.T={t}"), t, name)
                       for name, neuron in (("LIF", "lif"), ("STAA", "staa")) for t in (1, 2, 4)]),
    # The blocks' optimiser group: their LR (and weight decay) against the rest of the net's.
    "block_lr": ("x1", [Row(f"x{k:g}", ("model.neuron=staa", f"optim.block_lr_scale={k}"), k)
                        for k in (1.0, 0.3, 0.1)]),
}


def grid_rows(grid: str) -> tuple[str, list[Row]]:
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; valid grids: {', '.join(GRIDS)}")
    return GRIDS[grid]


def _slug(label: str) -> str:
    """Run-folder name of a row: ``+GC+PE`` -> ``gc_pe``, ``p=0.1`` -> ``p0.1``."""
    text = label.lower().strip("+").replace("+", "_").replace("=", "")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def select_rows(grid: str, labels: list[str] | None) -> list[Row]:
    """The grid's rows, or those of ``labels`` in the grid's order (a grid may be run in parts)."""
    rows = grid_rows(grid)[1]
    if not labels:
        return rows
    known = [r.label for r in rows]
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise ValueError(f"grid {grid} has no row {', '.join(map(repr, unknown))}; its rows: {', '.join(known)}")
    return [r for r in rows if r.label in labels]


def plan(base: Config, grid: str, *, seeds: int, epochs: int, out: str | Path, rows: list[str] | None = None,
         progress: bool = True) -> tuple[Path, list[tuple[Row, int, Config]]]:
    """``(grid folder, [(row, seed, config)])``: every run's config, checked before any starts."""
    if seeds < 1 or epochs < 1:
        raise ValueError(f"seeds and epochs must be >= 1, got {seeds}, {epochs}")
    folder = Path(out) / grid
    configs = []
    for row in select_rows(grid, rows):
        for seed in range(seeds):
            cfg = Config.from_dict(base.to_dict())
            for text in (*row.overrides, f"train.seed={seed}", f"train.epochs={epochs}",
                         f"output.dir={folder}", f"output.name={_slug(row.label)}_seed{seed}",
                         f"train.progress={str(progress).lower()}"):
                apply_override(cfg, text)
            configs.append((row, seed, cfg.validate()))
    return folder, configs


def _finished(run: Path, cfg: Config) -> list[dict] | None:
    """The history of a run folder that has trained ``cfg``'s epochs (``None`` otherwise), from its
    checkpoint or, where that was deleted, its metrics (:func:`launch.read_run`); a run trained
    with another config than ``cfg`` (but how it was carried out) is refused, naming it."""
    record = launch.read_run(run)
    if record is None or record[0] < cfg.train.epochs:
        return None
    _, history, tree = record
    try:
        trained = checkpoint_config({"config": tree}, require_root=False)
    except ValueError as e:  # a key this version does not know, or a value it refuses
        source = "last.pt" if (run / "last.pt").is_file() else "config.yaml"
        raise ConfigError(f"{run / source}: its config is not one this version reads ({first_line(e)})") from None
    launch.check_same_config(cfg, trained, f"{run} was trained with")
    return history


def _run_record(run: Path, history: list[dict]) -> dict:
    """A finished run's row in the table: its last record (:func:`_last_record`) with the command
    and commit that trained it (:func:`launch.run_provenance`)."""
    return _last_record(history) | launch.run_provenance(run)


def _last_record(history: list[dict]) -> dict:
    """The run's last epoch record, with its whole time (and each epoch's: a run paused or sharing
    its cores shows as a few long epochs) and its accuracy curve over the epochs (after all
    steps, and after the first step where the run recorded it)."""
    step1 = [h["test_acc_per_step"][0] for h in history if h.get("test_acc_per_step")]
    time = run_time(history)
    return history[-1] | {"run_time_s": time.total_s, "usual_run_time_s": time.usual_s,
                          "epoch_times_s": [h.get("epoch_time_s") for h in history],
                          "curve": [h["test_acc"] for h in history],
                          "curve_step1": step1 if len(step1) == len(history) else None}


def run_grid(base: Config, grid: str, *, seeds: int, epochs: int, out: str | Path,
             command: str | None = None, progress: bool = True, rows: list[str] | None = None,
             launcher: str = "local", slurm: "launch.SlurmOptions | None" = None) -> dict | None:
    """Train every row x seed (skipping finished runs), then summarise. ``rows``: a subset of the
    grid's row labels (default all).

    ``launcher``: ``"local"`` trains here, one run after another; ``"submitit-local"`` submits the
    unfinished runs as submitit jobs on this machine and waits for them; ``"slurm"`` submits them
    as one job array and returns ``None`` at once (``gather`` reads them back later). A run whose
    job is still queued or running is not submitted again."""
    folder, configs = plan(base, grid, seeds=seeds, epochs=epochs, out=out, rows=rows, progress=progress)
    if launcher not in launch.LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; valid: {', '.join(launch.LAUNCHERS)}")
    selected = select_rows(grid, rows)
    old = launch.read_launch(folder)[1] if (folder / "grid.json").is_file() else {}
    record = launch.merge_launch(old, {"grid": grid, "rows": [r.label for r in selected], "seeds": seeds,
                                       "epochs": epochs, "command": command, "launcher": launcher,
                                       "base": base.to_dict(), "jobs": {}})
    record["rows"] = [r.label for r in grid_rows(grid)[1] if r.label in record["rows"]]  # the grid's order
    if launcher == "local":
        launch.write_launch(folder, record)
        results: dict[str, list[dict]] = {row.label: [] for row in selected}
        for i, (row, seed, cfg) in enumerate(configs, 1):
            last = folder / cfg.run_name / "last.pt"
            history = _finished(last.parent, cfg)
            if progress:
                state = "done, reading" if history else ("resuming" if last.exists() else "training")
                print(f"[{i}/{len(configs)}] {grid}: {row.label}, seed {seed} ({state})", file=sys.stderr)
            if history is None:
                history = train(cfg, resume=last if last.exists() else None).history
            results[row.label].append(_run_record(last.parent, history))
        return _write_summary(folder, grid, selected, results, base, seeds=seeds, epochs=epochs, command=command)
    names = [(cfg.run_name, epochs) for _, _, cfg in configs]
    states = launch.run_states(folder, record, names)
    todo = [(cfg.run_name, cfg) for _, _, cfg in configs if states[cfg.run_name]["state"] in ("failed", "interrupted", "missing")]
    ex = launch.executor(launcher, folder / ".submitit", slurm)
    gpus = slurm.gpus_per_run if slurm else 1
    jobs = launch.submit(ex, todo, gpus=gpus) if todo else {}
    record["jobs"].update({name: job.job_id for name, job in jobs.items()})
    launch.write_launch(folder, record)
    waiting = sum(1 for n, _ in names if states[n]["state"] in ("pending", "running", "queued"))
    print(f"{grid}: {len(todo)} run(s) submitted ({launcher}), {waiting} still queued or running from before, "
          f"{sum(1 for n, _ in names if states[n]['state'] == 'done')} finished", file=sys.stderr)
    if launcher == "slurm":
        if todo:
            print(f"job(s) {', '.join(sorted({record['jobs'][n].split('_')[0] for n, _ in todo}))}; follow with "
                  f"staa-snn ablate --status {folder}, summarise with staa-snn ablate --gather {folder}",
                  file=sys.stderr)
        return None
    for job in jobs.values():  # submitit-local: wait here; a failure is reported by gather, by name
        try:
            job.results()  # every task's (a run with --gpus-per-run G has G)
        except Exception:  # noqa: BLE001 -- its log and state are read back below
            pass
    summary, states = gather(folder)
    if any(s["state"] != "done" for s in states.values()):
        print(describe_states(states), file=sys.stderr)
    return summary


def _read_back(path: str | Path, grid: str | None):
    folder, record = launch.read_launch(path, grid)
    try:  # a grid, a row or a config key that this version does not know: grid.json's, by name
        base = Config.from_dict(record["base"])
        _, configs = plan(base, record["grid"], seeds=record["seeds"], epochs=record["epochs"],
                          out=folder.parent, rows=record["rows"], progress=False)
    except ValueError as e:
        raise ConfigError(f"{folder / 'grid.json'}: {first_line(e)}") from None
    states = launch.run_states(folder, record, [(cfg.run_name, record["epochs"]) for _, _, cfg in configs])
    return folder, record, base, configs, states


def status(path: str | Path, grid: str | None = None) -> dict[str, dict]:
    """The state of each run of a launched grid (see :func:`gather`); nothing is written. A finished
    run trained with another config than the grid's is refused as :func:`gather` refuses it (not
    called done)."""
    folder, _, _, configs, states = _read_back(path, grid)
    for _, _, cfg in configs:
        if states[cfg.run_name]["state"] == "done":
            _finished(folder / cfg.run_name, cfg)
    return states


def gather(path: str | Path, grid: str | None = None) -> tuple[dict | None, dict[str, dict]]:
    """Read a launched grid back (``path``: its folder, or the ``--out`` above it): ``(summary or
    None, run states)``. The summary covers the rows with at least one finished run and is
    written as results.md / .json / .png; the states name the runs pending, running, failed
    (with their log's tail), interrupted (resumed by the same command), queued (a local ablate
    trains them in turn) or missing."""
    folder, record, base, configs, states = _read_back(path, grid)
    results: dict[str, list[dict]] = {}
    for row, _, cfg in configs:
        run = folder / cfg.run_name
        history = _finished(run, cfg)
        if history is not None:
            results.setdefault(row.label, []).append(_run_record(run, history))
    rows = [r for r in select_rows(record["grid"], record["rows"]) if r.label in results]
    summary = None
    if rows:
        summary = _write_summary(folder, record["grid"], rows, results, base, seeds=record["seeds"],
                                 epochs=record["epochs"], command=record.get("command"))
    return summary, states


def _write_summary(folder: Path, grid: str, rows: list[Row], results: dict, base: Config, *, seeds, epochs,
                   command) -> dict:
    summary = summarise(grid, rows, grid_rows(grid)[0], results, base, seeds=seeds, epochs=epochs, command=command)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "results.json", json.dumps(summary, indent=1) + "\n")
    write_text_atomic(folder / "results.md", to_markdown(summary))
    plot(summary, folder / f"{grid}.png")
    plot_curves(summary, folder / f"{grid}_curves.png")
    return summary


def describe_states(states: dict[str, dict], *, every: bool = False) -> str:
    """The runs that are not finished (``every``: all runs), one line each (a failed run's log
    tail below it)."""
    lines = []
    for name, s in states.items():
        if s["state"] == "done" and not every:
            continue
        job = f", job {s['job']}" if s.get("job") else ""
        if s["state"] == "queued":
            job = f"; the local ablate, pid {s['by']}, trains it in its turn"
        left = ""
        if s["state"] != "done" and s.get("epoch_s"):
            todo = s["epochs_asked"] - s["epochs"]
            left = (f"; about {format_duration(s['epoch_s'] * todo)} left: {todo} epoch{'s' * (todo != 1)} at its "
                    f"median {format_duration(s['epoch_s'])}")
        lines.append(f"{name}: {s['state']} (epoch {s['epochs']}/{s['epochs_asked']}{job}{left})")
        if s["state"] == "failed" and s.get("log_tail"):
            lines += ["    " + x for x in s["log_tail"].splitlines()]
    done = sum(1 for s in states.values() if s["state"] == "done")
    return "\n".join([f"{done}/{len(states)} runs finished{_time_left(states)}", *lines])


def _time_left(states: dict[str, dict]) -> str:
    """``"; about 3.5 h of training left ..."``: the epochs still to train, each at its run's
    median epoch, or (a run not started) at the median of the others' ('' before any epoch)."""
    known = [s["epoch_s"] for s in states.values() if s.get("epoch_s")]
    todo = [s for s in states.values() if s["state"] != "done"]
    if not known or not todo:
        return ""
    usual = statistics.median(known)
    left = sum((s.get("epoch_s") or usual) * max(s["epochs_asked"] - s["epochs"], 0) for s in todo)
    return f"; about {format_duration(left)} of training left, the runs one after another"


def command_line(argv: list[str]) -> str:
    """The ``staa-snn`` command line of the CLI's arguments ``argv``."""
    return launch.shell_line(["staa-snn", *argv])
