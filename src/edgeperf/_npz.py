"""Opening an .npz archive, and only that: numpy's own ``np.load`` reads any
other file as a pickle (refused, with advice to unpickle it) or as one array."""

from __future__ import annotations

import os
import zipfile

import numpy as np

__all__ = ["NotNpzError", "load_npz"]


class NotNpzError(ValueError):
    """The file exists but is not an .npz (zip) archive."""


def load_npz(path: str | os.PathLike[str]) -> np.lib.npyio.NpzFile:
    """``np.load(path)`` for an .npz archive, without pickles; NotNpzError for
    any other existing file, numpy's own errors otherwise (a missing file, a
    damaged archive)."""
    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise NotNpzError("not an .npz archive")
    return np.load(path, allow_pickle=False)
