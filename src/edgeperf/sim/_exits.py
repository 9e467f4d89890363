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

from dataclasses import dataclass

import numpy as np

from .. import _validation as v
from ..model import ExitTable
from ..model.exit_table import _thresholds
from ._network import Route

__all__ = ["StaticExits", "ThresholdExits", "AssignedExits", "ExitShares",
           "ExitPolicy", "draw_exits"]


@dataclass(frozen=True, slots=True, eq=False)
class StaticExits:
    """The scenario's exit probabilities (each job independently)."""

    table: ExitTable | None = None

    def __post_init__(self) -> None:
        _optional_table(self)


@dataclass(frozen=True, slots=True, eq=False)
class ThresholdExits:
    table: ExitTable
    thresholds: tuple[float, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.table, ExitTable):
            raise v.fail("ThresholdExits", "table", "an ExitTable", self.table)
        thr = _thresholds(self.thresholds, self.table.n_exits, "ThresholdExits")
        for x in thr:
            v.real("ThresholdExits", "thresholds", float(x), low=0.0)  # > 1: never leave there
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
        _optional_table(self)
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
        _optional_table(self)
        object.__setattr__(self, "probabilities", tuple(p))


def _optional_table(policy: StaticExits | AssignedExits | ExitShares) -> None:
    if policy.table is not None:
        v.instance(type(policy).__name__, "table", policy.table, ExitTable,
                   "None or an ExitTable")


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
