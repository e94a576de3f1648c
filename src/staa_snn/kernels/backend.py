"""Which neuron backend a training job runs: :func:`resolve_backend` for ``model.backend``."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil

import torch

from ._compile import compile_unsupported

__all__ = ["AUTO_COMPILE_MIN_STEPS", "resolve_backend"]

# backend="auto": compile the neuron loops when the job has at least this many optimiser steps
# (the compile costs tens of seconds to a few minutes per process; a paper row has ~200 000 steps,
# the bundled digits default 360).
AUTO_COMPILE_MIN_STEPS = 2000


def resolve_backend(requested: str, steps: int, device: torch.device) -> tuple[str, str]:
    """``(backend, why)`` for ``model.backend``: ``"auto"`` compiles the neuron loops for jobs of
    at least :data:`AUTO_COMPILE_MIN_STEPS` optimiser steps where ``torch.compile`` can run (a C++
    compiler on the CPU, Triton on CUDA), and runs the fused eager kernels otherwise."""
    if requested != "auto":
        return requested, "as configured"
    if steps < AUTO_COMPILE_MIN_STEPS:
        return "fused", f"auto: {steps} steps, under {AUTO_COMPILE_MIN_STEPS} (compiling would not pay)"
    if platform.system() == "Windows":
        return "fused", "auto: torch.compile is not supported on Windows"
    if compile_unsupported():
        return "fused", f"auto: torch {torch.__version__} is older than the compiled backend needs"
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "fused", "auto: Triton is not installed"
    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++")):
        return "fused", "auto: no C++ compiler for torch.compile on the CPU"
    return "compiled", f"auto: {steps} steps"
