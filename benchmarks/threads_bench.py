"""torch's intra-op threads on a CPU that may be shared: torch's default, 1 thread and
``train.threads=auto``, side by side, on a quiet machine and beside one competing busy process.

    python benchmarks/threads_bench.py                              # the default run's training step
    python benchmarks/threads_bench.py --config cifar10_quick --batch 32 --reps 7
    python benchmarks/threads_bench.py --json docs/results/threads.json --md docs/results/threads.md

Run it WITHOUT ``OMP_NUM_THREADS`` in the environment (it would change torch's default) and, for
the quiet figures, on a machine where nothing else runs (the report records what was running:
the other processes' busy CPUs at normal priority and niced, measured before each condition).

Workload: one training step (forward, cross-entropy on the mean logits, backward, AdamW) of the
config's net on random inputs of its dataset's shape (default: the bundled digits config,
``staa-snn train``'s first command: vgg_small, STAA-LIF, T = 4, 16x16, batch 32), and the
issue's BatchNorm2d on 1x32x16x16. Conditions, in this order:

1. quiet: nothing started by the script;
2. beside one busy process: a single-threaded Python loop at this process's priority, started
   before the condition and stopped after it;
3. (``--conditions niced``) beside the same loop at nice 19, as a niced background job.

In each condition the settings take turns (the order rotated every round), ``--steps`` steps per
turn, ``--reps`` rounds; the median images/s of each setting is reported, with its range.
``auto`` is chosen afresh in each condition, as a run starting then would choose it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from staa_snn.data import dataset_info
from staa_snn.training import build_model, load_config
from staa_snn.training.threads import affinity_cpus, choose_threads

DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice, read before anything sets it


def cpu_use(sample_s: float = 1.0) -> dict:
    """Other processes' use of this process's CPUs over ``sample_s`` (this one sleeping): busy
    CPUs at normal priority and niced, from /proc/stat."""
    def read():
        rows = {}
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("cpu") and not line.startswith("cpu "):
                name, *v = line.split()
                rows[int(name[3:])] = [int(x) for x in v[:8]]
        return rows
    cpus = affinity_cpus()
    a = read()
    time.sleep(sample_s)
    b = read()
    normal = niced = 0.0
    for c in cpus:
        d = [y - x for x, y in zip(a[c], b[c])]
        total = sum(d) or 1
        normal += (d[0] + d[2] + d[5] + d[6] + d[7]) / total
        niced += d[1] / total
    return {"cpus": len(cpus), "busy_normal": round(normal, 2), "busy_niced": round(niced, 2),
            "loadavg_1min": float(Path("/proc/loadavg").read_text().split()[0])}


def make_step(config: str, batch: int | None):
    cfg = load_config(config)
    info = dataset_info(cfg.data.name)
    size = cfg.data.size or info.size
    batch = batch or cfg.data.batch_size
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch, info.in_channels, size, size)
    y = torch.randint(info.num_classes, (batch,))

    def step():
        out = model(x)
        loss = F.cross_entropy(out if out.dim() == 2 else out.mean(0), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    what = f"{config}: {cfg.model.name}, {cfg.model.neuron}, T={cfg.model.T}, {size}x{size}, batch {batch}"
    return step, batch, what


def bn_ms(threads: int, calls: int = 50) -> float:
    torch.set_num_threads(threads)
    bn = torch.nn.BatchNorm2d(32)
    x = torch.randn(1, 32, 16, 16)
    for _ in range(5):
        bn(x)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        bn(x)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def measure(settings: dict[str, int], step, batch: int, steps: int, reps: int) -> dict[str, dict]:
    for n in set(settings.values()):  # warm-up: every thread count once
        torch.set_num_threads(n)
        step()
        step()
    names = list(settings)
    rates: dict[str, list[float]] = {k: [] for k in names}
    for r in range(reps):
        for name in names[r % len(names):] + names[:r % len(names)]:
            torch.set_num_threads(settings[name])
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            rates[name].append(batch * steps / (time.perf_counter() - t0))
    return {k: {"threads": settings[k], "images_per_s": statistics.median(v), "min": min(v), "max": max(v),
                "bn_ms": bn_ms(settings[k])} for k, v in rates.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="digits", help="a bundled config or YAML (default: digits)")
    ap.add_argument("--batch", type=int, help="batch size (default: the config's)")
    ap.add_argument("--steps", type=int, default=5, help="training steps per turn")
    ap.add_argument("--reps", type=int, default=5, help="rounds of turns per condition")
    ap.add_argument("--conditions", nargs="+", default=["quiet", "busy"], choices=["quiet", "busy", "niced"],
                    help="quiet; busy: beside one busy process at this one's priority; niced: beside one at nice 19")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--md", help="write a markdown table here")
    args = ap.parse_args(argv)
    if "OMP_NUM_THREADS" in os.environ:
        print(f"threads_bench: OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} is set: torch's default would not be "
              f"its own; run without it", file=sys.stderr)
        return 2
    step, batch, what = make_step(args.config, args.batch)
    report = {"workload": what, "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "default_threads": DEFAULT_THREADS, "steps": args.steps,
              "reps": args.reps, "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "conditions": {}}
    for condition in args.conditions:
        load = cpu_use()  # before the neighbour: what else was running
        neighbour = None
        if condition in ("busy", "niced"):
            neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                         preexec_fn=(lambda: os.nice(19)) if condition == "niced" else None)
            time.sleep(1.0)
        try:
            auto = choose_threads("auto", environ={})
            settings = {"default": DEFAULT_THREADS, "1": 1, "auto": auto.threads}
            rows = measure(settings, step, batch, args.steps, args.reps)
        finally:
            if neighbour is not None:
                neighbour.kill()
                neighbour.wait()
        base = rows["default"]["images_per_s"]
        for r in rows.values():
            r["x_default"] = r["images_per_s"] / base
        report["conditions"][condition] = {"others_before": load, "auto_reason": auto.reason, "rows": rows}
        print(f"{condition}: others busy {load['busy_normal']} CPUs (niced {load['busy_niced']}), {auto.reason}")
        for name, r in rows.items():
            print(f"  {name:<8} {r['threads']} thr  {r['images_per_s']:8.1f} img/s ({r['min']:.1f}-{r['max']:.1f})  "
                  f"x{r['x_default']:.2f}  BN {r['bn_ms']:.3f} ms", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.md:
        Path(args.md).write_text(markdown(report))
    return 0


def markdown(report: dict) -> str:
    lines = [f"Workload: {report['workload']}; torch {report['torch']}, {report['cpu_count']} CPUs, torch's default "
             f"{report['default_threads']} threads; {report['reps']} interleaved rounds of {report['steps']} steps.",
             f"Command: `python {report['command']}`", "",
             "| condition | others busy before (normal / niced CPUs) | setting | threads | images/s (median, range) "
             "| vs default | BatchNorm 1x32x16x16 (ms) |", "|---|---|---|---|---|---|---|"]
    for condition, c in report["conditions"].items():
        o = c["others_before"]
        for name, r in c["rows"].items():
            label = {"quiet": "quiet", "busy": "beside 1 busy process", "niced": "beside 1 busy niced process"}
            lines.append(f"| {label[condition]} | {o['busy_normal']} / "
                         f"{o['busy_niced']} | {name} | {r['threads']} | {r['images_per_s']:.0f} ({r['min']:.0f}-"
                         f"{r['max']:.0f}) | {r['x_default']:.2f}x | {r['bn_ms']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
