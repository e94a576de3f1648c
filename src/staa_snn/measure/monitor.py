"""Record what neurons do at each step: spikes, membrane potentials and, for STAA-LIF, the SA gates.

::

    with Monitor(net) as mon:              # every neuron layer, every step, means only
        net(x)
    mon.mean("features.2.neuron", "spikes")   # [T]: the firing rate at each step
    mon.mean("features.2.neuron", "v")        # [T]: the mean membrane potential V[t] (after reset)
    mon.mean("features.2.neuron", "sa_gates") # [T, 2]: the mean SA gates on (history, input)

While a monitor is open, each monitored neuron runs its ``forward`` as a loop of its own
``step`` (the update rule every backend computes, :mod:`staa_snn.neurons.base`), so the same
values are seen on any backend, in ``eval()`` and in training (gradients flow as usual; TSRD
then draws its mask step by step). Memory stays bounded: by default only per-step sums are
kept (``[T]`` numbers per layer and quantity, whatever the batch or the number of forwards);
``full=True`` also keeps the tensors, detached, for the chosen ``layers`` and ``steps``.
``last_firing_rate`` stays the cheap path for one number per layer.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor, nn

from ..neurons import MultiStepNeuron, recorded

__all__ = ["Monitor", "QUANTITIES"]

QUANTITIES = ("spikes", "v", "sa_gates")


def _step_index(t) -> int:
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        raise ValueError(f"steps holds step indices, ints >= 0, got {t!r}")
    return t


class Monitor:
    """A context manager that records, per neuron layer and step, the spikes, ``V[t]`` and the
    SA gates (STAA-LIF with SA).

    Args:
        model: a net or a single neuron.
        layers: module names to record (``None``: every :class:`MultiStepNeuron`); see :attr:`layers`.
        steps: step indices to record (``None``: all).
        full: also keep the full tensors (``[steps, B, ...]`` per forward, detached, on the
            device they were computed on); otherwise only per-step means.
    """

    def __init__(self, model: nn.Module, layers=None, steps=None, *, full: bool = False) -> None:
        neurons = {name: m for name, m in model.named_modules() if isinstance(m, MultiStepNeuron)}
        if not neurons:
            raise ValueError(f"{type(model).__name__} has no staa_snn neuron layer to monitor")
        if layers is None:
            layers = list(neurons)
        elif isinstance(layers, str):
            layers = [layers]
        missing = [name for name in layers if name not in neurons]
        if missing:
            raise ValueError(f"no neuron layer named {', '.join(map(repr, missing))}; the neuron layers are: "
                             f"{', '.join(neurons)}")
        self.layers: list[str] = list(layers)
        self.steps = None if steps is None else sorted({_step_index(t) for t in
                                                         ([steps] if isinstance(steps, int) else steps)})
        if self.steps is not None and not self.steps:
            raise ValueError("steps=[] records nothing: give step indices (from 0), or None for every step")
        T = getattr(model, "T", None)
        if self.steps is not None and isinstance(T, int) and self.steps[-1] >= T:
            raise ValueError(f"steps {self.steps} reach beyond the {T} steps of {type(model).__name__} "
                             f"(step indices count from 0, so at most {T - 1})")
        self.full = bool(full)
        self._neurons = {name: neurons[name] for name in self.layers}
        self._sums: dict = defaultdict(dict)     # layer -> quantity -> {t: (sum, count)}
        self._tensors: dict = defaultdict(lambda: defaultdict(list))  # layer -> quantity -> [tensor per forward]
        self._open = False

    # -- context -------------------------------------------------------------------
    def __enter__(self) -> "Monitor":
        if self._open:
            raise RuntimeError("this Monitor is open already")
        for name, neuron in self._neurons.items():
            if "forward" in vars(neuron):
                raise RuntimeError(f"{name} is monitored by another Monitor already")
            neuron.forward = self._stepped(name, neuron)
        self._open = True
        return self

    def __exit__(self, *exc) -> None:
        for neuron in self._neurons.values():
            vars(neuron).pop("forward", None)
        self._open = False

    def _recorded(self, t: int) -> bool:
        return self.steps is None or t in self.steps

    def _stepped(self, name: str, neuron: MultiStepNeuron):
        def forward(x: Tensor) -> Tensor:
            neuron._check_input(x)
            v, spikes, gates, kept = None, [], [], defaultdict(list)
            for t in range(x.shape[0]):
                s, v = neuron.step(x[t], v, t)
                # what the neuron declares it records: SA gates [1, B, 2, C] of this step (None with SA off)
                g = recorded(neuron, "last_sa_gates")
                spikes.append(s)
                if g is not None:
                    gates.append(g[0])
                if self._recorded(t):
                    values = {"spikes": s, "v": v, **({"sa_gates": g[0]} if g is not None else {})}
                    for q, value in values.items():
                        value = value.detach()
                        self._add(name, q, t, value)
                        if self.full:
                            kept[q].append(value)
            for q, values in kept.items():
                self._tensors[name][q].append(torch.stack(values))
            out = torch.stack(spikes)
            neuron._record(out)
            if gates:
                neuron.last_sa_gates = torch.stack(gates)
            return out
        return forward

    def _add(self, name: str, quantity: str, t: int, value: Tensor) -> None:
        # SA gates: the mean over the batch and channels of each term, [2]; others: one number
        mean = value.transpose(0, 1).flatten(1).double().sum(1) if quantity == "sa_gates" else value.double().sum()
        count = value.numel() // 2 if quantity == "sa_gates" else value.numel()
        sums = self._sums[name].setdefault(quantity, {})
        total, n = sums.get(t, (0.0, 0))
        sums[t] = (total + mean, n + count)

    # -- results -------------------------------------------------------------------
    def recorded_steps(self, layer: str) -> list[int]:
        """The steps recorded for ``layer`` so far."""
        self._check(layer, "spikes")
        return sorted(self._sums[layer].get("spikes", {}))

    def mean(self, layer: str, quantity: str) -> Tensor:
        """Per recorded step, the mean over every forward, sample and unit: ``[steps]``
        (``sa_gates``: ``[steps, 2]``, on history and input)."""
        self._check(layer, quantity)
        sums = self._sums[layer].get(quantity)
        if not sums:
            what = "no SA (not a STAA-LIF with sa=True)" if quantity == "sa_gates" else \
                "no forward ran while the Monitor was open (it records forward passes, not net.step)"
            raise ValueError(f"nothing recorded for {layer} {quantity}: {what}")
        return torch.stack([torch.as_tensor(s / n) for s, n in (sums[t] for t in sorted(sums))]).float()

    def tensors(self, layer: str, quantity: str) -> list[Tensor]:
        """With ``full=True``: one ``[steps, B, ...]`` tensor per forward (``sa_gates``: ``[steps, B, 2, C]``)."""
        self._check(layer, quantity)
        if not self.full:
            raise ValueError("this Monitor keeps means only: open it with full=True to keep the tensors")
        return list(self._tensors[layer].get(quantity, []))

    def _check(self, layer: str, quantity: str) -> None:
        if layer not in self._neurons:
            raise ValueError(f"{layer!r} is not monitored; monitored layers: {', '.join(self.layers)}")
        if quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {quantity!r}; expected one of {QUANTITIES}")
