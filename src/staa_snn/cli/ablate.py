"""``staa-snn ablate``: the paper's ablations as resumable training sweeps, here or on a cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_config, add_overrides, resolve_config

NAME = "ablate"
HELP = "the paper's ablations as resumable training sweeps"
DESCRIPTION = ("Train every row of an ablation grid once per seed (runs already finished are read back, interrupted "
               "ones resume), then write results.md (mean +- std over seeds, after all steps and after the first, "
               "difference to the baseline row with Welch's t-test over the seeds, minutes per run), results.json "
               "(the same, with every run's accuracy and time per epoch), <grid>.png (each row's seeds and mean) and "
               "<grid>_curves.png (the rows' accuracy against epochs, side by side). Every run of a grid (launched in "
               "parts too) must be trained alike: a different config or override is refused. Grids: table4 (LIF and "
               "GC / PE / SA / TSRD, Table 4), tsrd_p, gc_ratio, pe_position, pe_kind, T (LIF and STAA-LIF at T = "
               "1, 2, 4), block_lr (the blocks' LR scale).")
GRIDS = ["table4", "tsrd_p", "gc_ratio", "pe_position", "pe_kind", "T", "block_lr"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config(p)
    p.add_argument("--grid", choices=GRIDS, help="the grid to run (required, except with --gather / --status)")
    p.add_argument("--rows", metavar="LABEL,...",
                   help="run these rows only, e.g. --rows LIF,baseline (default: every row; a grid may be run in "
                        "parts into the same --out)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per row (default 3)")
    p.add_argument("--epochs", type=int, help="epochs per run (required, except with --gather / --status)")
    p.add_argument("--launcher", choices=["local", "submitit-local", "slurm"], default="local",
                   help="local: here, one run after another (default); submitit-local: submitit jobs on this "
                        "machine, waited for; slurm: one SLURM job array through submitit, returns at once")
    p.add_argument("--partition", help="--launcher slurm: the partition")
    p.add_argument("--gpus-per-run", type=int, default=1,
                   help="GPUs per run on SLURM, DDP when > 1 (default 1; submitit-local: processes per run, "
                        "one per GPU, or gloo DDP on the CPU)")
    p.add_argument("--time",
                   help="the time limit per job (SLURM format, default 24:00:00); a run checkpoints before it and "
                        "is requeued")
    p.add_argument("--account", help="--launcher slurm: the account to charge")
    p.add_argument("--slurm", action="append", metavar="KEY=VALUE",
                   help="--launcher slurm: any other sbatch option, e.g. --slurm qos=high --slurm constraint=a100")
    p.add_argument("--gather", metavar="DIR",
                   help="read a launched grid back (its folder, or the --out above it), write the table and name "
                        "the runs pending, running, failed (with their log's tail), interrupted, queued (a local "
                        "ablate trains them in turn) or missing")
    p.add_argument("--status", metavar="DIR", help="print the state of each run of a launched grid; write nothing")
    p.add_argument("--out", default="runs/ablate", help="output folder (default runs/ablate; <out>/<grid>/...)")
    add_overrides(p, "config overrides for every run")


def run(args) -> int:
    from ..analysis.ablate import command_line, run_grid, select_rows, status, to_markdown
    from ..analysis.launch import DEFAULT_TIME, SlurmOptions
    from ..errors import ConfigError
    from ..training import load_config

    if args.gather and args.status:
        raise ConfigError("give --gather DIR or --status DIR, not both")
    if args.gather or args.status:  # a launched grid, read back: 0 when every run has finished, else 1
        return read_back(args)
    check_options(args)
    base = load_config(resolve_config(args.config), args.overrides)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows is not None else None
    if rows == []:
        raise ConfigError(f"--rows: no row labels in {args.rows!r} (e.g. --rows LIF,baseline)")
    try:
        select_rows(args.grid, rows)
    except ValueError as e:
        raise ConfigError(f"--rows: {e}") from None
    slurm = SlurmOptions(partition=args.partition, gpus_per_run=args.gpus_per_run, time=args.time or DEFAULT_TIME,
                         account=args.account, extra=SlurmOptions.parse_extra(args.slurm))
    summary = run_grid(base, args.grid, seeds=args.seeds, epochs=args.epochs, out=args.out,
                       command=command_line(args.argv), rows=rows, launcher=args.launcher, slurm=slurm)
    if summary is not None:
        print(to_markdown(summary))
        print(f"written: {Path(args.out) / args.grid}/results.md, results.json, {args.grid}.png, "
              f"{args.grid}_curves.png")
    if args.launcher == "submitit-local":  # it waited: 1 when a run failed (named above, with its log)
        return 0 if all(s["state"] == "done" for s in status(Path(args.out) / args.grid).values()) else 1
    return 0


def read_back(args) -> int:
    """``--gather DIR`` (the table) or ``--status DIR``: 0 when every run has finished, else 1."""
    from ..analysis.ablate import describe_states, gather, status, to_markdown

    if args.gather:
        summary, states = gather(args.gather, args.grid)
        if summary is not None:
            print(to_markdown(summary))
        print(describe_states(states), file=sys.stderr)  # what the table leaves out
    else:  # the states are what --status is asked for: stdout (ablate --status DIR > states.txt)
        states = status(args.status, args.grid)
        print(describe_states(states, every=True))
    return 0 if all(s["state"] == "done" for s in states.values()) else 1


def check_options(args) -> None:
    """The options a run of a grid needs, and those that apply to its launcher only."""
    from ..errors import ConfigError

    for flag, value in (("--grid", args.grid), ("--epochs", args.epochs)):
        if value is None:
            raise ConfigError(f"{flag} is required (except with --gather DIR or --status DIR)")
    for flag, value in (("--seeds", args.seeds), ("--epochs", args.epochs)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    cluster_only = [f for f, v in (("--partition", args.partition), ("--account", args.account),
                                   ("--slurm", args.slurm)) if v]
    if args.launcher != "slurm" and cluster_only:
        raise ConfigError(f"{', '.join(cluster_only)} apply to --launcher slurm (this is --launcher {args.launcher})")
    if args.launcher == "local" and (args.time is not None or args.gpus_per_run != 1):
        raise ConfigError("--time and --gpus-per-run apply to --launcher submitit-local or slurm (this is "
                          "--launcher local, which trains here, one run after another)")
