"""Files that appear whole or not at all, and targets that cannot be written."""

from __future__ import annotations

import pytest

from edgeperf._atomic import atomic_path, write_text_atomic
from edgeperf.exceptions import InvalidParameterError


def test_a_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_target_that_cannot_be_written_is_named(tmp_path):
    """Not the temporary file's name, and nothing is left behind."""
    for target, why in ((tmp_path / "no" / "a.txt", "its folder does not exist"),
                        (tmp_path, "it is a folder")):
        with pytest.raises(InvalidParameterError,
                           match=rf"^Cannot write '{target}': {why}\.$"):
            write_text_atomic(target, "text")
    with pytest.raises(InvalidParameterError, match=r"^Cannot write '.*a\\x00b': a path has no "
                       r"NUL byte\.$"):
        write_text_atomic(tmp_path / "a\0b", "text")  # os raised a bare ValueError
    assert list(tmp_path.iterdir()) == []
