"""Everything a run draws before it starts: arrivals, exits and sample rows.

Both engines consume the same :class:`RunPlan`, so for one seed they see the
same jobs; service times are drawn by each engine after the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._arrivals import arrival_times, arrivals_until
from ._exits import ExitPolicy, StaticExits, draw_exits
from ._network import Network

__all__ = ["RoutePlan", "RunPlan", "plan_run"]


@dataclass(slots=True)
class RoutePlan:
    """The jobs of one route: arrival times, exits and (with a table) sample rows
    and whether each sample is right at each exit (``correct[job, exit]``)."""

    arrival: np.ndarray
    exit: np.ndarray
    row: np.ndarray | None
    correct: np.ndarray | None


@dataclass(slots=True)
class RunPlan:
    routes: list[RoutePlan]
    t_start: float
    t_end: float

    def measured(self, r: int) -> np.ndarray:
        a = self.routes[r].arrival
        return (a >= self.t_start) & (a <= self.t_end)


def plan_run(network: Network, rng: np.random.Generator, jobs: int, warmup: float,
             exits: Sequence[ExitPolicy | None]) -> RunPlan:
    """About ``jobs`` arrivals over all routes (exactly ``jobs`` for one route);
    the first ``warmup`` share of the time is simulated but not measured."""
    if len(network.routes) == 1:
        arrivals = [arrival_times(network.routes[0].arrival, rng, jobs)]
        horizon = float(arrivals[0][-1])
    else:
        horizon = jobs / sum(r.arrival.mean_rate for r in network.routes)
        arrivals = [arrivals_until(r.arrival, rng, horizon) for r in network.routes]
    plans = []
    for route, times, policy in zip(network.routes, arrivals, exits):
        chosen, rows = draw_exits(policy or StaticExits(), route, rng, len(times))
        table = (policy or StaticExits()).table
        plans.append(RoutePlan(times, chosen, rows,
                               table.correct[rows] if table is not None else None))
    return RunPlan(plans, t_start=warmup * horizon, t_end=horizon)
