"""What every evaluator returns: per-station and end-to-end performance."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

__all__ = ["Kind", "StationMetrics", "Metrics"]

#: exact: solved without approximation; approximate: an analytic approximation;
#: estimate: measured (simulation, runtime), with confidence half-widths.
Kind = Literal["exact", "approximate", "estimate"]


def _clean(value: object) -> object:
    """JSON-friendly: tuples to lists, NaN/inf to None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_clean(x) for x in value]
    if isinstance(value, dict):
        return {k: _clean(x) for k, x in value.items()}
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class StationMetrics:
    """One single-server FIFO station with capacity K (the job in service included).

    ``mean_response_time`` is the sojourn (wait + service) of accepted jobs;
    fields an approximation cannot give are ``None``.
    """

    name: str
    kind: Kind
    method: str
    arrival_rate: float
    capacity: int
    loss_probability: float
    throughput: float
    utilization: float
    mean_number: float | None = None
    mean_response_time: float | None = None
    mean_waiting_time: float | None = None
    queue_length_distribution: tuple[float, ...] | None = None

    def to_dict(self) -> dict:
        return _clean(asdict(self))  # type: ignore[return-value]


@dataclass(frozen=True, slots=True, kw_only=True)
class Metrics:
    """End-to-end performance of a deployment (a chain of stations).

    ``loss_probability`` is lost / offered end to end, ``throughput`` the rate of
    completed jobs, ``mean_response_time`` the mean over completed jobs (all
    exits), ``exit_distribution`` the share of completed jobs leaving at each
    exit, ``utilization`` the busy fraction per station.
    """

    kind: Kind
    method: str
    arrival_rate: float
    throughput: float
    loss_probability: float
    mean_response_time: float | None
    exit_distribution: dict[str, float]
    stations: tuple[StationMetrics, ...]
    p50_response_time: float | None = None
    p95_response_time: float | None = None
    p99_response_time: float | None = None
    accuracy: float | None = None
    half_widths: dict[str, float] = field(default_factory=dict)

    @property
    def utilization(self) -> dict[str, float]:
        return {s.name: s.utilization for s in self.stations}

    def station(self, name: str) -> StationMetrics:
        for s in self.stations:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["utilization"] = self.utilization
        out["stations"] = [s.to_dict() for s in self.stations]
        return _clean(out)  # type: ignore[return-value]
