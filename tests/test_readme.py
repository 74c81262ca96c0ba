"""The README is the front door: short, its links and anchors alive, its test command the one CI runs.

The documentation site under docs/ is checked by `make docs` (`mkdocs build --strict`); the README lives
outside the site, so its links are checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)
EXPLICIT_ID = re.compile(r"\{\s*#([\w-]+)\s*\}\s*$")


def _anchors(markdown: str) -> set[str]:
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else HEADING.match(line)
        if match:
            title = match.group(1)
            explicit = EXPLICIT_ID.search(title)
            anchors.add(explicit.group(1) if explicit else slugify(re.sub(r"[`*]", "", title), "-"))
    return anchors


def _links(markdown: str) -> list[str]:
    without_code = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return [target for target in LINK.findall(without_code) if "://" not in target]


def test_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move the detail into docs/"


def test_readme_links_and_anchors_resolve() -> None:
    markdown = README.read_text()
    links = _links(markdown)
    assert links, "the README links into the docs"
    broken = []
    for target in links:
        path, _, anchor = target.partition("#")
        file = README if not path else (README.parent / path)
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, broken


def test_readme_links_every_docs_page_it_promises() -> None:
    links = {target.partition("#")[0] for target in _links(README.read_text())}
    for page in ("docs/page.md", "docs/api.md", "docs/models.md", "docs/faces/README.md", "docs/operations.md"):
        assert page in links, page
    assert "docs/faces/astronaut.png" in links and "docs/before_after_faces.png" in links


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = README.read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    assert any(re.search(r"^make test\b", block, flags=re.M) for block in blocks)
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), flags=re.M)
    makefile = (ROOT / "Makefile").read_text()
    test_rule = re.search(r"^test:(.*)$", makefile, flags=re.M)
    assert test_rule is not None and "docs" in test_rule.group(1).split(), "make test builds the docs site"
