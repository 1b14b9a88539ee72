"""The docs stay reachable: every page in docs/ is in mkdocs.yml's nav and linked from the
README, and every docs/ page the code, tests and contrib files name exists. (`mkdocs build
--strict` in .ci/run checks the links between pages.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def pages() -> set[str]:
    return {p.name for p in DOCS.glob("*.md")}


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1]
    listed = set(re.findall(r"([\w.-]+\.md)\s*$", nav, re.MULTILINE))
    assert pages() - listed == set(), "pages missing from mkdocs.yml's nav"
    assert listed - pages() == set(), "nav entries without a page"


def test_the_readme_links_every_page() -> None:
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)\)", (ROOT / "README.md").read_text()))
    assert pages() - linked == set(), "pages the README does not link"


def test_docs_pages_named_in_the_code_exist() -> None:
    named: dict[str, str] = {}
    for top in ("geodns", "tests", "bench", "contrib"):
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".yaml", ".json", ".service", ".md"}:
                for page in re.findall(r"docs/([\w.-]+\.md)", path.read_text(errors="replace")):
                    named.setdefault(page, str(path.relative_to(ROOT)))
    missing = {page: where for page, where in named.items() if not (DOCS / page).exists()}
    assert missing == {}
