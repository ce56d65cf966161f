"""Every ```python block in the docs runs: the blocks of a page execute in order in one
namespace (as a reader would paste them), and their own asserts check the numbers against
closed forms and scipy references.

A block preceded by the line `<!-- slow -->` (an HTML comment, invisible on the page)
takes minutes: it runs only in the slow tier, after the page's other blocks, so the
default tier runs the blocks before it. Pages that need the shared data or an optional
library are skipped cleanly where it is missing.

Tiers: the default tier runs one representative page (`getting-started.md`: models,
solves, adjoints, events, steady states; about 30 s of compilation); the slow tier runs
every page whole (the events, stiff and PEtab pages compile for minutes; much of what
their blocks compute is also checked in test_events.py, test_rosenbrock.py, test_fused.py
and test_petab.py)."""

import importlib
import importlib.util
import os
import re
from pathlib import Path

import pytest
from _paths import PETAB

DOCS = Path(__file__).parent.parent / "docs"
PAGES = ["getting-started.md", "events.md", "stiff.md", "petab.md"]
PETAB_DATA = os.path.join(PETAB, "Boehm_JProteomeRes2014")
# page -> (modules it imports, files it reads)
REQUIRES = {
    "petab.md": (("petab", "libsbml"), (PETAB_DATA,)),
}
# page -> the folder its blocks run in (their paths are relative to it)
WORKDIR = {"petab.md": PETAB}
SLOW = "<!-- slow -->"
DEFAULT_TIER = ("getting-started.md",)


def python_blocks(page: Path, slow: bool = True) -> list[str]:
    """The page's python blocks in order; without the slow ones unless `slow`."""
    found = re.findall(
        rf"^({re.escape(SLOW)}\n)?```python\n(.*?)^```",
        page.read_text(),
        flags=re.S | re.M,
    )
    return [code for marker, code in found if slow or not marker]


def skip_unless_available(name: str) -> None:
    modules, paths = REQUIRES.get(name, ((), ()))
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{name} needs {module}")
    for path in paths:
        if not os.path.exists(path):
            pytest.skip(f"{name} needs {path}")


def run_blocks(page: Path, slow: bool) -> None:
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for index, block in enumerate(python_blocks(page, slow=slow)):
        code = compile(block, f"{page}[block {index}]", "exec")
        exec(code, namespace)  # noqa: S102  (the docs' own snippets)


@pytest.mark.parametrize("name", PAGES)
def test_page_has_code(name):
    assert len(python_blocks(DOCS / name)) >= 5


@pytest.mark.parametrize("name", DEFAULT_TIER)
def test_page_code_runs(name, monkeypatch):
    skip_unless_available(name)
    monkeypatch.chdir(WORKDIR.get(name, DOCS.parent))
    run_blocks(DOCS / name, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [p for p in PAGES if p not in DEFAULT_TIER or SLOW in (DOCS / p).read_text()],
)
def test_page_slow_code_runs(name, monkeypatch):
    skip_unless_available(name)
    monkeypatch.chdir(WORKDIR.get(name, DOCS.parent))
    run_blocks(DOCS / name, slow=True)


# The site's structure (`make docs` builds it with `mkdocs build --strict`; these checks
# name the missing page or name without building it).
MKDOCS = (DOCS.parent / "mkdocs.yml").read_text()
ALL_PAGES = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))


@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_page_is_in_the_nav_and_the_index(page):
    assert re.search(rf":\s*{re.escape(page)}\s*$", MKDOCS, re.M), f"{page} not in nav"
    if page != "index.md":
        assert f"({page})" in (DOCS / "index.md").read_text(), f"{page} not in index"


@pytest.mark.parametrize(
    "module", ["odeinfer", "odeinfer.benchmarking", "odeinfer.plotting"]
)
def test_every_public_name_has_an_api_entry(module):
    api = "".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    entries = set(re.findall(r"^::: ([\w.]+)$", api, re.M))
    missing = [
        name
        for name in importlib.import_module(module).__all__
        if f"{module}.{name}" not in entries
    ]
    assert not missing, f"no `::: {module}.NAME` in docs/api for {missing}"
