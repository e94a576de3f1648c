"""The base of every spiking net: input encoding, time folding and readout."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor, nn

from .._validation import check_positive_int
from ..kernels.spike_storage import binary_saved_tensors
from .layers import SpikingNeuron
from .memory import run_segments, segment_count
from .stream import StreamState, run_step

__all__ = ["SpikingNet", "time_major"]


def time_major(x: Tensor, T: int, time_first: bool = False) -> Tensor:
    """The one encoding of inputs over time, ``[T, B, ...]``: a static batch ``[B, C, H, W]`` shown
    on each of the ``T`` steps (a view, nothing copied), an event batch ``[B, T, ...]`` with its
    time axis first (``[T, B, ...]`` as it is with ``time_first``). Shapes are checked by the callers
    (:meth:`SpikingNet.encode`, :func:`staa_snn.measure.steps.step_inputs`)."""
    if x.dim() == 4:
        return x.unsqueeze(0).expand(T, *x.shape)
    return x if time_first else x.transpose(0, 1)


class SpikingNet(nn.Module):
    """A spiking classifier over ``T`` steps.

    Subclasses build ``self.features`` (``[T*B, C, H, W]`` -> ``[T*B, F]``) and
    ``self.classifier`` (``[T*B, F]`` -> ``[T*B, classes]``).

    Inputs accepted by :meth:`forward` and :meth:`forward_steps`:

    * a static batch ``[B, C, H, W]``: direct encoding, the image on every step;
    * an event batch ``[B, T, C, H, W]`` (the data loaders' layout, the default for
      5-D input), or ``[T, B, C, H, W]`` with ``time_first=True``.

    ``forward`` returns the logits averaged over the steps, ``[B, classes]``;
    ``forward_steps`` the per-step logits ``[T, B, classes]``. Neurons start from
    rest on every call, so two forwards in ``eval()`` give the same output.

    Step mode (:mod:`.stream`), for inputs that arrive one step at a time::

        state = net.init_state(batch)
        for x_t in frames:                       # [B, C, H, W] each (a static image: the same each step)
            logits_t, state = net.step(x_t, state)
        state.mean_logits                        # == net(x) after T steps

    In ``eval()``, ``logits_t`` equals ``forward_steps(x)[t]``.

    Training memory (:mod:`.memory`, ``train.memory``): ``net.set_memory("checkpoint")`` keeps
    only each neuron segment's input for backward and recomputes the rest there: a second
    forward's time for a fraction of the memory, with the same gradients.
    """

    memory = "none"  # "checkpoint": set_memory
    memory_segments: int | None = None  # checkpoint the first k neuron segments; None: all

    def __init__(self, T: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.T = check_positive_int("T", T)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.features: nn.Module
        self.classifier: nn.Module

    def encode(self, x: Tensor, time_first: bool = False) -> Tensor:
        """Bring an input batch to the folded ``[T*B, C, H, W]`` layout, checking its shape."""
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a tensor, got {type(x).__name__}")
        if x.dim() == 4:
            if x.shape[1] != self.in_channels:
                raise ValueError(
                    f"expected a static batch [B, {self.in_channels}, H, W], got shape {tuple(x.shape)}"
                )
            return time_major(x, self.T).flatten(0, 1)
        if x.dim() == 5:
            layout, shape = ("[T, B, C, H, W]" if time_first else "[B, T, C, H, W]"), tuple(x.shape)
            x = time_major(x, self.T, time_first)
            if x.shape[0] != self.T:
                raise ValueError(
                    f"model built for T={self.T} steps got an event batch {layout} with {x.shape[0]} steps (shape {shape})"
                )
            if x.shape[2] != self.in_channels:
                raise ValueError(f"expected {self.in_channels} input channels in {layout}, got shape {shape}")
            return x.flatten(0, 1)
        raise ValueError(
            f"expected a static batch [B, C, H, W] or an event batch [B, T, C, H, W] "
            f"(or [T, B, C, H, W] with time_first=True), got a tensor of rank {x.dim()}, shape {tuple(x.shape)}"
        )

    def forward_steps(self, x: Tensor, time_first: bool = False) -> Tensor:
        """Per-step logits ``[T, B, num_classes]``."""
        folded = self.encode(x, time_first)
        # Training, eagerly: spikes saved for backward are kept as bool (exact). Not without autograd
        # (nothing is saved), nor under torch.compile / export, where AOTAutograd decides what to save.
        storage = binary_saved_tensors() if torch.is_grad_enabled() and not torch.compiler.is_compiling() \
            else nullcontext()
        checkpointed = self.memory == "checkpoint" and self.training and torch.is_grad_enabled()
        with storage:
            features = run_segments(self.features, folded, self.memory_segments) if checkpointed \
                else self.features(folded)
            logits = self.classifier(torch.flatten(features, 1))
        return logits.unflatten(0, (self.T, -1))

    def set_memory(self, mode: str, segments: int | None = None) -> "SpikingNet":
        """``"none"`` (every activation kept for backward) or ``"checkpoint"`` (neuron segments
        recomputed in backward, in training: all of them, or the first ``segments``; see
        :mod:`.memory`). Returns the net."""
        if mode not in ("none", "checkpoint"):
            raise ValueError(f"memory must be 'none' or 'checkpoint', got {mode!r}")
        if mode == "checkpoint":
            count = segment_count(self.features)  # a clear error now, not at the first step
            if segments is not None and not (isinstance(segments, int) and 0 <= segments <= count):
                raise ValueError(f"segments must be a whole number from 0 to {count} (this net's neuron segments) "
                                 f"or None (all), got {segments!r}")
        self.memory, self.memory_segments = mode, segments if mode == "checkpoint" else None
        return self

    def init_state(self, batch: int | None = None) -> StreamState:
        """The state at rest for :meth:`step` (``batch``: checked against the first step's batch)."""
        return StreamState(0, None if batch is None else check_positive_int("batch", batch))

    def step(self, x: Tensor, state: StreamState) -> tuple[Tensor, StreamState]:
        """One step: ``(logits [B, num_classes], new state)`` from this step's input ``x [B, C, H, W]``.

        Runs in ``eval()`` only: in training, BatchNorm normalises over all ``T`` steps of a batch
        together, which one step cannot do. A STAA net is built for ``T`` steps and refuses step
        ``t >= T``; a LIF net streams on."""
        if self.training:
            raise RuntimeError(f"{type(self).__name__}.step runs in eval() (BatchNorm in training normalises over "
                               "all T steps at once); call net.eval() first")
        if not isinstance(state, StreamState):
            raise TypeError(f"state must be the StreamState of net.init_state() or of the last net.step(), "
                            f"got {type(state).__name__}")
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            got = f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"net.step expects one step [B, {self.in_channels}, H, W], got {got}")
        if state.batch is not None and x.shape[0] != state.batch:
            raise ValueError(f"the state holds a batch of {state.batch} but this step's input has {x.shape[0]} "
                             f"(shape {tuple(x.shape)}): start a new state with net.init_state({x.shape[0]})")
        names = {m: n for n, m in self.named_modules() if isinstance(m, SpikingNeuron)}
        return run_step(x, state, names, lambda x: self.classifier(torch.flatten(self.features(x), 1)))

    def forward(self, x: Tensor, time_first: bool = False, per_step: bool = False) -> Tensor:
        """Logits averaged over the steps, ``[B, num_classes]`` (``per_step``: ``[T, B, num_classes]``,
        as :meth:`forward_steps`, through ``forward`` so that wrappers such as DDP see the call)."""
        steps = self.forward_steps(x, time_first)
        return steps if per_step else steps.mean(0)
