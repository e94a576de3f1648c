"""The summary of an ablation sweep (:mod:`.ablate`): each row's mean +- sample std over seeds
after all steps and after the first step, its difference to the baseline row with Welch's
t-test, its time per run and where its mean accuracy-vs-epoch curve is above the baseline's;
as a dict (results.json), markdown (results.md) and two figures (the seeds and means; the curves
side by side)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from ..training import Config, format_duration, was_paused
from ..training.config import split_name
from .figures import save, subplots

__all__ = ["Row", "summarise", "to_markdown", "welch", "mean_curve", "epochs_above", "plot", "plot_curves"]


@dataclass(frozen=True)
class Row:
    label: str
    overrides: tuple[str, ...]
    value: float | str | None = None  # x position of the sweep plot
    series: str | None = None  # the plot's line, for a sweep of more than one



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
    runs = [r for row in rows for r in results[row.label]]
    return {"grid": grid, "baseline": baseline, "seeds": seeds, "epochs": epochs, "command": command,
            "run_commands": _distinct(r.get("command") for r in runs),
            "git_commits": _distinct(r.get("git_commit") for r in runs),
            "dataset": base.data.name, "model": base.model.name, "T": base.model.T,
            "neuron_preset": base.model.neuron_options.get("neuron_preset", "spec"), "rows": table,
            "accuracy": split_name(base)[0], "metric": f"{split_name(base)[1]} after the last epoch"}


def _cell(values, mean, std) -> str:
    """``mean ± std`` in percent; the mean alone for one value, a dash for none."""
    if not values:
        return "—"
    return f"{mean * 100:.2f}" + (f" ± {std * 100:.2f}" if len(values) > 1 else "")


def _distinct(values) -> list:
    """The values that are not ``None``, each once, in their first order."""
    return list(dict.fromkeys(v for v in values if v is not None))


def _commands(s: dict) -> list[str]:
    """The commands block: the runs' own commands where they recorded them (a grid launched a row
    or a seed at a time has several), else the grid's."""
    recorded = s.get("run_commands")
    commands = recorded or ([s["command"]] if s.get("command") else [])
    if not commands:
        return []
    title = "Command:"
    if recorded:
        several = len(commands) > 1
        commits = ", ".join(c[:7] for c in s.get("git_commits") or [])
        at = f"; code at commit {commits}" if commits else ""
        title = f"Command{'s' if several else ''} (as the runs recorded {'them' if several else 'it'}{at}):"
    return [title, "", "```bash", *commands, "```", ""]


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
    lines += _commands(s)
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
            lines.append(f"- {r['row']}: {_above(r['epochs_above_baseline'])}"
                         + (f"; after 1 step, {_above(step1)}" if step1 is not None else "")
                         + f" (of {len(mean_curve(r['curves']))} epochs)")
    return "\n".join(lines) + "\n"


def _above(epochs: list[int]) -> str:
    """Where a row's mean curve is above the baseline's, in words."""
    if not epochs:
        return "never above the baseline"
    return f"above the baseline after epoch{'s' if len(epochs) > 1 else ''} {_epochs(epochs)}"


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
