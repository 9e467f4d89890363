"""What a placement method returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model import Placement, System

__all__ = ["PlacementDecision"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlacementDecision:
    """A chosen placement of one chain: ``system`` is the input system with
    that placement, ready for the evaluators, the simulator and the runtime.

    ``objective`` names what the method minimised and ``value`` is its optimum;
    ``latency_s`` is the mean end-to-end latency without queueing
    (:meth:`Costs.latency_s`), comparable across methods; ``details`` holds
    method-specific facts (cut points, tiers, candidates tried...).
    """

    method: str
    system: System
    chain: str
    assignment: tuple[int, ...]
    objective: str
    value: float
    latency_s: float
    solve_time_s: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def placement(self) -> Placement:
        return self.system.chain(self.chain).placement

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "chain": self.chain,
                "placement": self.placement.as_dict(), "objective": self.objective,
                "value": self.value, "latency_s": self.latency_s,
                "solve_time_s": self.solve_time_s, "details": self.details}
