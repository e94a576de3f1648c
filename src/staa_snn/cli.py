"""The ``staa-snn`` command line: ``train``, ``eval``, ``configs``.

Also runs as ``python -m staa_snn.cli`` (the form ``torchrun`` needs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = "digits"

TRAIN_EPILOG = """\
overrides are section.key=value pairs applied after the config file, e.g.
  staa-snn train --config cifar100_resnet20_t4 data.root=/data/cifar optim.lr=0.05 model.tsrd_p=0
sections: data, model (with every neuron option: tsrd_p, gc_ratio, pe, ...), optim, train, output.
Multi-GPU / multi-node: torchrun --nproc_per_node=N -m staa_snn.cli train ...
"""


def bundled_configs() -> list[str]:
    """Names of the bundled configs (``_<dataset>.yaml`` recipe bases excluded)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def resolve_config(spec: str | None) -> Path:
    """A YAML path, or the name of a bundled config (``staa-snn configs``)."""
    spec = spec or DEFAULT_CONFIG
    path = Path(spec)
    if path.is_file():
        return path
    bundled = CONFIG_DIR / f"{spec.removesuffix('.yaml')}.yaml"
    if bundled.is_file():
        return bundled
    from .training import ConfigError

    raise ConfigError(f"config {spec!r} is neither a file nor a bundled config; bundled: {', '.join(bundled_configs())}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="staa-snn",
        description="STAA-SNN: spiking neural networks with a spatial-temporal attention aggregator.",
    )
    parser.add_argument("--version", action="version", version=f"staa-snn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,configs}")

    tr = sub.add_parser("train", help="train a model (default: the bundled digits config)",
                        description="Train an SNN from a config. With no arguments: a small STAA-SNN on "
                                    "scikit-learn's digits (the bundled default), printing its test accuracy.",
                        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--config", "-c", help=f"YAML file or bundled config name (default: {DEFAULT_CONFIG})")
    tr.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
    tr.add_argument("--resume", metavar="PATH|auto",
                    help="continue from a checkpoint (its config, then the overrides); auto: the run folder's last.pt")
    tr.add_argument("--stop-after", type=int, metavar="N",
                    help="train at most N epochs in this invocation, then stop (checkpointed; --resume later)")

    ev = sub.add_parser("eval", help="evaluate a checkpoint on its test set",
                        description="Test loss, accuracy, and accuracy when reading out after 1..T steps.")
    ev.add_argument("--checkpoint", required=True, help="a last.pt / best.pt written by staa-snn train")
    ev.add_argument("--data-root", help="dataset folder, if not the one the checkpoint was trained on")
    ev.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    ev.add_argument("--batch-size", type=int, help="test batch size")
    ev.add_argument("--json", metavar="PATH", help="where to write the JSON (default: <checkpoint>.eval.json)")

    sub.add_parser("configs", help="list the bundled configs (one per result row of the paper)")
    return parser


def _train(args) -> int:
    from .training import Config, load_checkpoint, load_config, parse_override, train

    if args.resume is None:
        cfg = load_config(resolve_config(args.config), args.overrides)
        path = None
    else:
        if args.resume == "auto":
            first = load_config(resolve_config(args.config), args.overrides)
            path = Path(first.output.dir) / first.run_name / "last.pt"
        else:
            path = Path(args.resume)
        cfg = Config.from_dict(load_checkpoint(path)["config"])
        for text in args.overrides:
            cfg.set(*parse_override(text))
        cfg.validate()
    result = train(cfg, resume=path, stop_after=args.stop_after)
    if result.history and _is_main():
        last, best = result.final, result.best
        print(f"test accuracy {last['test_acc']:.2%} after epoch {last['epoch']}/{cfg.train.epochs} "
              f"(best {best['test_acc']:.2%} at epoch {best['epoch']}); run folder: {result.run_dir}")
    return 0


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def format_eval(r: dict) -> str:
    steps = range(1, len(r["acc_per_step"]) + 1)
    lines = [f"{r['checkpoint']} (epoch {r['epoch']}): {r['dataset']}, {r['model']}, neuron={r['neuron']}, T={r['T']}",
             f"test loss {r['loss']:.4f}, accuracy {r['acc']:.2%} on {r['samples']} samples",
             "read out after t steps:",
             "  t   " + "".join(f"{t:>8}" for t in steps),
             "  acc " + "".join(f"{a:>8.2%}" for a in r["acc_per_step"])]
    return "\n".join(lines)


def _eval(args) -> int:
    from .training import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, data_root=args.data_root, device=args.device,
                                 batch_size=args.batch_size)
    print(format_eval(result))
    out = Path(args.json) if args.json else Path(args.checkpoint).with_suffix(".eval.json")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    print(f"JSON: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "configs":
        print("\n".join(bundled_configs()))
        return 0
    from .data import CorruptFileError
    from .training import ConfigError, TrainingDiverged

    try:
        return _train(args) if args.command == "train" else _eval(args)
    except (ConfigError, FileNotFoundError, FileExistsError, CorruptFileError) as e:
        print(f"staa-snn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"staa-snn {args.command}: stopped: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
