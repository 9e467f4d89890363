"""What one simulation run produces, whichever engine ran it, and its statistics.

Both the compiled kernel and the event engine fill a :class:`RunRecord`: one
row per job (all chains together) and, per route and hop, counters over the
measured jobs (those arriving after the warm-up). Statistics are computed here
once, so the engines cannot disagree on what a metric means.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from .._atomic import atomic_path
from ..exceptions import EdgePerfError
from ..model import Metrics, StationMetrics
from ._network import Network

__all__ = ["RunRecord", "HopCounters", "SimulationError", "chain_metrics", "write_trace"]


class SimulationError(EdgePerfError):
    """A run broke an invariant (conservation): a bug, never a user error."""


@dataclass(slots=True)
class HopCounters:
    """Per hop of one route, over measured jobs: offered, accepted, and the sums of
    sojourn (wait + service) and service times of accepted jobs."""

    offered: np.ndarray
    accepted: np.ndarray
    sojourn: np.ndarray
    busy: np.ndarray

    @classmethod
    def zeros(cls, hops: int) -> HopCounters:
        return cls(np.zeros(hops, np.int64), np.zeros(hops, np.int64), np.zeros(hops),
                   np.zeros(hops))


@dataclass(slots=True)
class RunRecord:
    """One run. Per job: ``chain`` (route index), ``arrival``, ``exit`` (the exit it
    was given; -1 if it was lost before an online policy chose), ``completion`` (NaN if lost), ``lost_at`` (hop index, -1 if
    completed), ``correct`` (per job, with an exit table). ``measured`` marks jobs
    arriving in the window [t_start, t_end]."""

    network: Network
    method: str
    chain: np.ndarray
    arrival: np.ndarray
    exit: np.ndarray
    completion: np.ndarray
    lost_at: np.ndarray
    measured: np.ndarray
    counters: list[HopCounters]
    t_start: float
    t_end: float
    correct: np.ndarray | None = None

    def check_conservation(self) -> None:
        """Offered = accepted + lost at every hop, and what leaves a hop without
        exiting is what the next hop is offered; raises SimulationError if not.
        The per-job outcomes are recounted here, independently of the counters."""
        for r, route in enumerate(self.network.routes):
            hops = len(route.hops)
            lost, left = np.zeros(hops, np.int64), np.zeros(hops, np.int64)
            mine = _recount(self.chain, r, self.measured, self.lost_at, self.exit,
                            route.hop_of_exit(), lost, left)
            c = self.counters[r]
            expected_offered = mine
            for h in range(hops):
                if c.offered[h] != expected_offered or c.offered[h] != c.accepted[h] + lost[h]:
                    raise SimulationError(
                        f"{self.method}: conservation broken on chain {route.chain!r} hop {h}: "
                        f"offered {c.offered[h]} (expected {expected_offered}), accepted "
                        f"{c.accepted[h]}, lost {lost[h]}")
                expected_offered = int(c.accepted[h] - left[h])
            if expected_offered != 0:
                raise SimulationError(f"{self.method}: {expected_offered} jobs of chain "
                                      f"{route.chain!r} neither completed nor lost")


@njit(cache=True, nogil=True)
def _recount(chain, r, measured, lost_at, exits, hop_of_exit, lost, left):  # pragma: no cover
    """Measured jobs of route r, and per hop those lost there and those leaving there."""
    mine = 0
    for j in range(chain.shape[0]):
        if chain[j] != r or not measured[j]:
            continue
        mine += 1
        if lost_at[j] >= 0:
            lost[lost_at[j]] += 1
        else:
            left[hop_of_exit[exits[j]]] += 1
    return mine


@njit(cache=True, nogil=True)
def _completed(chain, r, measured, lost_at, completion, arrival, exits, correct,
               response, counts):  # pragma: no cover - compiled
    """One pass over the measured jobs of route r: how many were offered and
    completed, how many of those were right; their response times (into the
    front of ``response``) and exit counts."""
    offered = completed = right = 0
    for j in range(chain.shape[0]):
        if chain[j] != r or not measured[j]:
            continue
        offered += 1
        if lost_at[j] < 0:
            response[completed] = completion[j] - arrival[j]
            counts[exits[j]] += 1
            right += correct[j]
            completed += 1
    return offered, completed, right


def _quantiles(x: np.ndarray) -> list[float | None]:
    if not len(x):
        return [None, None, None]
    return [float(q) for q in np.quantile(x, [0.50, 0.95, 0.99])]


def chain_metrics(run: RunRecord, r: int) -> Metrics:
    """Metrics of route ``r`` in one run. Station rows are this chain's share of
    each station it visits: its arrivals, losses and busy time there."""
    route = run.network.routes[r]
    window = run.t_end - run.t_start
    response = np.empty(len(run.arrival))
    counts = np.zeros(route.n_exits, np.int64)
    correct = np.zeros(len(run.arrival), np.bool_) if run.correct is None else run.correct
    offered, completed, right = _completed(run.chain, r, run.measured, run.lost_at,
                                           run.completion, run.arrival, run.exit, correct,
                                           response, counts)
    response = response[:completed]
    c = run.counters[r]
    stations = []
    for h, hop in enumerate(route.hops):
        station = run.network.stations[hop.station]
        stations.append(StationMetrics(
            name=station.name, kind="estimate", method=run.method,
            arrival_rate=c.offered[h] / window, capacity=station.capacity,
            loss_probability=float(1.0 - c.accepted[h] / c.offered[h]) if c.offered[h] else 0.0,
            throughput=c.accepted[h] / window,
            utilization=float(c.busy[h] / window / station.servers),
            mean_number=float(c.sojourn[h] / window),
            mean_response_time=float(c.sojourn[h] / c.accepted[h]) if c.accepted[h] else None,
            mean_waiting_time=float((c.sojourn[h] - c.busy[h]) / c.accepted[h])
            if c.accepted[h] else None))
    p50, p95, p99 = _quantiles(response)
    return Metrics(
        kind="estimate", method=run.method, arrival_rate=offered / window,
        throughput=completed / window,
        loss_probability=1.0 - completed / offered if offered else 0.0,
        mean_response_time=float(response.mean()) if completed else None,
        p50_response_time=p50, p95_response_time=p95, p99_response_time=p99,
        exit_distribution={name: float(k / completed) if completed else 0.0
                           for name, k in zip(route.exit_names, counts)},
        accuracy=right / completed if run.correct is not None and completed else None,
        stations=tuple(stations))


def write_trace(run: RunRecord, path: str | Path) -> Path:
    """Write one row per job as CSV: chain, arrival, exit, completion (empty if
    lost), lost_at (station name, empty if completed), measured. The file appears
    whole or not at all."""
    target = Path(path)
    routes = run.network.routes
    names = [r.chain for r in routes]
    exit_names = [r.exit_names for r in routes]
    station_of = [[run.network.stations[h.station].name for h in r.hops] for r in routes]
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as out:
        out.write("job,chain,arrival_s,exit,completion_s,lost_at,measured\n")
        for j in range(len(run.arrival)):
            r, lost = int(run.chain[j]), int(run.lost_at[j])
            chosen = int(run.exit[j])  # -1: lost before a policy chose its exit
            out.write(f"{j},{names[r]},{float(run.arrival[j])!r},"
                      f"{exit_names[r][chosen] if chosen >= 0 else ''},"
                      f"{'' if lost >= 0 else repr(float(run.completion[j]))},"
                      f"{station_of[r][lost] if lost >= 0 else ''},{int(run.measured[j])}\n")
    return target
