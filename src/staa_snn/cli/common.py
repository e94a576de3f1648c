"""What the commands share, written once: the default config, the argument groups (the net to load,
``--checkpoint`` / ``--weights``; the model source, ``--config`` / ``--checkpoint`` and overrides;
``--json``; ``--device``), JSON output and one-line errors."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

DEFAULT_CONFIG = "digits"
CHECKPOINT_HELP = "a checkpoint written by staa-snn train"
WEIGHTS_HELP = "exported weights: a shipped name, an export folder or hf://owner/name"


def bundled_configs() -> list[str]:
    """Names of the bundled configs (``_<dataset>.yaml`` recipe bases excluded)."""
    from ..training.config import bundled_configs as names

    return names()


def resolve_config(spec: str | None) -> Path:
    """A YAML path, or the name of a bundled config (``staa-snn configs``)."""
    from ..training.config import resolve_config as resolve

    return resolve(spec, default=DEFAULT_CONFIG)


def add_config(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--config`` / ``-c``: a YAML file or a bundled config's name."""
    p.add_argument("--config", "-c", help=help or f"YAML file or bundled config name (default: {DEFAULT_CONFIG})")


def add_overrides(p: argparse.ArgumentParser, help: str = "config overrides") -> None:
    """The ``section.key=value`` overrides (they may also come after the options: see ``main``)."""
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help=help)


def add_net(p: argparse.ArgumentParser, *, checkpoint: str = CHECKPOINT_HELP, weights: str = WEIGHTS_HELP) -> None:
    """The net to load, one of ``--checkpoint`` (a ``.pt`` of staa-snn train) and ``--weights``."""
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--checkpoint", help=checkpoint)
    group.add_argument("--weights", help=weights)


def add_model_source(p: argparse.ArgumentParser) -> None:
    """A freshly initialised model of ``--config``, or the trained one of ``--checkpoint``; overrides."""
    add_config(p, "YAML file or bundled config name (a freshly initialised model)")
    p.add_argument("--checkpoint", help=f"{CHECKPOINT_HELP} (the trained model and its config)")
    add_overrides(p, "config overrides (e.g. data.root=...)")


def add_sensor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sensor", type=sensor_size, metavar="WIDTHxHEIGHT",
                   help="the camera of recordings whose files state no sensor size (.npz, .npy, a .dat without "
                        "geometry); a file that states its sensor keeps it; default: the one the net was trained on (nets "
                        "trained before staa-snn stored it need this for such files)")


def sensor_size(text: str) -> tuple[int, int]:
    """``"346x260"`` -> ``(346, 260)``; argparse turns the ValueError into one usage line."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels (e.g. 346x260), got {text!r}")
    return int(parts[0]), int(parts[1])


def add_json(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--json", metavar="PATH", help=help)


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")


def check_json(path: str | os.PathLike | None) -> None:
    """``--json PATH`` checked before any work, making nothing (its folder is made when it is
    written): a PATH that is a folder, under a file, or in a folder that takes no files, is
    refused in one line (not after a long evaluation)."""
    from .._io import check_writable

    if path is not None and str(path) != "-":
        check_writable(path)


def write_json(path: str, payload) -> None:
    """``payload`` as indented JSON, written atomically."""
    from .._io import write_text_atomic

    write_text_atomic(path, json.dumps(payload, indent=1) + "\n")


def emit_json(path: str | None, payload) -> None:
    """``--json PATH``: ``-`` prints the JSON on stdout, a path writes it there, ``None`` nothing."""
    if path == "-":
        print(json.dumps(payload, indent=1))
    elif path:
        write_json(path, payload)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what it left (said by :func:`~.main.run`)."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


def is_main() -> bool:
    """Rank 0 of a torchrun job (or no job at all): the process that prints results."""
    return os.environ.get("RANK", "0") == "0"


def one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())
