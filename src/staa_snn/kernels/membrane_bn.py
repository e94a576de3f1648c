"""BN_mp (method.md, section 11) inside the fused loops, forward and backward.

The loops work on steps ``h [B, C, S]``. BN_mp runs through ATen's own batch-norm
kernels, the ones ``nn.BatchNorm1d`` calls, so the fused loops normalise exactly
as the reference does, bit for bit:

* forward, training: ``native_batch_norm`` with this step's batch statistics over
  ``(B, S)``; it also moves the running statistics (momentum, unbiased variance),
  once per step, as ``T`` calls of the module would;
* forward, eval: the running statistics;
* backward: ``Hn`` is rebuilt from the saved per-step mean and inverse standard
  deviation ``[T, C]`` (:func:`renormalized`: one pointwise pass, no second reduction
  over the step; equal to the forward's ``Hn`` up to float rounding),
  and ``dL/dHn`` goes back through ``native_batch_norm_backward`` with those statistics.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["MembraneNorm", "fusable", "normalized", "renormalized", "grad_through_norm"]

aten = torch.ops.aten


class MembraneNorm(NamedTuple):
    """The tensors and settings of a BN_mp module as the fused loops take them."""

    weight: Tensor
    bias: Tensor
    running_mean: Tensor
    running_var: Tensor
    eps: float
    momentum: float
    training: bool

    @classmethod
    def of(cls, bn: nn.BatchNorm1d) -> "MembraneNorm":
        return cls(bn.weight, bn.bias, bn.running_mean, bn.running_var, float(bn.eps), float(bn.momentum),
                   bool(bn.training))


def fusable(bn: nn.Module) -> bool:
    """Whether the fused loops can run ``bn``: a plain ``nn.BatchNorm1d`` with affine parameters,
    running statistics and a momentum (a ``SyncBatchNorm`` conversion, or the cumulative average
    of ``momentum=None``, runs through the reference loop)."""
    return (type(bn) is nn.BatchNorm1d and bn.affine and bn.track_running_stats and bn.momentum is not None)


def normalized(h: Tensor, norm: MembraneNorm, update: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """``(Hn, mean, rstd)`` of the step ``h [B, C, S]``: in training its batch statistics (and,
    with ``update``, the running statistics moved in place), in eval the running ones."""
    if norm.training:
        running = (norm.running_mean, norm.running_var) if update else (None, None)
        return aten.native_batch_norm(h, norm.weight, norm.bias, *running, True, norm.momentum, norm.eps)
    hn = aten.native_batch_norm(h, norm.weight, norm.bias, norm.running_mean, norm.running_var, False, 0.0,
                                norm.eps)[0]
    return hn, norm.running_mean, torch.rsqrt(norm.running_var + norm.eps)


def renormalized(h: Tensor, norm: MembraneNorm, mean: Tensor, rstd: Tensor) -> Tensor:
    """``Hn`` of the step ``h [B, C, S]`` from its statistics ``(mean, rstd)`` as :func:`normalized`
    returned them: ``h alpha + beta`` per channel, ``alpha = rstd g``, ``beta = b - mean alpha``.

    For backward: one pointwise pass (fused into the backward loop when compiled) where
    :func:`normalized` would reduce over the step again. ATen normalises with its statistics in
    higher precision (and in eval with its own ``1/sqrt(var + eps)``), so the two agree to a few
    ulps: a spike can differ only where ``Hn`` is within rounding of the threshold."""
    alpha = rstd * norm.weight
    beta = norm.bias - mean * alpha
    shape = (-1,) + (1,) * (h.dim() - 2)
    return torch.addcmul(beta.view(shape), h, alpha.view(shape))


def grad_through_norm(dy: Tensor, h: Tensor, norm: MembraneNorm, mean: Tensor, rstd: Tensor
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """``(dL/dH, dL/dg, dL/db)`` from ``dy = dL/dHn`` (through the batch statistics in training)."""
    if norm.training:
        return aten.native_batch_norm_backward(dy, h, norm.weight, None, None, mean, rstd, True, norm.eps,
                                               [True, True, True])
    return aten.native_batch_norm_backward(dy, h, norm.weight, norm.running_mean, norm.running_var, None, None,
                                           False, norm.eps, [True, True, True])
