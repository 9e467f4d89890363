"""What a learned surrogate was trained on, so that its use beyond that can say so.

A network answers anywhere, but beyond the deployments it learned from it
extrapolates: on ``larger`` deployments (more stations, longer chains) the
shipped model's error is several times what it is in its own regime
(``benchmarks/surrogate.py``). So training records a :class:`Domain`: for each
quantity of :data:`QUANTITIES`, the lowest and highest value over the training
and validation deployments. :meth:`Domain.gaps` lists what lies outside it in
each deployment of a batch. Predictions are still made there (they degrade
gracefully, and the placement search must score whatever it meets); the
callers report the gaps, so that a user knows when to trust a simulation more.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validation as v
from ._graph import DEVICE_FEATURES, FRAGMENT_FEATURES, DeploymentGraph

__all__ = ["Domain", "QUANTITIES"]

#: The quantities a domain bounds, with the words that name them in messages.
QUANTITIES = {
    "chains": "chains",
    "stations": "stations used",
    "link_stations": "link stations",
    "hops": "hops of a chain",
    "capacity": "capacity of a station",
    "load": "offered load of a station",
    "scv": "service SCV of a hop",
    "exit_probability": "exit probability of a hop",
    "link_share": "share of a chain's time on links",
    "upload_links": "chains that start at a link",
}
_SLACK = 1e-6  # relative: features are float32, so a bound and the same value may differ a bit


def _column(x: Any, names: tuple[str, ...], name: str) -> np.ndarray:
    return x[:, names.index(name)].double().numpy()


def _reduced(values: np.ndarray, where: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest of ``values`` per deployment (``where`` says whose)."""
    low, high = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(low, where, values)
    np.maximum.at(high, where, values)
    return low, high


def _counted(where: np.ndarray, n: int, weights: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    count = np.bincount(where, weights, minlength=n).astype(float)
    return count, count


def _extremes(graph: DeploymentGraph) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per deployment of ``graph``, the (lowest, highest) value of each quantity.
    Only stations that host a hop count: an unused device changes nothing."""
    chain_graph = graph.chain_graph.numpy()
    n = int(chain_graph.max()) + 1
    frag_graph = chain_graph[graph.fragment_chain.numpy()]
    frag_device = graph.fragment_device.numpy()
    device_graph = np.full(graph.device_x.shape[0], -1)
    device_graph[frag_device] = frag_graph
    used = np.flatnonzero(device_graph >= 0)
    on = device_graph[used]

    def device(name: str) -> np.ndarray:
        return _column(graph.device_x, DEVICE_FEATURES, name)[used]

    def fragment(name: str) -> tuple[np.ndarray, np.ndarray]:
        return _reduced(_column(graph.fragment_x, FRAGMENT_FEATURES, name), frag_graph, n)

    # each hop's no-wait time (in units of its chain's total, which cancels) and the part
    # of it on links: a link station's service, and every delay
    hop = {name: _column(graph.fragment_x, FRAGMENT_FEATURES, name)
           for name in ("reach", "service_share", "delay_share", "exit_probability")}
    link = _column(graph.device_x, DEVICE_FEATURES, "is_link")[frag_device]
    delay = (1.0 - hop["exit_probability"]) * hop["delay_share"]
    chain = graph.fragment_chain.numpy()
    on_links = np.bincount(chain, hop["reach"] * (link * hop["service_share"] + delay))
    total = np.bincount(chain, hop["reach"] * (hop["service_share"] + delay))
    first = graph.fragment_position.numpy() == 0
    return {"chains": _counted(chain_graph, n), "stations": _counted(on, n),
            "link_stations": _counted(on, n, device("is_link")),
            "hops": _reduced(graph.chain_length.numpy().astype(float), chain_graph, n),
            "capacity": _reduced(np.rint(np.exp(device("log_capacity"))), on, n),
            "load": _reduced(device("load"), on, n),
            "scv": fragment("scv"), "exit_probability": fragment("exit_probability"),
            "link_share": _reduced(on_links / np.maximum(total, 1e-300), chain_graph, n),
            "upload_links": _counted(chain_graph[chain[first]], n, link[first])}


@dataclass(frozen=True, slots=True)
class Domain:
    """Per quantity of :data:`QUANTITIES`, the (lowest, highest) value a model was
    trained on (counts per deployment; capacities, loads, SCVs and exit
    probabilities per station or hop; link shares per chain). Loads and link
    shares are bounded above only; :meth:`of` rounds the bounds outward to
    three significant figures. A quantity the ranges leave out is not bounded:
    models saved before edgeperf bounded it keep the domain they had."""

    ranges: Mapping[str, tuple[float, float]]

    def __post_init__(self) -> None:
        ranges = self.ranges if isinstance(self.ranges, Mapping) else {}
        if not ranges or not set(ranges) <= set(QUANTITIES):
            raise v.fail("Domain", "ranges", f"a mapping of some of {list(QUANTITIES)} to "
                         "their (low, high)", sorted(ranges) or self.ranges)
        clean = {}
        for name in (q for q in QUANTITIES if q in ranges):
            pair = ranges[name]
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                    and all(v.is_real(x) and math.isfinite(x) for x in pair)
                    and pair[0] <= pair[1]):
                raise v.fail("Domain", f"ranges[{name}]", "a (low, high) pair of finite "
                             "numbers, low <= high", pair)
            clean[name] = (float(pair[0]), float(pair[1]))
        object.__setattr__(self, "ranges", clean)

    @classmethod
    def of(cls, graph: DeploymentGraph) -> Domain:
        """The domain of the deployments of ``graph`` (a batch from ``collate``)."""
        v.instance("Domain.of", "graph", graph, DeploymentGraph,
                   "a DeploymentGraph (encode_batch or collate)")
        # rounded outward to the three figures shown: continuous draws end just short of
        # their regime's bounds (exit probabilities up to 0.49993 where the regime says 0.5)
        ranges = {name: (_outward(float(low.min()), math.floor),
                         _outward(float(high.max()), math.ceil))
                  for name, (low, high) in _extremes(graph).items()}
        # a station idler than any seen only queues less, a chain with less time on its
        # links is nearer ChainNet's regime: nothing worth a warning
        for name in ("load", "link_share"):
            ranges[name] = (0.0, ranges[name][1])
        return cls(ranges)

    def union(self, other: Domain) -> Domain:
        """The smallest domain holding both (a model trained further on new data); a
        quantity either leaves out is not bounded."""
        v.instance("Domain.union", "other", other, Domain, "a Domain")
        return Domain({name: (min(self.ranges[name][0], other.ranges[name][0]),
                              max(self.ranges[name][1], other.ranges[name][1]))
                       for name in self.ranges if name in other.ranges})

    def gaps(self, graph: DeploymentGraph) -> list[tuple[str, ...]]:
        """Per deployment of ``graph``, what lies outside this domain, one phrase a
        quantity, e.g. "hops of a chain: 1 (trained on 2 to 6)"; empty when nothing."""
        v.instance("Domain.gaps", "graph", graph, DeploymentGraph,
                   "a DeploymentGraph (encode_batch or collate)")
        extremes = _extremes(graph)
        n = len(extremes["chains"][0])
        found: list[list[str]] = [[] for _ in range(n)]
        for name, (lo, hi) in self.ranges.items():
            low, high = extremes[name]
            below, above = low < lo - _SLACK * abs(lo), high > hi + _SLACK * abs(hi)
            for g in np.flatnonzero(below | above):
                found[g].append(f"{QUANTITIES[name]}: {_show(high[g] if above[g] else low[g])} "
                                f"(trained on {_span(lo, hi)})")
        return [tuple(f) for f in found]

    def to_dict(self) -> dict[str, list[float]]:
        return {name: list(pair) for name, pair in self.ranges.items()}

    @classmethod
    def from_dict(cls, data: object) -> Domain:
        if not isinstance(data, Mapping):
            raise v.fail("Domain.from_dict", "data", "a mapping of quantity to [low, high]",
                         type(data).__name__)
        return cls(dict(data))  # the checks take [low, high] lists as JSON gives them


def _outward(x: float, rounding: Callable[[float], int]) -> float:
    """``x`` rounded to three significant figures, down or up (``rounding``)."""
    if x == 0.0:
        return 0.0
    places = 2 - math.floor(math.log10(abs(x)))
    # float32 features: 0.3 is stored as 0.30000001, which must not round up to 0.301
    return round(rounding(round(x * 10.0**places, 3)) / 10.0**places, places)


def _show(x: float) -> str:
    return f"{x:.3g}"


def _span(lo: float, hi: float) -> str:
    return f"{_show(lo)} only" if _show(lo) == _show(hi) else f"{_show(lo)} to {_show(hi)}"
