"""The training losses (``optim.loss``: :data:`LOSSES`) and the check of a ``loss_fn`` of one's own."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "LossFn", "check_loss", "loss_name", "mean_logits_loss", "soft_cross_entropy", "tet_loss"]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mean_logits_loss(steps: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``optim.loss=mean_logits``: the cross-entropy of the logits averaged over the steps (the
    readout the paper trains and evaluates). ``steps [T, B, K]``, ``targets [B, K]`` probabilities."""
    return soft_cross_entropy(steps.mean(0), targets)


def tet_loss(steps: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``optim.loss=tet``: the mean over steps of each step's cross-entropy (TET, Deng et al. 2022,
    without its optional MSE term), so that every step is trained to classify on its own: what
    early exit over steps wants. ``steps [T, B, K]``, ``targets [B, K]`` probabilities."""
    log_p = F.log_softmax(steps.float(), dim=-1)
    return -(targets * log_p).sum(-1).mean()


LOSSES = {"mean_logits": mean_logits_loss, "tet": tet_loss}


def loss_name(fn) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def check_loss(loss, fn) -> None:
    """A ``loss_fn`` result must be a 0-d floating tensor with a gradient (shape and flags only: no sync)."""
    ok = isinstance(loss, torch.Tensor) and loss.dim() == 0 and loss.is_floating_point() and loss.requires_grad
    if not ok:
        got = (f"a tensor of shape {tuple(loss.shape)}, {loss.dtype}, requires_grad={loss.requires_grad}"
               if isinstance(loss, torch.Tensor) else type(loss).__name__)
        raise TypeError(f"loss_fn {loss_name(fn)} must return a 0-d floating tensor that requires grad "
                        f"(a loss of the logits it was given), got {got}")
