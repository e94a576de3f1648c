"""``staa-snn configs``: the bundled configs, one line each."""

from __future__ import annotations

import argparse

from .common import bundled_configs

NAME = "configs"
HELP = "list the bundled configs (one per result row of the paper)"
DESCRIPTION = ("List the bundled configs, one per result row of the paper, with what each trains; give one to "
               "train --config NAME.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """No arguments."""


def run(args) -> int:
    print(describe_configs())
    return 0


def describe_configs() -> str:
    """One line per bundled config: its name and the first sentence of its header comment."""
    from ..training.config import CONFIG_DIR

    names = bundled_configs()
    width = max(map(len, names))
    lines = []
    for name in names:
        comment = []
        for line in (CONFIG_DIR / f"{name}.yaml").read_text().splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("# ").strip())
        text = " ".join(comment)
        first = text.split(". ")[0].split(": ", 1)[-1] if text else ""
        lines.append(f"{name:<{width}}  {first.rstrip('.')}")
    return "\n".join(lines)
