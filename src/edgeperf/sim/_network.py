"""A System flattened for simulation: shared stations and one route per chain.

Stations are the devices and the non-ideal links of the system, shared by every
chain that uses them. A route is the sequence of hops a job of one chain makes;
a hop runs some blocks of the chain's model on a station, then waits a pure
propagation delay. A job's exit is fixed when it starts its first service
(drawn up front by the exit policies here, or decided online by a policy in
the event engine); exit ``e`` leaves after block ``exit_blocks[e]``, the last
exit being the final block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dists import Deterministic, ServiceLaw
from ..model import ArrivalProcess, System

__all__ = ["SimStation", "Hop", "Route", "Network", "network_of"]


@dataclass(frozen=True, slots=True)
class SimStation:
    """A FIFO station with ``servers`` servers holding at most ``capacity`` jobs
    (those in service included)."""

    name: str
    servers: int
    capacity: int


@dataclass(frozen=True, slots=True)
class Hop:
    """Blocks ``first..last`` of the chain's model on station ``station``
    (an index into ``Network.stations``); ``latencies[i]`` is the law of block
    ``first + i`` on that station; ``delay_s`` follows the hop.

    A link hop carries the activation between blocks ``last`` and ``first``
    (``first == last + 1``): its one law, the transmission time, applies to the
    jobs that go on to block ``first``.
    """

    station: int
    first: int
    last: int
    latencies: tuple[ServiceLaw, ...]
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Route:
    """What a job of one chain does."""

    chain: str
    arrival: ArrivalProcess
    hops: tuple[Hop, ...]
    exit_names: tuple[str, ...]
    exit_blocks: tuple[int, ...]
    #: P(a job reaching block i leaves at its exit), for the exits in order (static policy)
    exit_probabilities: tuple[float, ...]

    @property
    def n_exits(self) -> int:
        return len(self.exit_names)

    def static_exit_shares(self) -> np.ndarray:
        """P(a job leaves at exit e) under the scenario's exit probabilities."""
        shares, reach = [], 1.0
        for q in self.exit_probabilities:
            shares.append(reach * q)
            reach *= 1.0 - q
        shares.append(reach)  # the final exit
        return np.asarray(shares)

    def hop_of_exit(self) -> np.ndarray:
        """For each exit, the index of the hop whose station it leaves from."""
        return np.array([next(h for h, hop in enumerate(self.hops) if hop.first <= b <= hop.last)
                         for b in self.exit_blocks])

    def service_by_hop(self, rng: np.random.Generator, exits: np.ndarray) -> np.ndarray:
        """Service time of each job at each hop it reaches, laid out (hops, jobs);
        0 after the hop it leaves from. Blocks are sampled independently."""
        n = len(exits)
        last_block = np.asarray(self.exit_blocks)[exits]
        reach_all = int(last_block.min()) if n else -1  # the last block every job runs
        rows = []
        for hop in self.hops:
            row = None
            for i, law in enumerate(hop.latencies):
                if hop.first + i <= reach_all:  # every job runs this block: no mask
                    draw = law.sample(rng, n)
                    row = draw if row is None else row + draw
                    continue
                row = np.zeros(n) if row is None else row
                runs = np.flatnonzero(last_block >= hop.first + i)
                if len(runs):
                    row[runs] += law.sample(rng, len(runs))
            rows.append(row)
        # one hop: a view, not a copy (the common single-station case)
        return rows[0][None, :] if len(rows) == 1 else np.stack(rows)


@dataclass(frozen=True, slots=True)
class Network:
    stations: tuple[SimStation, ...]
    routes: tuple[Route, ...]


def network_of(system: System) -> Network:
    """Stations (devices, then non-ideal links, in the system's order) and routes."""
    stations = [SimStation(d.name, d.servers, d.capacity) for d in system.devices]
    stations += [SimStation(link.name, 1, link.capacity) for link in system.links  # type: ignore[arg-type]
                 if not link.ideal]
    index = {s.name: i for i, s in enumerate(stations)}
    routes = []
    for chain in system.chains:
        blocks = chain.model.blocks
        fragments = chain.fragments
        hops: list[Hop] = []
        upload = system.link_between(*chain.upload) if chain.upload is not None else None
        if upload is not None and not upload.ideal:  # the input crosses a link first
            hops.append(Hop(index[upload.name], 0, -1,
                            (Deterministic(upload.transmission_time_s(chain.model.input_bytes)),),
                            upload.latency_s))
        for n, fragment in enumerate(fragments):
            device = system.device(fragment.device)
            laws = tuple(blocks[i].latency_on(device)
                         for i in range(fragment.first, fragment.last + 1))
            delay = 0.0
            link = None
            if n + 1 < len(fragments):
                link = system.link_between(fragment.device, fragments[n + 1].device)
                assert link is not None  # System.validate guarantees it
                delay = link.latency_s if link.ideal else 0.0
            hops.append(Hop(index[fragment.device], fragment.first, fragment.last, laws, delay))
            if link is not None and not link.ideal:
                size = blocks[fragment.last].output_bytes
                hops.append(Hop(index[link.name], fragment.last + 1, fragment.last,
                                (Deterministic(link.transmission_time_s(size)),), link.latency_s))
        if upload is not None and upload.ideal:  # a pure delay, wherever it is added
            first = hops[0]
            hops[0] = Hop(first.station, first.first, first.last, first.latencies,
                          first.delay_s + upload.latency_s)
        exit_blocks = [i for i, b in enumerate(blocks) if b.exit_probability is not None]
        routes.append(Route(
            chain=chain.name, arrival=chain.workload.arrival, hops=tuple(hops),
            exit_names=tuple(blocks[i].name for i in exit_blocks) + (blocks[-1].name,),
            exit_blocks=tuple(exit_blocks) + (len(blocks) - 1,),
            exit_probabilities=tuple(float(blocks[i].exit_probability) for i in exit_blocks)))
    return Network(tuple(stations), tuple(routes))
