"""Exit policies decided before a job starts: which exit each job leaves at.

An exit table holds, for N validation samples and the E exits of a chain (the
last one the final exit), each exit's confidence and whether its prediction is
right. A job of a simulation draws one sample: under a threshold policy it
leaves at the first exit whose confidence reaches the threshold, so the
simulated accuracy is the exact empirical accuracy of the completed jobs.
Single-exit policies fix each job's exit regardless of its input; with a table
their accuracy is that of the drawn sample at the assigned exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import _validation as v
from ._network import Route

__all__ = ["ExitTable", "StaticExits", "ThresholdExits", "AssignedExits", "ExitShares",
           "ExitPolicy", "draw_exits"]


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


@dataclass(frozen=True, slots=True, eq=False)
class StaticExits:
    """The scenario's exit probabilities (each job independently)."""

    table: ExitTable | None = None


@dataclass(frozen=True, slots=True, eq=False)
class ThresholdExits:
    table: ExitTable
    thresholds: tuple[float, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.table, ExitTable):
            raise v.fail("ThresholdExits", "table", "an ExitTable", self.table)
        thr = _thresholds(self.thresholds, self.table.n_exits)
        for x in thr:
            v.real("ThresholdExits", "thresholds", float(x), low=0.0, high=1.0)
        object.__setattr__(self, "thresholds", tuple(float(x) for x in thr))


@dataclass(frozen=True, slots=True, eq=False)
class AssignedExits:
    """A fixed exit per job, in arrival order (cycled if the run is longer)."""

    exits: tuple[int, ...]
    table: ExitTable | None = None

    def __post_init__(self) -> None:
        exits = np.asarray(self.exits)
        if exits.ndim != 1 or len(exits) == 0 or not np.issubdtype(exits.dtype, np.integer) \
                or exits.min() < 0:
            raise v.fail("AssignedExits", "exits", "a non-empty list of exit indices >= 0",
                         self.exits)
        object.__setattr__(self, "exits", tuple(int(e) for e in exits))


@dataclass(frozen=True, slots=True, eq=False)
class ExitShares:
    """A single-exit policy: each job is assigned exit e with ``probabilities[e]``."""

    probabilities: tuple[float, ...]
    table: ExitTable | None = None

    def __post_init__(self) -> None:
        size = len(self.probabilities) if isinstance(self.probabilities, (list, tuple, np.ndarray)) \
            else 0
        p = v.weights("ExitShares", "probabilities", self.probabilities, max(size, 1))
        object.__setattr__(self, "probabilities", tuple(p))


ExitPolicy = StaticExits | ThresholdExits | AssignedExits | ExitShares


def draw_exits(policy: ExitPolicy, route: Route, rng: np.random.Generator,
               n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Each job's exit index and, when the policy has a table, its sample row."""
    table = policy.table
    owner = type(policy).__name__
    if table is not None and table.n_exits != route.n_exits:
        raise v.fail(owner, "table", f"{route.n_exits} exit columns for chain {route.chain!r} "
                     f"(exits {list(route.exit_names)})", table.n_exits)
    rows = rng.integers(0, len(table.confidence), n) if table is not None else None
    if isinstance(policy, ThresholdExits):
        return policy.table.exits_for(policy.thresholds, rows), rows
    if isinstance(policy, AssignedExits):
        exits = np.resize(np.asarray(policy.exits), n)
        if exits.max() >= route.n_exits:
            raise v.fail(owner, "exits", f"indices below {route.n_exits}", int(exits.max()))
        return exits, rows
    shares = route.static_exit_shares() if isinstance(policy, StaticExits) \
        else np.asarray(policy.probabilities)
    if len(shares) != route.n_exits:
        raise v.fail(owner, "probabilities", f"one per exit ({route.n_exits})", len(shares))
    if route.n_exits == 1:
        return np.zeros(n, np.int64), rows
    cumulative = np.cumsum(shares / shares.sum())
    exits = np.searchsorted(cumulative, rng.random(n), side="right")
    return np.minimum(exits, route.n_exits - 1), rows  # guard against rounding at 1
