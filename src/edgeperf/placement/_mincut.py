"""DNN-Surgery-style split of a layer DAG between an edge device and a server.

Each node runs on the edge or on the server; the cost is the edge compute plus
the server compute plus the time to send every tensor that crosses from edge to
server (once, however many server nodes read it). An s–t minimum cut gives the
optimum exactly for these two tiers (Hu et al., "Dynamic adaptive DNN surgery
for inference acceleration on the edge", INFOCOM 2019). The flow network:

* source = edge side, sink = server side; ``s -> v`` carries v's server cost
  (cut when v is on the server), ``v -> t`` its edge cost;
* one auxiliary node ``a_u`` per produced tensor: ``u -> a_u`` carries the
  transfer time of u's output, ``a_u -> w`` is infinite for each consumer w,
  so the tensor is paid once when any consumer is on the server;
* an infinite ``w -> u`` per DAG edge forbids data flowing back from server to
  edge: the edge set is closed under predecessors;
* the input is pinned to the edge (infinite server cost): uploading it is a
  cut like any other.

Capacities are integer picoseconds so the flow arithmetic is exact; a transfer
dearer than running everything on the edge is capped there (it cannot be in an
optimal cut), which keeps the "infinite" capacity finite and safe.

Two exact reductions keep the network small: a node pays min(edge, server)
cost either way, so only the difference gets a terminal edge; a tensor read by
one node is cut on a direct edge, without an auxiliary node.

Re-deciding when the bandwidth changes (:class:`MinCutSolver`) reuses the flow
network and its residual graph and only rewrites the transfer capacities;
``benchmarks/placement.py`` times a re-decision against building and solving
from scratch on ResNet-32's fx graph.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import _validation as v
from ..exceptions import InfeasibleError
from ..model import System
from ._costs import Costs
from ._dag import LayerGraph
from ._decision import PlacementDecision

__all__ = ["MinCutSplit", "MinCutSolver", "mincut_split", "mincut_graph", "mincut"]

_TICKS = 1e12  # capacities in picoseconds
_FOREVER = float(2**62)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class MinCutSplit:
    """An optimal two-tier split: node indices on each side, the producers
    whose tensors cross (with their bytes), and the cost in parts."""

    graph: LayerGraph
    edge: tuple[int, ...]
    server: tuple[int, ...]
    cut: tuple[int, ...]
    cut_bytes: tuple[int, ...]
    edge_compute_s: float
    server_compute_s: float
    transfer_s: float
    latency_s: float
    solve_time_s: float

    @property
    def edge_names(self) -> tuple[str, ...]:
        return tuple(self.graph.names[i] for i in self.edge)

    @property
    def server_names(self) -> tuple[str, ...]:
        return tuple(self.graph.names[i] for i in self.server)

    @property
    def cut_tensors(self) -> tuple[tuple[str, int], ...]:
        """``(producer name, bytes)`` of each tensor sent to the server."""
        return tuple((self.graph.names[u], b) for u, b in zip(self.cut, self.cut_bytes))


def _costs_array(owner: str, name: str, value: Any, n: int) -> np.ndarray:
    rule = f"{n} finite non-negative seconds, one per node"
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise v.fail(owner, name, rule, value) from None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise v.fail(owner, name, rule, value)
    return arr


def _ticks(seconds: np.ndarray) -> list[int]:
    # past 2**62 ps (146 years) a time is as good as forever; the cap keeps it an int
    return [int(round(min(float(x) * _TICKS, _FOREVER))) for x in seconds]


class MinCutSolver:
    """The flow network of one graph and two tiers' node costs, built once.

    :meth:`solve` (a bandwidth and a latency) and :meth:`solve_transfers` (a
    transfer time per produced tensor) only rewrite the transfer capacities and
    rerun preflow-push on the kept residual graph: the fast re-decision when
    the link changes (so one solver serves one thread at a time).
    ``input_on_edge=False`` frees the input node (costs as given), for inputs
    both tiers already hold.
    """

    def __init__(self, graph: LayerGraph, edge_s: Sequence[float] | np.ndarray,
                 server_s: Sequence[float] | np.ndarray, *, input_on_edge: bool = True) -> None:
        import networkx as nx

        owner = "MinCutSolver"
        v.instance(owner, "graph", graph, LayerGraph, "a LayerGraph")
        v.instance(owner, "input_on_edge", input_on_edge, bool, "True or False")
        n = graph.n_nodes
        self.graph = graph
        self.edge_s = _costs_array(owner, "edge_s", edge_s, n)
        self.server_s = _costs_array(owner, "server_s", server_s, n)
        self.producers = tuple(sorted({u for u, _ in graph.edges}))
        edge, server = _ticks(self.edge_s), _ticks(self.server_s)
        self._cap = sum(edge) + 1  # dearer than all-on-edge: never in an optimal cut
        big = sum(edge) + sum(server) + self._cap * len(self.producers) + 1
        if input_on_edge:
            server[0] = big
        self._cut_edges = {u: self._transfer_edge(u) for u in self.producers}
        g = nx.DiGraph()
        g.add_nodes_from(["s", "t", *range(n)])
        # A node pays min(edge, server) either way: keep only the difference.
        g.add_edges_from(("s", i, {"capacity": c - min(c, e)})
                         for i, (c, e) in enumerate(zip(server, edge)) if c > e)
        g.add_edges_from((i, "t", {"capacity": e - min(c, e)})
                         for i, (c, e) in enumerate(zip(server, edge)) if e > c)
        for u, w in graph.edges:  # closure: data never flows back to the edge
            g.add_edge(w, u, capacity=big)
        for u, (_, w) in self._cut_edges.items():  # capacity set by each solve
            g.add_edge(u, w, capacity=1)
            if w == ("a", u):
                g.add_edges_from((w, x, {"capacity": big}) for x in graph.successors(u))
        self._network = g
        self._residual = nx.algorithms.flow.build_residual_network(g, "capacity")

    def _transfer_edge(self, u: int) -> tuple[int, Any]:
        """The flow edge that carries u's transfer: straight to its consumer, or
        through an auxiliary node when several nodes read the tensor."""
        readers = self.graph.successors(u)
        return (u, readers[0]) if len(readers) == 1 else (u, ("a", u))

    def solve(self, bandwidth_bps: float, latency_s: float = 0.0) -> MinCutSplit:
        """The optimal split over a link of ``bandwidth_bps`` and ``latency_s``."""
        bw = v.positive("MinCutSolver.solve", "bandwidth_bps", bandwidth_bps)
        delay = v.non_negative("MinCutSolver.solve", "latency_s", latency_s)
        return self.solve_transfers(self.graph.output_bytes * 8.0 / bw + delay)

    def solve_transfers(self, transfer_s: Sequence[float] | np.ndarray) -> MinCutSplit:
        """The optimal split when sending node u's output costs ``transfer_s[u]``."""
        from networkx.algorithms.flow import preflow_push

        start = time.perf_counter()
        transfer = _costs_array("MinCutSolver.solve_transfers", "transfer_s", transfer_s,
                                self.graph.n_nodes)
        ticks = _ticks(transfer)
        for u, (first, second) in self._cut_edges.items():
            self._residual[first][second]["capacity"] = min(ticks[u], self._cap)
        preflow_push(self._network, "s", "t", residual=self._residual, value_only=True)
        on_server = self._sink_side()
        return self._split(on_server, transfer, time.perf_counter() - start)

    def _sink_side(self) -> set[Any]:
        """Nodes that can still reach t in the residual graph: the server side of
        a minimum cut (a maximum preflow suffices)."""
        r, seen, todo = self._residual, {"t"}, ["t"]
        while todo:
            w = todo.pop()
            for u, attr in r.pred[w].items():
                if u not in seen and attr["flow"] < attr["capacity"]:
                    seen.add(u)
                    todo.append(u)
        return seen

    def _split(self, on_server: set[Any], transfer: np.ndarray, elapsed: float) -> MinCutSplit:
        g = self.graph
        server = tuple(i for i in range(g.n_nodes) if i in on_server)
        edge = tuple(i for i in range(g.n_nodes) if i not in on_server)
        cut = tuple(sorted({u for u, w in g.edges if u not in on_server and w in on_server}))
        parts = (float(self.edge_s[list(edge)].sum()), float(self.server_s[list(server)].sum()),
                 float(transfer[list(cut)].sum()))
        return MinCutSplit(graph=g, edge=edge, server=server, cut=cut,
                           cut_bytes=tuple(int(g.output_bytes[u]) for u in cut),
                           edge_compute_s=parts[0], server_compute_s=parts[1],
                           transfer_s=parts[2], latency_s=sum(parts), solve_time_s=elapsed)


def mincut_split(graph: LayerGraph, *, edge_s: Sequence[float] | np.ndarray,
                 server_s: Sequence[float] | np.ndarray, bandwidth_bps: float,
                 latency_s: float = 0.0, input_on_edge: bool = True) -> MinCutSplit:
    """The latency-optimal edge/server split of ``graph`` (one solve; its
    ``solve_time_s`` includes building the flow network)."""
    start = time.perf_counter()
    split = MinCutSolver(graph, edge_s, server_s, input_on_edge=input_on_edge).solve(
        bandwidth_bps, latency_s)
    return replace(split, solve_time_s=time.perf_counter() - start)


def mincut_graph(graph: LayerGraph, *, edge_speed: float, server_speed: float,
                 bandwidth_bps: float, latency_s: float = 0.0) -> MinCutSplit:
    """Split a graph measured on this host (:func:`layer_graph`) between tiers
    ``edge_speed`` and ``server_speed`` times as fast as this host."""
    owner = "mincut_graph"
    v.instance(owner, "graph", graph, LayerGraph, "a LayerGraph (layer_graph(model, x))")
    edge = v.positive(owner, "edge_speed", edge_speed)
    server = v.positive(owner, "server_speed", server_speed)
    return mincut_split(graph, edge_s=graph.latency_s / edge, server_s=graph.latency_s / server,
                        bandwidth_bps=bandwidth_bps, latency_s=latency_s)


# ---------------------------------------------------------------- on a scenario


def _chain_split(costs: Costs, edge: int, server: int) -> MinCutSplit:
    """The chain as a path DAG (input, blocks) split between two devices."""
    n, reach = costs.n_blocks, costs.reach
    rows = np.arange(n)
    transfer = [reach[b] * costs.transfer_s(edge, server, costs.cut_bytes(b)) for b in rows]
    solver = MinCutSolver(LayerGraph.from_costs(costs),
                          [0.0, *(reach * costs.compute_s[rows, edge])],
                          [0.0, *(reach * costs.compute_s[rows, server])])
    return solver.solve_transfers([*transfer, 0.0])


def _candidate(costs: Costs, edge: int, server: int) -> tuple[np.ndarray, str | None]:
    """The min-cut assignment, or when it breaks a rule (memory) the best
    feasible prefix, with the violation that forced the fallback."""
    split = _chain_split(costs, edge, server)
    n = costs.n_blocks
    a = np.full(n, server)
    a[[i - 1 for i in split.edge if i > 0]] = edge
    broken = costs.violation(a)
    if broken is None:
        return a, None
    prefixes = [np.array([edge] * k + [server] * (n - k)) for k in range(n + 1)]
    feasible = [p for p in prefixes if costs.violation(p) is None]
    if not feasible:
        raise InfeasibleError(f"mincut: no split between {costs.devices[edge].name!r} and "
                              f"{costs.devices[server].name!r} is feasible ({broken}).")
    return min(feasible, key=costs.latency_s), broken


def _details(costs: Costs, a: np.ndarray, edge: int, server: int,
             broken: str | None) -> dict[str, Any]:
    k = int(np.sum(a == edge))  # blocks 0..k-1 on the edge
    cut = [] if k == costs.n_blocks else [
        ["input" if k == 0 else costs.blocks[k - 1], costs.cut_bytes(k)]]
    return {"edge": costs.devices[edge].name, "server": costs.devices[server].name,
            "edge_blocks": list(costs.blocks[:k]), "cut_tensors": cut, "fallback": broken}


def mincut(system: System, *, chain: str | None = None, device: str | None = None,
           server: str | None = None) -> PlacementDecision:
    """Split ``chain`` between the edge ``device`` (default: the chain's source,
    else its first fragment's device) and ``server`` (default: the best device
    with a link from the edge) by a minimum cut of its path DAG.

    Costs are the mean block times weighted by the share of jobs reaching them
    and the link's transmission and propagation times, so the value equals
    :meth:`Costs.latency_s` of the result. The returned system's source is the
    edge device, so running everything on the server uploads each input. A
    cut breaking a memory limit falls back to the best feasible prefix
    (``details["fallback"]`` names the broken rule).
    """
    start = time.perf_counter()
    costs = Costs.of(system, chain)
    edge = costs.home if device is None else costs.device_index("mincut", "device", device)
    costs = costs.with_source(edge)
    results, failures = [], []
    for j in costs.servers("mincut", edge, server):
        try:
            results.append((*_candidate(costs, edge, j), j))
        except InfeasibleError as err:
            failures.append(str(err))
    if not results:
        raise InfeasibleError(" ".join(failures))
    a, broken, j = min(results, key=lambda r: costs.latency_s(r[0]))
    latency = costs.latency_s(a)
    return PlacementDecision(method="mincut", system=costs.placed(a), chain=costs.chain,
                             assignment=tuple(int(x) for x in a), objective="latency",
                             value=latency, latency_s=latency,
                             solve_time_s=time.perf_counter() - start,
                             details=_details(costs, a, edge, j, broken))
