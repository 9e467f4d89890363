"""Arrival times of each workload process, drawn in bulk from a numpy Generator."""

from __future__ import annotations

import numpy as np

from ..model import (ArrivalProcess, ErlangArrivals, MMPPArrivals, PiecewiseArrivals,
                     PoissonArrivals, TraceArrivals)

__all__ = ["arrival_times", "arrivals_until"]


def arrival_times(process: ArrivalProcess, rng: np.random.Generator, n: int) -> np.ndarray:
    """The first ``n`` arrival times (s) after time 0, non-decreasing."""
    if isinstance(process, PoissonArrivals):
        return np.cumsum(rng.exponential(1.0 / process.rate, n))
    if isinstance(process, ErlangArrivals):
        return _erlang(process, rng, n)
    horizon = 1.2 * n / process.mean_rate + 10.0 / process.mean_rate
    while True:
        times = arrivals_until(process, rng, horizon)
        if len(times) >= n:
            return times[:n]
        horizon *= 2.0


def arrivals_until(process: ArrivalProcess, rng: np.random.Generator, horizon: float) -> np.ndarray:
    """All arrival times in [0, horizon)."""
    if isinstance(process, PoissonArrivals):
        count = rng.poisson(process.rate * horizon)
        return np.sort(rng.uniform(0.0, horizon, count))
    if isinstance(process, ErlangArrivals):
        n = int(process.rate * horizon * 1.1) + 16
        while (times := _erlang(process, rng, n))[-1] < horizon:  # rare: draw more
            n *= 2
        return times[times < horizon]
    if isinstance(process, MMPPArrivals):
        return _mmpp(process, rng, horizon)
    if isinstance(process, PiecewiseArrivals):
        return _pieces(np.asarray(process.rates), np.asarray(process.durations), rng, horizon)
    if isinstance(process, TraceArrivals):
        base = np.asarray(process.times) - process.times[0]
        cycles = int(np.ceil(horizon / process.period))
        times = (base[None, :] + process.period * np.arange(cycles)[:, None]).ravel()
        return times[times < horizon]
    raise TypeError(f"unknown arrival process {process!r}")


def _erlang(process: ErlangArrivals, rng: np.random.Generator, n: int) -> np.ndarray:
    """The first ``n`` arrivals; the first gap is the equilibrium one (the phase at
    time 0 uniform over the k phases), so the process is stationary from time 0."""
    k, phase_mean = process.phases, 1.0 / (process.phases * process.rate)
    gaps = rng.gamma(k, phase_mean, n)
    gaps[0] = rng.gamma(rng.integers(1, k + 1), phase_mean)
    return np.cumsum(gaps)


def _mmpp(process: MMPPArrivals, rng: np.random.Generator, horizon: float) -> np.ndarray:
    """Alternating exponential sojourns; the first state drawn from the stationary law,
    so the process is stationary from time 0."""
    rates, switch = np.asarray(process.rates), np.asarray(process.switch_rates)
    state = int(rng.random() >= process.stationary[0])
    starts, ends, levels = [], [], []
    t = 0.0
    while t < horizon:
        # a batch of alternating sojourns, enough to pass the horizon on average
        batch = max(16, int(2 * horizon * switch.min()) + 16)
        states = (state + np.arange(batch)) % 2
        durations = rng.exponential(1.0 / switch[states])
        edges = t + np.concatenate(([0.0], np.cumsum(durations)))
        starts.append(edges[:-1])
        ends.append(edges[1:])
        levels.append(rates[states])
        t, state = edges[-1], (state + batch) % 2
    start, end, rate = np.concatenate(starts), np.concatenate(ends), np.concatenate(levels)
    end = np.minimum(end, horizon)
    keep = start < horizon
    return _uniform_in(start[keep], end[keep], rate[keep], rng)


def _pieces(rates: np.ndarray, durations: np.ndarray, rng: np.random.Generator,
            horizon: float) -> np.ndarray:
    period = durations.sum()
    cycles = int(np.ceil(horizon / period))
    offsets = np.concatenate(([0.0], np.cumsum(durations)[:-1]))
    start = (offsets[None, :] + period * np.arange(cycles)[:, None]).ravel()
    end = np.minimum(start + np.tile(durations, cycles), horizon)
    keep = start < horizon
    return _uniform_in(start[keep], end[keep], np.tile(rates, cycles)[keep], rng)


def _uniform_in(start: np.ndarray, end: np.ndarray, rate: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """A Poisson process of rate ``rate[i]`` on each interval [start[i], end[i])."""
    counts = rng.poisson(rate * (end - start))
    left = np.repeat(start, counts)
    width = np.repeat(end - start, counts)
    return np.sort(left + width * rng.random(len(left)))
