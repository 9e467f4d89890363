"""Devices that run fragments and the links that carry activations between them."""

from __future__ import annotations

from dataclasses import dataclass

from .. import _validation as v

__all__ = ["Device", "Link"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """A FIFO device with ``servers`` cores (one by default). Block latencies
    are divided by ``speed``; ``capacity`` counts the jobs in service."""

    name: str
    capacity: int
    speed: float = 1.0
    memory_bytes: int | None = None
    servers: int = 1

    def __post_init__(self) -> None:
        v.name_string("Device", "name", self.name)
        v.integer("Device", "capacity", self.capacity, low=1)
        v.positive("Device", "speed", self.speed)
        v.integer("Device", "servers", self.servers, low=1)
        if self.servers > self.capacity:
            raise v.fail("Device", "servers", f"at most capacity ({self.capacity}) servers",
                         self.servers)
        if self.memory_bytes is not None:
            v.integer("Device", "memory_bytes", self.memory_bytes, low=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A directed link: a FIFO station that transmits ``output_bytes * 8 /
    bandwidth_bps`` seconds per activation, then a propagation delay
    ``latency_s`` that queues nothing.

    A link without ``bandwidth_bps`` (and without ``capacity``) is ideal: no
    transmission and no queue, only the delay — devices wired directly, as in
    ChainNet's deployments.
    """

    source: str
    target: str
    bandwidth_bps: float | None = None
    capacity: int | None = None
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        v.name_string("Link", "source", self.source)
        v.name_string("Link", "target", self.target)
        if self.target == self.source:  # fragments on one device pass data in memory
            raise v.fail("Link", "target", f"a device other than its source {self.source!r}",
                         self.target)
        if (self.bandwidth_bps is None) != (self.capacity is None):
            raise v.fail("Link", "capacity", "set together with bandwidth_bps (both absent: an "
                         "ideal link)", self.capacity)
        if self.bandwidth_bps is not None:
            v.positive("Link", "bandwidth_bps", self.bandwidth_bps)
            v.integer("Link", "capacity", self.capacity, low=1)
        v.non_negative("Link", "latency_s", self.latency_s)

    @property
    def ideal(self) -> bool:
        return self.bandwidth_bps is None

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    def transmission_time_s(self, size_bytes: int) -> float:
        return 0.0 if self.bandwidth_bps is None else size_bytes * 8.0 / self.bandwidth_bps
