"""``staa-snn profile``: parameters, dense MACs, #AC / #MAC, energy and firing rates."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..energy import E_AC_PJ, E_MAC_PJ
from .common import add_json, add_model_source, check_json, emit_json, resolve_config

NAME = "profile"
HELP = "parameters, dense MACs, #AC / #MAC, energy and firing rates"
DESCRIPTION = ("Count the operations of one forward pass per sample, summed over the T steps: dense MACs, #AC "
               "(conv/linear whose input comes from a spiking neuron, weighted by its firing rate), #MAC (on "
               "real-valued inputs, average-pooled spikes included), energy = e_ac x #AC + e_mac x #MAC, and the "
               "firing rate of every neuron layer. MPBN's BN_mp is folded into thresholds first. Input: test "
               "batches of the config's dataset, or --random.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_source(p)
    p.add_argument("--batches", type=int, default=1, help="number of test batches to average over (default 1)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--random", action="store_true",
                   help="a random input of the dataset's shape instead of data (counts are exact, firing rates "
                        "are those of noise); no data.root needed")
    p.add_argument("--e-ac", type=float, default=E_AC_PJ,
                   help=f"energy per accumulate, pJ (default {E_AC_PJ:g}, 45 nm)")
    p.add_argument("--e-mac", type=float, default=E_MAC_PJ,
                   help=f"energy per multiply-accumulate, pJ (default {E_MAC_PJ:g})")
    add_json(p, "also write the report as JSON ('-': JSON to stdout, no table)")
    p.add_argument("--no-layers", action="store_true", help="omit the per-layer rows of the table")


def run(args) -> int:
    from ..analysis.loading import dataset_batches, model_from, random_batch
    from ..errors import ConfigError
    from ..measure import profile_model
    from ..models import fold_mpbn

    if args.config is not None and args.checkpoint is not None:
        raise ConfigError("give --config or --checkpoint, not both")
    check_json(args.json)
    config = resolve_config(args.config) if args.checkpoint is None else None
    cfg, model, _ = model_from(config, args.overrides, args.checkpoint, require_root=not args.random)
    fold_mpbn(model)  # count the net as it would be deployed: MPBN's BN_mp as per-channel thresholds
    if args.batches < 1 or args.batch_size < 1:
        raise ConfigError(f"--batches and --batch-size must be >= 1, got {args.batches}, {args.batch_size}")
    inputs = [random_batch(cfg, args.batch_size)] if args.random else \
        dataset_batches(cfg, args.batches, args.batch_size)[0]
    report = profile_model(model, inputs, e_ac_pj=args.e_ac, e_mac_pj=args.e_mac)
    payload = {"config": cfg.to_dict(), "checkpoint": args.checkpoint, "input": "random" if args.random else
               f"{report.samples} test samples", **report.to_dict()}
    if args.json != "-":
        source = args.checkpoint or f"{cfg.model.name}, neuron={cfg.model.neuron}, T={cfg.model.T} (untrained)"
        print(f"{source} on {payload['input']} of {cfg.data.name}")
        print(report.table(layers=not args.no_layers))
    emit_json(args.json, payload)
    if args.json not in (None, "-"):
        print(f"JSON: {Path(args.json).expanduser()}")
    return 0
