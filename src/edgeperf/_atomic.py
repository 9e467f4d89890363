"""Files that appear whole or not at all.

Every file edgeperf writes (results, traces, weights, profiles, plots) goes
through a temporary file beside its target and is renamed onto it only once
it is complete, so a reader, or a crash, never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .exceptions import InvalidParameterError

__all__ = ["atomic_path", "write_text_atomic"]


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, for writers that look at
    it); renamed onto ``path`` when the block ends normally, removed otherwise."""
    target = Path(path)
    if "\0" in str(target):  # the OS cannot take one
        raise InvalidParameterError(f"Cannot write {str(target)!r}: a path has no NUL byte.")
    if target.is_dir() or not target.parent.is_dir():
        why = "it is a folder" if target.is_dir() else "its folder does not exist"
        raise InvalidParameterError(f"Cannot write {str(target)!r}: {why}.")
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                suffix=f".tmp{target.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o644)  # mkstemp makes it private; results are meant to be shared
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
