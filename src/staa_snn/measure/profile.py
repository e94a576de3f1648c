"""Operation counts, firing rates and energy of a spiking net (paper, Sec. 4.5; method.md, section 10).

Counted by intercepting every aten operation of one forward pass
(``TorchDispatchMode``), not from a table of layer sizes, so the counts follow
the nets as they change. Each multiply-accumulate operation (convolution,
``mm``/``addmm``/``bmm``/``baddbmm``: every conv and linear layer, and the
attention blocks' own matrix products) is classified by where its activation
operand came from:

- a spike tensor -- the output of a spiking neuron, or of an operation that keeps
  spikes binary (reshapes and views, padding, max-pooling, concatenation, copies)
  -- makes it accumulate-only: ``#AC += firing rate of that operand x MACs`` (a
  zero spike costs nothing, a one is an addition);
- anything else -- the encoding layer on pixels, the GC and SA blocks on real
  currents, a convolution or classifier after an *average* pool of spikes -- is
  ``#MAC += MACs``, whatever its values (an untrained net that barely fires does
  not turn its real-valued layers into AC).

``dense_macs`` is the sum of all MACs, as if every input were dense (the
paper's "FLOPs"). Everything is per sample, summed over the ``T`` steps.
Energy, 45 nm CMOS (Horowitz, 2014): ``E = 0.9 pJ x #AC + 4.6 pJ x #MAC``.
Element-wise arithmetic (membrane updates, gating, PE addition, pooling) is
not counted, as in the SNN energy literature.
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..energy import E_AC_PJ, E_MAC_PJ, energy_mj
from ..models import SpikingNeuron
from ..neurons import MultiStepNeuron

aten = torch.ops.aten


def _conv(args, out):
    x, w = args[0], args[1]
    # weight [C_out, C_in/groups, k...]; transposed: [C_in, C_out/groups, k...]
    transposed = bool(args[6]) if len(args) > 6 else False
    per_element = w.shape[1] * math.prod(w.shape[2:])
    return (x.numel() if transposed else out.numel()) * per_element, (x,)


def _mm(args, out):
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * b.shape[1], (a, b)


def _addmm(args, out):
    return _mm(args[1:], out)


def _bmm(args, out):
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], (a, b)


def _baddbmm(args, out):
    return _bmm(args[1:], out)


_COUNTERS = {
    aten.convolution: _conv, aten._convolution: _conv,
    aten.mm: _mm, aten.addmm: _addmm, aten.bmm: _bmm, aten.baddbmm: _baddbmm,
}

# Operations whose output is a spike tensor when their (first) input is one: they move, copy,
# select, pad with zeros or take maxima of 0/1 values. Average pooling and arithmetic are not here.
_KEEPS_SPIKES = {
    aten.view, aten._unsafe_view, aten.reshape, aten._reshape_alias, aten.alias, aten.expand, aten.permute,
    aten.transpose, aten.t, aten.squeeze, aten.unsqueeze, aten.flatten, aten.unflatten, aten.clone,
    aten.contiguous, aten._to_copy, aten.detach, aten.lift_fresh, aten.slice, aten.select, aten.index_select,
    aten.narrow, aten.as_strided, aten.repeat, aten.constant_pad_nd, aten.max_pool1d, aten.max_pool2d,
    aten.max_pool3d, aten.max_pool2d_with_indices, aten.max_pool3d_with_indices, aten.split, aten.split_with_sizes,
    aten.chunk, aten.unbind, aten.pixel_shuffle, aten.pixel_unshuffle,
}
_JOINS_SPIKES = {aten.cat, aten.stack}  # spikes when every input is


@dataclass
class OpRecord:
    module: str
    op: str
    macs: int
    rate: "float | torch.Tensor | None"  # firing rate of the spike operand (per sample: [B]); None: no spike operand


class _SpikeTensors:
    """The spike tensors of one forward, by identity (a weak reference guards against reused ids)."""

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref] = {}

    def add(self, value) -> None:
        for t in tree_flatten(value)[0]:
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self._refs[id(t)] = weakref.ref(t)

    def __contains__(self, t) -> bool:
        ref = self._refs.get(id(t))
        return ref is not None and ref() is t


def is_spiking_module(module: nn.Module) -> bool:
    """A module whose output is a spike tensor: one of this package's neurons or neuron slots, or
    a SpikingJelly neuron (``...Node``)."""
    if isinstance(module, (MultiStepNeuron, SpikingNeuron)):
        return True
    cls = type(module)
    return cls.__module__.startswith("spikingjelly") and cls.__name__.endswith("Node")


class _Counter(TorchDispatchMode):
    def __init__(self, where: list[str], spikes: _SpikeTensors, per_sample: int | None = None):
        super().__init__()
        self.where = where
        self.spikes = spikes
        self.per_sample = per_sample  # the batch size: rates per sample, on the device (no read-back)
        self.records: list[OpRecord] = []

    def _rate(self, t: torch.Tensor):
        b = self.per_sample
        if b is None:
            return float(t.float().mean())
        if t.dim() >= 1 and t.shape[0] == b:
            return t.detach().float().reshape(b, -1).mean(1)
        return t.detach().float().mean().expand(b)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet = func.overloadpacket
        if packet in _KEEPS_SPIKES:
            if args and args[0] in self.spikes:
                self.spikes.add(out[0] if packet in (aten.max_pool2d_with_indices, aten.max_pool3d_with_indices)
                                else out)
        elif packet in _JOINS_SPIKES:
            if args and args[0] and all(t in self.spikes for t in args[0]):
                self.spikes.add(out)
        count = _COUNTERS.get(packet)
        if count is not None:
            macs, operands = count(args, out)
            rates = [self._rate(t) for t in operands if t in self.spikes]
            rate = None if not rates else min(rates) if self.per_sample is None else torch.stack(rates).amin(0)
            self.records.append(OpRecord(self.where[-1] if self.where else "", packet.__name__, int(macs), rate))
        return out


@dataclass
class ProfileReport:
    """Per-sample counts over the ``T`` steps (see the module docstring)."""

    params: int
    dense_macs: float
    ac: float
    mac: float
    energy_mj: float
    firing_rates: dict[str, float]
    samples: int
    layers: list[dict] = field(default_factory=list)  # per (module, op, kind): dense macs, counted, input rate
    e_ac_pj: float = E_AC_PJ
    e_mac_pj: float = E_MAC_PJ

    def to_dict(self) -> dict:
        return {"params": self.params, "dense_macs": self.dense_macs, "ac": self.ac, "mac": self.mac,
                "energy_mj": self.energy_mj, "e_ac_pj": self.e_ac_pj, "e_mac_pj": self.e_mac_pj,
                "samples": self.samples, "firing_rates": self.firing_rates, "layers": self.layers}

    def table(self, layers: bool = True) -> str:
        g = 1e9
        lines = [f"parameters           {self.params / 1e6:10.3f} M",
                 f"dense MACs (T steps) {self.dense_macs / g:10.4f} G",
                 f"#AC  (spike inputs)  {self.ac / g:10.4f} G  x {self.e_ac_pj} pJ",
                 f"#MAC (real inputs)   {self.mac / g:10.4f} G  x {self.e_mac_pj} pJ",
                 f"energy               {self.energy_mj:10.4f} mJ per sample",
                 f"mean firing rate     {_mean(self.firing_rates.values()):10.4f}  over {len(self.firing_rates)} "
                 f"neuron layers"]
        if layers and self.layers:
            lines += ["", f"{'layer':<40} {'op':<12} {'kind':<4} {'dense MACs':>12} {'in rate':>8} {'counted':>12}"]
            for r in self.layers:
                rate = "-" if r["rate"] is None else f"{r['rate']:.4f}"
                lines.append(f"{r['module'][:40]:<40} {r['op']:<12} {r['kind']:<4} {r['macs']:>12,.0f} "
                             f"{rate:>8} {r['counted']:>12,.0f}")
        if self.firing_rates:
            lines += ["", f"{'neuron layer':<40} {'firing rate':>11}"]
            lines += [f"{k[:40]:<40} {v:>11.4f}" for k, v in self.firing_rates.items()]
        return "\n".join(lines)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def firing_rates(model: nn.Module) -> dict[str, float]:
    """Each neuron layer's ``last_firing_rate`` from the last forward, by module name."""
    rates = OrderedDict()
    for name, m in model.named_modules():
        rate = getattr(m, "last_firing_rate", None)
        if isinstance(rate, torch.Tensor):
            rates[name] = float(rate)
    return rates


def _batch_size(inputs: torch.Tensor, time_first: bool) -> int:
    """The number of samples: dim 1 of a time-first ``[T, B, ...]`` input, else dim 0."""
    if time_first:
        if inputs.dim() < 3:
            raise ValueError(f"time_first=True expects an input [T, B, ...], got shape {tuple(inputs.shape)}")
        return inputs.shape[1]
    return inputs.shape[0]


def _takes_time_first(model: nn.Module) -> bool:
    import inspect

    try:
        return "time_first" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


@torch.no_grad()
def count_operations(model: nn.Module, inputs: torch.Tensor, *, time_first: bool = False,
                     spike_sources: tuple[type, ...] = (), run=None,
                     per_sample: int | None = None) -> tuple[list[OpRecord], dict[str, float]]:
    """Run one forward of ``model`` in eval mode, recording every multiply-accumulate
    operation (with the module it ran in, and the firing rate of its spike operand) and every
    neuron layer's firing rate. ``spike_sources``: further module types whose outputs are spikes
    (besides :func:`is_spiking_module`). Our neurons run on the reference backend while counting,
    so the counts are the method's operations (method.md), not those of a fast path (the fused
    STAA kernel, for one, pools GAP and the GC context in one ``bmm``).

    ``run``: a function to call instead of ``model(inputs)`` (e.g. one ``net.step``, whose result
    the caller keeps). ``per_sample``: the batch size, to record each operation's spike rate
    per sample (a ``[B]`` tensor) instead of over the batch."""
    where: list[str] = []
    spikes = _SpikeTensors()

    def enter(name):
        def hook(module, args):
            where.append(name)
        return hook

    observed: OrderedDict[str, float] = OrderedDict()  # firing rates of spiking layers that record none

    def leave(name):
        def hook(module, args, out):
            where.pop()
            if is_spiking_module(module) or isinstance(module, spike_sources):
                spikes.add(out)
                if not hasattr(module, "last_firing_rate") and isinstance(out, torch.Tensor) and \
                        not isinstance(module, SpikingNeuron):
                    observed[name] = float(out.float().mean())
        return hook

    hooks = []
    for name, m in model.named_modules():
        hooks.append(m.register_forward_pre_hook(enter(name)))
        hooks.append(m.register_forward_hook(leave(name)))
    was_training = model.training
    backends = {m: m.backend for m in model.modules() if isinstance(m, MultiStepNeuron)}
    model.eval()
    try:
        for m in backends:
            m.backend = "reference"
        with _Counter(where, spikes, per_sample) as counter:
            if run is not None:
                run()
            elif time_first and _takes_time_first(model):
                model(inputs, time_first=True)
            else:  # a net of [T, B, ...] inputs of its own (SpikingJelly's multi-step nets) takes them as they are
                model(inputs)
    finally:
        for h in hooks:
            h.remove()
        for m, backend in backends.items():
            m.backend = backend
        model.train(was_training)
    return counter.records, {**firing_rates(model), **observed}


def profile_model(model: nn.Module, inputs, *, time_first: bool = False, e_ac_pj: float = E_AC_PJ,
                  e_mac_pj: float = E_MAC_PJ, spike_sources: tuple[type, ...] = ()) -> ProfileReport:
    """Parameters, dense MACs, #AC, #MAC, energy and firing rates per sample.

    ``inputs``: one batch the model accepts, or an iterable of batches
    (counts are then summed and divided by the total number of samples;
    firing rates are sample-weighted means). ``time_first``: the inputs are ``[T, B, ...]``
    (an event batch for our nets; any input of a multi-step net of another library, such as
    SpikingJelly's, which takes it as it is): the batch is dim 1. ``spike_sources``: module types
    of your own whose outputs are spikes (this package's neurons and SpikingJelly's are known;
    a layer without ``last_firing_rate`` gets its rate from its output).

    >>> from staa_snn.models import create_model
    >>> net = create_model("vgg_small", num_classes=10, T=2, in_channels=1)
    >>> r = profile_model(net, torch.rand(4, 1, 8, 8))
    >>> r.params == sum(p.numel() for p in net.parameters()), r.ac + r.mac <= r.dense_macs
    (True, True)
    """
    batches = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    if not batches:
        raise ValueError("profile_model needs at least one input batch")
    per_layer: OrderedDict[tuple[str, str, bool], dict] = OrderedDict()
    rate_sums: OrderedDict[str, float] = OrderedDict()
    samples = 0
    for x in batches:
        b = _batch_size(x, time_first)
        records, rates = count_operations(model, x, time_first=time_first, spike_sources=spike_sources)
        for r in records:
            spike = r.rate is not None
            entry = per_layer.setdefault((r.module, r.op, spike), {
                "module": r.module, "op": r.op, "kind": "AC" if spike else "MAC", "macs": 0.0, "counted": 0.0})
            entry["macs"] += r.macs
            entry["counted"] += r.rate * r.macs if spike else r.macs
        for k, v in rates.items():
            rate_sums[k] = rate_sums.get(k, 0.0) + v * b
        samples += b
    layers = []
    for e in per_layer.values():
        rate = e["counted"] / e["macs"] if e["kind"] == "AC" and e["macs"] else None
        layers.append({**e, "macs": e["macs"] / samples, "counted": e["counted"] / samples, "rate": rate})
    dense = sum(e["macs"] for e in layers)
    ac = sum(e["counted"] for e in layers if e["kind"] == "AC")
    mac = sum(e["counted"] for e in layers if e["kind"] == "MAC")
    return ProfileReport(
        params=sum(p.numel() for p in model.parameters()),
        dense_macs=dense, ac=ac, mac=mac, energy_mj=energy_mj(ac, mac, e_ac_pj, e_mac_pj),
        firing_rates={k: v / samples for k, v in rate_sums.items()}, samples=samples, layers=layers,
        e_ac_pj=e_ac_pj, e_mac_pj=e_mac_pj)
