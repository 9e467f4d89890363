"""The exit table: what each exit of an early-exit network says about held-out samples.

For N samples and the E exits of a network (the last one the final exit):
``confidence[N, E]`` in [0, 1], ``correct[N, E]`` and optionally
``predicted[N, E]``. From it, any threshold policy's exit distribution and
accuracy follow exactly: a sample leaves at the first exit whose confidence
reaches that exit's threshold, at the final exit otherwise. The simulator
draws rows from it; the schedulers search thresholds on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import _validation as v

__all__ = ["ExitTable"]


@dataclass(frozen=True, slots=True, eq=False)
class ExitTable:
    """``confidence[N, E]`` in [0, 1] and ``correct[N, E]`` of N samples at E exits."""

    confidence: np.ndarray
    correct: np.ndarray

    def __post_init__(self) -> None:
        conf = np.asarray(self.confidence, dtype=float)
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

    @property
    def n_exits(self) -> int:
        return self.confidence.shape[1]

    def exits_for(self, thresholds: Sequence[float], rows: np.ndarray | None = None) -> np.ndarray:
        """The exit each sample (or each of ``rows``) leaves at: the first exit whose
        confidence reaches its threshold; the final exit otherwise."""
        thr = _thresholds(thresholds, self.n_exits)
        conf = self.confidence if rows is None else self.confidence[rows]
        hit = conf[:, :-1] >= thr[None, :]
        return np.where(hit.any(axis=1), hit.argmax(axis=1), self.n_exits - 1)


def _thresholds(thresholds: Sequence[float], n_exits: int) -> np.ndarray:
    thr = np.asarray(thresholds, dtype=float).ravel()
    if len(thr) == n_exits:  # a threshold for the final exit is allowed and ignored
        thr = thr[:-1]
    if len(thr) != n_exits - 1:
        raise v.fail("ThresholdExits", "thresholds",
                     f"one threshold per early exit ({n_exits - 1})", len(thr))
    return thr
