"""Online exit policies: objects that look at the state when a job starts.

The same object drives the event engine and (later) the runtime: the engine
calls ``decide(state)`` when a job of the policy's chain starts its first
service, and ``observe(outcome)`` once the job completes or is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["JobState", "JobOutcome", "OnlinePolicy"]


@dataclass(frozen=True, slots=True)
class JobState:
    """What a policy may look at when job ``job`` of ``chain`` starts service.

    ``jobs_present`` counts the jobs at the station (this one included),
    ``waiting`` those queued behind it; ``recent_arrivals`` holds the times of
    the station's last arrivals (at most 64, oldest first, this job's
    included); ``confidence`` is the job's row of the exit table, if any.
    """

    time: float
    chain: str
    job: int
    station: str
    jobs_present: int
    waiting: int
    recent_arrivals: tuple[float, ...]
    queue_lengths: dict[str, int]
    n_exits: int
    confidence: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What became of a job. ``exit`` is the index decided (None if it was lost
    before a decision); ``lost_at`` the station that dropped it, or None."""

    time: float
    chain: str
    job: int
    exit: int | None
    completed: bool
    response_time: float | None
    correct: bool | None
    lost_at: str | None


@runtime_checkable
class OnlinePolicy(Protocol):
    def decide(self, state: JobState) -> int:
        """The exit (index into the chain's exits, the last one final) the job takes."""
        ...

    def observe(self, outcome: JobOutcome) -> None:
        ...
