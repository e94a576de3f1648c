"""How many threads torch's CPU operations get (``train.threads``, ``staa-snn eval --threads``).

torch starts with one intra-op thread per core of the machine, whether or not this process may
use those cores. Where it may not -- another process busy on them, a CPU affinity mask, a
container's CPU quota -- the threads of each parallel region wait at its barrier for a core
(OpenMP threads spin-wait first): on 2 cores beside one busy process a 1x32x16x16 BatchNorm
took 8 ms with 2 threads against 0.04 ms with 1, and a training run went 15x slower.

``threads="auto"`` (the default) counts the CPUs this process may actually use:

1. the CPUs of its affinity mask (``os.sched_getaffinity``), not ``os.cpu_count()``;
2. at most the cgroup CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` /
   ``cpu.cfs_period_us``, the smallest along the cgroup's path), rounded down, at least 1;
3. less the CPUs other processes keep busy at normal priority, measured over a short window
   (:data:`SAMPLE_S`) from ``/proc/stat`` on those CPUs (their busy fractions summed, rounded:
   one busy process is one CPU, wherever the scheduler moves it); time of niced processes
   (``nice`` column) does not count, as they give way to this one at once.

``OMP_NUM_THREADS`` set in the environment is the user's choice and wins over ``auto``; a number
(``threads=1``) wins over both. The choice is made once, when a run starts: a neighbour that
starts later is not seen (the trainer then prints a hint when the throughput collapses,
:class:`ThroughputWatch`).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["SAMPLE_S", "ThreadChoice", "ThroughputWatch", "busy_cpus", "cgroup_cpu_limit", "check_threads",
           "choose_threads", "usable_cpus"]

SAMPLE_S = 0.1  # window over which the neighbours' CPU use is measured (10 jiffies a CPU)


def check_threads(value) -> int | str:
    """``"auto"`` or a positive int, else a ``ValueError`` saying what is valid."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"threads must be 'auto' or a positive number of threads, got {value!r}")
    return value


def affinity_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask; all of them where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _smallest_up(path: Path, root: Path, read) -> float | None:
    """The smallest ``read(folder)`` (a quota in CPUs, or ``None``) from ``path`` up to ``root``:
    a cgroup is held to its ancestors' quotas too."""
    limits = []
    while True:
        try:
            limit = read(path)
            if limit is not None:
                limits.append(limit)
        except (OSError, ValueError):
            pass
        if path == root or root not in path.parents:
            break
        path = path.parent
    return min(limits) if limits else None


def _v2_quota(folder: Path) -> float | None:
    quota, period = (folder / "cpu.max").read_text().split()[:2]
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(folder: Path) -> float | None:
    quota = int((folder / "cpu.cfs_quota_us").read_text())
    period = int((folder / "cpu.cfs_period_us").read_text())
    return quota / period if quota > 0 and period > 0 else None


def _v2_limit(path: Path, root: Path) -> float | None:
    return _smallest_up(path, root, _v2_quota)


def _v1_limit(path: Path, root: Path) -> float | None:
    return _smallest_up(path, root, _v1_quota)


def cgroup_cpu_limit(root: str | os.PathLike = "/sys/fs/cgroup",
                     self_cgroup: str | os.PathLike = "/proc/self/cgroup") -> float | None:
    """The CPU quota of this process's cgroup in CPUs (``1.5``: 150 ms per 100 ms), the smallest
    along its path; ``None`` where there is none (or no cgroup file system)."""
    root = Path(root)
    try:
        lines = Path(self_cgroup).read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = path.lstrip("/")
        if controllers == "" and (root / "cgroup.controllers").exists():  # cgroup v2 (unified)
            found = _v2_limit(root / rel, root)
        elif "cpu" in controllers.split(","):  # cgroup v1: cpu,cpuacct or cpu
            base = next((root / name for name in (controllers, "cpu,cpuacct", "cpu") if (root / name).is_dir()), None)
            found = _v1_limit(base / rel, base) if base is not None else None
        else:
            continue
        if found is not None:
            limits.append(found)
    return min(limits) if limits else None


def usable_cpus(cpus: list[int] | None = None, quota: float | None | str = "read") -> int:
    """The CPUs this process may use: its affinity mask, capped by the cgroup quota (rounded down,
    at least 1)."""
    count = len(cpus if cpus is not None else affinity_cpus())
    quota = cgroup_cpu_limit() if quota == "read" else quota
    if quota is not None:
        count = min(count, max(1, math.floor(quota + 1e-9)))
    return max(1, count)


def _cpu_times(stat: str, cpus: list[int]) -> dict[int, tuple[int, int]]:
    """``cpu -> (busy, total)`` jiffies from ``/proc/stat``'s per-CPU lines; busy excludes idle,
    iowait and nice (niced processes give way at once)."""
    out = {}
    for line in stat.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        cpu = int(name[3:])
        if cpu not in cpus:
            continue
        v = [int(f) for f in fields] + [0] * 10
        user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
        total = user + nice + system + idle + iowait + irq + softirq + steal
        out[cpu] = (user + system + irq + softirq + steal, total)
    return out


def busy_cpus(cpus: list[int] | None = None, *, sample_s: float = SAMPLE_S, stat_path="/proc/stat",
              read=None) -> int:
    """How many of ``cpus`` other processes keep busy at normal priority: the non-idle, non-niced
    fractions of ``cpus`` over ``sample_s`` (this process sleeping), summed and rounded (half
    up). ``0`` where ``/proc/stat`` cannot be read. ``read``: a function returning the file's
    text (tests)."""
    cpus = cpus if cpus is not None else affinity_cpus()
    read = read or (lambda: Path(stat_path).read_text())
    try:
        before = _cpu_times(read(), cpus)
        time.sleep(sample_s)
        after = _cpu_times(read(), cpus)
    except (OSError, ValueError):
        return 0
    busy = 0.0
    for cpu, (b1, t1) in after.items():
        b0, t0 = before.get(cpu, (b1, t1))
        if t1 > t0:
            busy += min(max((b1 - b0) / (t1 - t0), 0.0), 1.0)
    return math.floor(busy + 0.5)


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str  # one line: what it was chosen from


def choose_threads(setting: int | str = "auto", *, environ=None, cpus=None, quota="read", busy=None) -> ThreadChoice:
    """The intra-op thread count for ``setting`` (``"auto"`` or a number), with why (module doc).
    ``environ``, ``cpus``, ``quota``, ``busy`` replace what is read from the system (tests)."""
    setting = check_threads(setting)
    if setting != "auto":
        return ThreadChoice(setting, f"threads={setting}")
    environ = os.environ if environ is None else environ
    if environ.get("OMP_NUM_THREADS", "").strip().isdigit() and int(environ["OMP_NUM_THREADS"]) > 0:
        n = int(environ["OMP_NUM_THREADS"])
        return ThreadChoice(n, f"auto: OMP_NUM_THREADS={n}")
    cpus = cpus if cpus is not None else affinity_cpus()
    quota = cgroup_cpu_limit() if quota == "read" else quota
    usable = usable_cpus(cpus, quota)
    taken = busy_cpus(cpus) if busy is None else busy
    n = max(1, usable - taken)
    parts = [f"{len(cpus)} CPU{'s' if len(cpus) != 1 else ''} in the affinity mask"]
    if quota is not None:
        parts.append(f"a cgroup quota of {quota:g}")
    if taken:
        parts.append(f"{taken} kept busy by other processes")
    return ThreadChoice(n, "auto: " + ", ".join(parts))


def apply_threads(choice: ThreadChoice) -> int:
    """Set torch's intra-op threads to ``choice.threads``; returns the count it had before."""
    before = torch.get_num_threads()
    if choice.threads != before:
        torch.set_num_threads(choice.threads)
    return before


class ThroughputWatch:
    """Says once when the training throughput collapses: a window at most ``1 / factor`` of the
    best one so far, with more than one thread (the sign of a neighbour taking a core)."""

    def __init__(self, threads: int, factor: float = 4.0, min_windows: int = 2) -> None:
        self.threads, self.factor, self.min_windows = threads, factor, min_windows
        self.best = 0.0
        self.windows = 0
        self.said = False

    def add(self, samples_per_s: float) -> str | None:
        """Record one window's throughput; the hint (one line) the first time it collapses."""
        self.windows += 1
        if self.said or self.threads <= 1 or samples_per_s <= 0:
            self.best = max(self.best, samples_per_s)
            return None
        if self.windows > self.min_windows and self.best > 0 and samples_per_s * self.factor <= self.best:
            self.said = True
            return (f"training slowed from {self.best:.0f} to {samples_per_s:.0f} samples/s with {self.threads} "
                    f"threads: another process may be using these CPUs; train.threads=1 (or OMP_NUM_THREADS=1) "
                    f"avoids the threads waiting for each other (docs/troubleshooting.md)")
        self.best = max(self.best, samples_per_s)
        return None
