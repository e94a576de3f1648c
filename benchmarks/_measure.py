"""Measurement helpers shared by the benchmarks (run by hand, never in CI).

* Time: variants are run alternately in one process, and the median of each
  is reported, so machine noise hits all variants alike.
* Memory: two figures. ``saved`` is the bytes of the distinct tensors autograd
  saves for backward (exact, deterministic: the activation memory a training
  step holds; ``staa_snn.kernels.spike_storage.saved_tensor_bytes``). ``peak
  RSS`` is the growth of the process's peak resident memory
  during the step, measured in a fresh child process per variant.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable


def interleaved_medians(variants: dict[str, Callable[[], None]], reps: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each variant, measured alternately."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_rss_kib() -> int:
    """Peak resident memory of this process image, in KiB.

    Read from ``/proc/self/status`` (VmHWM), which starts afresh at exec; ``ru_maxrss``
    would carry the parent's peak over into a child process on Linux.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak_rss() -> None:
    """Start the peak (VmHWM) afresh from the current resident size (Linux
    ``/proc/self/clear_refs``; a no-op where that is not available)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def trim_heap() -> None:
    """Give the heap's free pages back to the OS (glibc ``malloc_trim``; elsewhere a no-op).

    Called before a peak is reset: freed small blocks (a per-step loop's tensors, under the mmap
    threshold) otherwise stay resident, and a step that reuses them shows no growth at all, while
    one that allocates large buffers (mmapped afresh) shows all of its own."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def child_peak_rss_growth(script: str, args: list[str]) -> dict:
    """Run ``python script --child ...args`` and parse the JSON line it prints last."""
    # A fixed mmap threshold makes glibc return large freed buffers to the OS at once; with its
    # default dynamic threshold, freed pages stay resident and hide the step's own peak.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    out = subprocess.run(
        [sys.executable, script, "--child", *args], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for the records: benchmarks of one project run on
    machines whose CPUs differ, and a ratio to the ANN moves with the convolutions' speed."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine() or "unknown CPU"


def mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:8.1f}"
