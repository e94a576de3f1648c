"""Class predictions: for files, and step by step with early exit.

``staa-snn predict`` runs :func:`predict_files`. The net comes from a checkpoint, exported weights
or shipped weights (:func:`load_net`), and its ``pretrained_cfg`` says how to prepare an input:
the size, the channels, the normalisation, and, for event data, ``T`` frames.

:func:`predict` feeds a batch step by step (``net.step``) and lets each sample stop once its
prediction is confident (SEENN-style early exit): per sample the prediction, the steps used and
the energy spent, counted per step as ``staa-snn profile`` counts it (#AC on spike inputs,
#MAC on real ones; ``E = 0.9 pJ #AC + 4.6 pJ #MAC``). :func:`exit_curve` measures accuracy
against mean steps and energy over a data loader, for many thresholds from one pass; it and
:func:`step_costs` live in the measuring layer (:mod:`staa_snn.measure.steps`), re-exported here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .data import CorruptFileError, DataError, read_for_net, recording_to_frames
from .data.recordings import SUFFIXES
from .data.events import events_to_frames, frame_indices
from .data.images import read_image
from .data.transforms import FitSize
from .measure.steps import EXITS, check_exit, evaluating, exit_curve, step_costs, step_inputs
from .training import load_pretrained, load_trained

__all__ = ["EXITS", "ExitPrediction", "exit_curve", "input_files", "load_net", "net_sensor", "predict", "predict_files",
           "prepare_image", "prepare_recording", "read_recording", "step_costs", "stream_recording"]

# every format staa_snn.data.read_events reads (AEDAT 2.0 / 3.1 / 4.0, Prophesee .dat / .raw, N-MNIST
# .bin, NumPy), told apart by their headers
RECORDINGS = tuple(SUFFIXES)


def load_net(source: str | os.PathLike, *, checkpoint: bool = False) -> nn.Module:
    """A net in eval mode with ``pretrained_cfg``: a ``.pt`` checkpoint of ``staa-snn train``, an
    export folder, ``hf://owner/name`` or the name of shipped weights. ``checkpoint=True``: only a
    checkpoint (``--checkpoint``), whose errors say so (a missing file, a run folder given for its
    ``best.pt``)."""
    if checkpoint:
        return load_trained(source, require_root=False)[1]
    return load_pretrained(source)


def prepare_image(path: str | os.PathLike, cfg: dict) -> torch.Tensor:
    """``[C, size, size]`` as the net's test split prepares it: RGB or grayscale by its channels
    (16-bit grayscale scaled to 8 bits, transparency composited onto the normalisation mean:
    :func:`~staa_snn.data.images.read_image`), the shorter side resized to ``size`` and the centre cropped, values in [0, 1], normalised."""
    from PIL import UnidentifiedImageError

    channels, size = cfg["in_channels"], cfg["size"]
    norm = cfg.get("normalization")
    try:  # 16-bit grayscale scaled to 8 bits, transparency composited onto the training data's mean
        img = read_image(path, channels, background=norm["mean"] if norm else None)
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    except (UnidentifiedImageError, OSError) as e:
        raise CorruptFileError(f"{path}: not a readable image ({e})") from None
    x = x.permute(2, 0, 1) if x.dim() == 3 else x.unsqueeze(0)
    x = FitSize(size)(x).float() / 255
    if norm:
        x = (x - torch.tensor(norm["mean"]).view(-1, 1, 1)) / torch.tensor(norm["std"]).view(-1, 1, 1)
    return x


def net_sensor(cfg: dict, sensor: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """The sensor ``(width, height)`` of recordings whose files state none: ``sensor`` when given,
    else the one the net was trained on (``pretrained_cfg["sensor"]``, stored since staa-snn
    records it), else ``None`` (such a file is then refused, asking for it)."""
    if sensor is not None:
        return int(sensor[0]), int(sensor[1])
    trained = cfg.get("sensor")
    return (int(trained[0]), int(trained[1])) if trained else None


def _sensor_and_source(cfg: dict, sensor: tuple[int, int] | None) -> tuple[tuple[int, int] | None, str | None]:
    """:func:`net_sensor`, and where it came from, in words for the messages of a file stating none."""
    taken = net_sensor(cfg, sensor)
    if taken is None:
        return None, None
    return taken, "the sensor given, --sensor" if sensor is not None else "the camera the net was trained on"


def read_recording(path: str | os.PathLike, size: int = 1, sensor: tuple[int, int] | None = None, *,
                   sensor_from: str | None = None) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
    """``(events {"t", "x", "y", "p"}, sensor (width, height))`` of a recording in any format
    :func:`staa_snn.data.read_events` reads, checked for a net of ``size x size`` frames
    (:func:`staa_snn.data.read_for_net`: a recording without events, or from a sensor smaller
    than ``size``, is refused naming both sizes). ``sensor``: that of a file stating none (a file
    stating none, with none given, is refused); ``sensor_from``: where it came from, in words for
    the messages (e.g. "the camera the net was trained on")."""
    events, found = read_for_net(path, size=size, sensor_size=sensor, sensor_from=sensor_from or "the sensor given")
    return {k: events[k] for k in "txyp"}, found


def prepare_recording(path: str | os.PathLike, cfg: dict, T: int, split_by: str = "number",
                      sensor: tuple[int, int] | None = None) -> torch.Tensor:
    """``[T, 2, size, size]`` event-count frames of a whole recording (any format of
    :data:`RECORDINGS`), integrated as the event datasets do (:func:`staa_snn.data.recording_to_frames`:
    another sensor is binned to the net's size, a smaller one refused). A file that states no
    sensor is taken to be of :func:`net_sensor`'s."""
    taken, source = _sensor_and_source(cfg, sensor)
    return torch.from_numpy(recording_to_frames(path, T=T, split_by=split_by, size=cfg["size"],
                                                sensor_size=taken, sensor_from=source))


def stream_recording(net, path: str | os.PathLike, *, split_by: str = "time", sensor: tuple[int, int] | None = None):
    """Feed a recording to ``net`` frame by frame, as its events arrive: for each of the net's
    ``T`` steps, ``{"step", "t_start_us", "t_end_us", "events", "label", "class", "confidence",
    "latency_ms"}`` -- the prediction of the logits averaged so far, and the time ``net.step``
    took. ``split_by="time"``: ``T`` equal windows of the recording's span, each integrated
    when it closes; ``"number"``: equal numbers of events, the frames of ``predict`` and of the
    event datasets (which needs the recording's event count up front). ``sensor``: that of a file
    that states none (default: the net's, :func:`net_sensor`)."""
    cfg = getattr(net, "pretrained_cfg", None) or {}
    if cfg.get("kind") != "events":
        raise ValueError("stream feeds event recordings to a net trained on event frames; this net was trained on "
                         f"{cfg.get('kind') or 'unknown'} inputs")
    taken, source = _sensor_and_source(cfg, sensor)
    ev, sensor = read_recording(path, cfg["size"], taken, sensor_from=source)
    if (np.diff(ev["t"]) < 0).any():  # events arrive in time order: take them so
        order = np.argsort(ev["t"], kind="stable")
        ev = {k: np.asarray(v)[order] for k, v in ev.items()}
    T = net.T
    where = frame_indices(ev["t"], T, split_by)
    starts = np.searchsorted(where, np.arange(T + 1))  # the events are time-ordered: windows are slices
    labels = cfg.get("classes") or [str(j) for j in range(net.num_classes)]
    net.eval()
    state = net.init_state(1)
    for t in range(T):
        a, b = starts[t], starts[t + 1]
        frame = events_to_frames(ev["t"][a:b], ev["x"][a:b], ev["y"][a:b], ev["p"][a:b], 1, sensor=sensor,
                                 size=cfg["size"])
        x = torch.from_numpy(frame.astype(np.float32))  # [1, 2, size, size]: one frame, batch of one
        tic = time.perf_counter()
        with torch.no_grad():
            _, state = net.step(x, state)
            conf, label = torch.softmax(state.mean_logits.float(), -1)[0].max(-1)
        latency = time.perf_counter() - tic
        span = (int(ev["t"][a]), int(ev["t"][b - 1])) if b > a else (None, None)
        yield {"step": t + 1, "t_start_us": span[0], "t_end_us": span[1], "events": int(b - a),
               "label": int(label), "class": labels[int(label)], "confidence": float(conf),
               "latency_ms": 1e3 * latency}


def input_files(paths: list[str | os.PathLike], *, events: bool = False) -> list[Path]:
    """``paths`` with each folder replaced by its files (sorted by name, not recursive) that are
    images Pillow reads (``events``: recordings, :data:`RECORDINGS`); a folder holding none is a
    ``FileNotFoundError`` naming it. Files stay as given, in order (whether they exist is checked
    when they are read)."""
    from PIL import Image

    suffixes = RECORDINGS if events else tuple(Image.registered_extensions())
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
            if not found:
                what = f"event recordings ({', '.join(RECORDINGS)})" if events else "images"
                raise FileNotFoundError(f"{p} is a folder with no {what} in it (its files are taken, not its "
                                        f"sub-folders)")
            out += found
        else:
            out.append(p)
    return out


def predict_files(net: nn.Module, paths: list[str | os.PathLike], *, top: int = 3,
                  errors: str = "raise", sensor: tuple[int, int] | None = None) -> list[dict]:
    """For each file (a folder: its images, or recordings; :func:`input_files`):
    ``{"file", "predictions": [(class name, probability), ...]}``, the ``top`` most probable
    classes of the logits averaged over the steps. A file that cannot be read (missing, not an
    image, the wrong kind for the net) raises, or with ``errors="report"`` gets ``{"file",
    "error"}`` (one line naming it) and the other files are still predicted. ``sensor``: that of
    recordings whose files state none (default: the net's, :func:`net_sensor`)."""
    from PIL import Image

    if errors not in ("raise", "report"):
        raise ValueError(f"errors must be 'raise' or 'report', got {errors!r}")
    cfg = getattr(net, "pretrained_cfg", None)
    if not cfg:
        raise ValueError("the net has no pretrained_cfg (input size, normalisation, class names): load it with "
                         "staa_snn.load_pretrained or staa_snn.training.load_trained")
    events = cfg.get("kind") == "events"
    files = input_files(paths, events=events)
    out = []
    for path in files:
        try:
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            if events and not str(path).endswith(RECORDINGS):
                raise DataError(f"the net takes event recordings ({', '.join(RECORDINGS)}), got {path}")
            if cfg.get("kind") == "static" and path.suffix.lower() in RECORDINGS \
                    and path.suffix.lower() not in Image.registered_extensions():
                raise DataError(f"the net takes images, got the event recording {path} (only a net trained on event "
                                f"frames takes recordings)")
            x = prepare_recording(path, cfg, cfg["T"], sensor=sensor) if events else prepare_image(path, cfg)
        except (FileNotFoundError, DataError) as e:
            if errors == "raise":
                raise
            out.append({"file": str(path), "error": str(e)})
            continue
        with torch.no_grad():
            probs = torch.softmax(net(x.unsqueeze(0)).float(), dim=-1)[0]
        p, i = probs.topk(min(top, len(probs)))
        labels = cfg.get("classes") or [str(j) for j in range(len(probs))]
        out.append({"file": str(path), "predictions": [(labels[j], float(q)) for q, j in zip(p, i.tolist())]})
    return out


# -- step by step, with early exit ----------------------------------------------------

@dataclass
class ExitPrediction:
    """Per sample (``[B]`` each): the predicted class, its probability, the steps used and the
    operations and energy spent up to the exit (summed over those steps)."""

    label: Tensor
    confidence: Tensor
    steps: Tensor
    ac: Tensor
    mac: Tensor
    energy_mj: Tensor


@torch.no_grad()
def predict(net, x: Tensor, *, exit: str = "confidence", threshold: float | None = 0.9,
            time_first: bool = False) -> ExitPrediction:
    """Classify ``x`` step by step; each sample stops at the first step where the softmax of its
    logits averaged so far reaches ``threshold`` (``exit="confidence"``), or after all steps
    (``exit="none"``, or when it never does). Samples that have stopped leave the batch, so
    their later steps are neither computed nor counted.

    ``x``: a static batch ``[B, C, H, W]`` (the image on each of the net's ``T`` steps) or an
    event batch ``[B, T, C, H, W]`` (``[T, B, C, H, W]`` with ``time_first``). The net runs in
    ``eval()`` and is put back in its mode afterwards.

    >>> from staa_snn.models import create_model
    >>> net = create_model("vgg_small", num_classes=10, T=4, in_channels=1)
    >>> p = predict(net, torch.rand(3, 1, 8, 8), threshold=0.5)
    >>> p.steps.tolist() == [4, 4, 4]   # an untrained net is never sure: every step is used
    True
    """
    threshold = check_exit(exit, threshold)
    frames = step_inputs(net, x, time_first)
    with evaluating(net):
        return _predict_steps(net, frames, threshold)


def _predict_steps(net, frames: list[Tensor], threshold: float) -> ExitPrediction:
    b = frames[0].shape[0]
    dev = frames[0].device
    result = ExitPrediction(torch.zeros(b, dtype=torch.long, device=dev), torch.zeros(b, device=dev),
                            torch.zeros(b, dtype=torch.long, device=dev),
                            *(torch.zeros(b, dtype=torch.float64, device=dev) for _ in range(3)))
    alive = torch.arange(b, device=dev)  # the samples still running, in the state's order
    state = net.init_state(b)
    for t, frame in enumerate(frames):
        _, state, ac, mac, energy = step_costs(net, frame[alive], state)
        result.ac[alive] += ac
        result.mac[alive] += mac
        result.energy_mj[alive] += energy
        conf, label = torch.softmax(state.mean_logits.float(), -1).max(-1)
        stop = conf >= threshold if t + 1 < len(frames) else torch.ones_like(conf, dtype=torch.bool)
        done = alive[stop]
        result.label[done], result.confidence[done], result.steps[done] = label[stop], conf[stop], t + 1
        if bool(stop.all()):
            break
        alive, state = alive[~stop], state.select(~stop)
    return result
