"""BN_mp (method.md, section 11) inside the fused loops, forward and backward.

The loops work on steps ``h [B, C, S]``. At each step BN_mp is an affine map per
channel, ``Hn = a H + c``, with

    training:  mean, var = the batch statistics of this step over (B, S);  rstd = 1 / sqrt(var + eps)
    eval:      mean, var = the running statistics
    a = g rstd,   c = b - mean a

so the forward pass costs one extra pass per step (and two reductions in
training). Backward, from ``dy = dL/dHn`` (``xc = H - mean``, ``n = B S``)::

    dL/db = sum dy,   dL/dg = rstd sum(dy xc)
    dL/dH = a dy                                            (eval: the statistics are constants)
    dL/dH = a dy - (a / n) dL/db - (a rstd / n) dL/dg xc    (training: through the batch statistics)

The running statistics move once per step, after the forward loop, exactly as
``T`` calls of ``nn.BatchNorm1d`` would move them (unbiased variance).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["MembraneNorm", "fusable", "step_statistics", "affine", "grad_through_norm", "update_running_stats"]


class MembraneNorm(NamedTuple):
    """The tensors of a BN_mp module as the fused loops take them (plain tensors)."""

    weight: Tensor
    bias: Tensor
    running_mean: Tensor
    running_var: Tensor
    eps: float
    training: bool

    @classmethod
    def of(cls, bn: nn.BatchNorm1d, dtype: torch.dtype) -> "MembraneNorm":
        """Weight and bias as given (autograd inputs of the node), statistics cast to ``dtype``."""
        return cls(bn.weight, bn.bias, bn.running_mean.to(dtype), bn.running_var.to(dtype), float(bn.eps),
                   bool(bn.training))


def fusable(bn: nn.Module) -> bool:
    """Whether the fused loops can run ``bn``: a plain ``nn.BatchNorm1d`` with affine parameters
    and running statistics (a ``SyncBatchNorm`` conversion runs through the reference loop)."""
    return type(bn) is nn.BatchNorm1d and bn.affine and bn.track_running_stats


def step_statistics(h: Tensor, norm: MembraneNorm) -> tuple[Tensor, Tensor, Tensor]:
    """``(mean, var, rstd)`` per channel, ``[C]`` each, for the step ``h [B, C, S]``."""
    if norm.training:
        var, mean = torch.var_mean(h, dim=(0, 2), correction=0)
    else:
        mean, var = norm.running_mean, norm.running_var
    return mean, var, torch.rsqrt(var + norm.eps)


def affine(weight: Tensor, bias: Tensor, mean: Tensor, rstd: Tensor) -> tuple[Tensor, Tensor]:
    """``(a, c)``, ``[C, 1]`` each, with ``Hn = a H + c``."""
    a = weight * rstd
    return a.unsqueeze(-1), (bias - mean * a).unsqueeze(-1)


def grad_through_norm(dy: Tensor, h: Tensor, a: Tensor, mean: Tensor, rstd: Tensor, training: bool
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """``(dL/dH [B, C, S], dL/dg [C], dL/db [C])`` from ``dy = dL/dHn`` (see the module docstring)."""
    xc = h - mean.unsqueeze(-1)
    grad_bias = dy.sum((0, 2))
    grad_weight = rstd * torch.linalg.vecdot(dy, xc).sum(0)
    grad_h = dy * a
    if training:
        count = h.shape[0] * h.shape[2]
        grad_h.addcmul_(xc, a * (rstd * grad_weight).unsqueeze(-1), value=-1.0 / count)
        grad_h.sub_(a * grad_bias.unsqueeze(-1) / count)
    return grad_h, grad_weight, grad_bias


@torch.no_grad()
def update_running_stats(bn: nn.BatchNorm1d, means: Tensor, variances: Tensor, count: int) -> None:
    """Move ``bn``'s running statistics once per step from the steps' batch statistics
    (``[T, C]``, biased variances over ``count`` values), as ``T`` calls of ``bn`` would."""
    if count < 2:
        raise ValueError(f"BN_mp needs more than one value per channel in training, got {count} "
                         "(batch size x spatial positions); use a larger batch")
    unbiased = variances * (count / (count - 1))
    for mean, var in zip(means, unbiased):
        bn.num_batches_tracked.add_(1)
        # momentum None: the cumulative average, as nn.BatchNorm (one host read of the counter)
        momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        bn.running_mean.mul_(1 - momentum).add_(mean.to(bn.running_mean.dtype), alpha=momentum)
        bn.running_var.mul_(1 - momentum).add_(var.to(bn.running_var.dtype), alpha=momentum)
