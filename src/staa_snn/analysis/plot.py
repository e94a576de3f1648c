"""Training curves of one or more runs, overlaid: ``staa-snn plot RUN_DIR [RUN_DIR ...]``.

Four panels from each run's ``metrics.jsonl``: loss and accuracy per epoch (train dashed, the
evaluation split solid), the evaluation accuracy when reading out after ``1..T`` steps (the last
epoch), and the mean firing rate of the neuron layers per epoch (on the evaluation split). The
evaluation split is named as the run's ``config.yaml`` says: "validation" for images held out of
the training images (``data.options.val_per_class``), else "test". A LIF baseline beside an STAA
run is the picture this is for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from matplotlib.ticker import MaxNLocator

from ..training.config import eval_split
from .figures import save, subplots

__all__ = ["Curves", "load_history", "plot_exit_curves", "plot_runs"]


def load_history(run: str | Path) -> list[dict]:
    """The epoch records of a run folder (its ``metrics.jsonl``)."""
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        hint = "" if Path(run).is_dir() else " (no such folder)"
        raise FileNotFoundError(f"{path} does not exist{hint}: give run folders written by staa-snn train")
    records = []
    for line, text in enumerate(path.read_text().splitlines(), 1):
        if text.strip():
            try:
                records.append(json.loads(text))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {line} is not JSON ({e.msg})") from None
    if not records:
        raise ValueError(f"{path} holds no epoch yet")
    return records


@dataclass
class Curves:
    """What was drawn: ``series[panel][run] = (x, y)`` for every line, and the file."""

    path: Path
    series: dict[str, dict[str, tuple[list, list]]] = field(default_factory=dict)
    split: str = "test"   # what the solid lines are measured on: "test", "validation" or "held-out" (mixed)


def run_split(run: str | Path) -> str:
    """What a run's "test" numbers are measured on, from its ``config.yaml``'s ``data.options``
    (:func:`staa_snn.training.config.eval_split`); ``"test"`` for a folder without a config."""
    path = Path(run) / "config.yaml"
    if not path.is_file():
        return "test"
    data = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
    return eval_split(data.get("options"))


def _name(run: Path, names: list[str]) -> str:
    return run.name if names.count(run.name) == 1 else f"{run.parent.name}/{run.name}"


def _markers(points: int) -> dict:
    """A marker on each point of a short curve: a line through one point draws nothing."""
    return {"marker": "o", "markersize": 4} if points < 3 else {}


def plot_runs(runs: list[str | Path], out: str | Path) -> Curves:
    """Draw the curves of ``runs`` into ``out`` (a PNG); returns what was drawn."""
    if not runs:
        raise ValueError("plot needs at least one run folder")
    runs = [Path(r) for r in runs]
    histories = {r: load_history(r) for r in runs}
    splits = {r: run_split(r) for r in runs}
    split = next(iter(set(splits.values()))) if len(set(splits.values())) == 1 else "held-out"
    plain = [r.name for r in runs]
    fig, axes = subplots(2, 2, figsize=(11, 7.5))
    curves = Curves(Path(out), {k: {} for k in ("train_loss", "test_loss", "train_acc", "test_acc",
                                                "test_acc_per_step", "firing_rate")}, split)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for run, color in zip(runs, colors, strict=True):
        h, name = histories[run], _name(run, plain)
        epochs = [r["epoch"] for r in h]
        for key, ax, style in (("train_loss", axes[0, 0], "--"), ("test_loss", axes[0, 0], "-"),
                               ("train_acc", axes[0, 1], "--"), ("test_acc", axes[0, 1], "-")):
            values = [r[key] for r in h]
            side = "train" if key.startswith("train") else splits[run]
            ax.plot(epochs, values, style, color=color, label=f"{name} ({side})", **_markers(len(epochs)))
            curves.series[key][name] = (epochs, values)
        per_step = h[-1].get("test_acc_per_step", [])
        steps = list(range(1, len(per_step) + 1))
        axes[1, 0].plot(steps, per_step, "o-", color=color, label=f"{name} (epoch {epochs[-1]})")
        curves.series["test_acc_per_step"][name] = (steps, per_step)
        rated = [(r["epoch"], sum(r["firing_rates"].values()) / len(r["firing_rates"])) for r in h
                 if r.get("firing_rates")]
        if rated:
            x, y = [e for e, _ in rated], [v for _, v in rated]
            axes[1, 1].plot(x, y, "-", color=color, label=name, **_markers(len(x)))
            curves.series["firing_rate"][name] = (x, y)
    titles = ((f"loss (train dashed, {split} solid)", "epoch"), (f"accuracy (train dashed, {split} solid)", "epoch"),
              (f"{split} accuracy read out after t steps", "steps t"),
              (f"mean firing rate of the neuron layers ({split})", "epoch"))
    for ax, (title, xlabel) in zip(axes.flat, titles, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs and steps are whole numbers
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, out)
    return curves


def plot_exit_curves(curves: dict[str, dict], out: str | Path) -> Curves:
    """Accuracy against mean steps and against mean energy per sample, one colour per net:
    reading every sample out after ``t`` steps (dashed, squares) and confidence early exit
    (solid, dots). ``curves``: label -> :func:`staa_snn.inference.exit_curve`'s result."""
    if not curves:
        raise ValueError("plot_exit_curves needs at least one curve")
    fig, axes = subplots(1, 2, figsize=(11, 4.2))
    drawn = Curves(Path(out), {"steps": {}, "energy": {}})
    for i, (label, curve) in enumerate(curves.items()):
        for kind, style in (("fixed", "s--"), ("confidence", "o-")):
            points = curve[kind]
            acc = [100 * p["acc"] for p in points]
            for ax, key, scale in ((axes[0], "mean_steps", 1.0), (axes[1], "mean_energy_mj", 1e3)):
                x = [scale * p[key] for p in points]
                ax.plot(x, acc, style, color=f"C{i % 10}", label=f"{label} ({'t steps' if kind == 'fixed' else 'exit'})")
                drawn.series["steps" if key == "mean_steps" else "energy"][f"{label} {kind}"] = (x, acc)
    for ax, xlabel in zip(axes, ("mean steps per sample", "mean energy per sample (uJ, 45 nm)"), strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title("accuracy against steps: read out after t steps, or exit when confident", fontsize=9)
    axes[1].set_title("accuracy against energy (0.9 pJ AC, 4.6 pJ MAC)", fontsize=9)
    fig.tight_layout()
    save(fig, out)
    return drawn
