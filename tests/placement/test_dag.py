"""LayerGraph: built from arrays and from fx traces measured on this host."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from torch import nn

from edgeperf.dists import Deterministic
from edgeperf.earlyexit import build
from edgeperf.exceptions import InvalidParameterError
from edgeperf.model import DNN, Block, Device, Placement, PoissonArrivals, System, Workload
from edgeperf.placement import Costs, LayerGraph, layer_graph


class Inception(nn.Module):
    """Two parallel branches on the stem's output, concatenated, plus a skip."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.left = nn.Conv2d(4, 4, 1)
        self.right = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8 * 8 * 8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        y = torch.cat([self.left(s), self.right(s) + s], dim=1)
        return self.fc(y.flatten(1))


@pytest.fixture(scope="module")
def inception() -> LayerGraph:
    return layer_graph(Inception(), torch.randn(1, 3, 8, 8), repeats=3, warmup=1)


def test_nodes_follow_the_fx_trace(inception: LayerGraph) -> None:
    g = inception
    assert g.kinds[0] == "input" and g.names[0] == "x"
    assert {"Conv2d", "ReLU", "Linear", "cat", "add", "flatten"} <= set(g.kinds)
    stem = g.names.index("stem")
    assert set(g.successors(stem)) == {g.names.index(n) for n in ("left", "right_0", "add")}
    assert g.predecessors(g.names.index("cat")) == (g.names.index("left"), g.names.index("add"))
    assert nx.is_directed_acyclic_graph(g.to_networkx())


def test_sizes_params_and_flops_are_measured(inception: LayerGraph) -> None:
    g = inception
    i = {name: k for k, name in enumerate(g.names)}
    assert g.output_bytes[0] == 3 * 8 * 8 * 4
    assert g.output_bytes[i["stem"]] == 4 * 8 * 8 * 4
    assert g.output_bytes[i["cat"]] == 8 * 8 * 8 * 4
    assert g.output_bytes[i["fc"]] == 5 * 4
    assert g.param_bytes[i["stem"]] == (4 * 3 * 9 + 4) * 4
    assert g.param_bytes[i["add"]] == 0
    assert g.flops[i["stem"]] == 2 * 3 * 9 * 4 * 8 * 8
    assert g.flops[i["fc"]] == 2 * 512 * 5
    assert g.flops[i["add"]] == 0


def test_every_computing_node_has_a_latency(inception: LayerGraph) -> None:
    assert inception.latency_s[0] == 0.0
    assert np.all(inception.latency_s[1:] > 0)
    assert inception.latency_s.sum() < 1.0


def test_a_zoo_mobilenet_traces_into_a_branching_graph() -> None:
    net = build("mobilenetv2", width=4).train()
    g = layer_graph(net, torch.randn(1, 3, 32, 32), repeats=1, warmup=0)
    assert net.training
    assert max(len(g.successors(i)) for i in range(g.n_nodes)) == 2
    assert g.kinds[-1] == "Linear"


def test_a_zoo_resnet_traces_with_its_shortcut_as_one_node() -> None:
    g = layer_graph(build("resnet32", width=4), torch.randn(1, 3, 32, 32), repeats=1, warmup=0)
    assert g.kinds.count("_shortcut") == 15
    assert max(len(g.successors(i)) for i in range(g.n_nodes)) == 2


def test_path_and_closure() -> None:
    g = LayerGraph.path([10, 20, 30], latency_s=[0, 1, 2])
    assert g.edges == ((0, 1), (1, 2))
    assert g.names == ("input", "n1", "n2")
    assert g.is_closed([0, 1]) and g.is_closed([]) and not g.is_closed([1])


def test_from_costs_is_the_chain_with_its_input() -> None:
    blocks = tuple(Block(name=f"b{i}", latency=Deterministic(0.01 * (i + 1)),
                         output_bytes=100 * (i + 1), param_bytes=7) for i in range(3))
    pi = Device(name="pi", capacity=3)
    system = System(model=DNN(blocks=blocks, input_bytes=50), devices=(pi,), links=(),
                    workload=Workload(arrival=PoissonArrivals(rate=1.0)),
                    placement=Placement.from_mapping({"pi": ["b0", "b1", "b2"]}))
    g = LayerGraph.from_costs(Costs.of(system))
    assert g.names == ("input", "b0", "b1", "b2")
    assert list(g.output_bytes) == [50, 100, 200, 300]
    assert list(g.param_bytes) == [0, 7, 7, 7]
    assert np.allclose(g.latency_s, [0, 0.01, 0.02, 0.03])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"edges": [(1, 0)]}, "The 'edges' parameter of LayerGraph must be pairs"),
    ({"output_bytes": [1, -2, 3]}, "The 'output_bytes' parameter of LayerGraph must be 3 finite"),
    ({"latency_s": [0, np.nan, 1]}, "The 'latency_s' parameter of LayerGraph must be 3 finite"),
    ({"names": ["a", "a", "b"]}, "The 'names' parameter of LayerGraph must be at least 2 unique"),
    ({"names": [1, 2, 3]}, r"^The 'names' .* node names \(strings\)\. Got \[1, 2, 3\]\.$"),
    ({"edges": [(0, 1, 2)]}, r"^The 'edges' parameter of LayerGraph must be pairs \(u, v\) of"),
    ({"edges": [(0.5, 1)]}, r"^The 'edges' .* of ints .*Got \[\(0\.5, 1\)\]\.$"),
    ({"output_bytes": [1, 1.7, 3]}, r"^The 'output_bytes' parameter of LayerGraph must be 3 "
                                    r"finite non-negative whole numbers\. Got \[1, 1\.7, 3\]\.$"),
    ({"output_bytes": ["a", "b", "c"]}, r"^The 'output_bytes' .* Got \['a', 'b', 'c'\]\.$"),
    ({"output_bytes": None}, r"^The 'output_bytes' .* a list of sizes\. Got 'NoneType'\.$"),
])
def test_bad_arrays_are_rejected(kwargs: dict, message: str) -> None:
    args = {"edges": [(0, 1), (1, 2)], "output_bytes": [1, 2, 3]} | kwargs
    with pytest.raises(InvalidParameterError, match=message):
        LayerGraph.from_edges(**args)


@pytest.mark.parametrize("field", ["names", "kinds", "edges"])
def test_node_and_edge_lists_must_be_sequences(field: str) -> None:
    args = {"names": ("x", "y"), "kinds": ("input", "linear"), "edges": ((0, 1),),
            "output_bytes": [1, 1], "param_bytes": [0, 0], "flops": [0, 0], "latency_s": [0, 0]}
    with pytest.raises(InvalidParameterError, match=f"^The '{field}' parameter of LayerGraph "
                       "must be .* Got 'NoneType'.$"):
        LayerGraph(**args | {field: None})


def test_from_costs_needs_costs() -> None:
    with pytest.raises(InvalidParameterError, match="^The 'costs' parameter of LayerGraph."
                       r"from_costs must be a Costs \(Costs.of\(system\)\)\. Got None\.$"):
        LayerGraph.from_costs(None)


def test_kinds_must_match_the_nodes() -> None:
    with pytest.raises(InvalidParameterError, match="'kinds' parameter of LayerGraph"):
        LayerGraph(names=("x", "y"), kinds=("input",), edges=((0, 1),), output_bytes=[1, 1],
                   param_bytes=[0, 0], flops=[0, 0], latency_s=[0, 0])


class Branchy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.sum() > 0 else -x


def test_layer_graph_errors() -> None:
    x = torch.randn(1, 3)
    with pytest.raises(InvalidParameterError, match="must be a torch.fx-traceable module. "
                       "Got 'Branchy"):
        layer_graph(Branchy(), x)
    with pytest.raises(InvalidParameterError, match="'repeats' parameter of layer_graph"):
        layer_graph(nn.ReLU(), x, repeats=0)
    with pytest.raises(InvalidParameterError, match="^The 'leaf_functions' parameter of "
                       "layer_graph must be functions defined at the top level"):
        layer_graph(nn.ReLU(), x, leaf_functions=[lambda t: t])
