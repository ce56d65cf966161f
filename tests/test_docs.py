"""Every ```python block in the docs runs: the blocks of a page execute in order in one
namespace (as a reader would paste them), and their own asserts check the numbers against
closed forms and scipy references."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
PAGES = ["getting-started.md", "events.md", "stiff.md"]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


@pytest.mark.parametrize("name", PAGES)
def test_page_has_code(name):
    assert len(python_blocks(DOCS / name)) >= 5


@pytest.mark.parametrize("name", PAGES)
def test_page_code_runs(name):
    page = DOCS / name
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for index, block in enumerate(python_blocks(page)):
        code = compile(block, f"{page}[block {index}]", "exec")
        exec(code, namespace)  # noqa: S102  (the docs' own snippets)
