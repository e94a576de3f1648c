"""Keep freed CPU memory for reuse instead of returning it to the OS (glibc, Linux).

PyTorch's CPU tensors come from ``malloc``. glibc serves large requests
(activations of a few MiB and up) with fresh ``mmap`` pages and unmaps them on
``free``, so every activation-sized temporary of a training step pays page
faults on first touch: on this project's machines, writing a new 32 MiB tensor
costs about 4x as much as writing into a reused one. A training loop allocates
the same sizes step after step, so serving them from the heap and keeping the
heap (``M_MMAP_MAX = 0``, a high ``M_TRIM_THRESHOLD``) removes that cost; the
process keeps its peak memory instead of giving it back between steps. This is
what PyTorch's CPU performance guides get from jemalloc or tcmalloc, without a
preloaded library.

It changes process-wide state, so the library never calls it on its own: the
``staa-snn`` command line does (for ``train``, ``eval``, ``profile``,
``ablate``, ``visualize``), as do the benchmarks. ``STAA_SNN_MALLOC=default``
in the environment leaves glibc as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["tune_cpu_allocator"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


def tune_cpu_allocator() -> bool:
    """Serve large allocations from the heap and keep freed memory (glibc only).

    Returns whether the settings were applied: ``False`` on other C libraries and
    platforms, with ``STAA_SNN_MALLOC=default``, or when any ``MALLOC_*`` variable
    (the user's own tuning) is set.
    """
    if os.environ.get("STAA_SNN_MALLOC", "") == "default" or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = libc.mallopt(_M_MMAP_MAX, 0)                  # no mmap for large blocks: they come from the heap
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)   # and stay there when freed
    ok &= libc.mallopt(_M_TOP_PAD, 64 << 20)           # grow the heap in 64 MiB steps
    return bool(ok)
