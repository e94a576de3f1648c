"""Class predictions for files: images or event recordings in, class names and probabilities out.

``staa-snn predict`` runs :func:`predict_files`. The net comes from a checkpoint, exported weights
or shipped weights (:func:`load_net`), and its ``pretrained_cfg`` says how to prepare an input:
the size, the channels, the normalisation, and, for event data, ``T`` frames.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import CorruptFileError
from .data.dvs import SENSOR
from .data.aedat import read_aedat2, read_aedat3
from .data.events import events_to_frames

__all__ = ["load_net", "prepare_image", "prepare_recording", "predict_files"]

RECORDINGS = (".aedat", ".npz")  # AEDAT 2.0 / 3.1 (told apart by their header), SpikingJelly's npz


def load_net(source: str | os.PathLike) -> nn.Module:
    """A net in eval mode with ``pretrained_cfg``: a ``.pt`` checkpoint of ``staa-snn train``, an
    export folder, ``hf://owner/name`` or the name of shipped weights."""
    from .models.pretrained import load_pretrained

    return load_pretrained(source)


def prepare_image(path: str | os.PathLike, cfg: dict) -> torch.Tensor:
    """``[C, size, size]`` as the net's test split prepares it: RGB or grayscale by its channels,
    the shorter side resized to ``size`` and the centre cropped, values in [0, 1], normalised."""
    from PIL import Image, UnidentifiedImageError

    from .data.transforms import FitSize

    channels, size = cfg["in_channels"], cfg["size"]
    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    except (UnidentifiedImageError, OSError) as e:
        raise CorruptFileError(f"{path}: not a readable image ({e})") from None
    x = x.permute(2, 0, 1) if x.dim() == 3 else x.unsqueeze(0)
    x = FitSize(size)(x).float() / 255
    norm = cfg.get("normalization")
    if norm:
        x = (x - torch.tensor(norm["mean"]).view(-1, 1, 1)) / torch.tensor(norm["std"]).view(-1, 1, 1)
    return x


def prepare_recording(path: str | os.PathLike, cfg: dict, T: int, split_by: str = "number") -> torch.Tensor:
    """``[T, 2, size, size]`` event-count frames of a whole recording (AEDAT 2.0, 3.1 or
    SpikingJelly's ``.npz``), integrated as the event datasets do."""
    from .data.dvs import _read_npz

    path = str(path)
    if path.endswith(".npz"):
        ev = _read_npz(path)
    else:
        with open(path, "rb") as f:
            head = f.read(16)
        ev = read_aedat3(path) if head.startswith(b"#!AER-DAT3") else read_aedat2(path)
    if len(ev["t"]) == 0:
        raise CorruptFileError(f"{path}: the recording holds no events")
    frames = events_to_frames(ev["t"], ev["x"], ev["y"], ev["p"], T, split_by=split_by, sensor=SENSOR,
                              size=cfg["size"])
    return torch.from_numpy(frames.astype(np.float32))


def predict_files(net: nn.Module, paths: list[str | os.PathLike], *, top: int = 3) -> list[dict]:
    """For each file: ``{"file", "predictions": [(class name, probability), ...]}``, the ``top``
    most probable classes of the logits averaged over the steps."""
    cfg = getattr(net, "pretrained_cfg", None)
    if not cfg:
        raise ValueError("the net has no pretrained_cfg (input size, normalisation, class names): load it with "
                         "staa_snn.load_pretrained or staa_snn.training.load_trained")
    events = cfg.get("kind") == "events"
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"no such file: {', '.join(missing)}")
    if events:
        wrong = [str(p) for p in paths if not str(p).endswith(RECORDINGS)]
        if wrong:
            raise ValueError(f"the net takes event recordings ({', '.join(RECORDINGS)}), got {', '.join(wrong)}")
    out = []
    for path in paths:
        x = prepare_recording(path, cfg, cfg["T"]) if events else prepare_image(path, cfg)
        with torch.no_grad():
            probs = torch.softmax(net(x.unsqueeze(0)).float(), dim=-1)[0]
        p, i = probs.topk(min(top, len(probs)))
        labels = cfg.get("classes") or [str(j) for j in range(len(probs))]
        out.append({"file": str(path), "predictions": [(labels[j], float(q)) for q, j in zip(p, i.tolist())]})
    return out
