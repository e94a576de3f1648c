"""Mixup and CutMix on batches, with soft targets.

torchvision's ``v2.MixUp`` / ``v2.CutMix`` accept only 4-D image batches;
these work on any ``[B, ..., H, W]`` batch, so on event batches
``[B, T, 2, H, W]`` too (the same mix on every time step of a sample, as the
DVS recipes do). Partners are the batch reversed (timm's pairing), so one
draw of ``lambda`` serves the whole batch.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError


class Mix(NamedTuple):
    """How a batch was mixed: ``lam`` of each sample's label, ``1 - lam`` of its partner's."""

    labels: torch.Tensor
    partners: torch.Tensor
    lam: float


class MixupCutmix:
    """Mix a batch with probability ``prob``; when both are enabled, CutMix is
    picked with probability ``switch_prob``, else Mixup.

    Returns ``(x, targets)``, ``targets`` a ``[B, num_classes]`` float tensor
    (with ``label_smoothing`` applied to the one-hot labels before mixing).
    ``lambda ~ Beta(alpha, alpha)``; for CutMix it is corrected to the exact
    share of the kept area after clipping the box at the borders.
    """

    def __init__(self, num_classes: int | None = None, *, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 prob: float = 1.0, switch_prob: float = 0.5, label_smoothing: float = 0.0):
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise DataError(f"alphas must be >= 0, got mixup_alpha={mixup_alpha}, cutmix_alpha={cutmix_alpha}")
        if not 0.0 <= prob <= 1.0 or not 0.0 <= switch_prob <= 1.0:
            raise DataError(f"prob and switch_prob must be in [0, 1], got {prob}, {switch_prob}")
        self.num_classes = num_classes
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        self.switch_prob = switch_prob
        self.label_smoothing = label_smoothing

    @property
    def enabled(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def mix(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, Mix]:
        """Mix the inputs: ``(x, mix)`` where ``mix`` says how to mix the targets
        (:meth:`targets`). ``rng``: where the draws come from (default: a generator
        seeded from torch's); the trainer passes one seeded by (seed, epoch, step)."""
        if not self.enabled:
            return x, Mix(y, y, 1.0)
        if rng is None:
            rng = np.random.default_rng(int(torch.randint(2**62, ())))
        if rng.random() >= self.prob:
            return x, Mix(y, y, 1.0)
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        partner = x.flip(0)
        if use_cutmix:
            h, w = x.shape[-2:]
            cut = (1.0 - lam) ** 0.5
            ch, cw = int(h * cut), int(w * cut)
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            x = x.clone()
            x[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
        else:
            x = lam * x + (1.0 - lam) * partner
        return x, Mix(y, y.flip(0), lam)

    def targets(self, mix: Mix, num_classes: int | None = None) -> torch.Tensor:
        """Soft targets ``[B, num_classes]``: ``lam`` of the (smoothed) labels, the rest of the partners'."""
        k = num_classes or self.num_classes
        off = self.label_smoothing / k
        one_hot = (lambda labels: F.one_hot(labels, k).float() * (1.0 - self.label_smoothing) + off)
        target = one_hot(mix.labels)
        return target if mix.lam == 1.0 else mix.lam * target + (1.0 - mix.lam) * one_hot(mix.partners)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        xm, mix = self.mix(x, y, rng)
        return xm, self.targets(mix)
