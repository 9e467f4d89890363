"""The exit table: what each exit of an early-exit network says about held-out samples.

For N samples and the E exits of a network (the last one the final exit):
``confidence[N, E]`` in [0, 1], ``correct[N, E]`` and optionally
``predicted[N, E]``. From it, any threshold policy's exit distribution and
accuracy follow exactly: a sample leaves at the first exit whose confidence
reaches that exit's threshold, at the final exit otherwise. The simulator
draws rows from it; the schedulers search thresholds on it.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import _validation as v
from .._atomic import atomic_path
from .._npz import load_npz

__all__ = ["ExitTable"]

# Threshold vectors are evaluated in chunks of at most this many (vector, sample)
# pairs, so that a huge batch of vectors needs a few MB of working memory.
_CHUNK_CELLS = 1 << 22


@dataclass(frozen=True, slots=True, eq=False)
class ExitTable:
    """``confidence[N, E]`` in [0, 1] and ``correct[N, E]`` of N samples at E exits,
    and optionally the class each exit ``predicted[N, E]``."""

    confidence: np.ndarray
    correct: np.ndarray
    predicted: np.ndarray | None = None

    def __post_init__(self) -> None:
        conf = v.array("ExitTable", "confidence", self.confidence, "a 2-D array [samples, exits]")
        correct = np.asarray(self.correct)
        if conf.ndim != 2 or conf.shape[0] < 1 or conf.shape[1] < 1:
            raise v.fail("ExitTable", "confidence", "a 2-D array [samples, exits]", conf.shape)
        if correct.shape != conf.shape:
            raise v.fail("ExitTable", "correct", f"the shape of confidence {conf.shape}",
                         correct.shape)
        if not np.all((conf >= 0.0) & (conf <= 1.0)):
            raise v.fail("ExitTable", "confidence", "values in [0, 1]",
                         conf[~((conf >= 0.0) & (conf <= 1.0))][0])
        if not np.all((correct == 0) | (correct == 1)):
            raise v.fail("ExitTable", "correct", "booleans (0 or 1)", correct[(correct != 0) &
                                                                             (correct != 1)][0])
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "correct", correct.astype(bool))
        if self.predicted is not None:
            object.__setattr__(self, "predicted", _predicted(self.predicted, conf.shape))

    @property
    def n_samples(self) -> int:
        return self.confidence.shape[0]

    @property
    def n_exits(self) -> int:
        return self.confidence.shape[1]

    @property
    def accuracy_by_exit(self) -> np.ndarray:
        """The share of samples each exit classifies correctly, ``[E]``."""
        return self.correct.mean(axis=0)

    def exits_for(self, thresholds: Sequence[float], rows: np.ndarray | None = None) -> np.ndarray:
        """The exit each sample (or each of ``rows``) leaves at: the first exit whose
        confidence reaches its threshold; the final exit otherwise."""
        owner = "ExitTable.exits_for"
        thr = _thresholds(thresholds, self.n_exits, owner)
        if rows is not None:
            given, rows = rows, np.asarray(rows)
            if rows.ndim != 1 or rows.dtype.kind not in "iu" or \
                    (len(rows) and not 0 <= rows.min() <= rows.max() < self.n_samples):
                raise v.fail(owner, "rows", f"a 1-D array of sample indices below "
                             f"{self.n_samples}", v.shown(given))
        conf = self.confidence if rows is None else self.confidence[rows]
        if self.n_exits == 1:
            return np.zeros(len(conf), dtype=np.int64)
        hit = conf[:, :-1] >= thr[None, :]
        return np.where(hit.any(axis=1), hit.argmax(axis=1), self.n_exits - 1)

    def evaluate(self, thresholds: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact exit distribution and accuracy of threshold policies.

        ``thresholds`` is one vector ``[E-1]`` or a matrix ``[M, E-1]`` of M vectors
        (a last column for the final exit may be given; it is ignored). Any
        numbers but NaN: a threshold <= 0 takes every sample reaching that exit,
        one > 1 none. Returns ``shares[M, E]``, the share of the samples leaving
        at each exit (rows sum to 1), and ``accuracy[M]``, the share classified
        correctly at the exit they leave at. A single vector gives M = 1.
        """
        thr = _threshold_matrix(thresholds, self.n_exits)
        n_vectors, n = len(thr), self.n_samples
        counts = np.zeros((n_vectors, self.n_exits), dtype=np.int64)
        right = np.zeros(n_vectors, dtype=np.int64)
        step = max(1, _CHUNK_CELLS // n)
        for start in range(0, n_vectors, step):
            stop = min(start + step, n_vectors)
            counts[start:stop], right[start:stop] = self._count(thr[start:stop])
        return counts / n, right / n

    def _count(self, thr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per vector: samples leaving at each exit, and samples right where they leave."""
        counts = np.empty((len(thr), self.n_exits), dtype=np.int64)
        right = np.zeros(len(thr), dtype=np.int64)
        alive = np.ones((len(thr), self.n_samples), dtype=bool)  # not yet left
        for e in range(self.n_exits - 1):
            reached = self.confidence[None, :, e] >= thr[:, e, None]
            hit = np.logical_and(reached, alive)
            counts[:, e] = np.count_nonzero(hit, axis=1)
            np.logical_xor(alive, hit, out=alive)  # hit is within alive: alive &= ~hit
            hit &= self.correct[None, :, e]
            right += np.count_nonzero(hit, axis=1)
        counts[:, -1] = np.count_nonzero(alive, axis=1)
        alive &= self.correct[None, :, -1]
        right += np.count_nonzero(alive, axis=1)
        return counts, right

    def subset(self, rows: Sequence[int] | np.ndarray) -> ExitTable:
        """The table of some samples: ``rows`` are indices (repeats allowed) or a
        boolean mask of length N."""
        idx = _rows(rows, self.n_samples)
        predicted = None if self.predicted is None else self.predicted[idx]
        return ExitTable(self.confidence[idx], self.correct[idx], predicted)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table to ``path`` as a NumPy ``.npz`` archive (no pickled objects)."""
        path = v.output_file("ExitTable.save", "path", path)
        arrays = {"confidence": self.confidence, "correct": self.correct}
        if self.predicted is not None:
            arrays["predicted"] = self.predicted
        # exactly this path (np.savez would append ".npz"), whole or not at all
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExitTable:
        """Read a table written by :meth:`save`; a bad file raises one clear error."""
        rule = ".npz file holding arrays 'confidence' and 'correct' [samples, exits]"
        path = v.path("ExitTable.load", "path", path)
        try:
            with load_npz(path) as data:
                missing = [k for k in ("confidence", "correct") if k not in data.files]
                if missing:
                    raise ValueError(f"missing {missing}")
                arrays = {k: data[k] for k in ("confidence", "correct", "predicted")
                          if k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise v.fail("ExitTable.load", "path", f"a readable {rule} ({err})",
                         os.fspath(path)) from None
        try:
            return cls(**arrays)
        except ValueError as err:
            raise v.fail("ExitTable.load", "path", f"a valid {rule} ({err})",
                         os.fspath(path)) from None


def _thresholds(thresholds: Sequence[float], n_exits: int, owner: str) -> np.ndarray:
    rule = f"one threshold per early exit ({n_exits - 1}), no NaN"
    try:
        thr = np.asarray(thresholds, dtype=float).ravel()
    except (TypeError, ValueError):
        raise v.fail(owner, "thresholds", rule, v.brief(thresholds)) from None
    if len(thr) == n_exits:  # a threshold for the final exit is allowed and ignored
        thr = thr[:-1]
    if len(thr) != n_exits - 1:
        raise v.fail(owner, "thresholds", rule, len(thr))
    if np.isnan(thr).any():
        raise v.fail(owner, "thresholds", rule, "NaN")
    return thr


def _threshold_matrix(thresholds: Sequence[float] | np.ndarray, n_exits: int) -> np.ndarray:
    """``[M, E-1]`` thresholds from one vector or a matrix (final column dropped)."""
    rule = (f"a vector [{n_exits - 1}] or a matrix [M, {n_exits - 1}] of thresholds "
            f"(one per early exit; a last column for the final exit is ignored), no NaN")
    try:
        thr = np.asarray(thresholds, dtype=float)
    except (TypeError, ValueError):
        raise v.fail("ExitTable.evaluate", "thresholds", rule, thresholds) from None
    if thr.ndim == 1:
        thr = thr[None, :]
    if thr.ndim != 2 or thr.shape[1] not in (n_exits - 1, n_exits):
        raise v.fail("ExitTable.evaluate", "thresholds", rule, f"shape {thr.shape}")
    if np.isnan(thr).any():
        raise v.fail("ExitTable.evaluate", "thresholds", rule, "NaN")
    return thr[:, :n_exits - 1]


def _predicted(predicted: object, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(predicted)
    if arr.shape != shape:
        raise v.fail("ExitTable", "predicted", f"the shape of confidence {shape}", arr.shape)
    if not np.issubdtype(arr.dtype, np.integer) or (arr.size and arr.min() < 0):
        raise v.fail("ExitTable", "predicted", "class indices (ints >= 0)",
                     arr.dtype if not np.issubdtype(arr.dtype, np.integer) else int(arr.min()))
    return arr.astype(np.int64)


def _rows(rows: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    rule = f"a non-empty list of row indices in [0, {n}) or a boolean mask of length {n}"
    arr = np.asarray(rows)
    if arr.dtype == bool:
        if arr.shape != (n,) or not arr.any():
            raise v.fail("ExitTable.subset", "rows", rule, f"mask of shape {arr.shape} "
                         f"selecting {int(arr.sum())}")
        return np.flatnonzero(arr)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) \
            or arr.min() < 0 or arr.max() >= n:
        raise v.fail("ExitTable.subset", "rows", rule,
                     arr.tolist() if arr.size <= 10 else f"array of shape {arr.shape}")
    return arr
