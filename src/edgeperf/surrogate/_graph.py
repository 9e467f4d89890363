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
ratio and the response time divided by S_c, the sum of the chain's mean
services at its devices; a prediction is scaled back with S_c
(``service_time``). The response time is ChainNet's label, the sum of the
chain's mean response times at its devices, so S_c counts what the label
counts: the label is at least S_c, its value without queueing. Link stations
and link delays are left out of both (a twin that divided by them too could
not predict a label below them, and on links that carry large activations
the label is well below them).

The third target is the end-to-end response time (``response_time_e2e``: the
mean over completed jobs, links, delays and exits included), divided by the
chain's no-wait path time (``path_time``): the mean service and delays an
accepted job meets along its path when nothing queues, each station weighted
by the share of jobs that reach it past the exits. It is NaN where the data
has no such label (ChainNet's published data); only a model built with
``end_to_end=True`` learns it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import _validation as v
from ..exceptions import InvalidParameterError, UnsupportedModelError
from ..model import PoissonArrivals, System
from ..queueing import stations_by_chain

__all__ = ["DEVICE_FEATURES", "FRAGMENT_FEATURES", "CHAIN_FEATURES", "DeploymentGraph",
           "encode", "encode_batch", "encode_samples", "collate", "supports"]

DEVICE_FEATURES = ("log_capacity", "inv_capacity", "log_speed", "fragments", "load",
                   "log_load", "load_per_capacity", "service_scv", "is_link", "log_mm1k_load",
                   "mm1k_accept")
FRAGMENT_FEATURES = ("service_share", "device_share", "scv", "reach", "utilisation",
                     "log_utilisation", "rate_share", "load_share", "position", "inv_length",
                     "exit_probability", "delay_share", "device_load", "log_capacity",
                     "mm1k_reach", "mm1k_accept")
CHAIN_FEATURES = ("offered", "log_offered", "length", "service_share", "max_load",
                  "log_max_load", "mean_load", "min_log_capacity", "log_capacity_sum",
                  "mm1k_tput", "log_mm1k_tput")
TARGETS = ("tput_ratio", "response_ratio", "e2e_ratio")
_EPS = 1e-4  # keeps logs of idle devices finite
_ROUNDS = 30  # fixed-point rounds of the M/M/1/K decomposition (later ones move the sixth decimal)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentGraph:
    """One deployment, or a batch of them from :func:`collate`.

    Fragments are stored chain by chain in path order (``fragment_position``
    0, 1, ...). ``service_time`` is each chain's service at its devices, S_c,
    and ``path_time`` its no-wait end-to-end time, in the scenario's time unit;
    ``target`` holds (tput_ratio, response_time / S_c, response_time_e2e /
    path_time) when labels were given, the last NaN where unknown; ``systems``
    keeps the encoded systems (the analytic baseline solves them).
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
    path_time: torch.Tensor
    target: torch.Tensor | None = None
    systems: tuple[System, ...] = field(default=(), repr=False)

    @property
    def num_graphs(self) -> int:
        return len(self.systems)

    @property
    def num_chains(self) -> int:
        return int(self.chain_x.shape[0])

    def scale_back(self, ratios: np.ndarray) -> np.ndarray:
        """Ratios per chain in :data:`TARGETS` order (two columns, or three with
        the end-to-end one) -> (tput_ratio, response_time[, response_time_e2e])."""
        out = np.array(ratios, dtype=float, copy=True)
        out[:, 1] *= self.service_time.numpy()
        if out.shape[1] > 2:
            out[:, 2] *= self.path_time.numpy()
        return out

    def labels(self) -> np.ndarray:
        """The targets in the scenario's units, [n_chains, 3] (the end-to-end
        response time NaN where unknown); needs labels."""
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


class _Columns:
    """The stations of every chain of a batch of deployments, flattened in one
    pass into per-hop and per-device columns for the vectorised features."""

    _NUMBERS = ("chain", "position", "rate", "mean", "second", "scv", "passing", "delay")

    def __init__(self, systems: Sequence[System]) -> None:
        rows: list[tuple[float, ...]] = []  # one per hop, in _NUMBERS order
        stations: list[int] = []
        capacity: list[float] = []
        speed: list[float] = []
        is_link: list[float] = []
        self.chain_graph: list[int] = []
        self.chain_rate: list[float] = []
        for g, system in enumerate(systems):
            index = {}
            for d in system.devices:
                index[d.name] = len(capacity)
                capacity.append(d.capacity), speed.append(d.speed), is_link.append(0.0)
            links: dict[str, int] = {}  # link station name -> capacity
            names: list[str] = []
            routes = stations_by_chain(system)
            for chain in system.chains:
                c, reach = len(self.chain_graph), chain.arrival_rate
                self.chain_graph.append(g)
                self.chain_rate.append(reach)
                for i, station in enumerate(routes[chain.name]):
                    law, passing = station.law, station.pass_probability
                    rows.append((c, i, reach, law.mean, law.second_moment, law.scv, passing,
                                 station.delay_s))
                    names.append(station.name)
                    if station.name not in index:
                        links[station.name] = station.capacity
                    reach *= passing
            for name in sorted(links):  # links after the devices, by name
                index[name] = len(capacity)
                capacity.append(links[name]), speed.append(1.0), is_link.append(1.0)
            stations += [index[n] for n in names]
        table = np.array(rows, dtype=float).reshape(len(rows), len(self._NUMBERS))
        self.hop = dict(zip(self._NUMBERS, table.T))
        for key in ("chain", "position"):
            self.hop[key] = self.hop[key].astype(np.int64)
        self.hop["station"] = np.asarray(stations, dtype=np.int64)
        self.capacity, self.speed = np.asarray(capacity, float), np.asarray(speed, float)
        self.is_link = np.asarray(is_link)


def _features(cols: _Columns) -> tuple[np.ndarray, ...]:
    """Device, fragment and chain feature rows (columns in the *_FEATURES order),
    each chain's service at its devices S_c and its path time (module docstring)."""
    h, n_dev, n_chain = cols.hop, len(cols.capacity), len(cols.chain_graph)
    c, dev = h["chain"], h["station"]

    def per_device(x: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(dev, x, minlength=n_dev)

    def per_chain(x: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(c, x, minlength=n_chain)

    u = h["rate"] * h["mean"]
    rate, load, service = per_device(h["rate"]), per_device(u), per_device(h["mean"])
    second = per_device(h["rate"] * h["second"])
    with np.errstate(divide="ignore", invalid="ignore"):
        scv = np.where(load > 0, second * rate / load**2 - 1.0, 0.0)
    k = cols.capacity
    device = {"log_capacity": np.log(k), "inv_capacity": 1.0 / k, "log_speed": np.log(cols.speed),
              "fragments": per_device(), "load": load, "log_load": np.log(load + _EPS),
              "load_per_capacity": load / k, "service_scv": np.maximum(scv, 0.0),
              "is_link": cols.is_link}
    total, length = per_chain(h["mean"] + h["delay"]), per_chain()
    chain_rate, graph = np.asarray(cols.chain_rate), np.asarray(cols.chain_graph)
    hop_load, log_k = load[dev], device["log_capacity"][dev]
    with np.errstate(divide="ignore", invalid="ignore"):  # no flow past an exit that takes all
        load_share = np.where(hop_load > 0, u / hop_load, 0.0)
        rate_share = np.where(rate[dev] > 0, h["rate"] / rate[dev], 0.0)
    fragment = {"service_share": h["mean"] / total[c], "device_share": h["mean"] / service[dev],
                "scv": h["scv"], "reach": h["rate"] / chain_rate[c], "utilisation": u,
                "log_utilisation": np.log(u + _EPS), "rate_share": rate_share,
                "load_share": load_share,
                "position": h["position"] / np.maximum(length[c] - 1, 1),
                "inv_length": 1.0 / length[c], "exit_probability": 1.0 - h["passing"],
                "delay_share": h["delay"] / total[c], "device_load": hop_load,
                "log_capacity": log_k}
    accept, arrive = _mm1k_decomposition(h, k, n_dev)
    device |= {"log_mm1k_load": np.log(per_device(u * arrive) + _EPS), "mm1k_accept": accept}
    fragment |= {"mm1k_reach": arrive * h["rate"] / chain_rate[c], "mm1k_accept": accept[dev]}
    # a job is lost where it is refused: the chain keeps what no hop refuses
    tput = 1.0 - per_chain(arrive * (1.0 - accept[dev]) * h["rate"]) / chain_rate
    most, least = np.full(n_chain, -np.inf), np.full(n_chain, np.inf)
    np.maximum.at(most, c, hop_load)
    np.minimum.at(least, c, log_k)
    offered = chain_rate * total
    chain = {"offered": offered, "log_offered": np.log(offered), "length": length,
             "service_share": total / np.bincount(graph, total)[graph], "max_load": most,
             "log_max_load": np.log(most + _EPS), "mean_load": per_chain(hop_load) / length,
             "min_log_capacity": least, "log_capacity_sum": per_chain(log_k),
             "mm1k_tput": tput, "log_mm1k_tput": np.log(np.maximum(tput, _EPS))}
    tables = [np.stack([rows[n] for n in names], 1) for rows, names in (
        (device, DEVICE_FEATURES), (fragment, FRAGMENT_FEATURES), (chain, CHAIN_FEATURES))]
    at_devices = per_chain(h["mean"] * (1.0 - cols.is_link[dev]))
    # a chain whose blocks all take no time keeps its links' service as the scale
    scale = np.where(at_devices > 0, at_devices, total)
    # an exit leaves before the delay after its station; a path that every job leaves
    # before anything takes time falls back to the total, as the scale does
    path = per_chain(h["rate"] * (h["mean"] + h["passing"] * h["delay"])) / chain_rate
    return tables[0], tables[1], tables[2], scale, np.where(path > 0, path, total)


def _blocking(load: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """P(full) of an M/M/1/K queue offered ``load`` (rho), written so that no
    power overflows: (1 - rho) rho^K / (1 - rho^(K+1)), or with r = 1/rho > 1
    (1 - r) / (1 - r^(K+1)); 1/(K+1) at rho = 1 and 0 when idle."""
    rho = np.maximum(load, 1e-12)
    near = np.abs(rho - 1.0) < 1e-9
    r = np.where(rho > 1.0, 1.0 / rho, rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        below = (1.0 - r) * r**capacity / (1.0 - r ** (capacity + 1))
        above = (1.0 - r) / (1.0 - r ** (capacity + 1))
    return np.where(near, 1.0 / (capacity + 1), np.where(rho > 1.0, above, below))


def _mm1k_decomposition(h: dict[str, np.ndarray], capacity: np.ndarray,
                        n_dev: int) -> tuple[np.ndarray, np.ndarray]:
    """Losses as if every station were an M/M/1/K fed by Poisson flows, each
    flow thinned by what the hops before it refused (a fixed point, vectorised
    over the batch). Returns each station's accepted share and, per hop, the
    share of the chain's jobs (exits aside) that get there. Cheap and crude
    (service is taken as exponential, flows as Poisson), it gets the first-order
    effect of overload and small buffers right: where the training data has
    few examples, the networks correct it rather than extrapolate."""
    c, dev = h["chain"], h["station"]
    work = h["rate"] * h["mean"]
    start = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])  # first hop of chain 0, 1, ...
    accept, arrive = np.ones(n_dev), np.ones(len(c))
    for _ in range(_ROUNDS):
        load = np.bincount(dev, work * arrive, minlength=n_dev)
        # damped: stations shared by chains crossing in opposite orders can oscillate
        accept = np.sqrt(accept * (1.0 - _blocking(load, capacity)))
        logs = np.log(accept[dev])
        before = np.cumsum(logs) - logs  # over the earlier hops of the whole batch
        arrive = np.exp(before - before[start][c])
    return accept, arrive


def _labels(system: System, labels: Sequence[Mapping[str, float]]
            ) -> list[tuple[float, float, float]]:
    """(tput_ratio, response_time, response_time_e2e) per chain, checked; the
    last is NaN when a label does not give it."""
    if len(labels) != len(system.chains):
        raise v.fail("encode", "labels", f"one mapping per chain ({len(system.chains)})",
                     len(labels))
    rows = []
    for label in labels:
        try:
            tput, response = float(label["tput_ratio"]), float(label["response_time"])
        except (KeyError, TypeError, ValueError):
            raise v.fail("encode", "labels", "mappings with numbers 'tput_ratio' and "
                         "'response_time'", label) from None
        # a NaN or zero target would surface only mid-training, as a mape error or a
        # diverged run
        if not (0.0 < tput <= 1.0 and 0.0 < response < math.inf):
            raise v.fail("encode", "labels", "a 'tput_ratio' in (0, 1] and a finite "
                         "'response_time' > 0 for every chain", label)
        e2e = label.get("response_time_e2e", math.nan)
        if not (v.is_real(e2e) and (math.isnan(e2e) or 0.0 < e2e < math.inf)):
            raise v.fail("encode", "labels", "a 'response_time_e2e' that is finite and > 0, "
                         "or NaN where unknown", label)
        rows.append((tput, response, float(e2e)))
    return rows


def supports(system: System) -> None:
    """Raise :class:`UnsupportedModelError` unless ``system`` lies in the domain the
    surrogates model: Poisson arrivals and single-server devices, as in every
    deployment they are trained on (ours and ChainNet's). The encoding has no
    feature for the arrivals' variability or a device's cores, so outside it a
    prediction would be silently wrong (a bursty chain read as a Poisson one of the
    same mean rate, which loses fewer jobs, or an evenly paced camera, which loses
    more; two cores as one); the simulator models both."""
    v.instance("supports", "system", system, System, "a System")
    other = [c for c in system.chains if not isinstance(c.workload.arrival, PoissonArrivals)]
    multi = [d.name for d in system.devices if d.servers > 1]
    if other or multi:
        what, got = ("Poisson arrivals", f"{type(other[0].workload.arrival).__name__} on "
                     f"chain {other[0].name!r}") if other else \
            ("single-server devices", f"servers > 1 on {multi}")
        raise UnsupportedModelError(
            f"edgeperf.surrogate supports {what} only, the only kind in its training data; "
            f"simulate this system with edgeperf.sim or place it with method 'simulation'. "
            f"Got {got}.")


def encode(system: System, labels: Sequence[Mapping[str, float]] | None = None
           ) -> DeploymentGraph:
    """The graph of ``system``; ``labels`` (one mapping per chain with
    ``tput_ratio``, ``response_time`` and optionally ``response_time_e2e``)
    become the targets."""
    if not isinstance(system, System):
        raise v.fail("encode", "system", "a System", type(system).__name__)
    return encode_batch([system], None if labels is None else [labels])


def encode_batch(systems: Sequence[System],
                 labels: Sequence[Sequence[Mapping[str, float]]] | None = None
                 ) -> DeploymentGraph:
    """One batch of many deployments, encoded together (what :func:`collate` of
    their :func:`encode` gives, several times faster): the features are
    computed with NumPy over every hop of the batch at once."""
    systems = list(systems) if isinstance(systems, Sequence) else []
    if not systems or not all(isinstance(s, System) for s in systems):
        raise v.fail("encode_batch", "systems", "a non-empty list of System", systems)
    if labels is not None and len(labels) != len(systems):
        raise v.fail("encode_batch", "labels", f"one list per system ({len(systems)})",
                     len(labels))
    for system in systems:
        supports(system)
    cols = _Columns(systems)
    device, fragment, chain, scale, path = _features(cols)
    target = None
    if labels is not None:
        rows = np.array([r for s, x in zip(systems, labels) for r in _labels(s, x)], float)
        rows[:, 1] /= scale  # the response time in units of the chain's service at devices
        rows[:, 2] /= path
        target = torch.tensor(rows, dtype=torch.float32)
    h = cols.hop

    def f32(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    return DeploymentGraph(
        device_x=f32(device), fragment_x=f32(fragment), chain_x=f32(chain),
        fragment_device=torch.from_numpy(h["station"]),
        fragment_chain=torch.from_numpy(h["chain"]),
        fragment_position=torch.from_numpy(h["position"]),
        chain_length=torch.from_numpy(np.bincount(h["chain"], minlength=len(scale))),
        chain_graph=torch.tensor(cols.chain_graph), service_time=torch.from_numpy(scale),
        path_time=torch.from_numpy(path), target=target, systems=tuple(systems))


def encode_samples(samples: Sequence[Any]) -> list[DeploymentGraph]:
    """Graphs of labelled samples: anything with a ``scenario`` mapping and per-chain
    ``labels`` (:class:`edgeperf.io.ChainNetSample`, the generated data set's samples)."""
    from ..io import parse_scenario

    rule = "objects with 'scenario' and 'labels'"
    graphs = []
    for n, sample in enumerate(v.listed("encode_samples", "samples", samples, rule)):
        if not hasattr(sample, "scenario") or not hasattr(sample, "labels"):
            raise v.fail("encode_samples", "samples", rule, type(sample).__name__)
        source = f"sample {getattr(sample, 'index', n)}"
        system = parse_scenario(sample.scenario, source=source)
        try:
            graphs.append(encode(system, sample.labels))
        except InvalidParameterError as err:  # name the sample, as parse_scenario does
            raise InvalidParameterError(f"{source}: {err}") from None
    return graphs


def collate(graphs: Sequence[DeploymentGraph]) -> DeploymentGraph:
    """One batch of many deployments: node sets stacked, indices shifted."""
    rule = "a non-empty list of DeploymentGraph"
    graphs = v.listed("collate", "graphs", graphs, rule)
    if not graphs or not all(isinstance(g, DeploymentGraph) for g in graphs):
        raise v.fail("collate", "graphs", rule,
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
        path_time=cat([g.path_time for g in graphs]),
        target=None if any(t is None for t in targets) else cat(targets),  # type: ignore[misc]
        systems=tuple(s for g in graphs for s in g.systems))
