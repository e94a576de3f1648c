"""Step by step: what one ``net.step`` costs and how accuracy grows with the steps taken.

:func:`step_costs` runs one step with its operations counted per sample, as ``staa-snn profile``
counts them (#AC on spike inputs, #MAC on real ones; ``E = 0.9 pJ #AC + 4.6 pJ #MAC``).
:func:`exit_curve` measures accuracy against mean steps and energy over a data loader, for many
confidence thresholds from one pass (SEENN-style early exit); :func:`staa_snn.inference.predict`
exits early on one batch with the same rule. Both are re-exported by :mod:`staa_snn.inference`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import Tensor

from ..energy import E_AC_PJ, E_MAC_PJ, energy_mj
from ..models.base import time_major
from .profile import count_operations

__all__ = ["EXITS", "check_exit", "evaluating", "exit_curve", "step_costs", "step_inputs"]

EXITS = ("confidence", "none")  # exit once max softmax >= threshold | after every step


def step_inputs(net, x: Tensor, time_first: bool) -> list[Tensor]:
    """The per-step inputs ``[B, C, H, W]``: a static image on every step, or an event batch's frames."""
    if not isinstance(x, Tensor) or x.dim() not in (4, 5):
        got = f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected a static batch [B, C, H, W] or an event batch [B, T, C, H, W] "
                         f"([T, B, C, H, W] with time_first=True), got {got}")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point input (images or event counts as float), got {x.dtype}")
    return list(time_major(x, net.T, time_first).unbind(0))


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


def check_exit(exit: str, threshold: float | None) -> float:
    """The threshold an exit rule stops at (``inf`` for ``exit="none"``); a ValueError for an unknown
    rule or a threshold outside (0, 1]."""
    if exit not in EXITS:
        raise ValueError(f"unknown exit {exit!r}; expected one of {EXITS}")
    if exit == "none":
        return math.inf
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"exit='confidence' needs a threshold in (0, 1] (the softmax probability to stop at), "
                         f"got {threshold!r}")
    return float(threshold)


@contextmanager
def evaluating(net):
    """``net`` in ``eval()`` for the block, then back in the mode it was in."""
    was = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was)


@torch.no_grad()
def exit_curve(net, loader, thresholds, *, device=None, time_first: bool = False) -> dict:
    """Accuracy against mean steps and energy, from one pass over ``loader`` with every step run.

    Returns ``{"fixed": [...], "confidence": [...], "samples": N}``: ``fixed[t-1]`` reads every
    sample out after ``t`` steps; ``confidence`` has one point per threshold (each sample stops
    at the first step whose averaged softmax reaches it, else at the last). A point is
    ``{"threshold", "acc", "mean_steps", "mean_energy_mj", "mean_ac", "mean_mac"}``; the
    step and energy figures are means per sample."""
    thresholds = [thresholds] if isinstance(thresholds, (int, float)) else thresholds
    thresholds = [check_exit("confidence", th) for th in thresholds]
    with evaluating(net):
        return _exit_totals(net, loader, thresholds, device, time_first)


def _exit_totals(net, loader, thresholds: list[float], device, time_first: bool) -> dict:
    totals: dict[str, Tensor] = {}
    n = 0
    for batch in loader:
        x, y = batch[0], batch[1]
        if device is not None:
            x, y = x.to(device), y.to(device)
        state, costs, conf, label = net.init_state(x.shape[0]), [], [], []
        for frame in step_inputs(net, x, time_first):
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
