"""Small systems the placement tests share."""

from __future__ import annotations

from edgeperf.dists import Exponential, Gamma
from edgeperf.model import (DNN, Block, Device, Link, Placement, PoissonArrivals, System,
                            Workload)


def three_devices(rate: float = 6.0, exits: tuple[float | None, ...] = (None, 0.3, None, None),
                  memory_bytes: int | None = None, input_bytes: int = 12_000) -> System:
    """Four blocks, a camera (source) and two helpers in a line of radio range:
    cam <-> edge <-> server, plus cam -> server."""
    means = (0.030, 0.040, 0.050, 0.020)
    blocks = tuple(
        Block(name=f"b{i}", latency=Gamma(4.0, m) if i % 2 == 0 else Exponential(m),
              output_bytes=20_000 // (i + 1), exit_probability=q, param_bytes=1_000)
        for i, (m, q) in enumerate(zip(means, exits)))
    devices = (Device(name="cam", capacity=4, speed=1.0, memory_bytes=memory_bytes),
               Device(name="edge", capacity=4, speed=1.5, memory_bytes=memory_bytes),
               Device(name="server", capacity=6, speed=3.0, memory_bytes=memory_bytes))
    links = tuple(Link(source=a, target=b, bandwidth_bps=bw, capacity=6, latency_s=0.002)
                  for a, b, bw in (("cam", "edge", 20e6), ("edge", "cam", 20e6),
                                   ("edge", "server", 50e6), ("server", "edge", 50e6),
                                   ("cam", "server", 4e6)))
    return System(model=DNN(blocks=blocks, input_bytes=input_bytes), devices=devices, links=links,
                  workload=Workload(arrival=PoissonArrivals(rate=rate)),
                  placement=Placement.from_mapping({"cam": [b.name for b in blocks]}),
                  source="cam")

