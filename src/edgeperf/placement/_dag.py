"""The DAG of a model's layers, for splits that a chain of blocks cannot express.

A :class:`LayerGraph` has one node per computing node of a ``torch.fx`` trace
(``call_module``, ``call_function``, ``call_method``) plus node 0, the input.
Nodes are in topological order and every edge ``(u, v)`` has ``u < v``: the
tensor node ``u`` produces is read by node ``v``. ``get_attr`` nodes (weights
and constant tensors) are not nodes: every device holds the weights it needs.

Per node: ``kind`` (module class, function or method name; ``"input"``),
``output_bytes`` (batch 1, as measured), ``param_bytes`` (a module's
parameters and buffers; 0 for functions and methods), ``flops`` (counted on
modules with :func:`edgeperf.profiling.count_flops`'s rules: convolutions,
linear layers, norms, activations, pooling; 0 for functions and methods such as
residual additions and padding, so a lower bound) and ``latency_s``.

How :func:`layer_graph` measures latency: the traced graph runs node by node
in a ``torch.fx.Interpreter`` (eval mode, ``torch.inference_mode``, batch 1),
``warmup`` untimed runs then ``repeats`` timed ones, each node timed with
``time.perf_counter`` around its ``run_node``; ``latency_s`` is the median.
Rounds cover all nodes, so a burst of load from other processes spreads over
them. The figure includes the interpreter's own Python overhead per node (a few
microseconds: fetching arguments, dispatch), which dominates cheap nodes
(additions, ReLUs) but not convolutions; the graph's sum therefore exceeds the
module's plain forward time by roughly that overhead times the node count.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from unittest import mock

import numpy as np

from .. import _validation as v

__all__ = ["LayerGraph", "layer_graph"]


def _frozen(values: Sequence[float] | np.ndarray, dtype: type) -> np.ndarray:
    arr = np.array(values, dtype=dtype)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LayerGraph:
    """A model's layers as a DAG; node 0 is the input (see the module docs)."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    output_bytes: np.ndarray
    param_bytes: np.ndarray
    flops: np.ndarray
    latency_s: np.ndarray

    def __post_init__(self) -> None:
        owner = "LayerGraph"
        names = v.listed(owner, "names", self.names, "at least 2 unique node names (strings)",
                         lambda x: isinstance(x, str))
        n = len(names)
        if n < 2 or len(set(names)) != n:
            raise v.fail(owner, "names", "at least 2 unique node names (strings)", names)
        kinds = v.listed(owner, "kinds", self.kinds, f"{n} kinds (strings), one per node",
                         lambda x: isinstance(x, str))
        if len(kinds) != n:
            raise v.fail(owner, "kinds", f"{n} kinds (strings), one per node", kinds)
        rule = f"pairs (u, v) of ints with 0 <= u < v < {n} (nodes in topological order)"
        pairs = v.listed(owner, "edges", self.edges, rule, lambda e: isinstance(e, Sequence)
                         and len(e) == 2 and all(v.is_int(x) for x in e))
        edges = tuple(sorted({(int(u), int(w)) for u, w in pairs}))
        if any(not 0 <= u < w < n for u, w in edges):
            raise v.fail(owner, "edges", rule, self.edges)
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "kinds", tuple(kinds))
        object.__setattr__(self, "edges", edges)
        for field, dtype in (("output_bytes", np.int64), ("param_bytes", np.int64),
                             ("flops", np.int64), ("latency_s", float)):
            whole = dtype is np.int64
            rule = f"{n} finite non-negative {'whole ' if whole else ''}numbers"
            given = getattr(self, field)
            shown = v.shown(given)
            try:
                arr = np.asarray(given, dtype=float)
            except (TypeError, ValueError):
                raise v.fail(owner, field, rule, shown) from None
            if arr.shape != (n,) or not np.all(np.isfinite(arr)) or np.any(arr < 0) \
                    or (whole and np.any(arr != np.round(arr))):
                raise v.fail(owner, field, rule, shown)
            object.__setattr__(self, field, _frozen(arr, dtype))

    @classmethod
    def from_edges(cls, edges: Sequence[tuple[int, int]], output_bytes: Sequence[int], *,
                   latency_s: Sequence[float] | None = None,
                   names: Sequence[str] | None = None) -> LayerGraph:
        """A graph from plain arrays (node 0 is the input; no weights, no FLOPs)."""
        n = len(v.listed("LayerGraph", "output_bytes", output_bytes, "a list of sizes"))
        return cls(names=names if names is not None
                   else ("input", *(f"n{i}" for i in range(1, n))),
                   kinds=("input",) + ("node",) * (n - 1), edges=edges,
                   output_bytes=output_bytes, param_bytes=np.zeros(n), flops=np.zeros(n),
                   latency_s=np.zeros(n) if latency_s is None else latency_s)

    @classmethod
    def path(cls, output_bytes: Sequence[int], *, latency_s: Sequence[float] | None = None,
             names: Sequence[str] | None = None) -> LayerGraph:
        """A chain: node i feeds node i + 1 (node 0 is the input)."""
        n = len(v.listed("LayerGraph", "output_bytes", output_bytes, "a list of sizes"))
        edges = [(i, i + 1) for i in range(n - 1)]
        return cls.from_edges(edges, output_bytes, latency_s=latency_s, names=names)

    @classmethod
    def from_costs(cls, costs: Any) -> LayerGraph:
        """The path DAG of a :class:`Costs` chain: the input, then its blocks, with
        their bytes and their latency on the reference host (speed 1)."""
        from ._costs import Costs

        v.instance("LayerGraph.from_costs", "costs", costs, Costs, "a Costs (Costs.of(system))")
        model = costs.system.chain(costs.chain).model
        n = costs.n_blocks + 1
        return cls(names=("input", *costs.blocks), kinds=("input",) + ("block",) * (n - 1),
                   edges=tuple((i, i + 1) for i in range(n - 1)),
                   output_bytes=[costs.input_bytes, *costs.output_bytes],
                   param_bytes=[0, *costs.param_bytes], flops=np.zeros(n),
                   latency_s=[0.0, *(b.latency.mean for b in model.blocks)])

    @property
    def n_nodes(self) -> int:
        return len(self.names)

    def successors(self, node: int) -> tuple[int, ...]:
        return tuple(w for u, w in self.edges if u == node)

    def predecessors(self, node: int) -> tuple[int, ...]:
        return tuple(u for u, w in self.edges if w == node)

    def is_closed(self, nodes: Sequence[int]) -> bool:
        """Whether ``nodes`` holds every predecessor of its members: a set a
        device can run without data flowing back to it."""
        inside = set(int(x) for x in nodes)
        return all(u in inside for u, w in self.edges if w in inside)

    def to_networkx(self) -> Any:
        """A ``networkx.DiGraph`` with the per-node fields as node attributes."""
        import networkx as nx

        g = nx.DiGraph()
        for i, name in enumerate(self.names):
            g.add_node(i, name=name, kind=self.kinds[i], output_bytes=int(self.output_bytes[i]),
                       param_bytes=int(self.param_bytes[i]), flops=int(self.flops[i]),
                       latency_s=float(self.latency_s[i]))
        g.add_edges_from(self.edges)
        return g


# ------------------------------------------------------------------------- tracing


def _trace(module: Any, leaves: Sequence[Callable[..., Any]]) -> Any:
    """``module`` as an ``fx.GraphModule`` with ``leaves`` recorded as one
    ``call_function`` node each instead of traced through: functions that
    branch on shapes (the zoo ResNets' option-A shortcut) cannot be traced
    symbolically, and ``torch.fx``'s own autowrap skips private names. The
    module global is replaced only while tracing."""
    import torch.fx as fx

    tracer = fx.Tracer()

    def recorder(fn: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *args, **kwargs: tracer.create_proxy("call_function", fn, args, kwargs)

    with ExitStack() as stack:
        for fn in leaves:
            stack.enter_context(mock.patch.object(sys.modules[fn.__module__], fn.__name__,
                                                  recorder(fn)))
        graph = tracer.trace(module)
    return fx.GraphModule(module, graph)


def _as_traceable(module: Any) -> tuple[Any, tuple[Callable[..., Any], ...]]:
    """An EarlyExitNet becomes its backbone and final classifier (the IC heads
    are side branches a min-cut split does not place), with the zoo's
    shortcut as a leaf."""
    from torch import nn

    from ..earlyexit import EarlyExitNet, _zoo

    if not isinstance(module, EarlyExitNet):
        return module, ()
    parts = OrderedDict(zip(module.block_names, module.blocks))
    parts["head"] = module.heads[-1]
    return nn.Sequential(parts), (_zoo._shortcut,)


def _leaves(owner: str, functions: Sequence[Callable[..., Any]]) -> tuple[Callable[..., Any], ...]:
    for fn in functions:
        module = sys.modules.get(getattr(fn, "__module__", None) or "")
        if getattr(module, getattr(fn, "__name__", ""), None) is not fn:
            raise v.fail(owner, "leaf_functions", "functions defined at the top level of a "
                         "module", fn)
    return tuple(functions)


def _node_kind(gm: Any, node: Any) -> str:
    if node.op == "placeholder":
        return "input"
    if node.op == "call_module":
        return type(gm.get_submodule(node.target)).__name__
    return node.target if isinstance(node.target, str) else getattr(
        node.target, "__name__", str(node.target))


def _measure(gm: Any, nodes: list[Any], x: Any, repeats: int,
             warmup: int) -> tuple[dict[Any, Any], np.ndarray]:
    """The value of every node (first run) and the median time of each."""
    import torch
    import torch.fx as fx

    index = {node: i for i, node in enumerate(nodes)}
    values: dict[Any, Any] = {}
    times = np.zeros((repeats, len(nodes)))

    class Timer(fx.Interpreter):
        row = -1

        def run_node(self, n: Any) -> Any:
            start = time.perf_counter()
            out = super().run_node(n)
            elapsed = time.perf_counter() - start
            if n in index and n.op != "placeholder":
                values.setdefault(n, out)
                if self.row >= 0:
                    times[self.row, index[n]] = elapsed
            return out

    timer = Timer(gm)
    with torch.inference_mode():
        for r in range(-warmup, repeats):
            timer.row = r
            timer.run(x)
    values[nodes[0]] = x
    return values, np.median(times, axis=0)


def _flops(gm: Any, node: Any, values: dict[Any, Any]) -> int:
    from torch.fx.node import map_arg

    from ..profiling import count_flops

    if node.op != "call_module":
        return 0
    return count_flops(gm.get_submodule(node.target), *map_arg(node.args, values.__getitem__))


def layer_graph(module: Any, example_input: Any, *, repeats: int = 20, warmup: int = 3,
                leaf_functions: Sequence[Callable[..., Any]] = ()) -> LayerGraph:
    """Trace ``module`` with ``torch.fx`` and measure each node on this host.

    ``example_input`` is one batch-1 input (one tensor). An
    :class:`~edgeperf.earlyexit.EarlyExitNet` is traced as its backbone plus
    its final classifier. ``leaf_functions`` are recorded as single nodes
    instead of traced through (for functions that branch on shapes). The
    module's train/eval mode is restored afterwards.
    """
    from ..profiling import parameter_bytes, tensor_bytes

    owner = "layer_graph"
    repeats = v.integer(owner, "repeats", repeats, low=1)
    warmup = v.integer(owner, "warmup", warmup, low=0)
    extra = _leaves(owner, leaf_functions)
    target, leaves = _as_traceable(module)
    try:
        gm = _trace(target, (*leaves, *extra))
    except Exception as err:  # fx raises many kinds; name the rule broken
        raise v.fail(owner, "module", "a torch.fx-traceable module",
                     f"{type(module).__name__} ({type(err).__name__}: {err})") from None
    nodes = [n for n in gm.graph.nodes if n.op in
             ("placeholder", "call_module", "call_function", "call_method")]
    if sum(n.op == "placeholder" for n in nodes) != 1:
        raise v.fail(owner, "module", "a module with one input", type(module).__name__)
    training = module.training
    module.eval()
    try:
        values, latency = _measure(gm, nodes, example_input, repeats, warmup)
    finally:
        module.train(training)
    index = {node: i for i, node in enumerate(nodes)}
    return LayerGraph(
        names=tuple(n.name for n in nodes), kinds=tuple(_node_kind(gm, n) for n in nodes),
        edges=tuple((index[a], index[n]) for n in nodes for a in n.all_input_nodes
                    if a in index),
        output_bytes=[tensor_bytes(values[n]) for n in nodes],
        param_bytes=[parameter_bytes(gm.get_submodule(n.target)) if n.op == "call_module"
                     else 0 for n in nodes],
        flops=[_flops(gm, n, values) for n in nodes], latency_s=latency)
