"""Figures without pyplot: the library never changes matplotlib's global backend (a notebook
keeps its own); each figure draws on its own Agg canvas and is written atomically."""

from __future__ import annotations

from pathlib import Path

from .._io import atomic_path

__all__ = ["subplots", "save"]


def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, squeeze: bool = True, **kwargs):
    """``(figure, axes)`` like ``pyplot.subplots``, on a figure that pyplot does not manage."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze, **kwargs)


def save(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (PNG by its suffix) atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:  # its folder is made where missing
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return path
