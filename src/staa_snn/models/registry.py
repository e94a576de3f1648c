"""A registry and factory in the timm style: ``create_model(name, ...)``, ``list_models()``."""

from __future__ import annotations

import os
from functools import partial
from typing import Callable

from .base import SpikingNet
from .init import init_weights
from .pretrained import load_weights
from .neuron_factory import NEURON_KINDS, check_neuron_options, make_neuron
from .resnet import resnet18, resnet19, resnet20, resnet34
from .vgg import vgg13, vgg_small

__all__ = ["create_model", "list_models", "register_model"]

_MODELS: dict[str, Callable[..., SpikingNet]] = {}


def register_model(name: str, builder: Callable[..., SpikingNet]) -> None:
    """Register ``builder(neuron, T, in_channels, num_classes) -> SpikingNet`` under ``name``."""
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = builder


for _name, _builder in {
    "vgg13": vgg13, "resnet19": resnet19, "resnet20": resnet20, "resnet18": resnet18, "resnet34": resnet34,
    "vgg_small": vgg_small,
}.items():
    register_model(_name, _builder)


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_MODELS)


def create_model(
    name: str,
    *,
    num_classes: int,
    T: int,
    neuron: str = "staa",
    in_channels: int = 3,
    init: str = "torch",
    weights: "str | os.PathLike | None" = None,
    **neuron_options,
) -> SpikingNet:
    """Build a registered spiking net.

    Args:
        name: one of :func:`list_models` (``vgg13``, ``resnet19``, ``resnet20``, ``resnet18``, ``resnet34``;
            ``vgg_small``, a four-layer net for tiny inputs such as the bundled digits).
        num_classes: classifier outputs.
        T: number of time steps.
        neuron: ``"lif"``, ``"adaptive"`` or ``"staa"``.
        in_channels: input channels (3 for images, 2 for event frames).
        init: ``"torch"`` (PyTorch's layer defaults) or ``"mpbn"`` (the MPBN code's initialisation,
            :func:`~staa_snn.models.init.init_weights`).
        weights: a folder (or its ``model.safetensors``) written by ``staa-snn export --format
            safetensors``, loaded into the net strictly (:func:`~staa_snn.models.load_pretrained`
            builds the net from the folder's ``config.json`` instead).
        **neuron_options: passed to every neuron layer (e.g. ``gc=False``, ``tsrd_p=0``,
            ``tau=2.0``, ``neuron_preset="mpbn"``); unknown options are rejected with the list of
            valid ones.

    Example::

        >>> from staa_snn.models import create_model
        >>> net = create_model("resnet20", num_classes=100, T=4, neuron="staa", sa=False)
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {list_models()}")
    if neuron not in NEURON_KINDS:
        raise ValueError(f"unknown neuron {neuron!r}; expected one of {sorted(NEURON_KINDS)}")
    check_neuron_options(neuron, neuron_options)
    factory = partial(_neuron_for, neuron, T, neuron_options)
    model = init_weights(_MODELS[name](factory, T, in_channels, num_classes), init)
    return model if weights is None else load_weights(model, weights)


def _neuron_for(kind: str, T: int, options: dict, channels: int):
    return make_neuron(kind, channels, T, **options)
