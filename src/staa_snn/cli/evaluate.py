"""``staa-snn eval``: a checkpoint or exported weights on the test split of their dataset, with
early exit over steps on request."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

from .._io import check_writable, written_in_place
from ..energy import E_AC_PJ, E_MAC_PJ
from .common import add_device, add_json, add_net, add_overrides, check_json, emit_json, one_line, write_json

NAME = "eval"
HELP = "evaluate a checkpoint or exported weights on the test set"
DESCRIPTION = ("Test loss, accuracy, and accuracy when reading out after 1..T steps, of a checkpoint or of exported "
               "weights (a shipped name, an export folder, hf://owner/name), on the test split of their dataset.")
EPILOG = "e.g. staa-snn eval --weights my-export data.root=/data/cifar10 (a folder with test/<class>/ or val/<class>/)"
EXIT_SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)


def thresholds(text: str) -> list[float]:
    """``--exit-sweep P,P,...``: thresholds in (0, 1]."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected thresholds in (0, 1] separated by commas, got {text!r}")
    return values


def exit_spec(text: str) -> float:
    """``--exit confidence:P``: the threshold P in (0, 1]."""
    kind, _, value = text.partition(":")
    try:
        p = float(value)
    except ValueError:
        p = math.nan
    if kind != "confidence" or not 0 < p <= 1:
        raise argparse.ArgumentTypeError(f"expected confidence:P with one P in (0, 1], e.g. confidence:0.9; got {text!r}")
    return p


def threads_arg(text: str) -> int | str:
    """``--threads auto|N``."""
    if text == "auto":
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected auto or a positive number of threads, got {text!r}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_net(p, checkpoint="a last.pt / best.pt written by staa-snn train",
            weights="exported weights: a shipped name (staa_snn.list_pretrained()), an export folder or "
                    "hf://owner/name")
    add_overrides(p, "config overrides (e.g. data.root=DIR)")
    p.add_argument("--data-root", help="dataset folder, if not the one the checkpoint was trained on")
    add_device(p)
    p.add_argument("--batch-size", type=int, help="test batch size")
    p.add_argument("--threads", default="auto", type=threads_arg, metavar="auto|N",
                   help="torch's CPU threads: auto (default: the CPUs this process may use, less those other "
                        "processes keep busy; OMP_NUM_THREADS when set) or a number")
    add_json(p, "where to write the JSON (default for a checkpoint: beside it, best.pt.eval.json, "
                "best.pt.eval.exit0.9.json with --exit confidence:0.9, best.pt.eval.exit-sweep.json with "
                "--exit-sweep; for --weights: none unless given)")
    p.add_argument("--exit", metavar="confidence:P", type=exit_spec,
                   help="also run the net step by step and let each sample stop at the first step where its "
                        "softmax (of the logits averaged so far) reaches P: accuracy, mean steps and mean "
                        "energy (e.g. --exit confidence:0.9)")
    sweep = ",".join(map(str, EXIT_SWEEP))
    p.add_argument("--exit-sweep", metavar="P,P,...", nargs="?", const=sweep, type=thresholds,
                   help=f"early exit at many thresholds (default {sweep}) from one pass: the curve of accuracy "
                        "against mean steps and energy, in the JSON and drawn into <JSON>.exit.png")


def run(args) -> int:
    from ..errors import ConfigError
    from ..training import evaluate_checkpoint, evaluate_weights
    from ..training.distributed import resolve_device
    from ..training.threads import apply_threads, choose_threads

    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        resolve_device(args.device)
    except ConfigError:
        raise ConfigError(f"--device {args.device!r} is not a device here: use auto, cpu, cuda or cuda:N "
                          f"(cuda only where CUDA is available)") from None
    overrides = [*args.overrides, *([f"data.root={json.dumps(args.data_root)}"] if args.data_root else [])]
    levels = sorted({*(args.exit_sweep or ()), *([args.exit] if args.exit is not None else [])})
    check_json(args.json)
    out = json_path(args)
    if out is not None and not args.json and out.parent.is_dir():  # the default, beside the checkpoint
        try:
            check_writable(out)
        except OSError as e:  # someone else's run, a read-only share: the evaluation is still worth printing
            warnings.warn(f"the JSON is not written beside the checkpoint ({one_line(e)}); --json PATH writes it "
                          f"elsewhere")
            out = None
    apply_threads(choose_threads(args.threads))  # for this process, which ends with the evaluation
    if args.weights is not None:
        result = evaluate_weights(args.weights, overrides, device=args.device, batch_size=args.batch_size,
                                  exit_thresholds=levels)
    else:
        result = evaluate_checkpoint(args.checkpoint, overrides=overrides, device=args.device,
                                     batch_size=args.batch_size, exit_thresholds=levels)
    if args.json == "-":  # the JSON alone on stdout, for a pipe
        emit_json("-", result)
        if args.exit_sweep:
            print("staa-snn eval: the curve's plot is not drawn for --json - (--json PATH draws it beside the JSON)",
                  file=sys.stderr)
        return 0
    print(format_eval(result))
    if levels:
        print(format_exit(result["exit_curve"], result["T"], None if args.exit_sweep else args.exit))
    if out is None:
        print("(JSON not written: --json PATH writes it" + (", and the curve's plot beside it)" if args.exit_sweep
                                                            else ")"))
        return 0
    write_json(str(out), result)
    print(f"JSON: {out}")
    if args.exit_sweep and written_in_place(out):  # no /dev/null.exit.png
        print("(the curve's plot is drawn beside a JSON file, not beside a device or a stream)")
    elif args.exit_sweep:
        from ..analysis.plot import plot_exit_curves

        name = f"{result['model']} {result['neuron']} T={result['T']}"
        png = plot_exit_curves({name: result["exit_curve"]}, out.with_name(out.name + ".exit.png")).path
        print(f"plot: {png}")
    return 0


def json_path(args) -> Path | None:
    """``--json``; or beside the checkpoint, named by what was measured (``best.pt.eval.json``,
    ``best.pt.eval.exit0.9.json`` with ``--exit``, ``best.pt.eval.exit-sweep.json``), so one does
    not overwrite another; ``None`` for weights (shipped in the package, or a download: no folder
    of the user's), which only ``--json`` writes."""
    if args.json:
        return Path(args.json).expanduser()
    if args.checkpoint:
        kind = ".exit-sweep" if args.exit_sweep else f".exit{args.exit:g}" if args.exit is not None else ""
        return Path(args.checkpoint).with_name(f"{Path(args.checkpoint).name}.eval{kind}.json")
    return None


def format_eval(r: dict) -> str:
    steps = range(1, len(r["acc_per_step"]) + 1)
    lines = [f"{r['checkpoint']} (epoch {r['epoch']}): {r['dataset']}, {r['model']}, neuron={r['neuron']}, T={r['T']}",
             f"{r.get('split', 'test accuracy').replace(' accuracy', '')}: loss {r['loss']:.4f}, accuracy {r['acc']:.2%} "
             f"on {r['samples']} samples",
             "read out after t steps:",
             "  t   " + "".join(f"{t:>8}" for t in steps),
             "  acc " + "".join(f"{a:>8.2%}" for a in r["acc_per_step"])]
    return "\n".join(lines)


def format_exit(curve: dict, T: int, single: float | None) -> str:
    """The early-exit figures: the fixed readouts and each threshold's accuracy, steps and energy."""
    lines = [f"early exit ({curve['samples']} samples; energy per sample at {E_AC_PJ:g} pJ AC, {E_MAC_PJ:g} pJ MAC):",
             f"  {'exit':<20}{'accuracy':>9}{'mean steps':>12}{'energy (uJ)':>13}"]
    rows = [(f"after {t + 1} step{'s' if t else ''}", p) for t, p in enumerate(curve["fixed"])]
    rows += [(f"confidence >= {p['threshold']:g}", p) for p in curve["confidence"]
             if single is None or p["threshold"] == single]
    lines += [f"  {name:<20}{p['acc']:>9.2%}{p['mean_steps']:>9.2f}/{T:<2}{1e3 * p['mean_energy_mj']:>13.3f}"
              for name, p in rows]
    return "\n".join(lines)
