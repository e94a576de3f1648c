"""Build a neuron layer by kind name, with strictly checked options."""

from __future__ import annotations

import inspect

from torch import nn

from ..neurons import NEURONS

__all__ = ["NEURON_KINDS", "neuron_options", "check_neuron_options", "make_neuron", "needs_spatial_shape"]

NEURON_KINDS: dict[str, type[nn.Module]] = NEURONS  # the kinds declared with @register_neuron

# Arguments the factory supplies itself; not user options.
_SUPPLIED = {"self", "channels", "T"}


def neuron_options(kind: str) -> tuple[str, ...]:
    """The keyword options a neuron kind accepts (e.g. ``tau``, ``gc``, ``tsrd_p``)."""
    cls = _kind(kind)
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p not in _SUPPLIED)


def _kind(kind: str) -> type[nn.Module]:
    if kind not in NEURON_KINDS:
        raise ValueError(f"unknown neuron {kind!r}; expected one of {sorted(NEURON_KINDS)}")
    return NEURON_KINDS[kind]


def check_neuron_options(kind: str, options: dict) -> None:
    """Reject options that ``kind`` does not take, listing the ones it does."""
    valid = neuron_options(kind)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for neuron={kind!r}; valid options: {sorted(valid)}"
        )


def make_neuron(kind: str, channels: int, T: int, **options) -> nn.Module:
    """One neuron layer of ``kind`` for ``channels`` channels and ``T`` steps."""
    cls = _kind(kind)
    check_neuron_options(kind, options)
    return cls(channels=channels, **({"T": T} if cls.needs_T else {}), **options)


def needs_spatial_shape(kind: str, options: dict) -> bool:
    """Whether the options size a table by the input's (H, W) and leave ``spatial_shape`` to us."""
    if "spatial_shape" in options:  # given by the caller: the same shape for every layer
        return False
    return _kind(kind).needs_spatial_shape(options)  # declared on the neuron class
