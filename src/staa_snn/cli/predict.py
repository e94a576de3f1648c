"""``staa-snn predict``: class names and probabilities for images or event recordings."""

from __future__ import annotations

import argparse

from .common import add_json, add_net, emit_json

NAME = "predict"
HELP = "class names and probabilities for images or event recordings"
DESCRIPTION = ("Run a trained net on files: images (for nets trained on images) or whole event recordings (.aedat, "
               ".npz; for nets trained on event data, integrated into T frames), prepared as its test data were "
               "(size, normalisation), and print the most probable classes with their probabilities.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_net(p)
    p.add_argument("files", nargs="+", metavar="FILE", help="images or recordings")
    p.add_argument("--top", type=int, default=3, help="classes to show per file (default 3)")
    add_json(p, "also write the predictions as JSON ('-': JSON to stdout only)")


def run(args) -> int:
    from ..errors import ConfigError
    from ..inference import load_net, predict_files

    if args.top < 1:
        raise ConfigError(f"--top must be >= 1, got {args.top}")
    net = load_net(args.checkpoint, checkpoint=True) if args.checkpoint else load_net(args.weights)
    try:
        results = predict_files(net, args.files, top=args.top)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if args.json != "-":
        for r in results:
            print(f"{r['file']}: " + ", ".join(f"{name} {p:.1%}" for name, p in r["predictions"]))
    emit_json(args.json, results)
    return 0
