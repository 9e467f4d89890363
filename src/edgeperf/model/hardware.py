"""Devices that run fragments and the links that carry activations between them."""

from __future__ import annotations

from dataclasses import dataclass

from .. import _validation as v

__all__ = ["Device", "Link"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """A single-server FIFO device. Block latencies are divided by ``speed``;
    ``capacity`` counts the job in service."""

    name: str
    capacity: int
    speed: float = 1.0
    memory_bytes: int | None = None

    def __post_init__(self) -> None:
        v.name_string("Device", "name", self.name)
        v.integer("Device", "capacity", self.capacity, low=1)
        v.positive("Device", "speed", self.speed)
        if self.memory_bytes is not None:
            v.integer("Device", "memory_bytes", self.memory_bytes, low=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A directed link: a FIFO station that transmits ``output_bytes * 8 /
    bandwidth_bps`` seconds per activation, then a propagation delay
    ``latency_s`` that queues nothing."""

    source: str
    target: str
    bandwidth_bps: float
    capacity: int
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        v.name_string("Link", "source", self.source)
        v.name_string("Link", "target", self.target)
        v.positive("Link", "bandwidth_bps", self.bandwidth_bps)
        v.integer("Link", "capacity", self.capacity, low=1)
        v.non_negative("Link", "latency_s", self.latency_s)

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    def transmission_time_s(self, size_bytes: int) -> float:
        return size_bytes * 8.0 / self.bandwidth_bps
