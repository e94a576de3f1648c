"""Is the fast path the reference math on real data, at trained weights and along a run? (issue 23)

1. Gradients at a trained checkpoint's weights: one training-mode backward (TSRD off, so both
   see the same net) on the fused and the compiled backend against the reference, per parameter
   group: ``|g_fast - g_ref| / |g_ref|``.
2. Training curves: the same net, initial weights and batches (TSRD's draws from the same seed),
   ``--steps`` optimiser steps on each backend, interleaved step by step; the losses side by side
   and how far the weights drift apart.

    python benchmarks/backend_curves.py RUN/best.pt [--steps 150] [data.root=DIR]

The config is the checkpoint's (its recipe, optimiser and data); nothing is written.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from block_diagnostics import group_of  # (this folder: run as python benchmarks/backend_curves.py)
from staa_snn.models import set_backend
from staa_snn.training.engine import build_datasets, build_model, build_optimizer, load_trained

COLUMNS = ("PE", "GC", "SA", "M, N", "rest")


def column_of(name: str, param: torch.Tensor) -> str:
    group = group_of(name, param)
    return group if group in COLUMNS else "rest"


def grads(net, x, y, backend: str) -> dict[str, torch.Tensor]:
    set_backend(net, backend)
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    return {n: p.grad.detach().clone() for n, p in net.named_parameters() if p.grad is not None}


def grads_at_trained(net, x, y) -> None:
    for m in net.modules():
        if hasattr(m, "tsrd_p"):
            m.tsrd_p = 0.0
    net.train()
    ref = grads(net, x, y, "reference")
    params = dict(net.named_parameters())
    print("| backend | " + " | ".join(COLUMNS) + " |\n|---|---|---|---|---|---|")
    for backend in ("fused", "compiled"):
        fast = grads(net, x, y, backend)
        cells = []
        for group in COLUMNS:
            names = [n for n in ref if column_of(n, params[n]) == group]
            if not names:
                cells.append("—")
                continue
            diff = sum((fast[n] - ref[n]).pow(2).sum() for n in names).sqrt()
            norm = sum(ref[n].pow(2).sum() for n in names).sqrt()
            cells.append(f"{(diff / norm).item():.1e}")
        print(f"| {backend} vs reference | " + " | ".join(cells) + " |")


def curves(cfg, steps: int) -> None:
    train_set = build_datasets(cfg)[0]
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(train_set), generator=g)[: steps * cfg.data.batch_size].tolist()
    batches = []
    for i in range(steps):
        items = [train_set[j] for j in order[i * cfg.data.batch_size:(i + 1) * cfg.data.batch_size]]
        batches.append((torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])))
    torch.manual_seed(cfg.train.seed)
    start = build_model(cfg, num_classes=10)
    runs = {}
    for backend in ("reference", "fused"):
        net = set_backend(copy.deepcopy(start), backend).train()
        runs[backend] = (net, build_optimizer(cfg, net), torch.Generator().manual_seed(1), [], [])
    for x, y in batches:
        for backend, (net, opt, rng, losses, times) in runs.items():
            state = torch.get_rng_state()
            torch.set_rng_state(rng.get_state())  # TSRD's draws: the same sequence on both
            tic = time.perf_counter()
            loss = F.cross_entropy(net(x), y, label_smoothing=cfg.optim.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - tic)
            rng.set_state(torch.get_rng_state())
            torch.set_rng_state(state)
            losses.append(loss.item())
    ref, fused = runs["reference"][3], runs["fused"][3]
    print("\n| step | loss, reference | loss, fused | difference |\n|---|---|---|---|")
    for i in sorted({0, 1, 4, 9, 24, 49, 99, steps - 1} & set(range(steps))):
        print(f"| {i + 1} | {ref[i]:.6f} | {fused[i]:.6f} | {fused[i] - ref[i]:+.2e} |")
    a = dict(runs["reference"][0].named_parameters())
    b = dict(runs["fused"][0].named_parameters())
    drift = sum((a[n] - b[n]).pow(2).sum() for n in a).sqrt() / sum(a[n].pow(2).sum() for n in a).sqrt()
    moved = sum((a[n] - p).pow(2).sum() for n, p in start.named_parameters()).sqrt()
    print(f"\nafter {steps} steps: |w_fused - w_ref| / |w_ref| = {drift.item():.2e}; the weights moved "
          f"|w_ref - w_0| = {moved.item():.3g} from the start")
    print(f"median step time: reference {statistics.median(runs['reference'][4]):.3f} s, "
          f"fused {statistics.median(runs['fused'][4]):.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_intermixed_args()  # overrides before or after --steps
    cfg, net, ckpt = load_trained(args.checkpoint, args.overrides)
    test = build_datasets(cfg, train=False)[1]
    items = [test[i] for i in range(cfg.data.batch_size)]
    x, y = torch.stack([a for a, _ in items]), torch.tensor([int(b) for _, b in items])
    print(f"# {args.checkpoint} (epoch {ckpt['epoch']}): gradients at its weights, one batch of "
          f"{len(y)} evaluation images\n")
    grads_at_trained(net, x, y)
    curves(cfg, args.steps)


if __name__ == "__main__":
    main()
