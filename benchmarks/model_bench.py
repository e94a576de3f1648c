"""Training-step time and memory of resnet20: plain ANN vs LIF vs STAA.

    python benchmarks/model_bench.py [--model resnet20] [--T 4] [--batch 32] [--reps 5]

Variants: ANN, LIF, STAA (the eager ``backend="fused"``, what ``staa-snn train``
runs for short jobs such as the digits default), LIF-compiled / STAA-compiled
(``backend="compiled"``: the neuron loops through torch.compile, compiled
before measuring; what ``staa-snn train`` runs for a paper row, whose
``model.backend=auto`` compiles long jobs; STAA then keeps ``H`` for backward),
STAA-keep (eager, ``recompute=False``: ``H`` kept instead of recomputed),
STAA-compiled-recompute (compiled, ``recompute=True``), LIF-mpbn / STAA-mpbn
(``neuron_preset="mpbn"``: MPBN's neuron, with BN_mp in the loop). The ANN is the same net with ReLU in every neuron slot, run at batch ``B*T``
(the convolution floor: the same number of conv activations as the SNN).
A training step is forward + cross-entropy + backward + SGD step. Times are
medians of the variants measured alternately in one process; memory is the
bytes autograd saves for backward (in process) and the growth of peak RSS
over 3 training steps in a fresh process per variant. Run by hand.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
from _measure import (  # noqa: E402
    child_peak_rss_growth, interleaved_medians, mib, peak_rss_kib, reset_peak_rss, saved_tensor_bytes,
)

from staa_snn._malloc import tune_cpu_allocator  # noqa: E402
from staa_snn.models import SpikingNeuron, create_model  # noqa: E402

VARIANTS = ("ANN", "LIF", "LIF-compiled", "STAA", "STAA-compiled", "STAA-keep", "STAA-compiled-recompute",
            "LIF-mpbn", "STAA-mpbn")


def build(variant: str, args):
    """(model, input, target) for one variant."""
    torch.manual_seed(0)
    if variant == "ANN":
        model = create_model(args.model, num_classes=args.classes, T=1, neuron="lif")
        for m in model.modules():
            if isinstance(m, SpikingNeuron):
                m.neuron = nn.ReLU()
        batch = args.batch * args.T
    else:
        options = {"backend": "compiled"} if "-compiled" in variant else {}
        if variant.endswith("-keep"):
            options["recompute"] = False
        if variant.endswith("-recompute"):
            options["recompute"] = True
        if "-mpbn" in variant:
            options["neuron_preset"] = "mpbn"
        neuron = variant.split("-")[0].lower()
        model = create_model(args.model, num_classes=args.classes, T=args.T, neuron=neuron, **options)
        batch = args.batch
    x = torch.randn(batch, 3, args.size, args.size)
    y = torch.randint(0, args.classes, (batch,))
    return model, x, y


def make_step(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def child(variant: str, args) -> None:
    if "-compiled" in variant:
        # Compile the kernels on a throwaway copy first: neither the compiler's memory nor that
        # copy's gradients count; the measured model then starts like every other variant.
        warm, x, y = build(variant, args)
        make_step(warm, x[:2], y[:2])()
        del warm
        gc.collect()
        reset_peak_rss()
    model, x, y = build(variant, args)
    step = make_step(model, x, y)
    base = peak_rss_kib()
    for _ in range(3):
        step()
    print(json.dumps({"peak_rss_growth_bytes": (peak_rss_kib() - base) * 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                    help="variants to measure (ANN is always included, as the reference)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    tune_cpu_allocator()  # as staa-snn train runs (a no-op in the peak-RSS children, which set MALLOC_*)
    if args.child:
        child(args.child, args)
        return

    variants = ["ANN", *(v for v in args.variants if v != "ANN")]
    built = {v: build(v, args) for v in variants}
    for v in variants:  # compile the compiled variants before timing (once per process)
        if "-compiled" in v:
            make_step(built[v][0], built[v][1][:2], built[v][2][:2])()
    saved = {v: saved_tensor_bytes(lambda v=v: built[v][0](built[v][1])) for v in variants}
    times = interleaved_medians({v: make_step(*built[v]) for v in variants}, reps=args.reps, warmup=1)
    passthrough = ["--model", args.model, "--T", str(args.T), "--batch", str(args.batch),
                   "--size", str(args.size), "--classes", str(args.classes)]
    rss = {v: child_peak_rss_growth(__file__, [v, *passthrough])["peak_rss_growth_bytes"] for v in variants}

    print(f"{args.model}, T={args.T}, batch {args.batch} (ANN: {args.batch * args.T}), {args.size}x{args.size}, "
          f"{args.classes} classes; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"median of {args.reps} interleaved training steps")
    print(f"{'variant':<15} {'step ms':>9} {'x ANN':>6} {'saved MiB':>10} {'x ANN':>6} {'peak RSS MiB':>13} {'x ANN':>6}")
    for v in variants:
        print(f"{v:<15} {times[v] * 1e3:9.0f} {times[v] / times['ANN']:6.2f} {mib(saved[v]):>10} "
              f"{saved[v] / saved['ANN']:6.2f} {mib(rss[v]):>13} {rss[v] / rss['ANN']:6.2f}")


if __name__ == "__main__":
    main()
