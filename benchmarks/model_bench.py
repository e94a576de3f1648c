"""Training-step time and memory of a spiking net: plain ANN vs LIF vs STAA.

    python benchmarks/model_bench.py [--model resnet20] [--T 4] [--batch 32] [--reps 5]
    python benchmarks/model_bench.py --model vgg13 --events --size 48 --T 16 --batch 16 \
        --variants LIF LIF-ckpt STAA STAA-ckpt              # CIFAR10-DVS shapes, train.memory
    python benchmarks/model_bench.py --T 1 2 4 8 16 --batch 32 --variants LIF STAA --json t.json

A variant is a neuron (``LIF``, ``STAA``) and options joined by ``-``, in any order:
``compiled`` (``backend="compiled"``: the neuron loops through torch.compile, compiled before
measuring; what ``staa-snn train`` runs for a paper row), ``keep`` / ``recompute`` (STAA's
``recompute=False`` / ``True``: ``H`` kept for backward or recomputed), ``mpbn``
(``neuron_preset="mpbn"``: MPBN's neuron, with BN_mp in the loop), ``ckpt``
(``train.memory=checkpoint``: each neuron segment recomputed in backward; ``ckpt4``: the first 4
only). Without options a
variant runs the eager ``backend="fused"``. The ANN is the same net with ReLU in every neuron
slot, run at batch ``B*T`` (the convolution floor: the same number of conv activations as the
SNN). ``--events``: event-camera input ``[B, T, 2, size, size]`` (sparse 0/1 frames) instead of
a static image. Several ``--T`` or ``--batch`` values: every combination, one table each, each
against its own ANN.

A training step is forward + cross-entropy + backward + SGD step. Times are medians of the
variants measured alternately in one process; memory is the bytes autograd holds for backward
between forward and backward (in process: with ``ckpt``, each segment's input, stored as bool)
and the growth of peak RSS over 3 training steps in a fresh process per variant (the step's
peak, recomputation included). Run by hand.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
from _measure import (  # noqa: E402
    child_peak_rss_growth, cpu_name, interleaved_medians, mib, peak_rss_kib, reset_peak_rss,
)

from staa_snn._malloc import tune_cpu_allocator  # noqa: E402
from staa_snn.kernels.spike_storage import saved_tensor_bytes  # noqa: E402
from staa_snn.models import SpikingNeuron, create_model  # noqa: E402

VARIANTS = ("ANN", "LIF", "LIF-compiled", "STAA", "STAA-compiled", "STAA-keep", "STAA-compiled-recompute",
            "LIF-mpbn", "STAA-mpbn")
NEURONS = ("LIF", "STAA")
OPTIONS = ("compiled", "keep", "recompute", "mpbn", "ckpt")


def variant(name: str) -> str:
    """argparse type: ``ANN`` or a neuron with options (``STAA-compiled-ckpt``)."""
    neuron, *options = name.split("-")
    options = ["ckpt" if re.fullmatch(r"ckpt[0-9]+", o) else o for o in options]
    if name != "ANN" and (neuron not in NEURONS or not set(options) <= set(OPTIONS)
                          or len(set(options)) != len(options) or {"keep", "recompute"} <= set(options)):
        raise argparse.ArgumentTypeError(
            f"{name!r}: expected ANN or a neuron ({', '.join(NEURONS)}) with options joined by '-' "
            f"({', '.join(OPTIONS)}; keep and recompute exclude each other), e.g. STAA-compiled-ckpt")
    return name


def build(name: str, args, T: int, batch: int):
    """(model, input, target) for one variant."""
    torch.manual_seed(0)
    channels = 2 if args.events else 3
    neuron, *options = name.split("-")
    if name == "ANN":
        model = create_model(args.model, num_classes=args.classes, T=1, in_channels=channels, neuron="lif")
        for m in model.modules():
            if isinstance(m, SpikingNeuron):
                m.neuron = nn.ReLU()
        batch, steps = batch * T, 1
    else:
        kwargs = {"backend": "compiled"} if "compiled" in options else {}
        if "keep" in options or "recompute" in options:
            kwargs["recompute"] = "recompute" in options
        if "mpbn" in options:
            kwargs["neuron_preset"] = "mpbn"
        model = create_model(args.model, num_classes=args.classes, T=T, in_channels=channels, neuron=neuron.lower(),
                             **kwargs)
        ckpt = [o for o in options if o.startswith("ckpt")]
        if ckpt:
            model.set_memory("checkpoint", int(ckpt[0][4:]) if ckpt[0][4:] else None)
        steps = T
    shape = (batch, channels, args.size, args.size)
    if args.events:  # [B, T, 2, H, W] frames of 0/1 events (ANN: [B*T, 2, H, W]), 10% of them set
        x = (torch.rand(shape if name == "ANN" else (batch, steps, *shape[1:])) < 0.1).float()
    else:
        x = torch.randn(shape)
    y = torch.randint(0, args.classes, (batch,))
    return model, x, y


def make_step(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def child(name: str, args) -> None:
    T, batch = args.T[0], args.batch[0]
    if "compiled" in name:
        # Compile the kernels on a throwaway copy first: neither the compiler's memory nor that
        # copy's gradients count; the measured model then starts like every other variant.
        warm, x, y = build(name, args, T, batch)
        make_step(warm, x[:2], y[:2])()
        del warm
        gc.collect()
        reset_peak_rss()
    model, x, y = build(name, args, T, batch)
    step = make_step(model, x, y)
    base = peak_rss_kib()
    for _ in range(3):
        step()
    print(json.dumps({"peak_rss_growth_bytes": (peak_rss_kib() - base) * 1024}))


def measure(args, variants: list[str], T: int, batch: int) -> dict:
    """One configuration: every variant's step time, saved bytes and peak RSS growth."""
    built = {v: build(v, args, T, batch) for v in variants}
    for v in variants:  # compile the compiled variants before timing (once per process and shape)
        if "compiled" in v:
            make_step(built[v][0], built[v][1][:2], built[v][2][:2])()
    saved = {v: saved_tensor_bytes(lambda v=v: built[v][0](built[v][1])) for v in variants}
    times = interleaved_medians({v: make_step(*built[v]) for v in variants}, reps=args.reps, warmup=1)
    del built
    gc.collect()
    passthrough = ["--model", args.model, "--T", str(T), "--batch", str(batch), "--size", str(args.size),
                   "--classes", str(args.classes), *(["--events"] if args.events else [])]
    rss = {v: child_peak_rss_growth(__file__, [v, *passthrough])["peak_rss_growth_bytes"] for v in variants}
    return {v: {"step_s": times[v], "step_x_ann": times[v] / times["ANN"], "saved_bytes": saved[v],
                "saved_x_ann": saved[v] / saved["ANN"], "peak_rss_growth_bytes": rss[v],
                "peak_rss_x_ann": rss[v] / rss["ANN"]} for v in variants}


def print_table(args, T: int, batch: int, rows: dict) -> None:
    kind = f"events [B, {T}, 2, {args.size}, {args.size}]" if args.events else f"{args.size}x{args.size}"
    print(f"{args.model}, T={T}, batch {batch} (ANN: {batch * T}), {kind}, {args.classes} classes; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.reps} interleaved "
          f"training steps")
    width = max(15, *(len(v) for v in rows))
    print(f"{'variant':<{width}} {'step ms':>9} {'x ANN':>6} {'saved MiB':>10} {'x ANN':>6} "
          f"{'peak RSS MiB':>13} {'x ANN':>6}")
    for v, r in rows.items():
        print(f"{v:<{width}} {r['step_s'] * 1e3:9.0f} {r['step_x_ann']:6.2f} {mib(r['saved_bytes']):>10} "
              f"{r['saved_x_ann']:6.2f} {mib(r['peak_rss_growth_bytes']):>13} {r['peak_rss_x_ann']:6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--T", type=int, nargs="+", default=[4], help="steps; several: one table each")
    ap.add_argument("--batch", type=int, nargs="+", default=[32], help="batch; several: one table each")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--events", action="store_true", help="event input [B, T, 2, size, size] (CIFAR10-DVS shapes)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--variants", nargs="+", type=variant, default=list(VARIANTS),
                    help="variants to measure (ANN is always included, as the reference)")
    ap.add_argument("--json", default=None, help="write every configuration's figures here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if min(args.T + args.batch + [args.size, args.reps]) < 1:
        ap.error("--T, --batch, --size and --reps must be >= 1")
    tune_cpu_allocator()  # as staa-snn train runs (a no-op in the peak-RSS children, which set MALLOC_*)
    if args.child:
        child(args.child, args)
        return

    variants = ["ANN", *dict.fromkeys(v for v in args.variants if v != "ANN")]
    report = {"model": args.model, "size": args.size, "events": args.events, "classes": args.classes,
              "reps": args.reps, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu": cpu_name(), "runs": []}
    for T in args.T:
        for batch in args.batch:
            rows = measure(args, variants, T, batch)
            print_table(args, T, batch, rows)
            report["runs"].append({"T": T, "batch": batch, "variants": rows})
            if args.json:  # after each configuration: a long sweep stopped early keeps what it measured
                with open(args.json, "w") as f:
                    json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
