"""Running the edgeperf command in-process, shared by the CLI test files."""

from __future__ import annotations

import re

import pytest

from edgeperf.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``edgeperf argv...``."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as done:
        code = 0 if done.code is None else done.code  # type: ignore[assignment]
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code: int, out: str, err: str, pattern: str) -> None:
    """Exit 2, nothing on stdout, and one stderr line ``edgeperf: error: <pattern>``."""
    assert (code, out) == (2, "")
    assert "Traceback" not in err and err.endswith("\n")
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert re.fullmatch("edgeperf: error: " + pattern, lines[0]), lines[0]
