"""``staa-snn train``: train a net from a config (default: the bundled digits config)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Interrupted, add_config, add_overrides, is_main, resolve_config

NAME = "train"
HELP = "train a model (default: the bundled digits config)"
DESCRIPTION = ("Train an SNN from a config. With no arguments: a small STAA-SNN on scikit-learn's digits (the "
               "bundled default), printing its test accuracy.")
EPILOG = """\
overrides are section.key=value pairs applied after the config file, e.g.
  staa-snn train --config cifar100_resnet20_t4 data.root=/data/cifar optim.lr=0.05 model.tsrd_p=0
sections: data, model (with every neuron option: tsrd_p, gc_ratio, pe, ...), optim, train, output.
Multi-GPU / multi-node: torchrun --nproc_per_node=N -m staa_snn.cli train ...
"""
FORMATTER = argparse.RawDescriptionHelpFormatter


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config(p)
    add_overrides(p)
    p.add_argument("--resume", metavar="PATH|auto",
                   help="continue from a checkpoint (its config, then the overrides); auto: the run folder's "
                        "last.pt, or a fresh start when there is none yet")
    p.add_argument("--stop-after", type=int, metavar="N",
                   help="train at most N epochs in this invocation, then stop (checkpointed; --resume later)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (the file, then the overrides) as YAML and exit")


def run(args) -> int:
    from ..errors import ConfigError
    from ..training import checkpoint_config, load_checkpoint, load_config, train
    from ..training.config import split_name
    from ..training.resume import config_differences

    cfg = load_config(resolve_config(args.config), args.overrides, require_root=False)  # data.root: once the run is known
    path = None
    if args.resume == "auto":
        last = Path(cfg.output.dir) / cfg.run_name / "last.pt"
        path = last if last.is_file() else None
    elif args.resume is not None:
        path = Path(args.resume)
    if path is not None:  # the run's own config, then the overrides
        run_cfg = checkpoint_config(load_checkpoint(path), args.overrides, require_root=False)
        if args.config is not None:  # asked for explicitly: it must be the run's
            differ = config_differences(cfg, run_cfg)
            if differ:
                shown = ", ".join(f"{k}={a!r} vs {b!r}" for k, (a, b) in list(differ.items())[:3])
                more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
                raise ConfigError(f"--config {args.config} is not the config of the run in {path.parent} "
                                  f"({shown}{more}; given vs the run's): resume without --config to continue the run "
                                  f"with its own, or start a new run (output.name=...)")
        cfg = run_cfg
    if not args.print_config:
        cfg.validate()  # data.root required where the data has one
    if args.print_config:
        return print_config(cfg)
    try:
        result = train(cfg, resume=path if path is not None else args.resume, stop_after=args.stop_after)
    except KeyboardInterrupt:
        last = (path.parent if path is not None else Path(cfg.output.dir) / cfg.run_name) / "last.pt"
        raise Interrupted("the last complete checkpoint is kept: continue with --resume auto" if last.is_file()
                          else "before the first checkpoint: nothing to resume, the same command starts afresh"
                          ) from None
    if result.history and is_main():
        last, best = result.final, result.best
        print(f"{split_name(cfg)[0]} {last['test_acc']:.2%} after epoch {last['epoch']}/{cfg.train.epochs} "
              f"(best {best['test_acc']:.2%} at epoch {best['epoch']}); run folder: {result.run_dir}")
    return 0


def print_config(cfg) -> int:
    """``--print-config``: the resolved config as YAML, its neuron options checked as train checks them."""
    import torch
    import yaml

    from ..data import dataset_info
    from ..training import build_model

    with torch.device("meta"):  # the neuron options' values checked as train checks them, computing nothing
        build_model(cfg, num_classes=dataset_info(cfg.data.name).num_classes or 2)
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    return 0
