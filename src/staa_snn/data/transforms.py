"""Per-dataset transforms of the training recipes (docs/models.md).

torchvision's v2 transforms where it has them (crop, flip, AutoAugment,
random-resized crop); :class:`Cutout` and the event-frame transforms are
written here because torchvision has no equivalent. Every recipe takes
``augment=False`` to get only the deterministic part (tensor conversion and
normalisation; nothing at all for event frames, which stay raw counts).
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from ..errors import DataError

# Per-channel mean / std of the training sets (the values the field uses).
NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class Cutout(torch.nn.Module):
    """Zero a ``length x length`` square at a uniformly random centre, clipped
    at the borders (DeVries & Taylor, 2017). Applied after normalisation, as
    in the original, so the hole is the dataset mean. Works on ``[..., H, W]``."""

    def __init__(self, length: int = 16):
        super().__init__()
        if length < 1:
            raise DataError(f"Cutout length must be >= 1, got {length}")
        self.length = length

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        cy = int(torch.randint(h, ()))
        cx = int(torch.randint(w, ()))
        half = self.length // 2
        y0, y1 = max(cy - half, 0), min(cy + half, h)
        x0, x1 = max(cx - half, 0), min(cx + half, w)
        img = img.clone()
        img[..., y0:y1, x0:x1] = 0
        return img

    def extra_repr(self) -> str:
        return f"length={self.length}"


class RandomFlipFrames(torch.nn.Module):
    """Flip event frames ``[T, C, H, W]`` left-right with probability ``p``
    (the same flip on every step of a sample)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) < self.p:
            return frames.flip(-1)
        return frames


class RandomRollFrames(torch.nn.Module):
    """Translate event frames ``[T, C, H, W]`` by a random integer offset in
    ``[-max_shift, max_shift]`` along each of H and W, wrapping around
    (``torch.roll``, the translation of the DVS recipes); one offset per sample."""

    def __init__(self, max_shift: int):
        super().__init__()
        if max_shift < 0:
            raise DataError(f"max_shift must be >= 0, got {max_shift}")
        self.max_shift = max_shift

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if self.max_shift == 0:
            return frames
        dy, dx = (int(s) for s in torch.randint(-self.max_shift, self.max_shift + 1, (2,)))
        return frames.roll(shifts=(dy, dx), dims=(-2, -1))

    def extra_repr(self) -> str:
        return f"max_shift={self.max_shift}"


RECIPES = ("auto", "cifar", "imagenet")


def stats(name: str | None, mean=None, std=None) -> tuple[tuple, tuple]:
    """``(mean, std)``: the given ones, or ``name``'s (ImageNet's for an image folder or ``None``)."""
    default = NORMALIZATION.get(name or "imagenet", NORMALIZATION["imagenet"])
    return tuple(mean or default[0]), tuple(std or default[1])
SMALL_IMAGE = 64  # recipe="auto": images of at most this many pixels a side get the CIFAR recipe


class FitSize(torch.nn.Module):
    """An image ``[..., H, W]`` at ``size x size``: as it is when it already is, otherwise its
    shorter side resized to ``size`` and the centre cropped (never stretched)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.ops = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])

    def forward(self, img):
        h, w = v2.functional.get_size(img)
        return img if (h, w) == (self.size, self.size) else self.ops(img)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def cifar_transform(name: str | None, train: bool, augment: bool, size: int = 32, *, autoaugment: bool | None = None,
                    cutout: int | None = None, mean=None, std=None, from_pil: bool = False) -> v2.Compose:
    """The CIFAR recipe: random crop ``size`` with padding ``size // 8``, h-flip, AutoAugment
    (CIFAR-10 policy), normalise, Cutout ``size // 2`` -- on uint8 ``[3, H, W]`` tensors, or on
    PIL images (``from_pil``, image folders of small images, brought to ``size`` by :class:`FitSize`).

    ``autoaugment`` (default on) and ``cutout`` (a length; default ``size // 2``, 0: off) switch
    the two heavy augmentations; ``mean``, ``std`` default to ``NORMALIZATION[name]``."""
    mean, std = stats(name, mean, std)
    cutout = size // 2 if cutout is None else int(cutout)
    ops: list = [v2.ToImage(), FitSize(size)] if from_pil else ([v2.Resize(size, antialias=True)] if size != 32 else [])
    if train and augment:
        ops += [v2.RandomCrop(size, padding=max(1, size // 8)), v2.RandomHorizontalFlip()]
        if autoaugment is None or autoaugment:
            ops.append(v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    if train and augment and cutout > 0:
        ops.append(Cutout(cutout))
    return v2.Compose(ops)


def imagenet_transform(train: bool, augment: bool, size: int = 224, *, mean=None, std=None) -> v2.Compose:
    """ImageNet: random-resized crop + h-flip for training; resize to
    ``size * 256/224`` and centre-crop for evaluation (and for training with
    augmentation off). ``mean``, ``std`` default to ImageNet's."""
    mean, std = stats("imagenet", mean, std)
    if train and augment:
        ops = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
    else:
        ops = [v2.Resize(round(size * 256 / 224), antialias=True), v2.CenterCrop(size)]
    return v2.Compose([v2.ToImage(), *ops, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def dvs_transform(train: bool, augment: bool, size: int, *, flip: bool = True) -> v2.Compose | None:
    """DVS: random h-flip (``flip``; off for digits, N-MNIST) and random roll of the frames (up to
    5 px at 48x48, scaled with the resolution). ``None`` (raw counts) without augmentation."""
    if not (train and augment):
        return None
    roll = RandomRollFrames(max(1, round(5 * size / 48)))
    return v2.Compose([RandomFlipFrames(), roll] if flip else [roll])


def digits_transform(train: bool, augment: bool, size: int) -> v2.Compose | None:
    """Digits: a random translation of up to ``size // 8`` pixels (zero padded)."""
    if not (train and augment):
        return None
    return v2.Compose([v2.RandomCrop(size, padding=max(1, size // 8))])
