"""A registry and factory in the timm style: ``create_model(name, ...)``, ``list_models()``, and
``load_pretrained`` (the net of exported weights, built from their ``config.json``)."""

from __future__ import annotations

import os
from functools import partial
from typing import Callable

import torch
from torch import Tensor, nn

from .base import SpikingNet
from .init import init_weights
from ..errors import DataError
from .pretrained import describe_inputs, load_weights, pretrained_spec, resolve_path, weight_files
from .neuron_factory import NEURON_KINDS, check_neuron_options, make_neuron, needs_spatial_shape
from .resnet import resnet18, resnet19, resnet20, resnet34
from .vgg import vgg13, vgg_quick, vgg_small, vgg_tiny

__all__ = ["create_model", "list_models", "load_pretrained", "register_model"]

_MODELS: dict[str, Callable[..., SpikingNet]] = {}


def register_model(name: str, builder: Callable[..., SpikingNet]) -> None:
    """Register ``builder(neuron, T, in_channels, num_classes) -> SpikingNet`` under ``name``."""
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = builder


for _name, _builder in {
    "vgg13": vgg13, "resnet19": resnet19, "resnet20": resnet20, "resnet18": resnet18, "resnet34": resnet34,
    "vgg_small": vgg_small, "vgg_quick": vgg_quick, "vgg_tiny": vgg_tiny,
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
    input_size: "int | tuple[int, int] | None" = None,
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
            safetensors``, or one on the Hugging Face Hub (``hf://owner/name[@revision]``), loaded
            into the net strictly (:func:`~staa_snn.models.load_pretrained` builds the net from the
            folder's ``config.json`` instead).
        input_size: the input's ``(H, W)`` (or one int for square inputs). Needed only by the
            options that hold a table over each layer's spatial positions (``mn_shape="full"``,
            ``pe_shape="full"``): every neuron layer then gets the ``(H, W)`` of its own input,
            inferred by a shape-only pass of the net (no arithmetic, on the ``meta`` device).
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
    builder = _MODELS[name]
    if needs_spatial_shape(neuron, neuron_options):
        if input_size is None:
            full = [k for k in ("mn_shape", "pe_shape") if neuron_options.get(k) == "full"]
            raise ValueError(f"{' and '.join(f'{k}={neuron_options[k]!r}' for k in full)} gives every neuron layer "
                             "a table over its input's positions: pass input_size=(H, W), the input image size")
        shapes = iter(_layer_spatial_shapes(name, builder, T, in_channels, num_classes, input_size))
        factory = lambda channels: make_neuron(neuron, channels, T, spatial_shape=next(shapes), **neuron_options)  # noqa: E731
    else:
        factory = partial(_neuron_for, neuron, T, neuron_options)
    model = init_weights(builder(factory, T, in_channels, num_classes), init)
    return model if weights is None else load_weights(model, weights)


def _neuron_for(kind: str, T: int, options: dict, channels: int):
    return make_neuron(kind, channels, T, **options)


class _ShapeProbe(nn.Module):
    """Stands in for a neuron while the net's shapes are traced: passes its input on, notes its shape."""

    def __init__(self, seen: dict, index: int) -> None:
        super().__init__()
        self.seen, self.index = seen, index

    def forward(self, x: Tensor) -> Tensor:  # [T, B, C, *spatial]
        self.seen[self.index] = tuple(x.shape[3:])
        return x


def _layer_spatial_shapes(name: str, builder, T: int, in_channels: int, num_classes: int,
                          input_size: "int | tuple[int, int]") -> list[tuple[int, ...]]:
    """The spatial shape at each neuron slot, in the order the builder asks for neurons."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"input_size must be a positive int or (H, W), got {input_size!r}")
    seen: dict[int, tuple[int, ...]] = {}
    count = iter(range(1 << 30))
    with torch.device("meta"):
        probe = builder(lambda channels: _ShapeProbe(seen, next(count)), T, in_channels, num_classes)
        try:
            probe.forward_steps(torch.empty(1, in_channels, *size))
        except RuntimeError as e:  # a pooling or conv left with nothing
            raise ValueError(f"input_size={size} is too small for {name}: {e}") from None
    return [seen[i] for i in range(len(seen))]


def load_pretrained(path: str | os.PathLike, **overrides) -> nn.Module:
    """The net of exported weights -- a shipped name (:func:`list_pretrained`), a folder (or its
    ``model.safetensors``) or ``hf://owner/name[@revision]`` on the Hugging Face Hub -- built from
    ``config.json`` and loaded, in ``eval()``. A ``.pt`` checkpoint written by ``staa-snn train``
    needs its config's builders: :func:`staa_snn.load_pretrained` (also
    ``staa_snn.training.load_pretrained``) takes both. ``overrides``: create_model arguments to
    change (e.g. ``backend="compiled"``).

    ``net.pretrained_cfg`` (as in timm) says what the inputs must be and what the outputs mean:
    ``classes`` (index -> name), ``normalization`` (``{"mean", "std"}`` of values in [0, 1], or
    ``None``), ``size``, ``in_channels``, ``kind``, with ``name``, ``T`` and the ``dataset``.

    >>> net = load_pretrained("path/to/export")                     # doctest: +SKIP
    >>> net.pretrained_cfg["classes"][:3]                            # doctest: +SKIP
    ['airplane', 'automobile', 'bird']
    """
    path = resolve_path(path)  # one download for both files
    if path.is_file() and path.suffix == ".pt":  # a checkpoint: the training layer builds its net
        raise DataError(f"{path} is a checkpoint written by staa-snn train: load it with "
                        f"staa_snn.load_pretrained(path) or staa_snn.training.load_trained(path)")
    spec = pretrained_spec(path)
    args = {**spec["model"], **overrides}
    name = args.pop("name")
    try:
        model = create_model(name, **args)
    except (TypeError, ValueError) as e:  # a config.json from another staa-snn version, or a bad override
        given = f" with the overrides {overrides}" if overrides else ""
        raise DataError(f"{weight_files(path)[1]}: its model section{given} builds no net here ({e}); expected "
                        f"one written by staa-snn export --format safetensors of this version") from None
    model = load_weights(model, path).eval()
    model.pretrained_cfg = describe_inputs(name, args.get("T"), spec.get("dataset"), spec.get("input"))
    return model
