"""Step mode for whole nets: feed one step at a time, keep the state between calls.

``state = net.init_state(batch)``, then ``logits_t, state = net.step(x_t, state)`` for
``t = 0, 1, ...``. The stateless layers (conv, BN, pooling, the classifier) run on the one
step; each neuron slot runs its neuron's :meth:`~staa_snn.neurons.base.MultiStepNeuron.step`
with the membrane potential it left in ``state``. In ``eval()`` a net is causal, so the
logits of step ``t`` equal ``net.forward_steps(x)[t]``: the step mode is the same net, fed
as the frames arrive (tested for every neuron, preset and backend).

A :class:`StreamState` is never changed in place: ``step`` returns a new one, so a state can
be kept and continued twice (e.g. to compare two continuations of one prefix).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["StreamState", "stepping"]


@dataclass(frozen=True)
class StreamState:
    """The state of a net fed step by step.

    Attributes:
        t: the number of steps taken (the next step's index).
        batch: the batch size the state was made for (``None``: set by the first step).
        neurons: ``V[t-1]`` of every neuron slot, by the slot's module name (absent: at rest).
        logit_sum: the sum of the per-step logits so far, ``[B, K]`` (``None`` before the first step).
    """

    t: int = 0
    batch: int | None = None
    neurons: dict[str, Tensor] = field(default_factory=dict)
    logit_sum: Tensor | None = None

    def select(self, index: Tensor) -> "StreamState":
        """The state of some samples only (``index``: a bool mask or indices over the batch), e.g.
        those that have not exited yet."""
        if self.batch is not None and isinstance(index, Tensor) and index.dtype == torch.bool and \
                index.shape != (self.batch,):
            raise ValueError(f"select takes a mask of the batch's {self.batch} samples, got shape {tuple(index.shape)}")
        neurons = {k: v[index] for k, v in self.neurons.items()}
        logit_sum = None if self.logit_sum is None else self.logit_sum[index]
        batch = None if logit_sum is None else logit_sum.shape[0]
        return StreamState(self.t, batch, neurons, logit_sum)

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.neurons.items()}
        return f"StreamState(t={self.t}, batch={self.batch}, neurons={shapes})"

    @property
    def mean_logits(self) -> Tensor:
        """The logits averaged over the steps so far, ``[B, K]``: what ``forward`` returns after ``T`` steps."""
        if self.logit_sum is None:
            raise ValueError("no step taken yet: call net.step(x_t, state) first")
        return self.logit_sum / self.t


class _Step:
    """One ``net.step`` call in progress: the slots read their state here and leave the new one."""

    def __init__(self, state: StreamState, names: dict[nn.Module, str]) -> None:
        self.state, self.names = state, names
        self.new: dict[str, Tensor] = dict(state.neurons)

    def run(self, slot: nn.Module, x: Tensor) -> Tensor:
        neuron = slot.neuron
        if not callable(getattr(neuron, "step", None)):
            raise TypeError(f"{type(neuron).__name__} (in {self.names[slot]}) has no step mode: net.step needs "
                            "neurons with step(x, v, t), as staa_snn.neurons' have")
        name = self.names[slot]
        spikes, self.new[name] = neuron.step(x, self.state.neurons.get(name), self.state.t)
        return spikes


_ACTIVE: ContextVar[_Step | None] = ContextVar("staa_snn_step", default=None)


def stepping() -> _Step | None:
    """The ``net.step`` call in progress, or ``None`` (the slots then run whole sequences)."""
    return _ACTIVE.get()


def run_step(x: Tensor, state: StreamState, names: dict[nn.Module, str], body) -> tuple[Tensor, StreamState]:
    """``body(x)`` with every slot in ``names`` stepping from ``state``: ``(logits, new state)``."""
    call = _Step(state, names)
    token = _ACTIVE.set(call)
    try:
        logits = body(x)
    finally:
        _ACTIVE.reset(token)
    total = logits if state.logit_sum is None else state.logit_sum + logits
    return logits, StreamState(state.t + 1, x.shape[0], call.new, total)
