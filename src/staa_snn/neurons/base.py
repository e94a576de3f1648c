"""The contract every multi-step neuron follows.

* Input and output are time-first: ``[T, B, F]`` or ``[T, B, C, H, W]``.
* Each ``forward`` runs a whole sequence, starting from ``V[0] = V_reset``, so
  there is no hidden state to forget to reset between batches.
* :meth:`MultiStepNeuron.step` runs one step, with the state passed in and
  returned (``spikes, v = neuron.step(x_t, v, t)``; ``v = None`` at rest): the same
  update rule as ``forward``'s reference loop, for streaming. Iterating it over
  ``t = 0..T-1`` gives ``forward``'s spikes, on every backend.
* After each forward, ``last_firing_rate`` holds the mean spike rate of the
  output (a detached 0-d tensor), for analysis without hooks.
* ``neuron_preset`` (``"spec"`` or ``"mpbn"``, :mod:`.presets`) fills the
  threshold, surrogate, ``mpbn`` (and ``tau``, ``decay_input``) left at ``None``.
* ``mpbn=True`` adds BN_mp (method.md, section 11): an ``nn.BatchNorm1d(channels)``
  of the charged potential before the Heaviside, one module reused at every
  step; :meth:`MultiStepNeuron.fold_membrane_bn` turns it into per-channel
  thresholds for inference.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor, nn

from .._validation import check_positive_int
from ..functional.lif import lif_multistep, lif_step
from ..functional.mpbn import fold_thresholds, folded_fire_input, membrane_batch_norm
from ..functional.surrogate import Surrogate, get_surrogate
from ..kernels import compile_unsupported
from ..kernels.lif_fused import lif_multistep_fused
from ..kernels.membrane_bn import fusable
from .presets import get_preset

__all__ = ["MultiStepNeuron", "BACKENDS", "NEURONS", "block_types", "recorded", "register_neuron"]

BACKENDS = ("fused", "compiled", "reference")

NEURONS: dict[str, type["MultiStepNeuron"]] = {}  # kind name -> class, filled by @register_neuron


def register_neuron(kind: str):
    """Declare a neuron class under ``kind`` (``model.neuron=kind``, ``create_model(neuron=kind)``).

    What the rest of the package needs to know of a neuron is declared on its class, here and
    nowhere else: ``needs_T`` (built for ``T`` steps: the factory passes ``T``, ``step`` refuses
    ``t >= T``), ``resumable_options`` (its options a resumed run may change: they change
    training, not the parameters), ``records`` (what each forward leaves on the module; read it
    with :func:`recorded`), ``blocks`` (the types of its parameter-holding blocks, which the
    trainer's ``optim.block_lr_scale`` groups: :func:`block_types`) and
    :meth:`~MultiStepNeuron.needs_spatial_shape` (which options size a table by the input's
    ``(H, W)``)."""
    def add(cls):
        if kind in NEURONS and NEURONS[kind] is not cls:
            raise ValueError(f"neuron kind {kind!r} is taken by {NEURONS[kind].__name__}")
        cls.kind = kind
        NEURONS[kind] = cls
        return cls
    return add


def recorded(module: nn.Module, what: str):
    """What the last forward left on a neuron under ``what`` (one of its class's ``records``, e.g.
    ``"last_sa_gates"``); ``None`` for a module that does not record it."""
    return getattr(module, what, None) if what in getattr(module, "records", ()) else None


def block_types() -> tuple[type[nn.Module], ...]:
    """The parameter-holding block types of every registered neuron kind (their ``blocks``)."""
    return tuple(dict.fromkeys(t for cls in NEURONS.values() for t in cls.blocks))


def _check_finite(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class MultiStepNeuron(nn.Module):
    """Base class: threshold, reset value, surrogate, BN_mp and the input checks."""

    kind: str = ""                               # set by @register_neuron
    needs_T: bool = False                        # built for T steps (tables per step)
    resumable_options: frozenset[str] = frozenset()  # options a resume may change
    records: tuple[str, ...] = ("last_firing_rate",)  # what each forward leaves on the module
    blocks: tuple[type[nn.Module], ...] = ()     # parameter-holding blocks (optim.block_lr_scale's groups)

    @classmethod
    def needs_spatial_shape(cls, options: dict) -> bool:
        """Whether ``options`` give the neuron a table over its input's ``(H, W)``."""
        return False

    def __init__(
        self,
        *,
        v_threshold: float | None = None,
        v_reset: float = 0.0,
        surrogate: "str | Surrogate | None" = None,
        detach_reset: bool = False,
        backend: str = "fused",
        channels: int | None = None,
        mpbn: bool | None = None,
        neuron_preset: str = "spec",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        if backend == "compiled" and (problem := compile_unsupported()):
            raise ValueError(problem)
        self.backend = backend
        self.neuron_preset = neuron_preset
        chosen = get_preset(neuron_preset).fill(v_threshold=v_threshold, surrogate=surrogate, mpbn=mpbn)
        v_threshold, surrogate, mpbn = chosen["v_threshold"], chosen["surrogate"], chosen["mpbn"]
        self.v_threshold = _check_finite("v_threshold", v_threshold)
        if self.v_threshold <= 0:
            raise ValueError(f"v_threshold must be positive, got {v_threshold!r}")
        self.v_reset = _check_finite("v_reset", v_reset)
        if self.v_reset >= self.v_threshold:
            raise ValueError(f"v_reset ({v_reset}) must be below v_threshold ({v_threshold})")
        self.surrogate = get_surrogate(surrogate)
        self.detach_reset = bool(detach_reset)
        self.channels = None if channels is None else check_positive_int("channels", channels)
        if mpbn and self.channels is None:
            raise ValueError(f"{type(self).__name__}(mpbn=True) needs channels= (BN_mp keeps statistics per channel)")
        # BN_mp over [B, C, L] views of each step, so one module serves [T, B, F] and [T, B, C, H, W]
        self.bn_mp: nn.Module | None = nn.BatchNorm1d(self.channels) if mpbn else None
        # set by fold_membrane_bn(): fire where sign (H - threshold) >= 0
        self.register_buffer("fold_threshold", None)
        self.register_buffer("fold_sign", None)
        self.last_firing_rate: Tensor | None = None

    @property
    def mpbn(self) -> bool:
        """Whether the neuron normalises its potential before firing (BN_mp, or its fold)."""
        return self.bn_mp is not None or self.fold_threshold is not None

    def fold_membrane_bn(self) -> None:
        """Replace BN_mp by per-channel thresholds (method.md, section 11): in ``eval()`` the
        neuron fires exactly where it did, without normalising. A folded neuron computes
        eval-mode spikes only; its gradients (for Grad-CAM and the like) use the surrogate
        on ``H``, not on the normalised potential."""
        bn = self.bn_mp
        if bn is None:
            raise ValueError(f"{type(self).__name__} has no BN_mp to fold (mpbn=False, or folded already)")
        if bn.running_mean is None:
            raise ValueError("BN_mp without running statistics cannot be folded into thresholds")
        threshold, sign = fold_thresholds(self.v_threshold, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                          bn.eps)
        self.bn_mp = None
        self.fold_threshold, self.fold_sign = threshold, sign

    def _check_input(self, x: Tensor, step: bool = False) -> None:
        """Checks of a time-first input (``step``: a one-step ``[1, B, ...]`` view of ``step``'s input)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__} expects a tensor, got {type(x).__name__}")
        if x.dim() not in (3, 5):
            raise ValueError(
                f"{type(self).__name__} expects a time-first input [T, B, F] or [T, B, C, H, W], "
                f"got a tensor of rank {x.dim()} with shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects a floating-point input, got {x.dtype}")
        if self.channels is not None and x.shape[2] != self.channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.channels} channels but the input has "
                f"{x.shape[2]} (shape {tuple(x.shape)}; channels are dim 2 of [T, B, C, ...])"
            )

    def firing(self) -> "tuple[float, object]":
        """``(V_th, normalize)`` for the reference loops: spikes where ``normalize(H) >= V_th``
        (``normalize`` is ``None`` without BN_mp)."""
        if self.fold_threshold is not None:
            if self.training:
                raise RuntimeError(f"{type(self).__name__}: a folded MPBN neuron computes eval-mode spikes only; "
                                   "call .eval() (or train the unfolded model)")
            return 0.0, partial(folded_fire_input, threshold=self.fold_threshold, sign=self.fold_sign)
        if self.bn_mp is not None:
            return self.v_threshold, partial(membrane_batch_norm, bn=self.bn_mp)
        return self.v_threshold, None

    @property
    def fast(self) -> bool:
        """Whether the fused kernels run this neuron (``backend`` fused or compiled, and BN_mp, if
        any, a plain unfolded ``BatchNorm1d``; otherwise the reference loop)."""
        return self.backend != "reference" and self.fold_threshold is None and (
            self.bn_mp is None or fusable(self.bn_mp))

    def _multistep(self, x: Tensor, m: "Tensor | float", n: "Tensor | float") -> Tensor:
        """Spikes of the (adaptive) LIF recurrence from rest, by the chosen backend (recorded)."""
        kwargs = dict(v_reset=self.v_reset, surrogate=self.surrogate, detach_reset=self.detach_reset)
        if self.fast:
            spikes, rate = lif_multistep_fused(x, m, n, v_threshold=self.v_threshold,
                                               compiled=self.backend == "compiled", bn=self.bn_mp, **kwargs)
            self._record(spikes, rate)
            return spikes
        v_threshold, normalize = self.firing()
        spikes = lif_multistep(x, m, n, v_threshold=v_threshold, normalize=normalize, **kwargs)[0]
        self._record(spikes)
        return spikes

    def coefficients(self, x: Tensor) -> "tuple[Tensor | float, Tensor | float]":
        """``(M, N)`` of the charge (Eq. 6) for the time-first input ``x``, broadcastable to one step."""
        raise NotImplementedError

    # -- step mode -----------------------------------------------------------------

    def init_state(self, x: Tensor) -> Tensor:
        """The state at rest for one step's input ``x [B, C, ...]``: ``V = V_reset``."""
        return torch.full_like(x, self.v_reset)

    def step(self, x: Tensor, v: Tensor | None, t: int) -> tuple[Tensor, Tensor]:
        """One step: ``(spikes, V[t])`` from this step's input ``x [B, F]`` or ``[B, C, H, W]``,
        ``V[t-1]`` (``None``: at rest) and the step's index ``t`` (from 0).

        The update rule of ``forward``'s reference loop, whatever the backend (one step has
        nothing to fuse over time): ``forward(x_seq)`` equals the spikes of ``step`` at
        ``t = 0..T-1``. Gradients flow through ``v``, so a stepped sequence trains as ``forward``
        does. ``last_firing_rate`` holds this step's rate."""
        self._check_step(x, v, t)
        spikes, v = self._step(x, self.init_state(x) if v is None else v, t)
        self._record(spikes)
        return spikes, v

    def _step(self, x: Tensor, v: Tensor, t: int) -> tuple[Tensor, Tensor]:
        m, n = self.coefficients(x.unsqueeze(0))
        v_threshold, normalize = self.firing()
        s, v, _ = lif_step(v, x, m, n, v_threshold=v_threshold, v_reset=self.v_reset, surrogate=self.surrogate,
                           detach_reset=self.detach_reset, normalize=normalize)
        return s, v

    def _check_step(self, x: Tensor, v: Tensor | None, t: int) -> None:
        name = type(self).__name__
        if not isinstance(x, Tensor) or x.dim() not in (2, 4):
            got = f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name}.step expects one step [B, F] or [B, C, H, W] (no time dim), got {got}")
        self._check_input(x.unsqueeze(0), step=True)
        traced = isinstance(t, Tensor) and t.dim() == 0 and not t.is_floating_point()  # an exported step's input
        if not traced and (isinstance(t, bool) or not isinstance(t, int) or t < 0):
            raise ValueError(f"{name}.step: t must be the step's index, an int >= 0, got {t!r}")
        if not traced and self.needs_T and t >= self.T:
            raise ValueError(f"{name} was built for T={self.T} steps (a position encoding per step): "
                             f"step t={t} is beyond it (t counts from 0, so at most {self.T - 1})")
        if v is not None and (not isinstance(v, Tensor) or v.shape != x.shape):
            got = f"shape {tuple(v.shape)}" if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(f"{name}.step: the state must be V[t-1] of the input's shape {tuple(x.shape)} "
                             f"(or None at rest), got {got}")

    def _record(self, spikes: Tensor, rate: Tensor | None = None) -> None:
        """Keep the firing rate of this forward (``rate`` when the kernel computed it)."""
        self.last_firing_rate = (spikes.detach().float().mean() if rate is None else rate.detach()).float()

    def reset(self) -> None:
        """Forget the recorded statistics. (State never carries over between forwards.)"""
        self.last_firing_rate = None

    def extra_repr(self) -> str:
        parts = [f"v_threshold={self.v_threshold:g}", f"v_reset={self.v_reset:g}", f"surrogate={self.surrogate!r}"]
        if self.neuron_preset != "spec":
            parts.append(f"neuron_preset={self.neuron_preset!r}")
        if self.fold_threshold is not None:
            parts.append("mpbn folded into thresholds")
        if self.detach_reset:
            parts.append("detach_reset=True")
        if self.backend != "fused":
            parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)
