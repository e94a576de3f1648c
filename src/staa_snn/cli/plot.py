"""``staa-snn plot``: training curves of one or more runs, overlaid, as PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "plot"
HELP = "training curves of one or more runs, overlaid, as PNG"
DESCRIPTION = ("Loss and accuracy per epoch (train dashed, evaluation split solid), the evaluation accuracy when "
               "reading out after 1..T steps, and the mean firing rate per epoch, from each run folder's "
               "metrics.jsonl; several runs overlaid with their names. The evaluation split is named as the run's "
               "config.yaml says: validation (data.options.val_per_class) or test.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by staa-snn train")
    p.add_argument("--out", help="the PNG to write (default: <run>/curves.png for one run, curves.png for several)")


def run(args) -> int:
    from .._io import check_writable
    from ..analysis.figures import check_image_path
    from ..analysis.plot import plot_runs

    out = Path(args.out).expanduser() if args.out else (
        Path(args.runs[0]) / "curves.png" if len(args.runs) == 1 else Path("curves.png"))
    try:  # before the runs are read
        check_writable(out)
    except PermissionError as e:
        if args.out:
            raise
        raise PermissionError(f"{e}; --out PATH writes the plot elsewhere") from None  # a read-only run folder
    check_image_path(out)
    plot_runs(args.runs, out)
    print(out)
    return 0
