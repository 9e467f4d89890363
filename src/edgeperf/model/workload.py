"""The stochastic workload offered to a deployment: how jobs arrive."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _validation as v

__all__ = ["PoissonArrivals", "ErlangArrivals", "MMPPArrivals", "TraceArrivals",
           "PiecewiseArrivals", "ArrivalProcess", "Workload"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PoissonArrivals:
    """Poisson arrivals at ``rate`` jobs per second."""

    rate: float

    def __post_init__(self) -> None:
        v.positive("PoissonArrivals", "rate", self.rate)

    @property
    def mean_rate(self) -> float:
        return self.rate


@dataclass(frozen=True, slots=True, kw_only=True)
class ErlangArrivals:
    """Renewal arrivals at ``rate`` jobs per second whose gaps are Erlang with
    ``phases`` = k phases (SCV 1/k): smoother than Poisson, tending to evenly
    spaced frames (a camera) as k grows; k = 1 is Poisson."""

    rate: float
    phases: int

    def __post_init__(self) -> None:
        v.positive("ErlangArrivals", "rate", self.rate)
        v.integer("ErlangArrivals", "phases", self.phases, low=1)

    @property
    def mean_rate(self) -> float:
        return self.rate


@dataclass(frozen=True, slots=True, kw_only=True)
class MMPPArrivals:
    """A two-state Markov-modulated Poisson process, for bursts.

    In state i jobs arrive at ``rates[i]``; the state switches from i to the
    other one at rate ``switch_rates[i]`` (1/s), so state i lasts on average
    ``1 / switch_rates[i]`` seconds.
    """

    rates: tuple[float, float]
    switch_rates: tuple[float, float]

    def __post_init__(self) -> None:
        for field in ("rates", "switch_rates"):
            value = tuple(v.listed("MMPPArrivals", field, getattr(self, field),
                                 "two values, one per state"))
            if len(value) != 2:
                raise v.fail("MMPPArrivals", field, "two values, one per state", value)
            object.__setattr__(self, field, value)
        for x in self.rates:
            v.non_negative("MMPPArrivals", "rates", x)
        for x in self.switch_rates:
            v.positive("MMPPArrivals", "switch_rates", x)
        if self.mean_rate <= 0.0:
            raise v.fail("MMPPArrivals", "rates", "at least one positive rate", self.rates)

    @property
    def stationary(self) -> tuple[float, float]:
        """Long-run share of time in each state."""
        a, b = self.switch_rates
        return b / (a + b), a / (a + b)

    @property
    def mean_rate(self) -> float:
        p0, p1 = self.stationary
        return p0 * self.rates[0] + p1 * self.rates[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceArrivals:
    """Replay of recorded arrival timestamps (seconds, non-decreasing).

    A run longer than the trace replays it again, shifted by its span plus one
    mean gap, so a trace of n timestamps is a cycle of n arrivals.
    """

    times: tuple[float, ...]
    source: str | None = None

    def __post_init__(self) -> None:
        times = v.array("TraceArrivals", "times", self.times, "at least two timestamps")
        if times.ndim != 1 or len(times) < 2:
            raise v.fail("TraceArrivals", "times", "at least two timestamps", len(np.atleast_1d(times)))
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) < 0):
            bad = int(np.argmax(~np.isfinite(times) | np.r_[False, np.diff(times) < 0]))
            raise v.fail("TraceArrivals", "times", "finite, non-decreasing timestamps",
                         f"{float(times[bad])!r} at position {bad}")
        if times[-1] <= times[0]:
            raise v.fail("TraceArrivals", "times", "timestamps spanning a positive time",
                         f"all equal to {times[0]}")
        if self.source is not None:  # the file it came from, for messages
            v.name_string("TraceArrivals", "source", self.source)
        object.__setattr__(self, "times", tuple(float(t) for t in times))

    @property
    def period(self) -> float:
        """Time after which the replay repeats: span plus one mean gap."""
        n = len(self.times)
        span = self.times[-1] - self.times[0]
        return span + span / (n - 1)

    @property
    def mean_rate(self) -> float:
        return len(self.times) / self.period


@dataclass(frozen=True, slots=True, kw_only=True)
class PiecewiseArrivals:
    """A Poisson process whose rate is ``rates[i]`` for ``durations[i]`` seconds,
    the pieces repeating in a cycle: a time-varying load for online control."""

    rates: tuple[float, ...]
    durations: tuple[float, ...]

    def __post_init__(self) -> None:
        rates, durations = (tuple(v.listed("PiecewiseArrivals", name, getattr(self, name),
                                           "a sequence of numbers"))
                            for name in ("rates", "durations"))
        if not rates or len(rates) != len(durations):
            raise v.fail("PiecewiseArrivals", "durations", f"one duration per rate ({len(rates)})",
                         len(durations))
        for x in rates:
            v.non_negative("PiecewiseArrivals", "rates", x)
        for x in durations:
            v.positive("PiecewiseArrivals", "durations", x)
        object.__setattr__(self, "rates", rates)
        object.__setattr__(self, "durations", durations)
        if self.mean_rate <= 0.0:
            raise v.fail("PiecewiseArrivals", "rates", "at least one positive rate", rates)

    @property
    def mean_rate(self) -> float:
        return sum(r * d for r, d in zip(self.rates, self.durations)) / sum(self.durations)


ArrivalProcess = (PoissonArrivals | ErlangArrivals | MMPPArrivals | TraceArrivals
                  | PiecewiseArrivals)
_PROCESSES = (PoissonArrivals, ErlangArrivals, MMPPArrivals, TraceArrivals, PiecewiseArrivals)


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    arrival: ArrivalProcess

    def __post_init__(self) -> None:
        if not isinstance(self.arrival, _PROCESSES):
            raise v.fail("Workload", "arrival", "a Poisson, Erlang, MMPP, trace or piecewise "
                         "arrival process", self.arrival)

    @property
    def arrival_rate(self) -> float:
        """The long-run mean arrival rate (1/s)."""
        return self.arrival.mean_rate
