"""Every `edgeperf ...` command the README and the background docs show parses:
its command exists, its options exist and take the values shown, and the files
it names under examples/ and models/ are in the repository. Running them is
`make run`'s job; this catches a renamed option or file before a newcomer does."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from edgeperf.cli import app

REPO = Path(__file__).parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs" / "background").glob("*.md"))]
_FENCED = re.compile(r"```(?:sh|bash|console)\n(.*?)```", re.S)
_INDENTED = re.compile(r"(?:^|\n\n)((?: {4}.*\n?)+)")


def _commands(text: str) -> list[str]:
    """The edgeperf lines of a document's shell blocks, continuations joined."""
    blocks = _FENCED.findall(text) + [re.sub(r"^ {4}", "", b, flags=re.M)
                                      for b in _INDENTED.findall(_FENCED.sub("", text))]
    lines = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line for line in lines if line.startswith("edgeperf ")]


SHOWN = [pytest.param(line, id=f"{doc.name}:{line[:60]}")
         for doc in DOCS for line in _commands(doc.read_text(encoding="utf-8"))]


def test_the_docs_show_commands():
    assert len(SHOWN) >= 30  # the parser above still finds the README's block


@pytest.mark.parametrize("line", SHOWN)
def test_a_shown_command_parses(line):
    args = [a.replace("$CHAINNET", "data.npz") for a in shlex.split(line, comments=True)[1:]]
    cmd, name = typer.main.get_command(app), "edgeperf"
    while hasattr(cmd, "commands"):  # a group: typer's own click, so no isinstance
        assert args and args[0] in cmd.commands, f"no command {args[:1]} in {name}"
        name, cmd, args = args[0], cmd.commands[args[0]], args[1:]
    with cmd.make_context(name, list(args)):  # a UsageError on a bad option or value
        pass
    for token in args:
        if token.startswith(("examples/", "models/")):
            assert (REPO / token).exists(), f"{token} is not in the repository"
