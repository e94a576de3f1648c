"""The ``staa-snn`` entry point: the parser built from :data:`COMMANDS`, the dispatch, and the
outcome of a command as an exit code (bad input: one line on stderr and 2; a traceback only with
``--debug``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings

from .. import __version__
from . import ablate, configs, evaluate, export, plot, predict, profile, stream, train, visualize
from .common import Interrupted, one_line

# The commands, in the order of the usage line and the help: each module has NAME, HELP (and
# DESCRIPTION, EPILOG, FORMATTER where it has them), add_arguments(parser) and run(args).
COMMANDS = (train, evaluate, predict, stream, profile, visualize, plot, export, ablate, configs)
BY_NAME = {command.NAME: command for command in COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="staa-snn",
        description="STAA-SNN: spiking neural networks with a spatial-temporal attention aggregator.",
    )
    parser.add_argument("--version", action="version", version=f"staa-snn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(BY_NAME) + "}")
    for command in COMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP, description=getattr(command, "DESCRIPTION", None),
                           epilog=getattr(command, "EPILOG", None),
                           formatter_class=getattr(command, "FORMATTER", argparse.HelpFormatter))
        command.add_arguments(p)
        # --debug after the command too (SUPPRESS: it keeps the one before)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error")
        p.set_defaults(command_parser=p)  # an error in its arguments prints its usage, not the top level's
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The arguments; overrides may come before and after options (train optim.lr=0.01 --resume auto
    train.epochs=9): argparse stops a positional list at the first option, so the rest arrives as
    "unknown" and is put back."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        elif hasattr(args, "files") and not any(e.startswith("-") for e in extra):  # predict a.png --top 2 b.png
            args.files = [*args.files, *extra]
        else:
            words = sys.argv[1:] if argv is None else list(argv)
            owner = getattr(args, "command_parser", None)  # the command's usage for an option after it
            if owner is None or words.index(extra[0]) < words.index(args.command):
                owner = parser  # (one before the command is the top level's)
            owner.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = sys.argv[1:] if argv is None else list(argv)  # the command line, as ablate records it
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "configs":
        with reader_may_leave():
            return configs.run(args)
        return 0  # the reader went away (staa-snn configs | head -1)
    from .._malloc import tune_cpu_allocator

    tune_cpu_allocator()  # CPU tensors reuse freed memory instead of fresh pages (glibc; see staa_snn._malloc)
    format_warning = warnings.formatwarning
    if not args.debug:  # warnings as one line each, without the source line that raised them
        warnings.formatwarning = lambda message, category, *_: f"staa-snn: warning: {one_line(message)}\n"
    try:
        return run(args)
    finally:
        warnings.formatwarning = format_warning


@contextlib.contextmanager
def reader_may_leave():
    """A reader that goes away before the output ends (``| head``) is not an error of ours: the
    BrokenPipeError is swallowed (the block's ``return`` is skipped, so the caller returns 0) and
    stdout goes to /dev/null, so that the interpreter's final flush does not complain either."""
    try:
        yield
        sys.stdout.flush()  # here, not at the interpreter's exit, where the error could not be caught
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def run(args) -> int:
    """Run the command; what went wrong becomes one line on stderr and an exit code."""
    from ..data import DataError  # the data layer's bad input (CorruptFileError among them)
    from ..errors import ConfigError
    from ..export.nir_graph import NIRExportError
    from ..training import RunFolderError, TrainingDiverged, TrainingPreempted

    name = f"staa-snn {args.command}"
    try:
        with reader_may_leave():
            return BY_NAME[args.command].run(args)
        return 0  # the reader went away (staa-snn profile --json - | head)
    except (ConfigError, FileNotFoundError, FileExistsError, DataError, RunFolderError,
            NotADirectoryError, IsADirectoryError, PermissionError, NIRExportError) as e:
        if args.debug:
            raise
        print(f"{name}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        if args.debug:
            raise
        print(f"{name}: stopped: {e}", file=sys.stderr)
        return 3
    except TrainingPreempted as e:  # SIGTERM / SIGUSR1: checkpointed where it stood
        again = {"ablate": "run the same command again to continue (finished runs are read back)"}
        print(f"{name}: {e.what}; {again.get(args.command, e.hint)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        hint = {"ablate": " (finished runs are kept: run the same command again to continue)"}.get(args.command, "")
        if isinstance(e, Interrupted):
            hint = f" ({e.hint})"
        print(f"{name}: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as e:  # not a known kind of bad input: one line, and how to see more
        if args.debug:
            raise
        print(f"{name}: error: {type(e).__name__}: {one_line(e)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
