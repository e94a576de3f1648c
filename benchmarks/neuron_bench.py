"""Forward + backward time and memory of LIF, AdaptiveLIF and STAALIF (and their MPBN presets).

    python benchmarks/neuron_bench.py [--shape 4 32 128 32 32] [--reps 5] [--threads N]

Prints a table: median time of forward + backward (variants interleaved), the
bytes autograd saves for backward, and the peak-RSS growth of one step in a
fresh process per variant. Run by hand; see benchmarks/_measure.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _measure import child_peak_rss_growth, interleaved_medians, mib, peak_rss_kib  # noqa: E402

from staa_snn.kernels.spike_storage import saved_tensor_bytes  # noqa: E402

from staa_snn._malloc import tune_cpu_allocator  # noqa: E402
from staa_snn.neurons import LIF, STAALIF, AdaptiveLIF  # noqa: E402


def build(name: str, shape):
    T, _, C = shape[:3]
    kind, _, preset = name.partition("-")
    options = {"neuron_preset": preset} if preset else {}
    if kind == "LIF":
        return LIF(channels=C, **options)
    if kind == "AdaptiveLIF":
        return AdaptiveLIF(C, **options)
    return STAALIF(C, T=T, **options)


NAMES = ("LIF", "AdaptiveLIF", "STAALIF", "LIF-mpbn", "STAALIF-mpbn")


def make_step(neuron, x, grad):
    def step():
        x.grad = None
        neuron(x).backward(grad)
    return step


def child(name: str, shape) -> None:
    torch.manual_seed(0)
    x = (torch.randn(shape) * 1.5).requires_grad_(True)
    grad = torch.randn(shape)
    neuron = build(name, shape)
    base = peak_rss_kib()
    make_step(neuron, x, grad)()
    print(json.dumps({"peak_rss_growth_bytes": (peak_rss_kib() - base) * 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, nargs=5, default=[4, 32, 128, 32, 32], metavar=("T", "B", "C", "H", "W"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    tune_cpu_allocator()  # as staa-snn train runs (a no-op in the peak-RSS children, which set MALLOC_*)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(args.shape)
    if args.child:
        child(args.child, shape)
        return

    torch.manual_seed(0)
    x = (torch.randn(shape) * 1.5).requires_grad_(True)
    grad = torch.randn(shape)
    neurons = {n: build(n, shape) for n in NAMES}
    steps = {n: make_step(neurons[n], x, grad) for n in NAMES}
    saved = {n: saved_tensor_bytes(lambda n=n: neurons[n](x)) for n in NAMES}
    times = interleaved_medians(steps, reps=args.reps)
    rss = {n: child_peak_rss_growth(__file__, [n, "--shape", *map(str, shape)])["peak_rss_growth_bytes"] for n in NAMES}

    input_bytes = x.numel() * x.element_size()
    print(f"shape {list(shape)}, input {mib(input_bytes).strip()} MiB, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.reps} interleaved reps")
    print(f"{'neuron':<13} {'fwd+bwd ms':>10} {'x LIF':>6} {'saved MiB':>10} {'x input':>8} {'peak RSS MiB':>13}")
    for n in NAMES:
        print(f"{n:<13} {times[n] * 1e3:10.1f} {times[n] / times['LIF']:6.2f} {mib(saved[n]):>10} "
              f"{saved[n] / input_bytes:8.2f} {mib(rss[n]):>13}")


if __name__ == "__main__":
    main()
