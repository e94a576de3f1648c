"""The package's layers (README.md, "Layout"): the import-linter contracts of pyproject.toml hold
(no upward import, no cycle, no private module imported from another package; imports inside
functions count), and no private name (``_x``) is imported from another package."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "staa_snn"


def test_the_layers_contracts_hold():
    """``lint-imports`` (import-linter, in the dev extra) on pyproject.toml's contracts, on this
    checkout's sources, in a process of its own (it reads the package's files, not sys.modules)."""
    pytest.importorskip("importlinter", reason='import-linter checks the layers: pip install -e ".[dev]"')
    run = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", run], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 kept, 0 broken" in out.stdout, out.stdout


def _package(module: str) -> str:
    """``staa_snn.<package>`` of a module (a top-level module is its own package)."""
    return ".".join(module.split(".")[:2])


def private_crossings(source: str, module: str, is_package: bool = False) -> list[str]:
    """``line: name`` of each private name (a ``_x`` part, not ``__x__``) that ``module`` imports
    from another of staa_snn's packages (relative imports resolved, imports inside functions too).
    Top-level private modules (``staa_snn._io``) are the whole package's own."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = here[:len(here) - node.level + 1] if node.level else []
        origin = ".".join(base + ([node.module] if node.module else []))
        for alias in node.names:
            full = f"{origin}.{alias.name}"
            private = any(p.startswith("_") and not p.endswith("__") for p in full.split(".")[2:])
            if full.startswith("staa_snn.") and private and _package(full) != _package(module):
                found.append(f"{node.lineno}: {full}")
    return found


def test_no_private_name_is_imported_from_another_package():
    crossing = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        crossing += [f"{path.relative_to(ROOT)}:{c}" for c in private_crossings(path.read_text(), module, is_package)]
    assert not crossing, "private names used across packages:\n" + "\n".join(crossing)


def test_the_private_name_check_finds_a_crossing():
    """The check above can fail: another package's private name is found, one's own is not."""
    assert private_crossings("from .data.dvs import _read_npz", "staa_snn.inference") == [
        "1: staa_snn.data.dvs._read_npz"]
    assert private_crossings("def f():\n    from ..kernels._compile import x", "staa_snn.models.fold") == [
        "2: staa_snn.kernels._compile.x"]
    assert private_crossings("from ._compile import compile_unsupported", "staa_snn.kernels.backend") == []
    assert private_crossings("from . import _compile", "staa_snn.kernels", is_package=True) == []
    assert private_crossings("from .._io import atomic_path", "staa_snn.export.weights") == []


MAX_FILE_LINES, MAX_FUNCTION_LINES = 500, 60  # issue 35: a module a newcomer can read, a function on a screen


def oversized(source: str, name: str) -> list[str]:
    """The file (over MAX_FILE_LINES) and the functions (decorators and docstring included, over
    MAX_FUNCTION_LINES) of one source file that are too long."""
    found = [f"{name}: {source.count(chr(10))} lines"] if source.count("\n") > MAX_FILE_LINES else []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.lineno} {node.name}: {node.end_lineno - start + 1} lines")
    return found


def test_no_file_or_function_is_too_long():
    too_long = [o for path in sorted(SRC.rglob("*.py")) for o in oversized(path.read_text(), str(path.relative_to(ROOT)))]
    assert not too_long, "split these (move code into a module or a function of its own):\n" + "\n".join(too_long)


def test_the_length_check_finds_a_long_function():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert oversized(f"@staticmethod\ndef f():\n{body}", "m.py") == [f"m.py:2 f: {MAX_FUNCTION_LINES + 2} lines"]
    assert oversized("def f():\n    pass\n" * 300, "m.py") == ["m.py: 600 lines"]
