"""A deployment as a graph the learned surrogate reads.

Three node sets: **devices**, **fragments** (one per (chain, hop): the hop a
job of that chain makes through a station) and **chains**. A hop is one
station of :func:`edgeperf.queueing.stations_of`, so a non-ideal link is a
station too: it becomes a device node of its own ("link device", flag
``is_link``, capacity from the link, speed 1) and the hop through it a
fragment on it. Ideal links queue nothing; their delay is a fragment feature
(``delay_share``) and part of the chain's total service.

Every feature is scale-free (a ratio, a log of a ratio, a count or a
probability), so the time unit of a scenario does not matter: ChainNet's
published data has an arbitrary one. Targets per chain are the throughput
ratio and the response time divided by the chain's total service S_c (the
sum of its stations' mean services and delays: the response time with no
queueing); a prediction is scaled back with S_c (``service_time``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import _validation as v
from ..model import System
from ..queueing import Station, stations_of

__all__ = ["DEVICE_FEATURES", "FRAGMENT_FEATURES", "CHAIN_FEATURES", "DeploymentGraph",
           "encode", "encode_samples", "collate"]

DEVICE_FEATURES = ("log_capacity", "inv_capacity", "log_speed", "fragments", "load",
                   "log_load", "load_per_capacity", "service_scv", "is_link")
FRAGMENT_FEATURES = ("service_share", "device_share", "scv", "reach", "utilisation",
                     "log_utilisation", "rate_share", "load_share", "position", "inv_length",
                     "exit_probability", "delay_share", "device_load", "log_capacity")
CHAIN_FEATURES = ("offered", "log_offered", "length", "service_share", "max_load",
                  "log_max_load", "mean_load", "min_log_capacity", "log_capacity_sum")
TARGETS = ("tput_ratio", "response_ratio")
_EPS = 1e-4  # keeps logs of idle devices finite


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentGraph:
    """One deployment, or a batch of them from :func:`collate`.

    Fragments are stored chain by chain in path order (``fragment_position``
    0, 1, ...). ``service_time`` is each chain's total service S_c in the
    scenario's time unit; ``target`` holds (tput_ratio, response_time / S_c)
    when labels were given; ``systems`` keeps the encoded systems (the
    analytic baseline solves them).
    """

    device_x: torch.Tensor
    fragment_x: torch.Tensor
    chain_x: torch.Tensor
    fragment_device: torch.Tensor
    fragment_chain: torch.Tensor
    fragment_position: torch.Tensor
    chain_length: torch.Tensor
    chain_graph: torch.Tensor
    service_time: torch.Tensor
    target: torch.Tensor | None = None
    systems: tuple[System, ...] = field(default=(), repr=False)

    @property
    def num_graphs(self) -> int:
        return len(self.systems)

    @property
    def num_chains(self) -> int:
        return int(self.chain_x.shape[0])

    def scale_back(self, ratios: np.ndarray) -> np.ndarray:
        """(tput_ratio, response_time / S_c) per chain -> (tput_ratio, response_time)."""
        out = np.array(ratios, dtype=float, copy=True)
        out[:, 1] *= self.service_time.numpy()
        return out

    def labels(self) -> np.ndarray:
        """The targets in the scenario's units, [n_chains, 2]; needs labels."""
        if self.target is None:
            raise v.fail("DeploymentGraph", "target", "set (encode the system with labels)", None)
        return self.scale_back(self.target.double().numpy())

    def next_pairs(self) -> torch.Tensor:
        """[2, m] fragment pairs (i, i + 1) that follow each other in a chain."""
        same = self.fragment_chain[:-1] == self.fragment_chain[1:]
        first = torch.nonzero(same).flatten()
        return torch.stack([first, first + 1])

    def to_pyg(self) -> Any:
        """The graph as ``torch_geometric.data.HeteroData`` (features unnormalised)."""
        from torch_geometric.data import HeteroData

        data = HeteroData()
        data["device"].x = self.device_x
        data["fragment"].x = self.fragment_x
        data["chain"].x = self.chain_x
        frags = torch.arange(self.fragment_x.shape[0])
        on = torch.stack([frags, self.fragment_device])
        data["fragment", "on", "device"].edge_index = on
        data["device", "hosts", "fragment"].edge_index = on.flip(0)
        data["fragment", "next", "fragment"].edge_index = self.next_pairs()
        data["fragment", "of", "chain"].edge_index = torch.stack([frags, self.fragment_chain])
        if self.target is not None:
            data["chain"].y = self.target
        return data


@dataclass(slots=True)
class _Hop:
    """One fragment while encoding: its chain, station and the raw numbers."""

    chain: int
    position: int
    station: Station
    rate: float  # arrivals reaching it, no losses counted (exits thin them)
    service: float
    delay: float


def _hops(system: System) -> tuple[list[list[_Hop]], list[float]]:
    routes, totals = [], []
    for c, chain in enumerate(system.chains):
        reach, hops = chain.arrival_rate, []
        for i, station in enumerate(stations_of(system, chain.name)):
            hops.append(_Hop(c, i, station, reach, station.law.mean, station.delay_s))
            reach *= station.pass_probability
        routes.append(hops)
        totals.append(sum(h.service + h.delay for h in hops))
    return routes, totals


def _device_rows(system: System, hops: list[_Hop]) -> tuple[dict[str, int], np.ndarray]:
    """Device index by station name and the device features."""
    names = [d.name for d in system.devices]
    links = sorted({h.station.name for h in hops} - set(names))
    index = {n: i for i, n in enumerate(names + links)}
    capacity = [d.capacity for d in system.devices] + [0] * len(links)
    speed = [d.speed for d in system.devices] + [1.0] * len(links)
    rows = np.zeros((len(index), len(DEVICE_FEATURES)))
    for h in hops:
        capacity[index[h.station.name]] = h.station.capacity
    for name, i in index.items():
        mine = [h for h in hops if h.station.name == name]
        rate = sum(h.rate for h in mine)
        load = sum(h.rate * h.service for h in mine)
        second = sum(h.rate * h.station.law.second_moment for h in mine)
        scv = second * rate / load**2 - 1.0 if load > 0 else 0.0
        k = capacity[i]
        row = {"log_capacity": math.log(k), "inv_capacity": 1.0 / k,
               "log_speed": math.log(speed[i]), "fragments": len(mine), "load": load,
               "log_load": math.log(load + _EPS), "load_per_capacity": load / k,
               "service_scv": max(scv, 0.0), "is_link": float(name in links)}
        rows[i] = [row[n] for n in DEVICE_FEATURES]
    return index, rows


def _fragment_row(h: _Hop, first: _Hop, length: int, total: float, device: dict[str, float],
                  device_service: float, device_rate: float) -> list[float]:
    load, u = device["load"], h.rate * h.service
    row = {"service_share": h.service / total, "device_share": h.service / device_service,
           "scv": h.station.law.scv, "reach": h.rate / first.rate, "utilisation": u,
           "log_utilisation": math.log(u + _EPS), "rate_share": h.rate / device_rate,
           "load_share": u / load if load > 0 else 0.0,
           "position": h.position / max(length - 1, 1), "inv_length": 1.0 / length,
           "exit_probability": 1.0 - h.station.pass_probability, "delay_share": h.delay / total,
           "device_load": load, "log_capacity": device["log_capacity"]}
    return [row[name] for name in FRAGMENT_FEATURES]


def _chain_row(hops: list[_Hop], total: float, totals: list[float],
               loads: np.ndarray) -> list[float]:
    offered, most = hops[0].rate * total, float(loads.max())
    caps = [math.log(h.station.capacity) for h in hops]
    row = {"offered": offered, "log_offered": math.log(offered), "length": len(hops),
           "service_share": total / sum(totals), "max_load": most,
           "log_max_load": math.log(most + _EPS), "mean_load": float(loads.mean()),
           "min_log_capacity": min(caps), "log_capacity_sum": sum(caps)}
    return [row[name] for name in CHAIN_FEATURES]


def _labels(system: System, labels: Sequence[Mapping[str, float]],
            totals: list[float]) -> torch.Tensor:
    if len(labels) != len(system.chains):
        raise v.fail("encode", "labels", f"one mapping per chain ({len(system.chains)})",
                     len(labels))
    rows = []
    for label, total in zip(labels, totals):
        try:
            rows.append((float(label["tput_ratio"]), float(label["response_time"]) / total))
        except (KeyError, TypeError, ValueError):
            raise v.fail("encode", "labels", "mappings with numbers 'tput_ratio' and "
                         "'response_time'", label) from None
    return torch.tensor(rows, dtype=torch.float32)


def encode(system: System, labels: Sequence[Mapping[str, float]] | None = None
           ) -> DeploymentGraph:
    """The graph of ``system``; ``labels`` (one mapping per chain with
    ``tput_ratio`` and ``response_time``) become the targets."""
    if not isinstance(system, System):
        raise v.fail("encode", "system", "a System", type(system).__name__)
    routes, totals = _hops(system)
    hops = [h for route in routes for h in route]
    index, dev = _device_rows(system, hops)
    dev_rate = np.zeros(len(index))
    dev_service = np.zeros(len(index))
    for h in hops:
        dev_rate[index[h.station.name]] += h.rate
        dev_service[index[h.station.name]] += h.service
    frag_rows, chain_rows = [], []
    for c, route in enumerate(routes):
        for h in route:
            i = index[h.station.name]
            named = dict(zip(DEVICE_FEATURES, dev[i].tolist()))
            frag_rows.append(_fragment_row(h, route[0], len(route), totals[c], named,
                                           dev_service[i], dev_rate[i]))
        loads = dev[[index[h.station.name] for h in route], DEVICE_FEATURES.index("load")]
        chain_rows.append(_chain_row(route, totals[c], totals, loads))
    f32 = torch.float32
    return DeploymentGraph(
        device_x=torch.tensor(dev, dtype=f32),
        fragment_x=torch.tensor(frag_rows, dtype=f32),
        chain_x=torch.tensor(chain_rows, dtype=f32),
        fragment_device=torch.tensor([index[h.station.name] for h in hops]),
        fragment_chain=torch.tensor([h.chain for h in hops]),
        fragment_position=torch.tensor([h.position for h in hops]),
        chain_length=torch.tensor([len(r) for r in routes]),
        chain_graph=torch.zeros(len(routes), dtype=torch.long),
        service_time=torch.tensor(totals, dtype=torch.float64),
        target=None if labels is None else _labels(system, labels, totals),
        systems=(system,))


def encode_samples(samples: Sequence[Any]) -> list[DeploymentGraph]:
    """Graphs of labelled samples: anything with a ``scenario`` mapping and per-chain
    ``labels`` (:class:`edgeperf.io.ChainNetSample`, the generated data set's samples)."""
    from ..io import parse_scenario

    graphs = []
    for n, sample in enumerate(samples):
        if not hasattr(sample, "scenario") or not hasattr(sample, "labels"):
            raise v.fail("encode_samples", "samples", "objects with 'scenario' and 'labels'",
                         type(sample).__name__)
        source = f"sample {getattr(sample, 'index', n)}"
        graphs.append(encode(parse_scenario(sample.scenario, source=source), sample.labels))
    return graphs


def collate(graphs: Sequence[DeploymentGraph]) -> DeploymentGraph:
    """One batch of many deployments: node sets stacked, indices shifted."""
    graphs = list(graphs)
    if not graphs or not all(isinstance(g, DeploymentGraph) for g in graphs):
        raise v.fail("collate", "graphs", "a non-empty list of DeploymentGraph",
                     type(graphs[0]).__name__ if graphs else graphs)
    if len(graphs) == 1:
        return graphs[0]
    dev_off = np.cumsum([0] + [g.device_x.shape[0] for g in graphs[:-1]])
    chain_off = np.cumsum([0] + [g.num_chains for g in graphs[:-1]])
    graph_off = np.cumsum([0] + [g.num_graphs for g in graphs[:-1]])
    cat = torch.cat
    targets = [g.target for g in graphs]
    return DeploymentGraph(
        device_x=cat([g.device_x for g in graphs]),
        fragment_x=cat([g.fragment_x for g in graphs]),
        chain_x=cat([g.chain_x for g in graphs]),
        fragment_device=cat([g.fragment_device + int(o) for g, o in zip(graphs, dev_off)]),
        fragment_chain=cat([g.fragment_chain + int(o) for g, o in zip(graphs, chain_off)]),
        fragment_position=cat([g.fragment_position for g in graphs]),
        chain_length=cat([g.chain_length for g in graphs]),
        chain_graph=cat([g.chain_graph + int(o) for g, o in zip(graphs, graph_off)]),
        service_time=cat([g.service_time for g in graphs]),
        target=None if any(t is None for t in targets) else cat(targets),  # type: ignore[misc]
        systems=tuple(s for g in graphs for s in g.systems))
