"""The ``staa-snn`` command line."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="staa-snn",
        description="STAA-SNN: spiking neural networks with a spatial-temporal attention aggregator.",
    )
    parser.add_argument("--version", action="version", version=f"staa-snn {__version__}")
    return parser


def main(argv: "list[str] | None" = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
