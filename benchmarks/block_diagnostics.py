"""What the STAA blocks do inside a trained net (issue 23: why the blocks subtract).

For each STAA-LIF layer of a checkpoint, on batches of its evaluation split:

* the input current ``X``'s spread (std over the batch and positions, per step and channel,
  averaged) and the size of the shift ``b`` that PE and GC add (``X^ = X + b``): its RMS, the
  share of it that differs between samples (GC's context), and PE's alone;
* SA's gates on the history and the input term (mean and spread over samples and channels);
* the gradient norm of each parameter group relative to its weight norm, ``|g| / |w|``, in
  training mode (TSRD as trained), over the same batches;
* the accuracy when one block is switched off in every layer at evaluation (PE zero, GC's
  value-up zero, SA's gates 1): how much the trained net leans on it.

    python benchmarks/block_diagnostics.py RUN/best.pt [--batches 4] [data.root=DIR]

Prints markdown tables. It reads the data the checkpoint was trained on (``data.root`` may be
overridden); nothing is written.
"""

from __future__ import annotations

import argparse
import contextlib
from collections import defaultdict

import torch
import torch.nn.functional as F

from staa_snn.neurons.staa import STAALIF
from staa_snn.training.engine import build_datasets, load_trained

def group_of(name: str, param: torch.Tensor) -> str:
    """Which parameter group a parameter belongs to, by its name in the net."""
    for block in ("pe", "gc", "sa"):
        if f".{block}." in name:
            return block.upper()
    if name.endswith((".m", ".n")):
        return "M, N"
    return "conv / linear weights" if param.dim() >= 2 else "BN affines, biases"


def batches(cfg, count: int):
    test = build_datasets(cfg, train=False)[1]
    loader = torch.utils.data.DataLoader(test, batch_size=cfg.data.test_batch_size, shuffle=False)
    for i, (x, y) in enumerate(loader):
        if i == count:
            return
        yield x, y


def shift_stats(net, data) -> dict[str, dict]:
    layers = {n: m for n, m in net.named_modules() if isinstance(m, STAALIF)}
    stats: dict[str, dict] = defaultdict(lambda: defaultdict(list))

    def hook(name):
        def record(module, args):
            x = args[0]
            s = stats[name]
            s["x_std"].append(x.std(dim=(1, 3, 4)).mean().item())
            s["x_mean"].append(x.mean(dim=(1, 3, 4)).abs().mean().item())
            if module.input_is_shifted and (module.gc is not None or module.pe is not None):
                b = module.input_shift(x)  # [T, B, C]
                s["b_rms"].append(b.pow(2).mean().sqrt().item())
                s["b_sample_std"].append(b.std(dim=1).mean().item())
                if module.pe is not None:
                    s["pe_rms"].append(module.pe.p.pow(2).mean().sqrt().item())
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    try:
        with torch.no_grad():
            for x, _ in data:
                net(x)
                for n, m in layers.items():
                    g = m.last_sa_gates  # [T, B, 2, C]
                    if g is not None:
                        stats[n]["g_h"].append(g[:, :, 0].mean().item())
                        stats[n]["g_u"].append(g[:, :, 1].mean().item())
                        stats[n]["g_spread"].append(g.std(dim=(1, 3)).mean().item())
    finally:
        for h in handles:
            h.remove()
    return {n: {k: sum(v) / len(v) for k, v in s.items()} for n, s in stats.items()}


def grad_ratios(net, data) -> dict[str, float]:
    net.train()
    net.zero_grad()
    for x, y in data:
        F.cross_entropy(net(x), y).backward()
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for name, p in net.named_parameters():
        if p.grad is not None:
            s = sums[group_of(name, p)]
            s[0] += p.grad.pow(2).sum().item()
            s[1] += p.detach().pow(2).sum().item()
    out = {k: (g ** 0.5, w ** 0.5) for k, (g, w) in sums.items()}
    net.zero_grad()
    net.eval()
    return out


@contextlib.contextmanager
def block_off(net, block: str):
    """Switch one block off in every STAA-LIF layer (restored on exit)."""
    saved = []
    for m in net.modules():
        if isinstance(m, STAALIF) and getattr(m, block) is not None:
            saved.append((m, getattr(m, block)))
            setattr(m, block, None)
    try:
        yield bool(saved)
    finally:
        for m, b in saved:
            setattr(m, block, b)


def accuracy(net, data) -> float:
    correct = seen = 0
    with torch.no_grad():
        for x, y in data:
            correct += (net(x).argmax(1) == y).sum().item()
            seen += len(y)
    return correct / seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--batches", type=int, default=4, help="evaluation batches to use (default 4)")
    ap.add_argument("overrides", nargs="*", help="config overrides, e.g. data.root=DIR")
    args = ap.parse_intermixed_args()  # overrides before or after --batches
    cfg, net, ckpt = load_trained(args.checkpoint, args.overrides)
    net.eval()
    data = list(batches(cfg, args.batches))
    n = sum(len(y) for _, y in data)
    print(f"# {args.checkpoint}: epoch {ckpt['epoch']}, {n} images of the evaluation split\n")
    print("| layer | X std | X mean | shift b RMS | b / X std | b spread over samples | PE RMS | SA g_h | SA g_u "
          "| gate spread |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    for name, s in shift_stats(net, data).items():
        ratio = s["b_rms"] / s["x_std"] if "b_rms" in s else None
        print(f"| {name} | {fmt(s['x_std'])} | {fmt(s['x_mean'])} | {fmt(s.get('b_rms'))} | {fmt(ratio)} "
              f"| {fmt(s.get('b_sample_std'))} | {fmt(s.get('pe_rms'))} | {fmt(s.get('g_h'))} | {fmt(s.get('g_u'))} "
              f"| {fmt(s.get('g_spread'))} |")
    print("\n| parameters | grad norm | weight norm | grad / weight |\n|---|---|---|---|")
    for label, (g, w) in grad_ratios(net, data).items():
        print(f"| {label} | {g:.3g} | {w:.3g} | {g / w:.2e} |")
    print(f"\n| evaluated with | accuracy ({n} images) |\n|---|---|\n| every block | {accuracy(net, data):.2%} |")
    for block in ("pe", "gc", "sa"):
        with block_off(net, block) as present:
            if present:
                print(f"| {block.upper()} off | {accuracy(net, data):.2%} |")


if __name__ == "__main__":
    main()
