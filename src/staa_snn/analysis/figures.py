"""Figures without pyplot: the library never changes matplotlib's global backend (a notebook
keeps its own); each figure draws on its own Agg canvas and is written atomically."""

from __future__ import annotations

from pathlib import Path

from .._io import atomic_path
from ..errors import ConfigError

__all__ = ["subplots", "save", "check_image_path"]


def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, squeeze: bool = True, **kwargs):
    """``(figure, axes)`` like ``pyplot.subplots``, on a figure that pyplot does not manage."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze, **kwargs)


def check_image_path(path: str | Path) -> Path:
    """Refuse (``ConfigError``, one line), before any drawing, a path whose suffix names no image
    format matplotlib writes (``--out curves``, ``--out x.pngg``); returns it as a ``Path``."""
    from matplotlib.figure import Figure

    suffix = Path(path).suffix.lower().lstrip(".")
    kinds = Figure().canvas.get_supported_filetypes()
    if suffix not in kinds:
        got = f"its suffix .{suffix}" if suffix else "no suffix"
        raise ConfigError(f"cannot write {path}: expected an image file name ending in .png, .pdf or .svg (or "
                          f"{', '.join('.' + k for k in sorted(kinds) if k not in ('png', 'pdf', 'svg'))}), got {got}")
    return Path(path)


def save(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (the image format of its suffix) atomically; returns the path."""
    path = check_image_path(path)
    with atomic_path(path) as tmp:  # its folder is made where missing
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lower().lstrip("."))  # a link's target
        # may have another suffix, or none
    return path
