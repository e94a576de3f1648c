"""The STAA-LIF neuron (method.md, sections 4-8; Eq. 11-14)."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .._validation import check_positive_int
from ..functional.gc import gc_context, gc_value
from ..functional.staa import staa_lif_multistep, staa_lif_step
from ..functional.surrogate import Surrogate
from ..functional.tsrd import TSRD_MODES, check_tsrd_p, dropped_input, dropped_shift, tsrd_drop_mask
from ..kernels.gc_fused import GCWeights, gc_context_fused
from ..kernels.staa_compiled import staa_lif_multistep_compiled
from ..kernels.staa_fused import staa_lif_multistep_fused
from .adaptive import AdaptiveLIF, _check_spatial
from .base import register_neuron
from .blocks import PE_KINDS, GlobalContext, PositionEncoding, StepAttention, step_rows

__all__ = ["STAALIF", "PE_POSITIONS"]

PE_POSITIONS = ("input", "post_gc", "membrane", "both")


def _check_choices(pe: "str | None", pe_position: str, tsrd_mode: str) -> "str | None":
    """The PE kind (``"none"`` read as ``None``), its position and the TSRD mode, each one of its list."""
    if pe == "none":
        pe = None
    if pe is not None and pe not in PE_KINDS:
        raise ValueError(f"unknown pe {pe!r}; expected one of {PE_KINDS} or None")
    if pe_position not in PE_POSITIONS:
        raise ValueError(f"unknown pe_position {pe_position!r}; expected one of {PE_POSITIONS}")
    if tsrd_mode not in TSRD_MODES:
        raise ValueError(f"unknown tsrd_mode {tsrd_mode!r}; expected one of {TSRD_MODES}")
    return pe


@register_neuron("staa")
class STAALIF(AdaptiveLIF):
    """Adaptive LIF with the spatial-temporal attention aggregator (Eq. 13-14)::

        H[t] = SA( M (.) V[t-1],  N (.) GC( X[t] + P[t] ) ),   S = 1(H >= V_th),   V = H (1 - S)

    and Time-Step Random Dropout in training. At initialisation (PE zero, GC's
    value-up conv zero, SA's last layer zero, ``sa_lambda = 2``) it computes
    exactly the :class:`AdaptiveLIF`, which computes exactly the :class:`LIF`.

    PE and GC run on all ``T`` steps in one batched call on ``[T*B, C, ...]``;
    only SA and the membrane update run inside the loop over steps. With the
    default shapes (channel-shaped PE and ``M, N``, GC fusion ``"add"``, no PE at
    the membrane) the augmented input is ``X + b`` with ``b`` one value per (step,
    sample, channel), and the ``"fused"`` backend runs the step loop as one autograd
    node with a hand-written backward (:mod:`staa_snn.kernels.staa_fused`) that
    never forms ``X + P`` or ``X^``; other shapes take the general path.

    Args:
        channels: ``C`` (dim 2 of the input).
        T: the number of steps the layer is built for; other inputs are refused.
        gc: use the Global Context block (Eq. 7-10).
        pe: ``"learnable"`` (default, zero-initialised), ``"fixed"`` (sinusoidal, times ``pe_scale``)
            or ``None``/``"none"``.
        pe_scale: the scale of the fixed encoding (default 0.1: a perturbation of the input current,
            not a shift next to the threshold).
        sa: use Step Attention (Eq. 12).
        tsrd_p: TSRD drop probability in ``[0, 1]`` (default 0.1; 0 switches it off; at 1 every
            training step is basic).
        gc_ratio: GC bottleneck ratio ``r`` (default 4).
        sa_ratio: SA reduction ratio ``r_sa`` (default 16).
        sa_lambda: SA scale ``lambda`` (default 2: gates start at 1).
        gc_fusion: ``"add"`` (``X + v``, default) or ``"scale"`` (``X * 2 sigmoid(v)``).
        sa_gate: ``"sigmoid"`` (default) or ``"softmax"`` over the two terms.
        pe_position: ``"input"`` (default: before GC), ``"post_gc"``, ``"membrane"`` (added to ``H``),
            or ``"both"`` (input and membrane, two separate encodings).
        pe_shape: ``"channel"`` (``[T, C, 1, 1]``, default) or ``"full"`` (``[T, C, H, W]``).
        tsrd_mode: ``"batch"`` (one draw per layer and step, default) or ``"sample"``.
        recompute: with SA on, keep only the loop's inputs for backward and run the step loop
            again there (``True``), or keep the membrane potentials ``H`` as well (``False``: one
            more activation-sized tensor per layer, about 1.4x the activation memory of the same
            net with ReLU instead of 1.03x, and a few percent faster). Same numbers. ``None``
            (default): ``False`` with ``backend="compiled"``, chosen for speed, ``True`` otherwise.
            On the general path (shapes the fused kernel does not cover) it is activation
            checkpointing (``False`` keeps every intermediate); not used there with
            ``backend="compiled"``, where AOTAutograd's partitioner decides what to keep.
        backend: ``"fused"`` (default), ``"compiled"`` (the fused loops through ``torch.compile``;
            for the other shapes, the whole SA step loop) or ``"reference"``; see :class:`LIF`.
        mn_shape, spatial_shape, tau, decay_input, v_threshold, v_reset, surrogate, detach_reset:
            as in :class:`AdaptiveLIF`.
        mpbn: BN_mp of the charged potential (after SA, before the Heaviside; it also applies at
            TSRD-dropped steps). ``neuron_preset``: ``"spec"`` or ``"mpbn"`` (``M = 0.25``, ``N = 1``,
            ``V_th = 0.5``, tanh surrogate, BN_mp on), as in :class:`LIF`.

    Attributes:
        last_firing_rate: mean output spike rate of the last forward.
        last_sa_gates: ``[T, B, 2, C]`` gates applied to ``(history, input)`` in the last forward
            (1 at steps without SA), or ``None`` when SA is off.
    """

    needs_T = True
    resumable_options = frozenset({"tsrd_p", "tsrd_mode"})  # the dropout of training, not a parameter
    records = ("last_firing_rate", "last_sa_gates")
    blocks = (PositionEncoding, GlobalContext, StepAttention)

    @classmethod
    def needs_spatial_shape(cls, options: dict) -> bool:
        """``mn_shape="full"``, or a position encoding over ``[T, C, H, W]`` (``pe_shape="full"``)."""
        pe_full = options.get("pe_shape") == "full" and options.get("pe", "learnable") not in (None, "none")
        return super().needs_spatial_shape(options) or pe_full

    def __init__(
        self,
        channels: int,
        T: int,
        *,
        gc: bool = True,
        pe: "str | None" = "learnable",
        pe_scale: float = 0.1,
        sa: bool = True,
        tsrd_p: float = 0.1,
        gc_ratio: float = 4,
        sa_ratio: float = 16,
        sa_lambda: float = 2.0,
        gc_fusion: str = "add",
        sa_gate: str = "sigmoid",
        pe_position: str = "input",
        pe_shape: str = "channel",
        tsrd_mode: str = "batch",
        mn_shape: str = "channel",
        spatial_shape: "tuple[int, ...] | None" = None,
        tau: float | None = None,
        v_threshold: float | None = None,
        v_reset: float = 0.0,
        surrogate: "str | Surrogate | None" = None,
        detach_reset: bool = False,
        backend: str = "fused",
        recompute: bool | None = None,
        decay_input: bool | None = None,
        mpbn: bool | None = None,
        neuron_preset: str = "spec",
    ) -> None:
        check_positive_int("T", T)
        pe = _check_choices(pe, pe_position, tsrd_mode)
        pe_full = pe is not None and pe_shape == "full"
        super().__init__(
            channels, tau=tau, mn_shape=mn_shape,
            spatial_shape=spatial_shape if (mn_shape == "full" or pe_full) else None,
            v_threshold=v_threshold, v_reset=v_reset, surrogate=surrogate, detach_reset=detach_reset,
            backend=backend, decay_input=decay_input, mpbn=mpbn, neuron_preset=neuron_preset,
        )
        if pe_full:  # the input's spatial shape is fixed by the PE table as well
            self.spatial_shape = _check_spatial(spatial_shape, True, "pe_shape")
        self.T = T
        self.tsrd_p = check_tsrd_p(tsrd_p)
        self.tsrd_mode = tsrd_mode
        self.pe_position = pe_position
        pe_args = dict(kind=pe, shape=pe_shape, spatial_shape=self.spatial_shape, scale=pe_scale)
        self.pe = PositionEncoding(T, channels, **pe_args) if pe and pe_position != "membrane" else None
        self.pe_membrane = (
            PositionEncoding(T, channels, **pe_args) if pe and pe_position in ("membrane", "both") else None
        )
        self.gc = GlobalContext(channels, ratio=gc_ratio, fusion=gc_fusion) if gc else None
        self.sa = StepAttention(channels, ratio=sa_ratio, sa_lambda=sa_lambda, gate=sa_gate) if sa else None
        self.recompute_option = None if recompute is None else bool(recompute)
        self.last_sa_gates: Tensor | None = None

    @property
    def recompute(self) -> bool:
        """Whether backward rebuilds ``H`` (see the ``recompute`` argument; ``None`` follows the backend)."""
        return self.backend != "compiled" if self.recompute_option is None else self.recompute_option

    def _check_input(self, x: Tensor, step: bool = False) -> None:
        super()._check_input(x, step)
        if not step and x.shape[0] != self.T:
            raise ValueError(
                f"{type(self).__name__} was built for T={self.T} steps but the input has "
                f"{x.shape[0]} steps (shape {tuple(x.shape)}; time is dim 0)"
            )

    def augment(self, x: Tensor, t: int | None = None) -> Tensor:
        """``X^ = GC(X + P)`` for all steps at once (PE placement as configured); with ``t``,
        for the one step ``x [1, B, C, ...]`` at index ``t``."""
        x_hat = x
        if self.pe is not None and self.pe_position in ("input", "both"):
            x_hat = self.pe(x_hat, t)
        if self.gc is not None:
            x_hat = self.gc(x_hat.flatten(0, 1)).view_as(x)
        if self.pe is not None and self.pe_position == "post_gc":
            x_hat = self.pe(x_hat, t)
        return x_hat

    @property
    def input_is_shifted(self) -> bool:
        """Whether ``X^ = X + b`` with one value per (step, sample, channel): channel-shaped PE
        before or after GC, GC fusion ``"add"``, no PE at the membrane (the default)."""
        return (
            self.pe_membrane is None
            and (self.pe is None or self.pe.shape == "channel")
            and (self.gc is None or self.gc.fusion == "add")
        )

    def input_shift(self, x: Tensor) -> Tensor:
        """``b [T, B, C]`` with ``X^ = GC(X + P) = X + b`` (see :attr:`input_is_shifted`).

        The context of ``X + P`` is the context of ``X`` plus ``P`` (``functional.gc.gc_context``),
        so ``X + P`` is never formed.
        """
        T, B, C = x.shape[:3]
        p = self.pe.p.view(T, 1, C) if self.pe is not None else None
        if self.gc is None:
            return p.expand(T, B, C) if p is not None else x.new_zeros(T, B, C)
        gc = self.gc
        context_fn = gc_context if self.backend == "reference" else gc_context_fused
        context = context_fn(x.flatten(0, 1), gc.key.weight, gc.key.bias).view(T, B, C)
        if p is not None and self.pe_position == "input":
            context = context + p
        value = gc_value(context, gc.down.weight, gc.down.bias, gc.norm.weight, gc.norm.bias, gc.up.weight,
                         gc.up.bias, gc.norm.eps)
        return value + p if p is not None else value

    @property
    def path(self) -> str:
        """The computation ``forward`` runs, chosen here and nowhere else (same numbers on every path,
        tested forward and backward against ``"reference"``):

        ============  ==========================================================  ==============================
        path          when                                                        what runs
        ============  ==========================================================  ==============================
        fused         backend fused or compiled, SA on, ``X^ = X + b``             ``kernels.staa_fused``: one
                      (:attr:`input_is_shifted`), ``M, N`` not full, BN_mp          autograd node, hand-written
                      absent or a plain unfolded BatchNorm                        backward (compiled: its loops
                                                                                  through ``torch.compile``)
        adaptive      SA off, no PE at the membrane, backend not reference         the adaptive-LIF kernel on
                                                                                  ``X^`` (``X`` at dropped steps)
        compiled      backend compiled, any other shape                           ``kernels.staa_compiled``: the
                                                                                  reference loop, compiled
        reference     otherwise (backend reference; a folded BN_mp; other          ``functional.staa_lif_multistep``
                      shapes on the fused backend)                                (checkpointed with ``recompute``)
        ============  ==========================================================  ==============================
        """
        if self.fast and self.mn_shape != "full" and self.input_is_shifted and self.sa is not None:
            return "fused"
        if self.sa is None and self.pe_membrane is None and self.backend != "reference":
            return "adaptive"
        if self.backend == "compiled" and self.fast:
            return "compiled"
        return "reference"

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        m, n = self.coefficients(x)
        drop = None
        if self.training and self.tsrd_p > 0:
            drop = tsrd_drop_mask(self.T, x.shape[1], self.tsrd_p, mode=self.tsrd_mode, device=x.device)
        path = self.path
        if path == "fused":
            sa, gc = self.sa, self.gc
            gc_weights = None if gc is None else GCWeights(
                gc.key.weight, gc.key.bias, gc.down.weight, gc.down.bias, gc.norm.weight, gc.norm.bias,
                gc.up.weight, gc.up.bias)
            spikes, gates, rate = staa_lif_multistep_fused(
                x, m, n, sa.fc1.weight, sa.fc1.bias, sa.fc2.weight, sa.fc2.bias,
                sa_lambda=sa.sa_lambda, gate=sa.gate, v_threshold=self.v_threshold, v_reset=self.v_reset,
                surrogate=self.surrogate, gc=gc_weights, ln_eps=gc.norm.eps if gc is not None else 1e-5,
                pe=self.pe.p.view(self.T, -1) if self.pe is not None else None, pe_input=self.pe_position == "input",
                drop=drop, detach_reset=self.detach_reset, recompute=self.recompute and torch.is_grad_enabled(),
                compiled=self.backend == "compiled", bn=self.bn_mp,
            )
            self._record(spikes, rate)
            self.last_sa_gates = gates
            return spikes
        if path == "adaptive":
            # Without SA the update is the adaptive LIF on X^ (on X at TSRD-dropped steps).
            if self.input_is_shifted:
                shift = self.input_shift(x)
                if drop is not None:
                    shift = dropped_shift(shift, ~drop)
                x_hat = x + shift.view(shift.shape + (1,) * (x.dim() - 3))
            else:
                x_hat = self.augment(x)
                if drop is not None:
                    x_hat = dropped_input(x, x_hat, drop)
            self.last_sa_gates = None
            return self._multistep(x_hat, m, n)  # (recorded)
        x_hat = self.augment(x)
        v_threshold, normalize = self.firing()
        loop = partial(
            staa_lif_multistep,
            v_threshold=v_threshold,
            v_reset=self.v_reset,
            surrogate=self.surrogate,
            sa_gates=self.sa,
            membrane_pe=self.pe_membrane.table(x) if self.pe_membrane is not None else None,
            drop=drop,
            detach_reset=self.detach_reset,
            normalize=normalize,
        )
        if path == "compiled":  # the compiler picks what to recompute
            spikes, _, gates = staa_lif_multistep_compiled(x, x_hat, m, n, **loop.keywords)
        elif self.recompute and torch.is_grad_enabled() and not (self.bn_mp is not None and self.training):
            # (with BN_mp in training a recomputation would move its running statistics twice)
            spikes, _, gates = checkpoint(loop, x, x_hat, m, n, use_reentrant=False)
        else:
            spikes, _, gates = loop(x, x_hat, m, n)
        self._record(spikes)
        self.last_sa_gates = gates
        return spikes

    def _step(self, x: Tensor, v: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """:func:`~staa_snn.functional.staa_lif_step` at step ``t``: PE's row ``t``, GC of this step,
        SA; in training, TSRD draws this step's mask."""
        x1 = x.unsqueeze(0)
        m, n = self.coefficients(x1)
        drop = None
        if self.training and self.tsrd_p > 0:
            drop = tsrd_drop_mask(1, x.shape[0], self.tsrd_p, mode=self.tsrd_mode, device=x.device)[0]
        v_threshold, normalize = self.firing()
        spikes, v, gates = staa_lif_step(
            v, x, self.augment(x1, t)[0], m, n, v_threshold=v_threshold, v_reset=self.v_reset,
            surrogate=self.surrogate, sa_gates=self.sa, drop=drop, detach_reset=self.detach_reset,
            normalize=normalize,
            membrane_pe=step_rows(self.pe_membrane.table(x1), t)[0] if self.pe_membrane is not None else None)
        self.last_sa_gates = None if gates is None else gates.unsqueeze(0)
        return spikes, v

    def reset(self) -> None:
        super().reset()
        self.last_sa_gates = None

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, T={self.T}, pe_position={self.pe_position!r}, tsrd_p={self.tsrd_p:g}, "
            f"tsrd_mode={self.tsrd_mode!r}, mn_shape={self.mn_shape!r}, "
            + super(AdaptiveLIF, self).extra_repr()
        )
