"""The documentation keeps up with the code: every flag of every `vin` command is documented, every relative link
points at a file that exists, and the README stays the five-minute page with CI's test command.

The flags are read from click's own command tree, so a new flag fails here until docs/cli.md documents it in its
command's section. The site itself (mkdocs build --strict) is built by .ci/run, not here.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

from vin.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLI_PAGE = DOCS / "cli.md"
README = ROOT / "README.md"
PAGES = sorted(DOCS.rglob("*.md"))
LINKED = [README, ROOT / "benchmarks" / "README.md", *PAGES]  # every markdown file whose links are checked
# Images the site shows, copied into docs/ (mkdocs serves only docs/): each must stay the file it was copied from.
COPIES = {"assets/mawe.png": "benchmarks/results/mawe.png", "assets/contact_sheet.png": "benchmarks/results/contact_sheet.png"}
README_MAX_LINES = 150


def commands(command: click.Command = main, path: tuple[str, ...] = ("vin",)):
    """(path, command) for the `vin` group and every command and sub-command under it, from click's tree."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from commands(sub, (*path, name))


def flags(command: click.Command) -> list[str]:
    """Every option string of a command (`--procedural` and `--no-procedural` both); --help is click's own."""
    return [flag for p in command.params if isinstance(p, click.Option) for flag in (*p.opts, *p.secondary_opts)]


def mentions(text: str, word: str) -> bool:
    """`word` (a flag) in `text` as a whole token: `--plot` is not found inside `--plot-metrics`."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def headings(text: str) -> list[tuple[int, str, int]]:
    """(level, title without backticks, line index) of every markdown heading outside fenced code."""
    found, fenced = [], False
    for i, line in enumerate(text.splitlines()):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line)):
            found.append((len(m.group(1)), m.group(2).replace("`", "").strip(), i))
    return found


def section(text: str, title: str) -> str | None:
    """The lines under the heading `title` up to the next heading of the same or a higher level; None if absent."""
    lines, heads = text.splitlines(), headings(text)
    for n, (level, name, start) in enumerate(heads):
        if name == title:
            end = next((i for lvl, _, i in heads[n + 1 :] if lvl <= level), len(lines))
            return "\n".join(lines[start + 1 : end])
    return None


def command_docs(path: tuple[str, ...]) -> str:
    """Where a command's flags must be documented: its section of docs/cli.md (`## vin generate`); the `vin`
    group's own options anywhere on that page."""
    text = CLI_PAGE.read_text()
    if len(path) == 1:
        return text
    found = section(text, " ".join(path))
    assert found is not None, f"docs/cli.md has no section for `{' '.join(path)}`: add a heading '## `{' '.join(path)}`'"
    return found


@pytest.mark.parametrize("path", [p for p, _ in commands()], ids=" ".join)
def test_every_flag_of_every_command_is_documented(path):
    command = dict(commands())[path]
    text = command_docs(path)
    missing = [flag for flag in flags(command) if not mentions(text, flag)]
    missing += [p.name.upper() for p in command.params if isinstance(p, click.Argument) and p.name.upper() not in text]
    assert not missing, (f"`{' '.join(path)}` has {', '.join(missing)}, not documented in its section of docs/cli.md: "
                         "add a row to that command's flag table (what it does, its default)")  # fmt: skip


def test_the_flag_check_fails_on_an_undocumented_flag():
    """The check above is not vacuous: a flag that only exists in a command of this test is reported missing."""
    probe = click.Command("generate", params=[click.Option(["--an-undocumented-flag"]), click.Option(["--frames"])])
    text = command_docs(("vin", "generate"))
    assert [f for f in flags(probe) if not mentions(text, f)] == ["--an-undocumented-flag"]
    assert not mentions("`--plot-metrics LIST`", "--plot") and mentions("`--plot FILE`", "--plot")


def links(path: Path) -> list[str]:
    """The targets of the markdown links and images (and HTML src/href) of a page, outside code."""
    text = re.sub(r"(?ms)^\s*```.*?^\s*```", "", path.read_text())  # fenced code
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    found = re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    return found + re.findall(r"""(?:src|href)=["']([^"']+)["']""", text)


def slug(title: str) -> str:
    """A heading's anchor as GitHub and mkdocs' toc make it for plain titles: lower case, punctuation dropped."""
    return re.sub(r"\s+", "-", re.sub(r"[^\w\s-]", "", title.lower()).strip())


@pytest.mark.parametrize("page", LINKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("//"):
            continue  # http:, https:, mailto: ...
        file, _, anchor = target.partition("#")
        where = (page.parent / file).resolve() if file else page
        if not where.exists():
            broken.append(f"{target} (no file {where.relative_to(ROOT) if where.is_relative_to(ROOT) else where})")
        elif page.is_relative_to(DOCS) and not where.is_relative_to(DOCS):
            broken.append(f"{target} (outside docs/: the site serves only docs/; copy the file into docs/assets)")
        elif anchor and where.suffix == ".md" and anchor not in {slug(t) for _, t, _ in headings(where.read_text())}:
            broken.append(f"{target} (no heading with the anchor #{anchor} in {where.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: " + "; ".join(broken)


def test_every_page_is_in_the_site_navigation():
    def pages(nav) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, dict):
            return [p for v in nav.values() for p in pages(v)]
        return [p for item in nav for p in pages(item)]

    listed = pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    assert sorted(listed) == sorted(str(p.relative_to(DOCS)) for p in PAGES)


@pytest.mark.parametrize("copy", sorted(COPIES))
def test_the_images_the_site_shows_are_the_current_ones(copy):
    source = COPIES[copy]
    assert (DOCS / copy).read_bytes() == (ROOT / source).read_bytes(), f"docs/{copy} is stale: cp {source} docs/{copy}"


def test_the_readme_is_short_and_opens_with_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES, "the README is the five-minute page: move details to docs/"
    first = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first is not None and text.index("```bash") < text.index("\n## "), "the set-up commands come first"
    commands_ = [line for line in first.group(1).splitlines() if line and not line.startswith("#")]
    assert commands_ == ['python -m pip install torch==2.13.0 -e . && vin generate --frames 256 --out long.mp4 --upscale 8',
                         'python -m pip install torch==2.13.0 -e ".[test]" && python -m pytest -q']  # fmt: skip
    assert commands_[1] in (ROOT / ".ci" / "run").read_text().splitlines(), "CI runs the README's test command"
