"""The stochastic workload offered to a deployment."""

from __future__ import annotations

from dataclasses import dataclass

from .. import _validation as v

__all__ = ["PoissonArrivals", "Workload"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PoissonArrivals:
    """Poisson arrivals at ``rate`` jobs per second."""

    rate: float

    def __post_init__(self) -> None:
        v.positive("PoissonArrivals", "rate", self.rate)


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    arrival: PoissonArrivals

    def __post_init__(self) -> None:
        if not isinstance(self.arrival, PoissonArrivals):
            raise v.fail("Workload", "arrival", "a PoissonArrivals", self.arrival)

    @property
    def arrival_rate(self) -> float:
        return self.arrival.rate
