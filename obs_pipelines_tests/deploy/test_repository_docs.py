"""The repository stands alone: its docs link only files inside it, the install steps work without PyPI, and
docs/architecture.md describes the `spans` contract the code defines."""

from __future__ import annotations

import re
from pathlib import Path

from obs_pipelines.store.schema import SPAN_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
USER_DOCS = [
    ROOT / "README.md",
    ROOT / "deploy" / "README.md",
    ROOT / "config" / "example.yaml",
    *sorted((ROOT / "docs").glob("*.md")),
]
MD_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_user_docs_never_point_outside_the_repository():
    for doc in USER_DOCS:
        text = doc.read_text()
        assert "../shared" not in text, doc
        assert "ARCHITECTURE.md" not in text, doc


def test_every_relative_link_in_the_docs_resolves_inside_the_repository():
    for doc in USER_DOCS:
        for target in MD_LINK.findall(doc.read_text()):
            if "://" in target:
                continue
            path = (doc.parent / target).resolve()
            assert path.is_relative_to(ROOT) and path.exists(), (doc.name, target)


def test_readme_links_the_projects_own_architecture_page():
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text()


def test_deploy_readme_installs_from_the_repository_not_from_pypi():
    text = (ROOT / "deploy" / "README.md").read_text()
    assert "pip install obs_pipelines`" not in text
    assert "git+https://" in text


def test_the_architecture_page_lists_every_column_of_the_spans_contract():
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## The raw trace contract", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| column") and not line.startswith("|---"):
            documented.update(c.strip() for c in line.split("|")[1].split(","))
    assert documented == set(SPAN_COLUMNS)
