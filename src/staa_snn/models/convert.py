"""Plug-and-play: swap the LIF-type neurons of an existing conv SNN (the paper's claim)."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ..functional.surrogate import get_surrogate
from ..neurons import LIF, AdaptiveLIF
from .layers import SpikingNeuron
from .neuron_factory import NEURON_KINDS, check_neuron_options, make_neuron, needs_spatial_shape, neuron_options

__all__ = ["convert_neurons", "is_lif_type"]

_SPIKINGJELLY_LIF = {"LIFNode", "ParametricLIFNode"}
_SURROGATE_NAMES = {"Sigmoid": "sigmoid", "ATan": "atan"}


def _is_spikingjelly_lif(m: nn.Module) -> bool:
    return type(m).__module__.startswith("spikingjelly") and type(m).__name__ in _SPIKINGJELLY_LIF


def is_lif_type(m: nn.Module) -> bool:
    """True for our LIF / AdaptiveLIF / STAALIF and SpikingJelly's LIFNode / ParametricLIFNode."""
    return isinstance(m, (LIF, AdaptiveLIF)) or _is_spikingjelly_lif(m)


def _inherited(old: nn.Module, kind: str) -> dict:
    """Options of ``old`` that carry over to the new neuron (threshold, reset, tau, surrogate)."""
    opts: dict = {}
    if _is_spikingjelly_lif(old):
        if getattr(old, "step_mode", "m") != "m":
            raise ValueError(
                f"{type(old).__name__} is in single-step mode; convert_neurons replaces multi-step "
                "neurons over [T, B, ...]: call spikingjelly's functional.set_step_mode(net, 'm') first"
            )
        opts["v_threshold"] = float(old.v_threshold)
        if old.v_reset is None:
            warnings.warn(
                f"{type(old).__name__} uses a soft reset; the converted neuron resets hard to 0", stacklevel=3
            )
        else:
            opts["v_reset"] = float(old.v_reset)
        if hasattr(old, "tau") and kind == "lif":
            opts["tau"] = float(old.tau)
        sg = getattr(old, "surrogate_function", None)
        if type(sg).__name__ in _SURROGATE_NAMES and hasattr(sg, "alpha"):
            opts["surrogate"] = get_surrogate(_SURROGATE_NAMES[type(sg).__name__], float(sg.alpha))
        opts["detach_reset"] = bool(getattr(old, "detach_reset", False))
    else:  # one of ours
        opts.update(v_threshold=old.v_threshold, v_reset=old.v_reset, surrogate=old.surrogate,
                    detach_reset=old.detach_reset)
        if isinstance(old, LIF) and kind == "lif":
            opts["tau"] = old.tau
    valid = set(neuron_options(kind))
    return {k: v for k, v in opts.items() if k in valid}


def _lif_neurons(model: nn.Module) -> list[tuple[str, nn.Module, int | None]]:
    """``(name, neuron, channels)`` of every LIF-type neuron, in registration order."""
    # One pre-order pass (registration order = forward order in sequential nets), so "the closest
    # preceding conv / BN / linear" is well defined even when it sits inside a sibling container.
    slots = {id(m.neuron): m.channels for m in model.modules() if isinstance(m, SpikingNeuron)}
    found: list[tuple[str, nn.Module, int | None]] = []
    last_channels: int | None = None
    for qualname, m in model.named_modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            last_channels = m.out_channels
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            last_channels = m.num_features
        elif isinstance(m, nn.Linear):
            last_channels = m.out_features
        elif is_lif_type(m):
            if qualname == "":
                raise ValueError("convert_neurons takes the network that contains the neurons, not a neuron")
            own = getattr(m, "channels", None)  # LIF() built without channels= has channels None
            found.append((qualname, m, slots.get(id(m), own if own is not None else last_channels)))
    if not found:
        raise ValueError("no LIF-type neuron found in the model (looked for LIF, AdaptiveLIF, STAALIF, spikingjelly LIFNode)")
    return found


def convert_neurons(model: nn.Module, neuron: str = "staa", *, T: int | None = None,
                    example_input: Tensor | None = None, **options) -> nn.Module:
    """Replace every LIF-type neuron of ``model`` (in place) by a ``neuron`` layer; returns ``model``.

    Works on the nets of :func:`create_model` and on multi-step conv SNNs built
    with SpikingJelly (``LIFNode(step_mode="m")`` over ``[T, B, ...]``). Each
    layer's channel count comes from the slot (our nets) or from the closest
    preceding conv / batch-norm / linear layer (other nets). Threshold, reset,
    surrogate (and ``tau`` for ``"lif"``) carry over unless given in ``options``.

    Args:
        model: the network.
        neuron: ``"staa"``, ``"adaptive"`` or ``"lif"``.
        T: steps, needed by ``"staa"`` (taken from ``model.T`` when the model has one).
        example_input: an input batch of ``model`` (e.g. ``torch.zeros(1, 3, 32, 32)``; one sample
            is enough). Needed only by options that hold a table over each layer's positions
            (``mn_shape="full"``, ``pe_shape="full"``): one forward pass, without gradients, reads
            every neuron's input shape.
        **options: neuron options (``gc``, ``tsrd_p``, ...), checked like :func:`create_model`'s.
    """
    if neuron not in NEURON_KINDS:
        raise ValueError(f"unknown neuron {neuron!r}; expected one of {sorted(NEURON_KINDS)}")
    check_neuron_options(neuron, options)
    model_T = getattr(model, "T", None)
    if T is None:
        T = model_T
    if NEURON_KINDS[neuron].needs_T and T is None:  # declared on the class (STAA-LIF)
        raise ValueError(f"convert_neurons(neuron={neuron!r}) needs T= (the number of time steps)")
    if model_T is not None and T != model_T:
        raise ValueError(f"T={T} differs from the model's T={model_T}")

    found = _lif_neurons(model)
    spatial: dict[int, dict] = {}
    if needs_spatial_shape(neuron, options):
        if example_input is None:
            full = [k for k in ("mn_shape", "pe_shape") if options.get(k) == "full"]
            raise ValueError(f"{' and '.join(f'{k}={options[k]!r}' for k in full)} gives every neuron layer a table "
                             "over its input's positions: pass example_input=, an input batch of the model")
        spatial = {id(m): {"spatial_shape": shape} for m, shape in _input_shapes(model, found, example_input).items()}
    reference = next(model.parameters(), None)
    for qualname, old, channels in found:
        if channels is None and neuron != "lif":
            raise ValueError(f"cannot infer the channel count of neuron {qualname!r}: no conv/BN/linear layer precedes it")
        new = make_neuron(neuron, channels or 1, T or 1, **{**_inherited(old, neuron), **options},
                          **spatial.get(id(old), {}))
        like = next(old.parameters(), reference)
        if like is not None:
            new = new.to(device=like.device, dtype=like.dtype)
        parent_name, _, attr = qualname.rpartition(".")
        model.get_submodule(parent_name)._modules[attr] = new
    return model



def _input_shapes(model: nn.Module, found: list, example_input: Tensor) -> dict:
    """Each found neuron's input spatial shape (``[T, B, C, *spatial]``), from one forward pass."""
    seen: dict = {}

    def note(module, args):
        seen[module] = tuple(args[0].shape[3:])

    hooks = [m.register_forward_pre_hook(note) for _, m, _ in found]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(example_input)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
        for _, m, _ in found:  # SpikingJelly's neurons keep the membrane of that pass as state
            if hasattr(m, "reset") and _is_spikingjelly_lif(m):
                m.reset()
    missing = [q for q, m, _ in found if m not in seen]
    if missing:
        raise ValueError(f"example_input did not reach neuron {missing[0]!r} ({len(missing)} of {len(found)}): "
                         "pass an input that runs through the whole model")
    return seen
