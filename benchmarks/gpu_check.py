"""Is staa-snn correct and fast on this machine's accelerator? One command, one report.

    python benchmarks/gpu_check.py                      # the GPU if torch sees one, else a tiny CPU run
    python benchmarks/gpu_check.py --out docs/results/gpu_check   # where gpu_check.json / .md go
    python benchmarks/gpu_check.py --variants ANN LIF STAA        # a subset of the speed variants

Run it from a clone of the repository (part 1 runs the test suite's kernel tests), after
``pip install -e ".[dev]"`` (SpikingJelly is optional: its row says when it is missing).

1. Correctness on the device:
   a. ``pytest tests/test_kernels.py --device DEV``: every fast path (fused LIF / adaptive / STAA
      kernels, the compiled loops, BN_mp, spike storage) against the functional reference,
      forward and backward, in float64, float32 and under bf16 autocast;
   b. each net's fused and compiled backends against the reference backend, the nets built on the
      CPU and moved to DEV (a tensor that a kernel makes on the wrong device fails here);
   c. the trainer: a few steps of the digits default on DEV in float32, under bf16 autocast and in
      fp16 with the gradient scaler, with no per-step host synchronisation in its loop.
2. Speed: a training step (forward, cross-entropy, backward, SGD) of resnet20 on CIFAR-100 shapes
   (T = 4, batch 128, 32x32) and vgg13 on CIFAR10-DVS shapes (T = 16, batch 32, 2 x 48x48), for
   the ANN (ReLU in every neuron slot, batch B*T: the convolution floor), LIF and STAA-LIF on the
   fused and compiled backends, and SpikingJelly's multi-step ``LIFNode`` (its own CUDA / Triton
   implementation where it selects one). Medians of interleaved steps; images/s; peak memory of
   the step (CUDA: peak allocated above the resting model; CPU: bytes saved for backward);
   ratios to the ANN.
3. The projected epoch time of the CIFAR-100 ResNet-20 T = 4 paper row (391 training steps at
   batch 128 and 79 evaluation batches, data loading excluded) with the backend that
   ``model.backend=auto`` picks for that 500-epoch job.

4. The Open Neuromorphic framework benchmark at its published sizes (``Linear(n, n)`` + LIF,
   batch 16, T = 500, n = 4096, 8192, 16384): ``benchmarks/frameworks_bench.py`` on the device,
   every peer the ``bench`` extra installs side by side (``--skip-frameworks`` leaves it out).

Without a GPU (or with ``--device cpu``) the same code runs at tiny shapes, the kernel tests
reduced to a few, the compiled variants left out unless named: a smoke test, which CI runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from staa_snn.kernels.spike_storage import saved_tensor_bytes  # noqa: E402

from staa_snn._malloc import tune_cpu_allocator  # noqa: E402
from staa_snn.models import SpikingNeuron, create_model  # noqa: E402
from staa_snn.kernels import AUTO_COMPILE_MIN_STEPS, resolve_backend  # noqa: E402

VARIANTS = ("ANN", "LIF", "LIF-compiled", "STAA", "STAA-compiled", "SJ-LIFNode")
COMPILED = {"LIF-compiled", "STAA-compiled"}

# name: (model, classes, in_channels, size, T, batch) at full and tiny scale
WORKLOADS = {
    "resnet20 CIFAR-100 T=4": (("resnet20", 100, 3, 32, 4, 128), ("resnet20", 100, 3, 16, 2, 4)),
    "vgg13 CIFAR10-DVS T=16": (("vgg13", 10, 2, 48, 16, 32), ("vgg13", 10, 2, 32, 2, 2)),
}
PAPER_ROW = dict(train_images=50_000, test_images=10_000, batch=128, test_batch=128, epochs=500)


# -- helpers --------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sj_lif_node():
    """SpikingJelly's multi-step LIFNode (tau 2, hard reset to 0, rectangle-like surrogate), or None."""
    try:
        from spikingjelly.activation_based import neuron, surrogate
    except ImportError:
        return None
    return lambda: neuron.LIFNode(tau=2.0, v_threshold=1.0, v_reset=0.0, surrogate_function=surrogate.Sigmoid(),
                                  step_mode="m")


def sj_implementation(device: torch.device) -> str:
    try:
        from spikingjelly.activation_based.functional import neuron as sj_functional
        from importlib.metadata import version

        impl = sj_functional.neuron_implementation("lif", device)["implementation"]
        return f"spikingjelly {version('spikingjelly')}, {impl}"
    except Exception as e:  # not installed, or an older SpikingJelly without the query
        return f"spikingjelly: {type(e).__name__}: {e}"[:160]


def build(variant: str, workload: tuple, device: torch.device):
    """``(model, x, y, reset)`` for one variant; ``reset`` clears stateful neurons (SpikingJelly)."""
    name, classes, channels, size, T, batch = workload
    torch.manual_seed(0)
    reset = None
    if variant in ("ANN", "SJ-LIFNode"):
        model = create_model(name, num_classes=classes, T=1 if variant == "ANN" else T, neuron="lif",
                             in_channels=channels)
        make = nn.ReLU if variant == "ANN" else sj_lif_node()
        if make is None:
            return None
        for m in model.modules():
            if isinstance(m, SpikingNeuron):
                m.neuron = make()
        if variant == "SJ-LIFNode":
            from spikingjelly.activation_based import functional as sj_f

            reset = lambda: sj_f.reset_net(model)  # noqa: E731
    else:
        neuron = variant.split("-")[0].lower()
        backend = "compiled" if variant in COMPILED else "fused"
        model = create_model(name, num_classes=classes, T=T, neuron=neuron, in_channels=channels, backend=backend)
    model = model.to(device)
    n = batch * T if variant == "ANN" else batch
    x = torch.randn(n, channels, size, size, device=device) if variant == "ANN" or channels == 3 \
        else torch.randn(n, T, channels, size, size, device=device).clamp_(min=0)
    y = torch.randint(0, classes, (n,), device=device)
    return model, x, y, reset


def make_step(model, x, y, reset):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        if reset is not None:
            reset()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def timed_medians(steps: dict, device: torch.device, reps: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(reps):
        for name, step in steps.items():
            sync(device)
            t0 = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def step_memory(step, model, x, device: torch.device) -> int:
    """Bytes a training step holds at its peak beyond the resting model (CUDA), or the bytes
    autograd saves for backward (CPU, exact)."""
    if device.type == "cuda":
        sync(device)
        rest = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - rest
    return saved_tensor_bytes(lambda: model(x))


# -- part 1: correctness ----------------------------------------------------------------------

def run_kernel_tests(device: torch.device, tiny: bool, out: Path) -> dict:
    junit = Path(out).resolve() / "kernel_tests.xml"  # pytest runs in ROOT: a relative path would land there
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_kernels.py"), "-q", "-p", "no:cacheprovider",
           f"--device={device}", f"--junitxml={junit}"]
    if tiny:
        cmd += ["-m", "not slow", "-k", "float32 or bf16 or mpbn_matches"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    result = {"command": " ".join(["pytest", *cmd[3:]]).replace(str(ROOT) + os.sep, ""),
              "seconds": round(time.perf_counter() - t0, 1), "exit_code": proc.returncode}
    try:
        suite = ET.parse(junit).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        failed = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
                  if c.find("failure") is not None or c.find("error") is not None]
        result.update(counts, failed=failed[:20])
    except (OSError, ET.ParseError):
        result["output_tail"] = (proc.stdout + proc.stderr)[-2000:]
    result["ok"] = proc.returncode == 0
    return result


def check_nets(device: torch.device, tiny: bool, backends: list[str]) -> list[dict]:
    """Fused / compiled nets against the reference backend on ``device``, float32."""
    rows = []
    size, T, batch = (16, 2, 4) if tiny else (32, 4, 16)
    for neuron in ("lif", "staa"):
        torch.manual_seed(0)
        opts = dict(tsrd_p=0.0) if neuron == "staa" else {}
        ref = create_model("resnet20", num_classes=10, T=T, neuron=neuron, backend="reference", **opts).to(device)
        x = torch.randn(batch, 3, size, size, device=device)
        for backend in backends:
            fast = create_model("resnet20", num_classes=10, T=T, neuron=neuron, backend=backend, **opts)
            fast.load_state_dict(ref.state_dict())
            fast = fast.to(device)
            outs, grads = [], []
            for model in (ref, fast):
                model.zero_grad(set_to_none=True)
                out = model.forward_steps(x)
                out.square().sum().backward()
                outs.append(out.detach())
                grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
            out_err = (outs[0] - outs[1]).abs().max().item()
            grad_err = ((grads[0] - grads[1]).norm() / grads[0].norm().clamp_min(1e-30)).item()
            rows.append({"net": "resnet20", "neuron": neuron, "backend": backend, "logits_max_abs_diff": out_err,
                         "grad_rel_diff": grad_err, "ok": out_err < 1e-3 and grad_err < 1e-3})
    return rows


def _train_digits(device: torch.device, amp: str, batches: int, out: Path, name: str):
    from staa_snn.training import load_config, train

    cfg = load_config("digits", [f"train.device={device}", f"train.amp={amp}", "train.epochs=1",
                                 f"train.max_batches={batches}", "train.check_every=1000", "train.progress=false",
                                 "output.tensorboard=false", f"output.dir={out / 'runs'}", f"output.name={name}"])
    return train(cfg)


def count_syncs(device: torch.device, amp: str, batches: int, out: Path) -> int:
    """CUDA synchronisations of a digits epoch of ``batches`` steps, counted by torch's sync debug mode."""
    import warnings

    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            _train_digits(device, amp, batches, out, f"sync{batches}")
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    return sum("synchroniz" in str(w.message) for w in caught)


def check_trainer(device: torch.device, tiny: bool, out: Path) -> list[dict]:
    """A few digits steps per precision; on CUDA also the synchronisations of 2 against 10 steps
    (equal when the loop reads nothing back per step)."""
    rows = []
    amps = ["none", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    for amp in amps:
        t0 = time.perf_counter()
        try:
            result = _train_digits(device, amp, 2 if tiny else 10, out, amp)
            row = {"amp": amp, "ok": math.isfinite(result.final["train_loss"]),
                   "train_loss": result.final["train_loss"], "test_acc": result.final["test_acc"],
                   "seconds": round(time.perf_counter() - t0, 1)}
            if device.type == "cuda" and amp == "none":
                row["syncs_2_steps"], row["syncs_10_steps"] = (count_syncs(device, amp, n, out) for n in (2, 10))
                row["ok"] = row["ok"] and row["syncs_2_steps"] == row["syncs_10_steps"]
            rows.append(row)
        except Exception as e:  # the report says what failed; the other checks still run
            rows.append({"amp": amp, "ok": False, "error": f"{type(e).__name__}: {e}"[:300]})
    return rows


# -- part 2 and 3: speed ----------------------------------------------------------------------

def measure_workload(label: str, workload: tuple, variants: list[str], device: torch.device, reps: int) -> dict:
    built, notes, compile_s = {}, {}, {}
    for v in variants:
        t0 = time.perf_counter()
        b = build(v, workload, device)
        if b is None:
            notes[v] = "SpikingJelly not installed"
            continue
        built[v] = b
        step = make_step(*b)
        step()  # warm-up (and compilation, for the compiled variants)
        sync(device)
        if v in COMPILED:
            compile_s[v] = round(time.perf_counter() - t0, 1)
    steps = {v: make_step(*b) for v, b in built.items()}
    for step in steps.values():  # a second warm-up: cuDNN's algorithm choice, allocator caches
        step()
    times = timed_medians(steps, device, reps)
    memory = {v: step_memory(steps[v], built[v][0], built[v][1], device) for v in built}
    name, classes, channels, size, T, batch = workload
    rows = []
    for v in variants:
        if v not in built:
            rows.append({"variant": v, "note": notes.get(v, "")})
            continue
        images = batch  # images per step: the SNN's batch; the ANN runs B*T images for the same conv work
        row = {"variant": v, "step_ms": times[v] * 1e3, "images_per_s": images / times[v],
               "memory_mib": memory[v] / 2**20}
        if "ANN" in times:
            row["time_x_ann"] = times[v] / times["ANN"]
            row["memory_x_ann"] = memory[v] / memory["ANN"] if memory.get("ANN") else None
        if v in compile_s:
            row["compile_s"] = compile_s[v]
        if v == "SJ-LIFNode":
            row["note"] = sj_implementation(device)
        rows.append(row)
    del built, steps
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"workload": label, "model": name, "classes": classes, "in_channels": channels, "size": size, "T": T,
            "batch": batch, "ann_batch": batch * T, "rows": rows}


def project_paper_row(device: torch.device, tiny: bool, speed: list[dict], reps: int) -> dict:
    row = PAPER_ROW
    steps_per_epoch = math.ceil(row["train_images"] / row["batch"])
    total = steps_per_epoch * row["epochs"]
    backend, why = resolve_backend("auto", total, device)
    workload = WORKLOADS["resnet20 CIFAR-100 T=4"][1 if tiny else 0]
    variant = "STAA-compiled" if backend == "compiled" else "STAA"
    measured = next((r for s in speed if s["model"] == "resnet20" for r in s["rows"]
                     if r["variant"] == variant and "step_ms" in r), None)
    if measured is None:  # the auto choice was not among the measured variants: fall back to fused
        variant = "STAA"
        measured = next((r for s in speed if s["model"] == "resnet20" for r in s["rows"]
                         if r["variant"] == "STAA" and "step_ms" in r), None)
    if measured is None:
        return {"note": "STAA on resnet20 was not measured"}
    # evaluation: forward passes in eval mode without autograd, at the test batch
    model, x, _, _ = build(variant, workload, device)
    model.eval()
    with torch.no_grad():
        model(x)
        eval_s = timed_medians({"eval": lambda: model(x)}, device, reps)["eval"]
    scale = 1 if tiny else row["test_batch"] / workload[5]
    eval_batches = math.ceil(row["test_images"] / row["test_batch"])
    epoch_s = steps_per_epoch * measured["step_ms"] / 1e3 + eval_batches * eval_s * scale
    return {"row": "cifar100_resnet20_t4", "auto_backend": backend, "why": why, "measured_variant": variant,
            "steps_per_epoch": steps_per_epoch, "eval_batches": eval_batches,
            "train_s_per_epoch": steps_per_epoch * measured["step_ms"] / 1e3,
            "eval_s_per_epoch": eval_batches * eval_s * scale, "epoch_s": epoch_s,
            "run_hours": epoch_s * row["epochs"] / 3600, "tiny_shapes": tiny}


# -- report -----------------------------------------------------------------------------------

def run_frameworks_bench(device: torch.device, out: Path) -> dict:
    """benchmarks/frameworks_bench.py at the published sizes on ``device`` (its tables kept)."""
    cmd = [sys.executable, str(HERE / "frameworks_bench.py"), "--device", str(device), "--sizes", "4096", "8192",
           "16384", "--json", str(out / "frameworks.json"), "--md", str(out / "frameworks.md")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    ok = proc.returncode == 0
    return {"command": " ".join(["python", "benchmarks/frameworks_bench.py", *cmd[2:]]), "ok": ok,
            "markdown": (out / "frameworks.md").read_text() if ok else "",
            "tail": "" if ok else (proc.stdout + proc.stderr)[-2000:]}


def _fmt(value, spec):
    return "" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    env, lines = report["environment"], []
    lines += [f"# gpu_check: {env['device_name']}", "",
              f"{env['date']}; torch {env['torch']}, CUDA {env['cuda']}, staa-snn {env['staa_snn']}; "
              f"{'tiny CPU shapes (smoke test)' if env['tiny'] else 'full shapes'}; "
              f"command: `{env['command']}`", ""]
    c = report["correctness"]
    k = c["kernel_tests"]
    lines += ["## Correctness", "",
              f"- Kernel tests (`{k['command']}`): {'passed' if k['ok'] else 'FAILED'}"
              + (f", {k.get('tests', '?')} tests, {k.get('failures', 0)} failures, {k.get('errors', 0)} errors, "
                 f"{k.get('skipped', 0)} skipped, {k['seconds']} s" if "tests" in k else ""),
              *(f"  - failed: `{f}`" for f in k.get("failed", [])), "",
              "| net | neuron | backend | logits max abs diff | grad rel diff | ok |", "|---|---|---|---|---|---|"]
    for r in c["nets"]:
        lines.append(f"| {r['net']} | {r['neuron']} | {r['backend']} | {r['logits_max_abs_diff']:.2e} | "
                     f"{r['grad_rel_diff']:.2e} | {'yes' if r['ok'] else 'NO'} |")
    lines += ["", "| trainer amp | ok | train loss | test acc | s | CUDA syncs, 2 / 10 steps |", "|---|---|---|---|---|---|"]
    for r in c["trainer"]:
        syncs = f"{r['syncs_2_steps']} / {r['syncs_10_steps']}" if "syncs_2_steps" in r else ""
        lines.append(f"| {r['amp']} | {'yes' if r['ok'] else 'NO: ' + r.get('error', '')} | "
                     f"{_fmt(r.get('train_loss'), '.4f')} | {_fmt(r.get('test_acc'), '.4f')} | {r.get('seconds', '')} | {syncs} |")
    lines += ["", "## Speed", "",
              "Training step (forward, cross-entropy, backward, SGD), median of interleaved steps; the ANN runs "
              "batch B*T (the same number of conv activations). Memory: "
              + ("peak CUDA memory of the step above the resting model." if env["device_type"] == "cuda"
                 else "bytes saved for backward."), ""]
    for s in report["speed"]:
        lines += [f"### {s['workload']}: {s['model']}, T = {s['T']}, batch {s['batch']} (ANN {s['ann_batch']}), "
                  f"{s['in_channels']} x {s['size']}x{s['size']}", "",
                  "| variant | step ms | x ANN | images/s | memory MiB | x ANN | notes |", "|---|---|---|---|---|---|---|"]
        for r in s["rows"]:
            if "step_ms" not in r:
                lines.append(f"| {r['variant']} | | | | | | {r.get('note', '')} |")
                continue
            note = "; ".join(x for x in (f"compile + first step {r['compile_s']} s" if "compile_s" in r else "",
                                         r.get("note", "")) if x)
            lines.append(f"| {r['variant']} | {r['step_ms']:.1f} | {_fmt(r.get('time_x_ann'), '.2f')} | "
                         f"{r['images_per_s']:.0f} | {r['memory_mib']:.1f} | {_fmt(r.get('memory_x_ann'), '.2f')} | {note} |")
        lines.append("")
    p = report["projection"]
    if "epoch_s" in p:
        lines += ["## The CIFAR-100 ResNet-20 T = 4 row", "",
                  f"`model.backend=auto` picks **{p['auto_backend']}** ({p['why']}); measured as {p['measured_variant']}. "
                  f"One epoch: {p['steps_per_epoch']} training steps ({p['train_s_per_epoch']:.1f} s) + "
                  f"{p['eval_batches']} evaluation batches ({p['eval_s_per_epoch']:.1f} s) = **{p['epoch_s']:.1f} s**, "
                  f"{p['run_hours']:.1f} h for 500 epochs (data loading excluded"
                  + ("; tiny shapes: not a real projection" if p["tiny_shapes"] else "") + ").", ""]
    f = report.get("frameworks")
    if f:
        lines += ["## The framework benchmark (Open Neuromorphic setup)", "", f"`{f['command']}`", "",
                  f["markdown"] if f["ok"] else f"failed:\n\n```\n{f['tail']}\n```", ""]
    lines += [f"Overall: **{'correct' if report['ok'] else 'NOT CORRECT'}**.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cuda, cuda:N or cpu")
    ap.add_argument("--out", default="gpu_check", help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=None,
                    help="speed variants (default: all on a GPU; without the compiled ones on the CPU)")
    ap.add_argument("--reps", type=int, default=None, help="timed steps per variant (default 20 on a GPU, 2 on the CPU)")
    ap.add_argument("--skip-tests", action="store_true", help="leave out the pytest kernel tests (part 1a)")
    ap.add_argument("--skip-frameworks", action="store_true",
                    help="leave out the framework benchmark (part 4; always left out on the CPU)")
    args = ap.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda, but torch sees no CUDA device (torch.cuda.is_available() is False)")
    tiny = device.type != "cuda"
    if device.type == "cpu":
        tune_cpu_allocator()
    else:
        torch.backends.cudnn.benchmark = True
    variants = args.variants or [v for v in VARIANTS if not (tiny and v in COMPILED)]
    variants = ["ANN", *(v for v in variants if v != "ANN")]
    reps = args.reps or (2 if tiny else 20)
    out = Path(args.out).resolve()  # the caller's folder, whatever the subprocesses' cwd
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    say = lambda text: print(f"[{time.perf_counter() - started:6.1f} s] {text}", flush=True)  # noqa: E731

    from staa_snn import __version__

    env = {"date": datetime.date.today().isoformat(), "device_type": device.type,
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU",
           "torch": torch.__version__, "cuda": torch.version.cuda, "staa_snn": __version__, "tiny": tiny,
           "python": platform.python_version(), "command": " ".join(["python", "benchmarks/gpu_check.py", *sys.argv[1:]])}
    say(f"device {device} ({env['device_name']}), torch {torch.__version__}; report in {out}/")
    if args.skip_tests:
        kernel = {"command": "(skipped: --skip-tests)", "ok": True, "seconds": 0}
    else:
        say("1a. kernel tests on the device")
        kernel = run_kernel_tests(device, tiny, out)
    say(f"    {'passed' if kernel['ok'] else 'FAILED'}; 1b. nets against the reference backend")
    backends = ["fused"] + ([] if tiny and not COMPILED & set(variants) else ["compiled"])
    nets = check_nets(device, tiny, backends)
    say("1c. the trainer (float32, bf16" + (", fp16 + scaler)" if device.type == "cuda" else ")"))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = check_trainer(device, tiny, Path(tmp))
    speed = []
    for label, (full, small) in WORKLOADS.items():
        say(f"2. speed: {label}{' (tiny shapes)' if tiny else ''}")
        speed.append(measure_workload(label, small if tiny else full, variants, device, reps))
    say("3. projection of the CIFAR-100 ResNet-20 row")
    projection = project_paper_row(device, tiny, speed, reps)
    frameworks = None
    if not tiny and not args.skip_frameworks:
        say("4. the framework benchmark at the published sizes")
        frameworks = run_frameworks_bench(device, out)
    ok = kernel["ok"] and all(r["ok"] for r in nets) and all(r["ok"] for r in trainer)
    report = {"environment": env, "correctness": {"kernel_tests": kernel, "nets": nets, "trainer": trainer},
              "speed": speed, "projection": projection, "frameworks": frameworks, "ok": ok, "auto_compile_min_steps": AUTO_COMPILE_MIN_STEPS,
              "seconds": round(time.perf_counter() - started, 1)}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    (out / "gpu_check.md").write_text(text)
    print(text)
    say(f"done; {out / 'gpu_check.md'}, {out / 'gpu_check.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
