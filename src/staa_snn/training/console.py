"""What a job shows on stderr: progress bars (on a terminal only) and notices of rank 0."""

from __future__ import annotations

import sys

from . import distributed as ddp

__all__ = ["progress_bar", "say"]


def progress_bar(iterable, desc: str, enabled: bool, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    # disable=None: tqdm shows the bar on a terminal only, so logs and CI stay readable;
    # mininterval: at most two redraws a second
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr, disable=None,
                mininterval=0.5)


def say(ctx: ddp.DistContext, text: str) -> None:
    """A notice on rank 0's stderr (what a run does that one should know of: resuming, starting
    afresh, clearing leftovers, skipping files, compiling), whether or not progress is shown."""
    if ctx.is_main:
        print(f"staa-snn: {text}", file=sys.stderr)
