"""Argument checks shared by the neurons and the nets."""

from __future__ import annotations


def check_positive_int(name: str, value: object) -> int:
    """``value`` if it is a positive ``int`` (not a bool), else a ``ValueError`` naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value
