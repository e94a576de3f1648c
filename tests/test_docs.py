"""Every Python snippet of the README and docs/ runs as written: a file's snippets in order, in one
namespace (as a reader pastes them), in an empty folder. A snippet that needs data the tests cannot
have says so in an HTML comment just before it (``<!-- not run: needs ... -->``)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(<!-- not run: (?P<why>[^>]*?) -->\s*\n)?```python\n(?P<code>.*?)```", re.S)


def snippets(path: Path) -> list[tuple[str, str | None]]:
    return [(m["code"], m["why"]) for m in BLOCK.finditer(path.read_text())]


def test_the_docs_have_snippets_and_every_skip_says_why():
    found = {p.name: snippets(p) for p in FILES}
    assert sum(len(v) for v in found.values()) >= 6
    assert all(why.strip() for v in found.values() for _, why in v if why is not None)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in FILES if snippets(p)], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_snippets_run_as_written(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__snippet__"}
    for i, (code, why) in enumerate(snippets(path)):
        if why is None:
            exec(compile(code, f"{path.name} snippet {i + 1}", "exec"), namespace)  # noqa: S102
