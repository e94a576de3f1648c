"""Every name README.md and docs/*.md import or name (``from staa_snn.x import a, b``,
``staa_snn.x.y``) still imports from where they say: code that moved is re-exported there."""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_names() -> set[tuple[str, str | None]]:
    """``(module, name)`` pairs: ``from M import a, b`` gives ``(M, a)``, ``(M, b)``; a dotted
    ``staa_snn.x.y`` gives ``(staa_snn.x, y)`` (a module, or a name in one: both are tried)."""
    found = set()
    for path in DOCS:
        text = path.read_text()
        for module, names in re.findall(r"from (staa_snn[\w.]*) import ([\w, ()]+)", text):
            found |= {(module, n.strip("() ")) for n in names.split(",") if n.strip("() ")}
        for dotted in re.findall(r"\bstaa_snn(?:\.\w+)+", text):
            module, _, name = dotted.rpartition(".")
            found.add((module, name))
    return found


def resolves(module: str, name: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), name) or bool(importlib.import_module(f"{module}.{name}"))
    except ModuleNotFoundError:
        return False


def test_the_docs_name_enough_to_check():
    names = documented_names()
    assert ("staa_snn.training.engine", "tet_loss") in names and ("staa_snn.inference", "exit_curve") in names
    assert len(names) >= 30
    assert not resolves("staa_snn.training", "no_such_name")  # the check can fail


@pytest.mark.parametrize("module, name", sorted(documented_names()))
def test_documented_name_imports(module, name):
    assert resolves(module, name), f"{module}.{name} is named in the docs but does not import"
