"""A plain, exact-semantics simulation of one loss chain: the reference.

Every station is a single-server FIFO queue holding at most K jobs (the one in
service included); a job finding it full is lost. FIFO with a constant
propagation delay keeps arrival order along the chain, so each station needs
only the departure times of the jobs still present: the chain is simulated
station by station in O(jobs). Written for clarity, not speed: it is the
oracle the analytic decomposition (and later the compiled kernel) is tested on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from .. import _validation as v
from ..model import ErlangArrivals, Metrics, PoissonArrivals, StationMetrics
from ..queueing import Station
from ._arrivals import arrival_times
from ._simulate import _combine

__all__ = ["simulate_chain", "replicate_chain"]


def _outcomes(station: Station, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per job: which exit it takes (index, len(exits) = passes on) and its service time."""
    laws, probabilities = station.outcomes
    weights = np.asarray(probabilities)
    choice = rng.choice(len(laws), size=n, p=weights / weights.sum())
    service = np.empty(n)
    for i, law in enumerate(laws):
        mask = choice == i
        service[mask] = law.sample(rng, int(mask.sum()))
    return choice, service


def _run_station(times: np.ndarray, service: np.ndarray, capacity: int) -> np.ndarray:
    """Departure time of each arriving job, NaN where it was lost."""
    present: deque[float] = deque()
    last = -np.inf
    out = np.full(len(times), np.nan)
    for n, t in enumerate(times):
        while present and present[0] <= t:
            present.popleft()
        if len(present) < capacity:
            last = max(t, last) + service[n]
            present.append(last)
            out[n] = last
    return out


def simulate_chain(arrival_rate: float, stations: Sequence[Station], *, n_jobs: int = 200_000,
                   warmup_fraction: float = 0.1, seed: int = 0,
                   final_exit: str = "final", arrival_phases: int = 1) -> Metrics:
    """One run; statistics over the jobs after the first ``warmup_fraction``.
    Arrivals are Poisson, or Erlang-k renewal with ``arrival_phases`` = k > 1."""
    rate = v.positive("simulate_chain", "arrival_rate", arrival_rate)
    n = v.integer("simulate_chain", "n_jobs", n_jobs, low=10)
    warm = v.real("simulate_chain", "warmup_fraction", warmup_fraction, low=0.0, high=0.9)
    k = v.integer("simulate_chain", "arrival_phases", arrival_phases, low=1)
    stations = v.listed("simulate_chain", "stations", stations, "a non-empty list of Station",
                        lambda s: isinstance(s, Station))
    if not stations:
        raise v.fail("simulate_chain", "stations", "a non-empty list of Station", stations)
    v.name_string("simulate_chain", "final_exit", final_exit)
    rng = np.random.default_rng(v.seed("simulate_chain", "seed", seed))
    process = PoissonArrivals(rate=rate) if k == 1 else ErlangArrivals(rate=rate, phases=k)
    arrivals = arrival_times(process, rng, n)
    measured = np.arange(n) >= int(warm * n)
    t_start, t_end = arrivals[measured][0], arrivals[-1]

    ids, times = np.arange(n), arrivals  # jobs still in the chain and their arrival times
    completion = np.full(n, np.nan)
    exit_of = np.full(n, -1)
    exit_names = [e.name for s in stations for e in s.exits] + [final_exit]
    per_station = []
    first_exit = 0
    for k, station in enumerate(stations):
        choice, service = _outcomes(station, rng, len(ids))
        departures = _run_station(times, service, station.capacity)
        accepted = ~np.isnan(departures)
        window = measured[ids]
        busy = service[accepted & window].sum()
        per_station.append(StationMetrics(
            name=station.name, kind="estimate", method="reference-simulation",
            arrival_rate=window.sum() / (t_end - t_start), capacity=station.capacity,
            loss_probability=1.0 - accepted[window].sum() / max(window.sum(), 1),
            throughput=(accepted & window).sum() / (t_end - t_start),
            utilization=min(busy / (t_end - t_start), 1.0),
            mean_response_time=float(np.mean((departures - times)[accepted & window]))
            if (accepted & window).any() else None))
        last = k == len(stations) - 1
        leaves = accepted & ((choice < len(station.exits)) | last)
        completion[ids[leaves]] = departures[leaves]
        exit_of[ids[leaves]] = first_exit + choice[leaves]
        first_exit += len(station.exits)
        moving = accepted & ~leaves
        ids, times = ids[moving], departures[moving] + station.delay_s

    done = measured & ~np.isnan(completion)
    response = completion[done] - arrivals[done]
    counts = np.bincount(exit_of[done], minlength=len(exit_names))
    return Metrics(
        kind="estimate", method="reference-simulation", arrival_rate=rate,
        throughput=done.sum() / (t_end - t_start),
        loss_probability=1.0 - done.sum() / measured.sum(),
        mean_response_time=float(response.mean()) if len(response) else None,
        p50_response_time=_quantile(response, 0.50),
        p95_response_time=_quantile(response, 0.95),
        p99_response_time=_quantile(response, 0.99),
        exit_distribution={name: float(c / max(done.sum(), 1)) for name, c in zip(exit_names, counts)},
        stations=tuple(per_station))


def _quantile(x: np.ndarray, q: float) -> float | None:
    return float(np.quantile(x, q)) if len(x) else None


def replicate_chain(arrival_rate: float, stations: Sequence[Station], *, replications: int = 10,
                    seed: int = 0, **kwargs: object) -> Metrics:
    """Independent replications (seeds ``seed``, ``seed + 1``, ...): the mean of
    each metric and its 95% t half-width, keyed as ``simulate``'s are."""
    reps = v.integer("replicate_chain", "replications", replications, low=2)
    seed = v.seed("replicate_chain", "seed", seed)
    runs = [simulate_chain(arrival_rate, stations, seed=seed + r, **kwargs)  # type: ignore[arg-type]
            for r in range(reps)]
    return _combine(runs)
