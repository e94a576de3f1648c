"""One image file as the nets take it: 8-bit RGB or grayscale (docs/data.md, "Image files").

- 16-bit grayscale (PIL modes ``I;16``, ``I;16B``, ``I;16L``, and ``I`` holding values in
  0..65535, as some readers open 16-bit PNGs) is scaled to 8 bits, ``round(v * 255 / 65535)``;
  Pillow's own conversion clips every value above 255 to white. Floating-point images (mode
  ``F``) and 32-bit ones with values outside 0..65535 are refused, naming the mode: their range
  is not known.
- Transparency (RGBA, LA, a palette or grayscale image with a transparent colour) is composited
  onto ``background``, the dataset's mean colour where the caller gives it, so a transparent
  pixel reads as "no information" instead of black.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import CorruptFileError, DataError

SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
__all__ = ["SIXTEEN_BIT_MODES", "read_image", "to_8bit"]


def to_8bit(img, path: str | os.PathLike = "image"):
    """``img`` with 8-bit channels: 16-bit grayscale scaled to 0..255 (mode ``L``), other modes as
    they are; a :class:`CorruptFileError` naming ``path`` and the mode for a range not known."""
    from PIL import Image

    if img.mode in SIXTEEN_BIT_MODES or img.mode == "I":
        values = np.asarray(img).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise CorruptFileError(f"{path}: a 32-bit integer image (PIL mode I) with values {values.min()}.."
                                   f"{values.max()}, outside the 16-bit range: expected an 8-bit or 16-bit image")
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), mode="L")
    if img.mode == "F":
        raise CorruptFileError(f"{path}: a floating-point image (PIL mode F), whose range is not known: expected an "
                               f"8-bit or 16-bit image")
    return img


def read_image(path: str | os.PathLike, channels: int = 3, background=None):
    """The image at ``path`` as a PIL image in mode ``RGB`` (``channels=3``) or ``L`` (1), 16-bit
    grayscale scaled to 8 bits and transparency composited onto ``background`` (one value in
    [0, 1] per channel, e.g. the dataset's normalisation mean; ``None``: black)."""
    from PIL import Image

    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    with Image.open(path) as img:
        img.load()
        img = to_8bit(img, path)
        if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
            colour = tuple(round(255 * float(v)) for v in (background if background is not None else (0.0,)))
            colour = colour * 3 if len(colour) == 1 else colour[:3]
            if len(colour) != 3:
                raise DataError(f"background must be 1 or 3 values in [0, 1], got {background!r}")
            rgba = img.convert("RGBA")
            flat = Image.new("RGBA", rgba.size, (*colour, 255))
            img = Image.alpha_composite(flat, rgba)
        return img.convert("RGB" if channels == 3 else "L")
