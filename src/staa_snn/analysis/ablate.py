"""The paper's ablations (Sec. 4.3) as resumable sweeps of training runs.

Each grid is a list of rows, each row a set of config overrides; every row is
trained once per seed with :func:`staa_snn.training.train`, in its own run
folder. A run that finished is read back, not repeated; one that was
interrupted resumes from its ``last.pt``. The summary (mean +- sample std over
seeds of the final-epoch accuracy on the evaluation split, after all steps
and after the first step alone, the difference to the grid's baseline row
and the time per run, with Welch's t-test of each row against the baseline) is
written as markdown and JSON (with every run's accuracy after each epoch), with
a bar plot and the rows' accuracy-vs-epoch curves side by side.
"""

from __future__ import annotations

import json
import math
import shlex
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from .._io import write_text_atomic
from ..training import (Config, apply_override, checkpoint_config, format_duration, run_time, train,
                        was_paused)
from ..training.config import split_name
from . import launch
from .figures import save, subplots


@dataclass(frozen=True)
class Row:
    label: str
    overrides: tuple[str, ...]
    value: float | str | None = None  # x position of the sweep plot
    series: str | None = None  # the plot's line, for a sweep of more than one


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
    launch.check_same_config(cfg, checkpoint_config({"config": tree}, require_root=False), f"{run} was trained with")
    return history


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
            results[row.label].append(_last_record(history))
        return _write_summary(folder, grid, selected, results, base, seeds=seeds, epochs=epochs, command=command)
    names = [(cfg.run_name, epochs) for _, _, cfg in configs]
    states = launch.run_states(folder, record, names)
    todo = [(cfg.run_name, cfg) for _, _, cfg in configs if states[cfg.run_name]["state"] in ("failed", "interrupted", "missing")]
    ex = launch.executor(launcher, folder / ".submitit", slurm)
    gpus = slurm.gpus_per_run if slurm else 1
    jobs = launch.submit(ex, todo, gpus=gpus) if todo else {}
    record["jobs"].update({name: job.job_id for name, job in jobs.items()})
    launch.write_launch(folder, record)
    waiting = sum(1 for n, _ in names if states[n]["state"] in ("pending", "running"))
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
    base = Config.from_dict(record["base"])
    _, configs = plan(base, record["grid"], seeds=record["seeds"], epochs=record["epochs"],
                      out=folder.parent, rows=record["rows"], progress=False)
    states = launch.run_states(folder, record, [(cfg.run_name, record["epochs"]) for _, _, cfg in configs])
    return folder, record, base, configs, states


def status(path: str | Path, grid: str | None = None) -> dict[str, dict]:
    """The state of each run of a launched grid (see :func:`gather`); nothing is written."""
    return _read_back(path, grid)[4]


def gather(path: str | Path, grid: str | None = None) -> tuple[dict | None, dict[str, dict]]:
    """Read a launched grid back (``path``: its folder, or the ``--out`` above it): ``(summary or
    None, run states)``. The summary covers the rows with at least one finished run and is
    written as results.md / .json / .png; the states name the runs pending, running, failed
    (with their log's tail), interrupted (resumed by the same command) or missing."""
    folder, record, base, configs, states = _read_back(path, grid)
    results: dict[str, list[dict]] = {}
    for row, _, cfg in configs:
        history = _finished(folder / cfg.run_name, cfg)
        if history is not None:
            results.setdefault(row.label, []).append(_last_record(history))
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
        lines.append(f"{name}: {s['state']} (epoch {s['epochs']}{job})")
        if s["state"] == "failed" and s.get("log_tail"):
            lines += ["    " + x for x in s["log_tail"].splitlines()]
    done = sum(1 for s in states.values() if s["state"] == "done")
    return "\n".join([f"{done}/{len(states)} runs finished", *lines])


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def welch(a: list[float], b: list[float]) -> dict | None:
    """Welch's two-sample t-test of ``mean(a) - mean(b)`` (unequal variances): ``{"t", "df", "p"}``
    (``p`` two-sided), or ``None`` when either side has fewer than 2 values or both have no spread."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return None
    from scipy.stats import t as student_t

    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return {"t": t, "df": df, "p": float(2 * student_t.sf(abs(t), df))}


def _step1(runs: list[dict]) -> list[float] | None:
    """Each run's accuracy after its first step, or ``None`` unless every run recorded it."""
    first = [r["test_acc_per_step"][0] for r in runs if r.get("test_acc_per_step")]
    return first if first and len(first) == len(runs) else None


def mean_curve(curves: list[list[float] | None] | None) -> list[float] | None:
    """The mean over seeds of the accuracy after each epoch, over the epochs every seed has;
    ``None`` without a curve."""
    curves = [c for c in curves or [] if c]
    if not curves:
        return None
    return [statistics.fmean(c[e] for c in curves) for e in range(min(len(c) for c in curves))]


def epochs_above(curve: list[float] | None, base: list[float] | None) -> list[int] | None:
    """The epochs (from 1) after which ``curve`` is above ``base``: where two rows' mean curves
    cross shows as where this list starts or stops; ``None`` without both curves."""
    if not curve or not base:
        return None
    return [e for e, (a, b) in enumerate(zip(curve, base), start=1) if a > b]


def _row_summary(row: Row, runs: list[dict], base: list[dict] | None) -> dict:
    """One row of the table; ``base``: the baseline row's runs (``None`` for the baseline itself)."""
    accs, first = [r["test_acc"] for r in runs], _step1(runs)
    base_accs, base_first = ([r["test_acc"] for r in base], _step1(base)) if base else (None, None)
    mean, std = _mean_std(accs)
    mean1, std1 = _mean_std(first) if first else (None, None)
    times = [r["run_time_s"] for r in runs if r.get("run_time_s")]
    usual = [r["usual_run_time_s"] for r in runs if r.get("usual_run_time_s")]
    return {"row": row.label, "overrides": list(row.overrides), "value": row.value, "series": row.series,
            "accs": accs, "mean": mean, "std": std,
            "delta": mean - statistics.fmean(base_accs) if base_accs else None,
            "welch": welch(accs, base_accs) if base_accs else None,
            "accs_step1": first, "mean_step1": mean1, "std_step1": std1,
            "delta_step1": mean1 - statistics.fmean(base_first) if first and base_first else None,
            "welch_step1": welch(first, base_first) if first and base_first else None,
            "run_time_s": times, "mean_run_time_s": statistics.fmean(times) if times else None,
            "usual_run_time_s": usual, "mean_usual_run_time_s": statistics.fmean(usual) if usual else None,
            "epoch_times_s": [r.get("epoch_times_s") for r in runs],
            "curves": [r.get("curve") for r in runs], "curves_step1": [r.get("curve_step1") for r in runs],
            "epochs_above_baseline": epochs_above(mean_curve([r.get("curve") for r in runs]),
                                                  mean_curve([r.get("curve") for r in base])) if base else None,
            "epochs_above_baseline_step1": epochs_above(
                mean_curve([r.get("curve_step1") for r in runs]),
                mean_curve([r.get("curve_step1") for r in base])) if base else None}


def summarise(grid, rows, baseline, results, base: Config, *, seeds, epochs, command) -> dict:
    """``results``: per row label, the last history record of each seed's run (with ``run_time_s``,
    and ``curve`` / ``curve_step1``: its accuracy after every epoch). Each row's difference to the
    baseline row comes with Welch's t-test over the seeds (``welch``: t, df, two-sided p)."""
    table = []
    for row in rows:
        base_runs = results.get(baseline) if row.label != baseline else None
        table.append(_row_summary(row, results[row.label], base_runs))
    return {"grid": grid, "baseline": baseline, "seeds": seeds, "epochs": epochs, "command": command,
            "dataset": base.data.name, "model": base.model.name, "T": base.model.T,
            "neuron_preset": base.model.neuron_options.get("neuron_preset", "spec"), "rows": table,
            "accuracy": split_name(base)[0], "metric": f"{split_name(base)[1]} after the last epoch"}


def _cell(values, mean, std) -> str:
    """``mean ± std`` in percent; the mean alone for one value, a dash for none."""
    if not values:
        return "—"
    return f"{mean * 100:.2f}" + (f" ± {std * 100:.2f}" if len(values) > 1 else "")


def to_markdown(s: dict) -> str:
    preset = s.get("neuron_preset", "spec")
    reading = "" if preset == "spec" else f", neuron_preset={preset}"
    seeds = _seeds(s["seeds"])
    lines = [f"# Ablation `{s['grid']}`: {s['dataset']}, {s['model']}, T = {s['T']}{reading}", "",
             f"{s['metric'][0].upper()}{s['metric'][1:]}, mean ± sample std over {seeds} a row, "
             f"{s['epochs']} epoch{'s' if s['epochs'] != 1 else ''}; difference to the baseline row "
             f"`{s['baseline']}`, with Welch's t-test over "
             f"the seeds (t, two-sided p; p above 0.05: not told apart from the seeds' "
             f"noise); after 1 step: the same nets read out after their first time step only; time per run: "
             f"the sum of its epochs' times, mean over the row's seeds, and, where that is over 10% longer, "
             f"the median epoch times the epochs beside it (runs paused or sharing their cores). The rows' "
             f"accuracy after every epoch: `{s['grid']}_curves.png`.", ""]
    short = [f"{r['row']} ({len(r['accs'])} of {s['seeds']})" for r in s["rows"] if len(r["accs"]) < s["seeds"]]
    if short:
        lines += [f"**Not every seed has finished:** {', '.join(short)}; their means are over the seeds that have, "
                  f"so a difference between rows of other seeds is partly a difference between seeds.", ""]
    if s.get("command"):
        lines += ["Command:", "", "```bash", s["command"], "```", ""]
    lines += ["| row | seeds | accuracy (%) | Δ vs baseline (pp) | Welch t, p | after 1 step (%) "
              "| Δ after 1 step (pp) | Welch t, p (1 step) | per seed (%) | time per run |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        per = ", ".join(f"{a * 100:.2f}" for a in r["accs"])
        step1 = _cell(r.get("accs_step1"), r.get("mean_step1"), r.get("std_step1"))
        minutes = _minutes(r)
        acc = _cell(r["accs"], r["mean"], r["std"])
        lines.append(f"| {r['row']} | {len(r['accs'])} | {acc} | {_pp(r.get('delta'))} | {_welch_cell(r.get('welch'))} "
                     f"| {step1} | {_pp(r.get('delta_step1'))} | {_welch_cell(r.get('welch_step1'))} | {per} "
                     f"| {minutes} |")
    crossing = [r for r in s["rows"] if r.get("epochs_above_baseline") is not None]
    if crossing:
        lines += ["", f"Epoch by epoch, the mean over seeds against the baseline's (`{s['grid']}_curves.png`):", ""]
        for r in crossing:
            step1 = r.get("epochs_above_baseline_step1")
            lines.append(f"- {r['row']}: above the baseline after epochs {_epochs(r['epochs_above_baseline'])}"
                         + (f"; after 1 step, after epochs {_epochs(step1)}" if step1 is not None else "")
                         + f" (of {len(mean_curve(r['curves']))})")
    return "\n".join(lines) + "\n"


def _epochs(epochs: list[int]) -> str:
    """``[1, 2, 3, 5, 7, 8]`` as ``"1-3, 5, 7-8"``; ``"none"`` for none."""
    if not epochs:
        return "none"
    runs, start = [], epochs[0]
    for prev, e in zip(epochs, [*epochs[1:], None]):
        if e != prev + 1:
            runs.append(f"{start}-{prev}" if prev > start else f"{start}")
            start = e
    return ", ".join(runs)


def _minutes(r: dict) -> str:
    """A row's time per run: the sum of the epochs' times, mean over seeds, and beside it, when
    that is over 10% longer than the median epoch times the epochs (runs paused or sharing their
    cores), the latter: the runs' time at their usual pace."""
    total, usual = r.get("mean_run_time_s"), r.get("mean_usual_run_time_s")
    if not total:
        return "—"
    return format_duration(total) + (f" ({format_duration(usual)} at the median epoch)" if was_paused(total, usual) else "")


def _pp(delta: float | None) -> str:
    return "—" if delta is None else f"{delta * 100:+.2f}"


def _welch_cell(w: dict | None) -> str:
    return "—" if not w else f"{w['t']:+.2f}, {w['p']:.2g}"


def plot(s: dict, path: Path) -> None:
    rows = s["rows"]
    means = [r["mean"] * 100 for r in rows]
    stds = [r["std"] * 100 for r in rows]
    fig, ax = subplots(figsize=(max(4.0, 1.1 * len(rows)), 3.2))
    numeric = all(isinstance(r["value"], (int, float)) for r in rows)
    if numeric:
        series = list(dict.fromkeys(r.get("series") for r in rows))
        for name in series:
            idx = [i for i, r in enumerate(rows) if r.get("series") == name]
            ax.errorbar([rows[i]["value"] for i in idx], [means[i] for i in idx], yerr=[stds[i] for i in idx],
                        marker="o", capsize=3, label=name)
        if len(series) > 1:
            ax.legend()
        ax.set_xlabel(s["grid"])
    else:  # points, not bars: the axis is cut to the data, and a bar's length would mislead
        for i, r in enumerate(rows):
            ax.plot([i] * len(r["accs"]), [a * 100 for a in r["accs"]], "o", color="0.6", markersize=3,
                    label="a seed" if i == 0 else None)
        ax.errorbar(range(len(rows)), means, yerr=stds, fmt="s", color="#4c72b0", capsize=4,
                    label="mean ± std")
        ax.set_xticks(range(len(rows)), [r["row"] for r in rows], rotation=20, ha="right")
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.legend(fontsize=7)
    ax.set_ylabel(f"{s.get('accuracy', 'test accuracy')} (%)")
    ax.set_title(f"{s['grid']}: {s['dataset']}, {s['model']}, T={s['T']}{_reading(s)} ({_seeds(s['seeds'])})",
                 fontsize=10)
    fig.tight_layout()
    save(fig, path, dpi=120)


def _reading(s: dict) -> str:
    """``", mpbn reading"`` for a grid of another neuron preset than the spec's; ``""`` otherwise."""
    preset = s.get("neuron_preset", "spec")
    return "" if preset == "spec" else f", {preset} reading"


def _seeds(n: int) -> str:
    return f"{n} seed" + ("s" if n != 1 else "")


def plot_curves(s: dict, path: Path) -> None:
    """Each row's accuracy after every epoch, side by side: the mean over seeds, and the band from
    the lowest to the highest seed; after all steps (left) and after the first step (right)."""
    fig, axes = subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, title in ((axes[0], "curves", "after all steps"), (axes[1], "curves_step1", "after the first step")):
        for i, r in enumerate(s["rows"]):
            curves, mean = [c for c in r.get(key) or [] if c], mean_curve(r.get(key))
            if not curves:
                continue
            n = len(mean)
            per_epoch = [[c[e] * 100 for c in curves] for e in range(n)]
            epochs, mean = list(range(1, n + 1)), [m * 100 for m in mean]
            ax.plot(epochs, mean, color=f"C{i % 10}", label=f"{r['row']} ({_seeds(len(curves))})",
                    **({"marker": "o", "markersize": 4} if n < 3 else {}))
            if len(curves) > 1:
                ax.fill_between(epochs, [min(v) for v in per_epoch], [max(v) for v in per_epoch],
                                color=f"C{i % 10}", alpha=0.2, linewidth=0)
        ax.set_title(f"{s.get('accuracy', 'test accuracy')}, {title}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("accuracy (%)")
    fig.suptitle(f"{s['grid']}: {s['dataset']}, {s['model']}, T={s['T']}{_reading(s)}, {s['epochs']} epochs a run; "
                 f"line: mean over seeds, band: lowest to highest seed", fontsize=10)
    fig.tight_layout()
    save(fig, path, dpi=120)


def command_line(argv: list[str]) -> str:
    return "staa-snn " + " ".join(shlex.quote(a) for a in argv)
