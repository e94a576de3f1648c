"""``staa-snn predict``: class names and probabilities for images or event recordings."""

from __future__ import annotations

import argparse
import sys

from .common import add_json, add_net, add_sensor, check_json, emit_json, one_line

NAME = "predict"
HELP = "class names and probabilities for images or event recordings"
DESCRIPTION = ("Run a trained net on files: images (for nets trained on images) or whole event recordings (any "
               "format staa_snn.data.read_events reads: AEDAT 2.0/3.1/4.0, Prophesee .dat/.raw, N-MNIST .bin, "
               ".npz/.npy; for nets trained on event data, integrated into T frames, another sensor binned to the "
               "net's size), prepared as its test data were "
               "(size, normalisation), and print the most probable classes with their probabilities.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_net(p)
    p.add_argument("files", nargs="+", metavar="FILE", help="images or recordings, or folders of them (their files, "
                                                             "not sub-folders); a file that cannot be read is one "
                                                             "error line, the others are predicted (exit 2)")
    p.add_argument("--top", type=int, default=3, help="classes to show per file (default 3)")
    add_sensor(p)
    add_json(p, "also write the predictions as JSON ('-': JSON to stdout only)")


def run(args) -> int:
    from ..errors import ConfigError
    from ..inference import load_net, predict_files

    if args.top < 1:
        raise ConfigError(f"--top must be >= 1, got {args.top}")
    check_json(args.json)
    net = load_net(args.checkpoint, checkpoint=True) if args.checkpoint else load_net(args.weights)
    try:  # a file that cannot be read is one line; the others are still predicted
        results = predict_files(net, args.files, top=args.top, errors="report", sensor=args.sensor)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if args.json != "-":
        for r in results:
            if "error" in r:
                print(f"staa-snn predict: error: {one_line(r['error'])}", file=sys.stderr)
            else:
                print(f"{r['file']}: " + ", ".join(f"{name} {p:.1%}" for name, p in r["predictions"]))
    emit_json(args.json, results)
    return 2 if any("error" in r for r in results) else 0
