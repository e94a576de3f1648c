"""``torch.compile`` helpers: one compile per function and process, and per-step outputs
written the way each mode wants them."""

from __future__ import annotations

import functools
import logging
import sys

import torch
from torch import Tensor


# Graphs per kernel: one per distinct layer shape (the channel count and spatial size of a
# net's stages get specialised) and per variant (spikes or histories, with or without TSRD),
# so a net reaches torch's default limit of 8 and would silently fall back to eager.
RECOMPILE_LIMIT = 64


# The oldest torch whose compiler runs the neuron loops correctly, as far as tested: torch 2.4.1's
# Inductor computed wrong gradients for the fused LIF loop (T = 5, sigmoid surrogate) and torch
# 2.6.0's Dynamo failed on the STAA loops (SpeculationLog diverged) in the equivalence tests;
# torch 2.14.1 passes them all. The eager backends are tested on torch 2.4.1 and 2.14.1.
COMPILE_MIN_TORCH = (2, 7)


def compile_unsupported() -> str | None:
    """Why ``backend="compiled"`` cannot run with this torch, or ``None`` when it can."""
    version = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
    if version < COMPILE_MIN_TORCH:
        return (f"backend='compiled' needs torch >= {'.'.join(map(str, COMPILE_MIN_TORCH))} (this is {torch.__version__}, "
                f"whose compiler fails the neuron loops' equivalence tests); use backend='fused'")
    return None


@functools.cache
def compiled(fn):
    """``fn`` through ``torch.compile`` (shapes dynamic), made on first use and cached.

    Raises ``torch._dynamo.config.recompile_limit`` (a process-wide setting) to at least
    :data:`RECOMPILE_LIMIT`.
    """
    problem = compile_unsupported()
    if problem:
        raise RuntimeError(problem)
    _import_cpp_extension_quietly()
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # torch < 2.6
    if getattr(config, name, RECOMPILE_LIMIT) < RECOMPILE_LIMIT:
        setattr(config, name, RECOMPILE_LIMIT)
    return torch.compile(fn, dynamic=True)


class _NoCudaRuntimeNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No CUDA runtime is found")


def _import_cpp_extension_quietly() -> None:
    """Import ``torch.utils.cpp_extension`` (which Inductor imports on its first compile) without
    its "No CUDA runtime is found, using CUDA_HOME=..." warning: on a machine without CUDA that
    has a CUDA toolkit (nvcc on the PATH) the CPU compile is what was asked for, not a problem."""
    name = "torch.utils.cpp_extension"
    if name in sys.modules or torch.cuda.is_available():
        return
    notice = _NoCudaRuntimeNotice()
    logger = logging.getLogger(name)
    logger.addFilter(notice)
    try:
        __import__(name)
    finally:
        logger.removeFilter(notice)


def maybe_compiled(fn, use_compiled: bool):
    """``compiled(fn)`` when ``use_compiled``, else ``fn`` itself (also inside a ``torch.compile``
    of a whole net, which then traces the loop into its own graph)."""
    return compiled(fn) if use_compiled and not torch.compiler.is_compiling() else fn


class StepOutput:
    """A ``[T, ...]`` result filled one step at a time.

    Eager: each step is written in place (``out=``) into one preallocated tensor, so there
    is no per-step temporary and no final copy. Under ``torch.compile`` the steps are
    collected and stacked at the end: a write into a slice of a graph buffer is
    functionalised into a copy of the whole buffer at every step.
    """

    def __init__(self, like: Tensor) -> None:
        self.compiling = torch.compiler.is_compiling()
        self.buffer = None if self.compiling else torch.empty_like(like)
        self.steps: list[Tensor | None] = [None] * like.shape[0]

    def out(self, t: int) -> Tensor | None:
        """The ``out=`` argument for step ``t`` (``None`` under compilation)."""
        return None if self.buffer is None else self.buffer[t]

    def put(self, t: int, value: Tensor) -> Tensor:
        """Record step ``t`` (already written in place when ``out(t)`` was used) and return it."""
        if self.buffer is None:
            self.steps[t] = value
        elif value.data_ptr() != self.buffer[t].data_ptr():
            self.buffer[t].copy_(value)
        return value

    def result(self) -> Tensor:
        return self.buffer if self.buffer is not None else torch.stack(self.steps)  # type: ignore[arg-type]
