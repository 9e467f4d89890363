"""DNN-Surgery min-cut: exact against brute force, fast re-decisions, and on scenarios."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeperf.dists import Deterministic
from edgeperf.earlyexit import build
from edgeperf.exceptions import InfeasibleError, InvalidParameterError
from edgeperf.model import DNN, Block, Device, Link, Placement, PoissonArrivals, System, Workload
from edgeperf.placement import (Costs, LayerGraph, MinCutSolver, layer_graph, mincut,
                                mincut_graph, mincut_split)

# --------------------------------------------------------------------------- brute force


def split_cost(g: LayerGraph, edge: set[int], edge_s: np.ndarray, server_s: np.ndarray,
               bandwidth_bps: float, latency_s: float = 0.0) -> float:
    """Compute on each side plus one transfer per tensor read across the cut."""
    sent = [u for u in edge if any(w not in edge for w in g.successors(u))]
    return (sum(edge_s[i] for i in edge)
            + sum(server_s[i] for i in range(g.n_nodes) if i not in edge)
            + sum(g.output_bytes[u] * 8 / bandwidth_bps + latency_s for u in sent))


def brute_force(g: LayerGraph, edge_s: np.ndarray, server_s: np.ndarray, bandwidth_bps: float,
                latency_s: float = 0.0) -> float:
    """The best predecessor-closed edge set holding the input, by enumeration."""
    best = np.inf
    for mask in range(1, 1 << g.n_nodes, 2):  # odd masks: the input is on the edge
        edge = {i for i in range(g.n_nodes) if mask >> i & 1}
        if g.is_closed(edge):
            best = min(best, split_cost(g, edge, edge_s, server_s, bandwidth_bps, latency_s))
    return best


def random_dag(seed: int, n: int) -> tuple[LayerGraph, np.ndarray, np.ndarray]:
    """A DAG whose nodes all descend from the input, with random costs and sizes."""
    rng = np.random.default_rng(seed)
    edges = {(int(rng.integers(0, w)), w) for w in range(1, n)}
    edges |= {(u, w) for u in range(n) for w in range(u + 1, n) if rng.random() < 0.25}
    g = LayerGraph.from_edges(sorted(edges), rng.integers(1_000, 200_000, n))
    edge_s, server_s = rng.uniform(0.0, 0.02, n), rng.uniform(0.0, 0.004, n)
    edge_s[0] = server_s[0] = 0.0
    return g, edge_s, server_s


def residual_block() -> tuple[LayerGraph, np.ndarray, np.ndarray]:
    """stem -> (conv, bn, conv, bn) + shortcut -> add -> relu -> fc."""
    edges = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (1, 6), (5, 7), (6, 7), (7, 8), (8, 9)]
    out = [200_000, 8_192, 16_384, 16_384, 16_384, 16_384, 8_192, 16_384, 16_384, 40]
    g = LayerGraph.from_edges(edges, out, names=["x", "stem", "c1", "b1", "c2", "b2", "short",
                                                 "add", "relu", "fc"])
    edge_s = np.array([0, 4, 9, 1, 9, 1, 0.2, 0.3, 0.2, 0.5]) * 1e-3
    return g, edge_s, edge_s / 8


BANDWIDTHS = (1e5, 1e6, 1e7, 1e8, 1e10)


@pytest.mark.parametrize("seed", range(8))
def test_random_dags_match_brute_force(seed: int) -> None:
    g, edge_s, server_s = random_dag(seed, n=8 + seed % 5)
    for bw in BANDWIDTHS:
        split = mincut_split(g, edge_s=edge_s, server_s=server_s, bandwidth_bps=bw,
                             latency_s=0.002)
        best = brute_force(g, edge_s, server_s, bw, 0.002)
        assert split.latency_s == pytest.approx(best, rel=1e-9, abs=1e-12)
        assert 0 in split.edge and g.is_closed(split.edge)
        assert split.latency_s == pytest.approx(
            split_cost(g, set(split.edge), edge_s, server_s, bw, 0.002), rel=1e-12)


def test_residual_block_matches_brute_force_and_sends_each_tensor_once() -> None:
    g, edge_s, server_s = residual_block()
    interior = set()
    for bw in np.geomspace(1e5, 1e10, 25):
        split = mincut_split(g, edge_s=edge_s, server_s=server_s, bandwidth_bps=bw)
        assert split.latency_s == pytest.approx(brute_force(g, edge_s, server_s, bw), rel=1e-9)
        assert len(split.cut) == len(set(split.cut))
        interior.add(split.edge)
    assert {(0,), (0, 1), tuple(range(10))} <= interior  # (0, 1): the stem's output, sent once


def test_a_tensor_read_by_several_server_nodes_is_sent_once() -> None:
    g = LayerGraph.from_edges([(0, 1), (0, 2), (0, 3)], [1_000_000, 10, 10, 10])
    split = mincut_split(g, edge_s=[0, 1, 1, 1], server_s=[0, 0, 0, 0], bandwidth_bps=8e6)
    assert split.edge == (0,) and split.cut_tensors == (("input", 1_000_000),)
    assert split.transfer_s == pytest.approx(1.0) and split.latency_s == pytest.approx(1.0)


def test_a_path_splits_at_its_best_prefix() -> None:
    rng = np.random.default_rng(7)
    n = 9
    g = LayerGraph.path(rng.integers(1_000, 100_000, n))
    edge_s, server_s = rng.uniform(0, 0.01, n), rng.uniform(0, 0.002, n)
    for bw in BANDWIDTHS:
        split = mincut_split(g, edge_s=edge_s, server_s=server_s, bandwidth_bps=bw)
        prefixes = [split_cost(g, set(range(k)), edge_s, server_s, bw) for k in range(1, n + 1)]
        assert split.latency_s == pytest.approx(min(prefixes), rel=1e-9)
        assert split.edge == tuple(range(len(split.edge)))


def test_an_input_both_tiers_hold_may_go_to_the_server_for_free() -> None:
    g = LayerGraph.path([1_000_000, 10])
    pinned = mincut_split(g, edge_s=[0, 1], server_s=[0, 0.1], bandwidth_bps=1e6)
    free = mincut_split(g, edge_s=[0, 1], server_s=[0, 0.1], bandwidth_bps=1e6,
                        input_on_edge=False)
    assert pinned.edge == (0, 1) and pinned.latency_s == pytest.approx(1.0)
    assert free.edge == () and free.latency_s == pytest.approx(0.1)


# ------------------------------------------------------------------ a traced model


@pytest.fixture(scope="module")
def resnet() -> LayerGraph:
    return layer_graph(build("resnet32", width=8), torch.randn(1, 3, 32, 32), repeats=2,
                       warmup=1)


def test_cuts_of_a_traced_resnet_are_closed_and_follow_the_bandwidth(resnet: LayerGraph) -> None:
    edge_nodes = []
    for bw in np.geomspace(1e3, 1e13, 11):
        split = mincut_graph(resnet, edge_speed=0.25, server_speed=4.0, bandwidth_bps=bw)
        assert resnet.is_closed(split.edge) and 0 in split.edge
        assert len(split.edge) + len(split.server) == resnet.n_nodes
        edge_nodes.append(len(split.edge))
    assert edge_nodes[0] == resnet.n_nodes  # tiny bandwidth: everything on the edge
    assert edge_nodes[-1] == 1  # huge bandwidth: only the input stays
    assert edge_nodes == sorted(edge_nodes, reverse=True)


def test_a_re_decision_equals_a_fresh_solve(resnet: LayerGraph) -> None:
    edge_s, server_s = resnet.latency_s * 4, resnet.latency_s / 4
    solver = MinCutSolver(resnet, edge_s, server_s)
    for bw in np.geomspace(1e4, 1e10, 13):
        again = solver.solve(bw, 1e-3)
        fresh = mincut_split(resnet, edge_s=edge_s, server_s=server_s, bandwidth_bps=bw,
                             latency_s=1e-3)
        assert again.edge == fresh.edge and again.cut_tensors == fresh.cut_tensors
        assert again.latency_s == pytest.approx(fresh.latency_s, rel=1e-12)


def test_solver_errors(resnet: LayerGraph) -> None:
    n = resnet.n_nodes
    with pytest.raises(InvalidParameterError, match="The 'graph' parameter of MinCutSolver "
                       "must be a LayerGraph"):
        MinCutSolver("g", [0], [0])  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=f"'edge_s' parameter of MinCutSolver must "
                       f"be {n} finite non-negative seconds"):
        MinCutSolver(resnet, [0.0], np.zeros(n))
    with pytest.raises(InvalidParameterError, match="'server_s' parameter of MinCutSolver"):
        MinCutSolver(resnet, np.zeros(n), -np.ones(n))
    with pytest.raises(InvalidParameterError, match="'bandwidth_bps' parameter of "
                       "MinCutSolver.solve must be a finite number > 0"):
        MinCutSolver(resnet, np.zeros(n), np.zeros(n)).solve(0.0)
    with pytest.raises(InvalidParameterError, match="^The 'input_on_edge' parameter of "
                       "MinCutSolver must be True or False. Got 'str'.$"):
        MinCutSolver(resnet, np.zeros(n), np.zeros(n), input_on_edge="no")  # "no" is truthy
    with pytest.raises(InvalidParameterError, match="'edge_speed' parameter of mincut_graph"):
        mincut_graph(resnet, edge_speed=0, server_speed=1, bandwidth_bps=1e6)
    with pytest.raises(InvalidParameterError, match="^The 'graph' parameter of mincut_graph "
                       "must be a LayerGraph"):
        mincut_graph(None, edge_speed=1, server_speed=2, bandwidth_bps=1e6)


def test_times_past_the_ticks_range_count_as_forever() -> None:
    # 8e302 s of transfer, 1e300 s on the edge: their picoseconds overflowed an int
    g = LayerGraph.path([100, 200, 300, 400])
    slow_link = mincut_split(g, edge_s=[0, 1, 1, 1], server_s=[0, .1, .1, .1],
                             bandwidth_bps=1e-300)
    assert slow_link.server == () and slow_link.latency_s == 3.0
    slow_edge = mincut_split(g, edge_s=[0, 1e300, 1e300, 1e300], server_s=[0, .1, .1, .1],
                             bandwidth_bps=1e6)
    assert slow_edge.server == (1, 2, 3)


# ------------------------------------------------------------------------ scenarios

WORKLOAD = Workload(arrival=PoissonArrivals(rate=2.0))


def chain_system(*, bandwidth_bps: float = 10e6, pi_memory: int | None = None,
                 server_memory: int | None = None, source: str | None = None) -> System:
    sizes = (400_000, 100_000, 30_000, 60_000, 4_000)
    exits = (None, 0.3, None, 0.5, None)
    blocks = tuple(Block(name=f"b{i}", latency=Deterministic(0.004 * (i + 1)),
                         output_bytes=sizes[i], exit_probability=exits[i], param_bytes=1_000)
                   for i in range(5))
    devices = (Device(name="pi", capacity=4, memory_bytes=pi_memory),
               Device(name="server", capacity=8, speed=6.0, memory_bytes=server_memory),
               Device(name="cloud", capacity=8, speed=20.0))
    links = (Link(source="pi", target="server", bandwidth_bps=bandwidth_bps, capacity=8,
                  latency_s=0.002),
             Link(source="pi", target="cloud", bandwidth_bps=bandwidth_bps / 4, capacity=8,
                  latency_s=0.03))
    return System(model=DNN(blocks=blocks, input_bytes=150_000), devices=devices, links=links,
                  workload=WORKLOAD, source=source,
                  placement=Placement.from_mapping({"pi": [b.name for b in blocks]}))


def best_prefix(costs: Costs, servers: tuple[int, ...] = (1, 2)) -> float:
    n = costs.n_blocks
    return min(costs.latency_s([0] * k + [j] * (n - k)) for j in servers for k in range(n + 1)
               if costs.violation([0] * k + [j] * (n - k)) is None)


@pytest.mark.parametrize("bandwidth_bps", [1e5, 1e6, 5e6, 2e7, 1e8, 1e10])
def test_mincut_on_a_scenario_is_the_best_prefix(bandwidth_bps: float) -> None:
    system = chain_system(bandwidth_bps=bandwidth_bps)
    decision = mincut(system)
    costs = Costs.of(system).with_source(0)
    assert decision.latency_s == pytest.approx(best_prefix(costs), rel=1e-9)
    assert decision.value == decision.latency_s and decision.method == "mincut"
    placed = Costs.of(decision.system)
    assert placed.source == 0
    assert placed.latency_s(decision.assignment) == pytest.approx(decision.latency_s, rel=1e-12)


def test_all_on_the_server_uploads_the_input() -> None:
    decision = mincut(chain_system(bandwidth_bps=1e10), server="server")
    assert set(decision.assignment) == {1}
    assert decision.system.chains[0].upload == ("pi", "server")
    assert decision.details["cut_tensors"] == [["input", 150_000]]
    assert decision.details["edge_blocks"] == [] and decision.details["fallback"] is None


def test_a_slow_link_keeps_everything_on_the_edge() -> None:
    decision = mincut(chain_system(bandwidth_bps=1e3))
    assert set(decision.assignment) == {0} and decision.details["cut_tensors"] == []


def test_an_interior_cut_names_its_tensor() -> None:
    decision = mincut(chain_system(bandwidth_bps=2e7), server="server")
    assert decision.assignment == (0, 0, 0, 1, 1)
    assert decision.details["cut_tensors"] == [["b2", 30_000]]
    assert decision.details["edge_blocks"] == ["b0", "b1", "b2"]


def test_memory_limits_fall_back_to_the_best_feasible_prefix() -> None:
    # pi holds b0 and b1 (2 * 1000 bytes of weights + 550000 of b0's activations), not
    # b2 too, but the slow link wants everything on it
    system = chain_system(bandwidth_bps=1e4, pi_memory=552_500)
    decision = mincut(system, server="server")
    assert decision.details["fallback"].startswith("memory of pi")
    costs = Costs.of(system).with_source(0)
    assert decision.latency_s == pytest.approx(best_prefix(costs, (1,)), rel=1e-12)
    assert costs.violation(decision.assignment) is None


def test_infeasible_memory_names_the_constraint() -> None:
    system = chain_system(bandwidth_bps=1e4, pi_memory=552_500, server_memory=1_000)
    with pytest.raises(InfeasibleError, match="no split between 'pi' and 'server' is "
                       "feasible \\(memory of"):
        mincut(system, server="server")


def test_mincut_errors() -> None:
    system = chain_system()
    with pytest.raises(InvalidParameterError, match="The 'device' parameter of mincut must be "
                       "one of \\['pi', 'server', 'cloud'\\]. Got 'gpu'."):
        mincut(system, device="gpu")
    with pytest.raises(InvalidParameterError, match="'server' parameter of mincut"):
        mincut(system, server="gpu")
    with pytest.raises(InfeasibleError, match="no link server->pi"):
        mincut(system, device="server", server="pi")
    with pytest.raises(InfeasibleError, match="^No server for the device tier 'cloud': no link "
                                              "from it to any other device.$"):
        mincut(system, device="cloud")


def test_the_device_tier_becomes_the_source() -> None:
    assert chain_system().source is None
    assert mincut(chain_system(), device="pi").system.source == "pi"
