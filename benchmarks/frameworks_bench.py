"""The Open Neuromorphic SNN framework benchmark, with every peer side by side in one run.

    python benchmarks/frameworks_bench.py                       # CPU sizes: n = 256, 1024, 4096
    python benchmarks/frameworks_bench.py --sizes 4096 8192 16384 --device cuda   # the published sizes
    python benchmarks/frameworks_bench.py --sizes 64 --T 20 --batch 4 --reps 1    # a smoke test (CI)
    python benchmarks/frameworks_bench.py --json out.json --md out.md

The setup is the published one: one ``Linear(n, n)`` followed by a LIF neuron, batch 16, T = 500,
float32, forward plus backward of the spikes' sum. The Linear runs once on all steps (``T`` folded
into the batch, for every library), so what differs between rows is the neuron. Every peer gets
the same neuron, constants matched:

    H[t] = V[t-1] + (X[t] - V[t-1]) / 2      (tau = 2: H = 0.5 V + 0.5 X)
    S[t] = 1(H[t] >= 1),  V[t] = H[t] (1 - S[t])   (hard reset to 0)

written in each library's own terms (snnTorch's ``Leaky`` is ``H = beta V + X``, so it gets the
Linear's weights halved, which is exact; Norse's ``LIFBoxCell`` with ``dt * tau_mem_inv = 0.5``;
Sinabs's ``LIF`` with ``exp(-1/tau_mem) = 0.5``, single spikes and reset to zero). Each library
keeps its own default surrogate gradient (ours: sigmoid, alpha 4, as SpikingJelly's). Before
timing, the spikes of every row are compared with ours on one shared input: a row whose spikes
differ in more than 0.1% of places is marked, as then it is not the same neuron.

Rows: ours fused and compiled (``backend="compiled"``: chunks of 16 compiled steps, so its
compile time does not grow with T; it is timed separately), SpikingJelly (the implementation
its own dispatcher binds on the device), snnTorch, Norse eager and with its step
``torch.compile``d, Sinabs. A peer that is not installed gets a row saying so
(``pip install -e ".[bench]"`` installs them all).

Times are medians of ``--reps`` interleaved repetitions (warm-up first), ratios to the fastest
row. Memory, two figures: "saved for backward", the bytes of the distinct tensors the neuron keeps
for backward during one forward (exact; what every row's Linear keeps, its input and weight, is
not counted), and the peak: on CUDA the peak allocated during one forward + backward above what
was allocated before it; on the CPU the growth of peak RSS during one forward + backward, in a
fresh process per row, after a warm-up step whose freed memory is given back to the OS first
(``malloc_trim``: otherwise a loop of small per-step tensors reuses resident pages and shows
almost no growth). Run by hand; results go in docs/results/frameworks.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
from _measure import child_peak_rss_growth, cpu_name, peak_rss_kib, reset_peak_rss, trim_heap  # noqa: E402

from staa_snn._malloc import tune_cpu_allocator  # noqa: E402
from staa_snn.kernels.spike_storage import saved_tensor_bytes  # noqa: E402
from staa_snn.neurons import LIF  # noqa: E402

TAU, V_TH = 2.0, 1.0          # the matched neuron (decay 0.5 on V and on X)
AGREEMENT = 1e-3              # at most this share of spikes may differ from ours (rounding near V_th)
ROWS = ("staa-snn fused", "staa-snn compiled", "SpikingJelly", "snnTorch", "Norse", "Norse compiled", "Sinabs")


@dataclass
class Row:
    name: str
    run: Callable[[torch.Tensor], torch.Tensor] | None   # currents [T, B, n] -> spikes [T, B, n]
    linear: nn.Linear | None = None
    note: str = ""
    results: dict = field(default_factory=dict)


def _version(package: str) -> str:
    from importlib.metadata import version
    return version(package)


def _ours(linear: nn.Linear, backend: str) -> Row:
    lif = LIF(tau=TAU, v_threshold=V_TH, surrogate="sigmoid", backend=backend)
    return Row(f"staa-snn {backend}", lif, linear, note="")


def _spikingjelly(linear: nn.Linear, device: torch.device) -> Row:
    from spikingjelly.activation_based import functional, neuron, surrogate
    from spikingjelly.activation_based.functional import neuron as sj_neuron

    node = neuron.LIFNode(tau=TAU, decay_input=True, v_threshold=V_TH, v_reset=0.0,
                          surrogate_function=surrogate.Sigmoid(alpha=4.0), step_mode="m").to(device)

    def run(x):
        functional.reset_net(node)
        return node(x)

    impl = sj_neuron.neuron_implementation("lif", device)["implementation"]
    return Row("SpikingJelly", run, linear, note=f"{_version('spikingjelly')}, {impl}")


def _snntorch(linear: nn.Linear, device: torch.device) -> Row:
    import snntorch

    leaky = snntorch.Leaky(beta=1.0 - 1.0 / TAU, threshold=V_TH, reset_mechanism="zero").to(device)
    halved = nn.Linear(linear.in_features, linear.out_features).to(device)
    with torch.no_grad():  # H = beta V + X: the input halved (exact: a power of two)
        halved.weight.copy_(linear.weight * 0.5)
        halved.bias.copy_(linear.bias * 0.5)

    def run(x):
        mem = leaky.reset_mem() if hasattr(leaky, "reset_mem") else leaky.init_leaky()
        spikes = []
        for x_t in x:
            s, mem = leaky(x_t, mem)
            spikes.append(s)
        return torch.stack(spikes)

    return Row("snnTorch", run, halved, note=f"{_version('snntorch')}, Leaky, atan surrogate")


def _norse(linear: nn.Linear, device: torch.device, compiled: bool) -> Row:
    import norse.torch as norse

    params = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(1.0 / TAU), v_th=torch.tensor(V_TH),
                                    v_reset=torch.tensor(0.0), v_leak=torch.tensor(0.0))
    cell = norse.LIFBoxCell(params, dt=1.0).to(device)
    step = torch.compile(cell) if compiled else cell

    def run(x):
        state, spikes = None, []
        for x_t in x:
            z, state = step(x_t, state)
            spikes.append(z)
        return torch.stack(spikes)

    how = "LIFBoxCell, its step torch.compile'd" if compiled else "LIFBoxCell"
    return Row("Norse compiled" if compiled else "Norse", run, linear, note=f"{_version('norse')}, {how}")


def _sinabs(linear: nn.Linear, device: torch.device) -> Row:
    import sinabs.layers as sl
    from sinabs.activation import MembraneReset, SingleSpike

    lif = sl.LIF(tau_mem=1.0 / math.log(1.0 / (1.0 - 1.0 / TAU)), spike_threshold=torch.tensor(V_TH),
                 spike_fn=SingleSpike, reset_fn=MembraneReset(), norm_input=True).to(device)

    def run(x):  # Sinabs is batch-first, [B, T, n]
        lif.reset_states()
        return lif(x.transpose(0, 1)).transpose(0, 1)

    return Row("Sinabs", run, linear, note=f"{_version('sinabs')}, LIF, SingleSpike, MembraneReset")


def build_rows(n: int, device: torch.device, names=ROWS) -> list[Row]:
    """One row per library, all on one ``Linear(n, n)`` (seeded)."""
    torch.manual_seed(0)
    linear = nn.Linear(n, n).to(device)
    makers = {
        "staa-snn fused": lambda: _ours(linear, "fused"),
        "staa-snn compiled": lambda: _ours(linear, "compiled"),
        "SpikingJelly": lambda: _spikingjelly(linear, device),
        "snnTorch": lambda: _snntorch(linear, device),
        "Norse": lambda: _norse(linear, device, compiled=False),
        "Norse compiled": lambda: _norse(linear, device, compiled=True),
        "Sinabs": lambda: _sinabs(linear, device),
    }
    rows = []
    for name in names:
        try:
            rows.append(makers[name]())
        except ImportError as e:
            rows.append(Row(name, None, note=f"not installed ({e.name}): pip install -e \".[bench]\""))
    return rows


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward(row: Row, x: torch.Tensor) -> torch.Tensor:
    T, B, n = x.shape
    return row.run(row.linear(x.reshape(T * B, n)).view(T, B, n))


def step(row: Row, x: torch.Tensor) -> None:
    """Forward and backward of the spikes' sum (the benchmark's training step)."""
    row.linear.zero_grad(set_to_none=True)
    forward(row, x).sum().backward()


def agreement(rows: list[Row], x: torch.Tensor) -> None:
    """The share of spikes that equal ours (fused) on ``x``, per row, and the firing rate."""
    with torch.no_grad():
        ref = forward(rows[0], x)
        for row in rows:
            if row.run is None:
                continue
            spikes = forward(row, x)
            row.results["spikes_equal"] = float((spikes == ref).double().mean())
            row.results["firing_rate"] = float(spikes.double().mean())


def time_rows(rows: list[Row], x: torch.Tensor, reps: int, device: torch.device) -> None:
    """Warm-up (its time kept: the compile, for the compiled rows), then ``reps`` interleaved
    repetitions of the step and of the forward; medians."""
    live = [r for r in rows if r.run is not None]
    for row in live:
        _sync(device)
        t0 = time.perf_counter()
        step(row, x)
        _sync(device)
        row.results["first_step_s"] = time.perf_counter() - t0
    times = {r.name: {"step": [], "forward": []} for r in live}
    for _ in range(reps):
        for row in live:
            for kind in ("step", "forward"):
                _sync(device)
                t0 = time.perf_counter()
                if kind == "step":
                    step(row, x)
                else:
                    forward(row, x)
                _sync(device)
                times[row.name][kind].append(time.perf_counter() - t0)
    for row in live:
        for kind in ("step", "forward"):
            row.results[f"{kind}_s"] = statistics.median(times[row.name][kind])
            row.results[f"{kind}_runs_s"] = times[row.name][kind]


def cuda_peak(row: Row, x: torch.Tensor, device: torch.device) -> int:
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    step(row, x)
    _sync(device)
    return torch.cuda.max_memory_allocated(device) - base


def child(name: str, args) -> None:
    """One row's peak-RSS growth during one step, in this fresh process (CPU)."""
    device = torch.device("cpu")
    row = build_rows(args.n_child, device, [name])[0]
    x = make_input(args.T, args.batch, args.n_child, device)
    step(row, x)  # warm up (compile, lazy imports) first: neither the compiler's memory nor the first call counts
    gc.collect()
    trim_heap()  # what the warm-up freed goes back: the step's own allocations count, small or large
    reset_peak_rss()
    base = peak_rss_kib()
    step(row, x)
    print(json.dumps({"peak_rss_growth_bytes": (peak_rss_kib() - base) * 1024}))


def make_input(T: int, batch: int, n: int, device: torch.device) -> torch.Tensor:
    """The shared input; scaled so that the neurons fire at a moderate rate (about 10-20%)."""
    g = torch.Generator().manual_seed(1)
    return (torch.randn(T, batch, n, generator=g) * 3.0).to(device)


def measure(n: int, args, device: torch.device) -> list[Row]:
    rows = build_rows(n, device, args.rows)
    x = make_input(args.T, args.batch, n, device)
    agreement(rows, x)
    time_rows(rows, x, args.reps, device)
    for row in rows:
        if row.run is None:
            continue
        # what the neuron keeps for backward: the Linear's own (its input, its weight) is every row's
        row.results["saved_bytes"] = saved_tensor_bytes(lambda row=row: forward(row, x),
                                                        exclude=[x, *row.linear.parameters()])
        if device.type == "cuda":
            row.results["peak_bytes"] = cuda_peak(row, x, device)
        elif not args.no_memory:
            passthrough = ["--n-child", str(n), "--T", str(args.T), "--batch", str(args.batch)]
            row.results["peak_bytes"] = child_peak_rss_growth(__file__, [row.name, *passthrough])[
                "peak_rss_growth_bytes"]
    return rows


def table(n: int, rows: list[Row], args) -> str:
    live = [r for r in rows if r.run is not None]
    best_step = min(r.results["step_s"] for r in live)
    best_fwd = min(r.results["forward_s"] for r in live)
    lines = [f"n = {n} (Linear({n}, {n}) + LIF, batch {args.batch}, T = {args.T}, float32; "
             f"medians of {args.reps} interleaved runs)", "",
             "| library | forward + backward | x fastest | forward | x fastest | saved for backward | peak memory | "
             "first step | spikes equal to ours | version, implementation |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.run is None:
            lines.append(f"| {r.name} | - | - | - | - | - | - | - | - | {r.note} |")
            continue
        res = r.results
        mem = f"{res['peak_bytes'] / 2**20:.0f} MiB" if "peak_bytes" in res else "-"
        saved = f"{res['saved_bytes'] / 2**20:.0f} MiB"
        equal = res["spikes_equal"]
        flag = "" if equal >= 1 - AGREEMENT else " **differs**"
        lines.append(
            f"| {r.name} | {res['step_s']:.3f} s | {res['step_s'] / best_step:.2f}x | {res['forward_s']:.3f} s | "
            f"{res['forward_s'] / best_fwd:.2f}x | {saved} | {mem} | {res['first_step_s']:.2f} s | {100 * equal:.3f}%{flag} | "
            f"{r.note or torch.__version__} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="n of Linear(n, n) (default: 256 1024 4096 on the CPU, 4096 8192 16384 on CUDA)")
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS, metavar="ROW",
                    help=f"rows to run (default: all of {', '.join(ROWS)}); the first is the spike reference")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-memory", action="store_true", help="skip the per-row peak-memory processes (CPU)")
    ap.add_argument("--json", default=None, help="write every figure and run here")
    ap.add_argument("--md", default=None, help="write the tables here (markdown)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    for name in ("T", "batch", "reps"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    tune_cpu_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child(args.child, args)
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device here")
    sizes = args.sizes or ([4096, 8192, 16384] if device.type == "cuda" else [256, 1024, 4096])
    header = (f"{platform.node()}: {torch.cuda.get_device_name(device) if device.type == 'cuda' else cpu_name()}, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(header, flush=True)
    report, tables = {"environment": header, "T": args.T, "batch": args.batch, "reps": args.reps, "sizes": {}}, []
    for n in sizes:
        rows = measure(n, args, device)
        tables.append(table(n, rows, args))
        print("\n" + tables[-1], flush=True)
        report["sizes"][str(n)] = [{"row": r.name, "note": r.note, **r.results} for r in rows]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.md:
        with open(args.md, "w") as f:
            f.write(header + "\n\n" + "\n\n".join(tables) + "\n")


if __name__ == "__main__":
    main()
