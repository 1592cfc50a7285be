"""The documentation stays complete and true to the code: README.md, docs/ and .env.example.

Every setting, stack setting and command-line option is documented; the README stays a
short front page; every relative link leads somewhere. Runs without a database.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
ENV_EXAMPLE = REPO / ".env.example"
SETTINGS_PAGE = DOCS / "settings.md"
MAX_README_LINES = 300

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def all_docs_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in markdown_files())


def settings_text() -> str:
    """Where a setting counts as documented: the settings page, or the README."""
    return SETTINGS_PAGE.read_text(encoding="utf-8") + "\n" + README.read_text(encoding="utf-8")


def env_example_names() -> set[str]:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", text, re.MULTILINE))


def compose_settings() -> set[str]:
    """The ${NAME...} references docker-compose.yml reads from .env."""
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))


def mentions(text: str, word: str) -> bool:
    """``word`` in a code span of its own: `NAME`, `--option` or `--option VALUE`."""
    return re.search(rf"`{re.escape(word)}(?![A-Za-z0-9_-])[^`]*`", text) is not None


def outside_code_blocks(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def links(path: Path) -> list[str]:
    return [target for line in outside_code_blocks(path.read_text(encoding="utf-8"))
            for target in LINK.findall(line)]


def is_relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the file's headings: lowercase, punctuation dropped, - for spaces."""
    seen: dict[str, int] = {}
    found = set()
    for line in outside_code_blocks(path.read_text(encoding="utf-8")):
        heading = HEADING.match(line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


# --- settings and options --------------------------------------------------------------------

def test_every_loader_setting_is_in_env_example_and_the_settings_docs():
    from wearables_ingest.settings import SETTINGS

    assert SETTINGS
    in_example = env_example_names()
    documented = settings_text()
    missing_example = [name for name in SETTINGS if name not in in_example]
    undocumented = [name for name in SETTINGS if not mentions(documented, name)]
    assert not missing_example, f"add to .env.example (NAME=default): {missing_example}"
    assert not undocumented, f"document in docs/settings.md: {undocumented}"


def test_every_command_line_option_is_documented():
    from wearables_ingest.cli import build_parser, build_status_parser

    options = sorted({option for parser in (build_parser(), build_status_parser())
                      for action in parser._actions
                      for option in action.option_strings if option.startswith("--")})
    assert "--help" in options and "--days" in options  # the load's, and status's
    text = all_docs_text()
    undocumented = [option for option in options if not mentions(text, option)]
    assert not undocumented, f"document in docs/settings.md: {undocumented}"


def test_every_stack_setting_in_compose_is_in_env_example_and_the_settings_docs():
    used = compose_settings()
    assert {"POSTGRES_PASSWORD", "INGEST_DB_PASSWORD"} <= used
    in_example = env_example_names()
    documented = settings_text()
    missing_example = sorted(used - in_example)
    undocumented = sorted(name for name in used if not mentions(documented, name))
    assert not missing_example, f"add to .env.example (NAME=default): {missing_example}"
    assert not undocumented, f"document in docs/settings.md: {undocumented}"


# --- the README as a front page --------------------------------------------------------------

def test_readme_is_at_most_300_lines():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines; move the detail to docs/")


def test_readme_starts_with_the_quick_start_then_daily_operations():
    sections = [line[3:].strip() for line in outside_code_blocks(README.read_text("utf-8"))
                if line.startswith("## ")]
    assert sections[:2] == ["Quick start", "Daily operations"], sections


def test_readme_test_command_is_the_one_ci_runs():
    readme = README.read_text(encoding="utf-8")
    assert "```sh\nmake test\n```" in readme
    assert "CI runs exactly this" in readme
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test\s*$", ci, re.MULTILINE)


# --- links and leftovers ---------------------------------------------------------------------

@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_point_to_existing_files(path):
    broken = []
    for target in links(path):
        if not is_relative(target) or target.startswith("#"):
            continue
        file_part = target.split("#", 1)[0]
        if not (path.parent / file_part).exists():
            broken.append(target)
    assert not broken, f"{path.name}: links to missing files: {broken}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_links_to_headings_point_to_existing_headings(path):
    broken = []
    for target in links(path):
        if not is_relative(target) or "#" not in target:
            continue
        file_part, anchor = target.split("#", 1)
        linked = path.parent / file_part if file_part else path
        if linked.suffix == ".md" and linked.is_file() and anchor not in anchors(linked):
            broken.append(target)
    assert not broken, f"{path.name}: links to missing headings: {broken}"


def test_no_leftover_task_paths_in_readme_docs_or_env_example():
    leftovers = [path.relative_to(REPO).as_posix()
                 for path in [*markdown_files(), ENV_EXAMPLE]
                 if "../task_" in path.read_text(encoding="utf-8")]
    assert not leftovers, f"leftover ../task_ paths in: {leftovers}"
