"""Class predictions: for files, and step by step with early exit.

``staa-snn predict`` runs :func:`predict_files`. The net comes from a checkpoint, exported weights
or shipped weights (:func:`load_net`), and its ``pretrained_cfg`` says how to prepare an input:
the size, the channels, the normalisation, and, for event data, ``T`` frames.

:func:`predict` feeds a batch step by step (``net.step``) and lets each sample stop once its
prediction is confident (SEENN-style early exit): per sample the prediction, the steps used and
the energy spent, counted per step as ``staa-snn profile`` counts it (#AC on spike inputs,
#MAC on real ones; ``E = 0.9 pJ #AC + 4.6 pJ #MAC``). :func:`exit_curve` measures accuracy
against mean steps and energy over a data loader, for many thresholds from one pass.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from dataclasses import dataclass

from torch import Tensor, nn

from .data import CorruptFileError
from .data.dvs import SENSOR
from .data.aedat import read_aedat2, read_aedat3
from .analysis.profile import E_AC_PJ, E_MAC_PJ, count_operations, energy_mj
from .data.events import events_to_frames

__all__ = ["EXITS", "ExitPrediction", "exit_curve", "load_net", "predict", "predict_files", "prepare_image",
           "prepare_recording", "read_recording", "step_costs", "stream_recording"]

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


def read_recording(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The events ``{"t", "x", "y", "p"}`` of a recording: AEDAT 2.0 or 3.1 (told apart by their
    header) or SpikingJelly's ``.npz``; a recording without events is refused."""
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
    return ev


def prepare_recording(path: str | os.PathLike, cfg: dict, T: int, split_by: str = "number") -> torch.Tensor:
    """``[T, 2, size, size]`` event-count frames of a whole recording (AEDAT 2.0, 3.1 or
    SpikingJelly's ``.npz``), integrated as the event datasets do."""
    ev = read_recording(path)
    frames = events_to_frames(ev["t"], ev["x"], ev["y"], ev["p"], T, split_by=split_by, sensor=SENSOR,
                              size=cfg["size"])
    return torch.from_numpy(frames.astype(np.float32))


def stream_recording(net, path: str | os.PathLike, *, split_by: str = "time"):
    """Feed a recording to ``net`` frame by frame, as its events arrive: for each of the net's
    ``T`` steps, ``{"step", "t_start_us", "t_end_us", "events", "label", "class", "confidence",
    "latency_ms"}`` -- the prediction of the logits averaged so far, and the time ``net.step``
    took. ``split_by="time"``: ``T`` equal windows of the recording's span, each integrated
    when it closes; ``"number"``: equal numbers of events, the frames of ``predict`` and of the
    event datasets (which needs the recording's event count up front)."""
    import time

    from .data.events import frame_indices

    cfg = getattr(net, "pretrained_cfg", None) or {}
    if cfg.get("kind") != "events":
        raise ValueError("stream feeds event recordings to a net trained on event frames; this net was trained on "
                         f"{cfg.get('kind') or 'unknown'} inputs")
    ev = read_recording(path)
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
        frame = events_to_frames(ev["t"][a:b], ev["x"][a:b], ev["y"][a:b], ev["p"][a:b], 1, sensor=SENSOR,
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


# -- step by step, with early exit ----------------------------------------------------

EXITS = ("confidence", "none")  # exit once max softmax >= threshold | after every step


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


def _frames(net, x: Tensor, time_first: bool) -> list[Tensor]:
    """The per-step inputs ``[B, C, H, W]``: a static image on every step, or an event batch's frames."""
    if not isinstance(x, Tensor) or x.dim() not in (4, 5):
        got = f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected a static batch [B, C, H, W] or an event batch [B, T, C, H, W] "
                         f"([T, B, C, H, W] with time_first=True), got {got}")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point input (images or event counts as float), got {x.dtype}")
    if x.dim() == 4:
        return [x] * net.T
    return list(x.unbind(0 if time_first else 1))


def step_costs(net, frame: Tensor, state, *, e_ac_pj: float = E_AC_PJ, e_mac_pj: float = E_MAC_PJ):
    """One ``net.step`` with its operations counted per sample: ``(logits, state, ac [B], mac [B],
    energy_mj [B])``, as ``staa-snn profile`` counts a step."""
    out = {}
    b = frame.shape[0]
    records, _ = count_operations(net, frame, run=lambda: out.update(step=net.step(frame, state)), per_sample=b)
    ac = frame.new_zeros(b, dtype=torch.float64)
    mac = frame.new_zeros(b, dtype=torch.float64)
    for r in records:
        if r.rate is None:
            mac += r.macs / b
        else:
            ac += r.rate.double() * (r.macs / b)
    logits, state = out["step"]
    return logits, state, ac, mac, energy_mj(ac, mac, e_ac_pj, e_mac_pj)


def _check_exit(exit: str, threshold: float | None) -> float:
    if exit not in EXITS:
        raise ValueError(f"unknown exit {exit!r}; expected one of {EXITS}")
    if exit == "none":
        return math.inf
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"exit='confidence' needs a threshold in (0, 1] (the softmax probability to stop at), "
                         f"got {threshold!r}")
    return float(threshold)


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
    threshold = _check_exit(exit, threshold)
    frames = _frames(net, x, time_first)
    with _evaluating(net):
        return _predict_steps(net, frames, threshold)


@contextmanager
def _evaluating(net):
    """``net`` in ``eval()`` for the block, then back in the mode it was in."""
    was = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was)


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


@torch.no_grad()
def exit_curve(net, loader, thresholds, *, device=None, time_first: bool = False) -> dict:
    """Accuracy against mean steps and energy, from one pass over ``loader`` with every step run.

    Returns ``{"fixed": [...], "confidence": [...], "samples": N}``: ``fixed[t-1]`` reads every
    sample out after ``t`` steps; ``confidence`` has one point per threshold (each sample stops
    at the first step whose averaged softmax reaches it, else at the last). A point is
    ``{"threshold", "acc", "mean_steps", "mean_energy_mj", "mean_ac", "mean_mac"}``; the
    step and energy figures are means per sample."""
    thresholds = [thresholds] if isinstance(thresholds, (int, float)) else thresholds
    thresholds = [_check_exit("confidence", th) for th in thresholds]
    with _evaluating(net):
        return _exit_totals(net, loader, thresholds, device, time_first)


def _exit_totals(net, loader, thresholds: list[float], device, time_first: bool) -> dict:
    totals: dict[str, Tensor] = {}
    n = 0
    for batch in loader:
        x, y = batch[0], batch[1]
        if device is not None:
            x, y = x.to(device), y.to(device)
        state, costs, conf, label = net.init_state(x.shape[0]), [], [], []
        for frame in _frames(net, x, time_first):
            _, state, ac, mac, energy = step_costs(net, frame, state)
            costs.append(torch.stack([ac, mac, energy]))
            c, lab = torch.softmax(state.mean_logits.float(), -1).max(-1)
            conf.append(c)
            label.append(lab)
        costs = torch.stack(costs).cumsum(0)                   # [T, 3, B]: AC, MAC, energy spent up to each step
        conf, label = torch.stack(conf), torch.stack(label)    # [T, B]
        right = (label == y.view(1, -1)).double()
        sure = conf.unsqueeze(0) >= torch.tensor(thresholds, device=conf.device).view(-1, 1, 1)  # [P, T, B]
        sure[:, -1] = True                                     # the last step stops everyone left
        at = sure.int().argmax(1)                              # [P, B]: the first confident step
        batch_totals = {"fixed_right": right.sum(1), "fixed_costs": costs.sum(2),
                        "exit_right": right.gather(0, at).sum(1), "exit_steps": (at + 1).double().sum(1),
                        "exit_costs": costs.gather(0, at.unsqueeze(1).expand(-1, 3, -1)).sum(2)}
        for k, v in batch_totals.items():
            totals[k] = v if k not in totals else totals[k] + v
        n += x.shape[0]
    if n == 0:
        raise ValueError("the loader yielded no samples")

    def point(threshold, right, steps, costs):
        ac, mac, energy = costs.tolist()
        return {"threshold": threshold, "acc": float(right) / n, "mean_steps": float(steps) / n,
                "mean_energy_mj": energy / n, "mean_ac": ac / n, "mean_mac": mac / n}

    fixed = [point(None, r, (t + 1) * n, c)
             for t, (r, c) in enumerate(zip(totals["fixed_right"], totals["fixed_costs"], strict=True))]
    exits = [point(th, r, st, c) for th, r, st, c in zip(thresholds, totals["exit_right"], totals["exit_steps"],
                                                         totals["exit_costs"], strict=True)]
    return {"fixed": fixed, "confidence": exits, "samples": n}
