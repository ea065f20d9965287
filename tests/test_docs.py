"""The README and docs/ stay true: every relative link resolves, every ``hpolab`` command shown
in a code block is one the command line accepts, and every notebook has its study page."""

import re
import shlex
from pathlib import Path

import pytest

from hpolab.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```(?:bash)?\n(.*?)```", re.S)


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(page.read_text())
            if not re.match(r"[a-z]+://|#|mailto:", target)]


def commands(page: Path) -> list[str]:
    """Each line of a fenced code block that runs ``hpolab``, without its comment."""
    found = []
    for block in FENCE.findall(page.read_text()):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if re.match(r"(\.venv/bin/)?hpolab ", line):
                found.append(line)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not broken, f"{page.name} links to missing {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_hpolab_command_shown_parses(page):
    parser = build_parser()
    for line in commands(page):
        try:
            parser.parse_args(shlex.split(line)[1:])
        except SystemExit:
            pytest.fail(f"{page.name}: `{line}` does not parse")


def test_the_readme_shows_the_two_setup_commands_and_a_study_page_per_notebook():
    readme = (ROOT / "README.md").read_text()
    assert ".venv/bin/pip install -e '.[test]' && .venv/bin/hpolab run 01_jd_sphere --scale cpu" in readme
    assert ".venv/bin/python -m pytest" in readme
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    pages = sorted(p.stem for p in (ROOT / "docs" / "studies").glob("[0-9][0-9]_*.md"))
    assert pages == notebooks
