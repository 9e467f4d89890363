"""The ChainNet-style GNN, learned baselines and the analytic baseline.

Every model maps a :class:`DeploymentGraph` batch to per-chain ratios
(tput_ratio in (0, 1]: a sigmoid, or for ChainNet a product along the chain;
response_time / S_c >= 1 through 1 + softplus) and offers
``predict(graphs or systems) -> [n_chains, 2]`` (tput_ratio, response_time in
the scenario's time unit). A learned model built with ``end_to_end=True``, and
the analytic baseline, add a third column: the end-to-end response time
(links, delays and exits included), learned as the log of its ratio to the
chain's path time. ``model.end_to_end`` says which.

A learned model standardises its inputs with constants fitted on training
data (:meth:`SurrogateModel.fit_normalization`), kept as buffers so they
travel with the weights. Until :func:`edgeperf.surrogate.train` or
:func:`edgeperf.surrogate.load_model` marks it fitted (buffer ``fitted``),
``predict`` raises :class:`NotFittedError`; ``forward`` always runs, so an
untrained model can still be inspected and compared.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from .. import _validation as v
from .._torch_state import eval_mode, torch_threads
from ..exceptions import NotFittedError
from ..model import System
from ._domain import Domain
from ._graph import CHAIN_FEATURES, DEVICE_FEATURES, FRAGMENT_FEATURES, DeploymentGraph
from ._graph import collate, encode, encode_batch
from ._graph import supports as _supports

__all__ = ["SurrogateModel", "ChainNetModel", "GATModel", "GCNModel", "MLPModel",
           "AnalyticModel", "MODELS", "build_model", "as_batch"]

_SETS = {"device": len(DEVICE_FEATURES), "fragment": len(FRAGMENT_FEATURES),
         "chain": len(CHAIN_FEATURES)}


def as_batch(items: object, owner: str) -> DeploymentGraph:
    """A batch from a graph, a System, or a sequence of either."""
    if isinstance(items, (DeploymentGraph, System)):
        items = [items]
    if not isinstance(items, Sequence) or not items or not all(
            isinstance(x, (DeploymentGraph, System)) for x in items):
        raise v.fail(owner, "graphs", "a DeploymentGraph, a System or a non-empty list of them",
                     type(items).__name__)
    if all(isinstance(x, System) for x in items):
        return encode_batch(items)
    return collate([x if isinstance(x, DeploymentGraph) else encode(x) for x in items])


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers[:-1])


def _head(raw: torch.Tensor) -> torch.Tensor:
    """(tput in (0, 1], response ratio >= 1[, end-to-end ratio > 0]) from two or
    three unconstrained outputs."""
    cols = [torch.sigmoid(raw[:, 0]), 1.0 + nn.functional.softplus(raw[:, 1])]
    return torch.stack(cols + _e2e(raw[:, 2:]), 1)


def _e2e(raw: torch.Tensor) -> list[torch.Tensor]:
    """The end-to-end ratio from its log, when ``raw`` has that column. It has no
    floor: exits make a chain's mean end-to-end time shorter than its full path,
    and losses downstream favour the jobs that leave early."""
    return [torch.exp(raw[:, 0].clamp(max=30.0))] if raw.shape[1] else []


class SurrogateModel(nn.Module):
    """Shared plumbing: config, input normalisation, the fitted flag, predict."""

    name = ""

    def __init__(self, hidden: int, seed: int, end_to_end: bool) -> None:
        super().__init__()
        v.integer(type(self).__name__, "hidden", hidden, low=2)
        v.seed(type(self).__name__, "seed", seed)
        v.instance(type(self).__name__, "end_to_end", end_to_end, bool, "True or False")
        self.config: dict[str, Any] = {"hidden": hidden, "seed": seed}
        if end_to_end:  # only then, so the configs of models saved before read the same
            self.config["end_to_end"] = True
        self.training_report: dict[str, Any] | None = None
        #: what the model was trained on (set by training, saved with the model)
        self.domain: Domain | None = None
        for key, size in _SETS.items():
            self.register_buffer(f"{key}_mean", torch.zeros(size))
            self.register_buffer(f"{key}_std", torch.ones(size))
        self.register_buffer("fitted", torch.tensor(False))

    def fit_normalization(self, batch: DeploymentGraph) -> None:
        """Standardise each feature with the mean and std of ``batch`` (constants stay put)."""
        for key, x in (("device", batch.device_x), ("fragment", batch.fragment_x),
                       ("chain", batch.chain_x)):
            std = x.std(0, unbiased=False)
            getattr(self, f"{key}_mean").copy_(x.mean(0))
            getattr(self, f"{key}_std").copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    @property
    def end_to_end(self) -> bool:
        """Whether the model predicts the end-to-end response time (a third column)."""
        return bool(self.config.get("end_to_end", False))

    def normalized(self, batch: DeploymentGraph) -> tuple[torch.Tensor, ...]:
        return tuple((getattr(batch, f"{k}_x") - getattr(self, f"{k}_mean"))
                     / getattr(self, f"{k}_std") for k in _SETS)

    supports = staticmethod(_supports)  # the evaluators' domain check; predict runs it too

    def predict(self, graphs: object, *, threads: int = 1) -> np.ndarray:
        """(tput_ratio, response_time[, response_time_e2e]) per chain, in the order
        of the graphs' chains, on ``threads`` torch threads (restored after). One
        by default, as training: a second one speeds a large batch up a little on
        an idle machine, but where other processes hold the cores torch's threads
        wait on each other and a prediction takes many times longer."""
        owner = f"{type(self).__name__}.predict"
        if not bool(self.fitted):
            raise NotFittedError(f"This {type(self).__name__} is not fitted: train it with "
                                 "edgeperf.surrogate.train or load one with load_model.")
        threads = v.cores(owner, "threads", threads)
        batch = as_batch(graphs, owner)
        with eval_mode(self), torch_threads(threads), torch.inference_mode():
            ratios = self(batch).double().numpy()
        return batch.scale_back(ratios)


def _packing(batch: DeploymentGraph) -> tuple[torch.Tensor, ...]:
    """How the fragments, stored chain by chain, lie in a PackedSequence of the
    chains' paths: the packed row of each fragment, the batch size of each step,
    and the chains by decreasing length (``order``) and back (``rank``). Step t
    holds the chains longer than t, in that order, so the fragment at position
    t of the chain ranked r is row (rows of the steps before t) + r."""
    length = batch.chain_length
    order = torch.sort(length, descending=True, stable=True).indices
    rank = torch.empty_like(order).index_copy_(0, order, torch.arange(len(order)))
    sizes = (length.unsqueeze(0) > torch.arange(int(length.max())).unsqueeze(1)).sum(1)
    before = torch.cumsum(sizes, 0) - sizes
    return before[batch.fragment_position] + rank[batch.fragment_chain], sizes, order, rank


class ChainNetModel(SurrogateModel):
    """ChainNet-style message passing (Niu, Roveri, Casale, DSN 2024).

    ``iterations`` times: a GRU runs along each chain over its (fragment,
    device) states in path order, starting from the chain's state; each
    fragment is updated from the GRU's state at its hop and its device's state;
    each device attends over the fragments it hosts (softmax over that device's
    fragments). The chain's final GRU state reads out its response time.

    The throughput ratio is composed along the chain, as jobs flow: each hop
    accepts a job with a learned probability (a logit offset on the M/M/1/K
    decomposition's acceptance at its device), jobs go on with the hop's pass
    probability, and the ratio is the share that completes (leaves at an exit
    or the last hop). A chain crossing several saturated devices then gets the
    product of their refusals, which a single per-chain readout must learn.
    ``readout="chain"`` reads the throughput ratio out of the chain's state
    instead (through a sigmoid, as the baselines do): the ablation.
    """

    name = "chainnet"
    READOUTS = ("hops", "chain")

    def __init__(self, hidden: int = 48, iterations: int = 2, seed: int = 0,
                 readout: str = "hops", end_to_end: bool = False) -> None:
        # the shipped model's size: within the seeds' spread of 64 x 3 on held-out
        # generated data, at about three fifths of its forward pass
        # (docs/background/surrogate.md)
        super().__init__(hidden, seed, end_to_end)
        v.integer("ChainNetModel", "iterations", iterations, low=1)
        if readout not in self.READOUTS:
            raise v.fail("ChainNetModel", "readout", f"one of {list(self.READOUTS)}", readout)
        self.config |= {"iterations": iterations, "readout": readout}
        hops = readout == "hops"
        h = hidden
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.embed = nn.ModuleDict({k: _mlp([n, h, h]) for k, n in _SETS.items()})
            self.path = nn.GRU(2 * h, h, batch_first=True)
            self.fragment_cell = nn.GRUCell(2 * h, h)
            self.score = nn.Linear(2 * h, 1)
            self.value = nn.Linear(h, h)
            self.device_cell = nn.GRUCell(h, h)
            # the response time (and the end-to-end one), and the throughput ratio
            # unless the hops give it
            self.readout = _mlp([2 * h, h, h, (1 if hops else 2) + end_to_end])
            self.accept = _mlp([3 * h, h, 1]) if hops else None  # per hop

    def forward(self, batch: DeploymentGraph) -> torch.Tensor:
        from torch_geometric.utils import scatter, softmax

        dx, fx, cx = self.normalized(batch)
        dev, frag = self.embed["device"](dx), self.embed["fragment"](fx)
        chain0 = self.embed["chain"](cx)
        chain, where, n_dev = chain0, batch.fragment_device, dev.shape[0]
        packed_row, sizes, order, rank = _packing(batch)
        for _ in range(self.config["iterations"]):
            host = dev[where]  # each fragment's device state, fixed until the device update
            hop_in = torch.cat([frag, host], 1)
            data = hop_in.new_empty(hop_in.shape).index_copy_(0, packed_row, hop_in)
            out, last = self.path(PackedSequence(data, sizes, order, rank),
                                  chain.unsqueeze(0).contiguous())
            chain = last[0]
            frag = self.fragment_cell(torch.cat([out.data[packed_row], host], 1), frag)
            alpha = softmax(self.score(torch.cat([host, frag], 1)).squeeze(-1),
                            where, num_nodes=n_dev)
            message = scatter(alpha.unsqueeze(-1) * self.value(frag), where, 0,
                              dim_size=n_dev, reduce="sum")
            dev = self.device_cell(message, dev)
        raw = self.readout(torch.cat([chain, chain0], 1))
        if self.accept is None:
            return _head(raw)
        hop = torch.cat([frag, dev[where], chain[batch.fragment_chain]], 1)
        tput = _completed(batch, self.accept(hop).squeeze(-1))
        return torch.stack([tput, 1.0 + nn.functional.softplus(raw[:, 0])] + _e2e(raw[:, 1:]), 1)


_ACCEPT = FRAGMENT_FEATURES.index("mm1k_accept")
_EXIT = FRAGMENT_FEATURES.index("exit_probability")


def _completed(batch: DeploymentGraph, logit: torch.Tensor) -> torch.Tensor:
    """Each chain's throughput ratio from per-hop acceptance logits (offsets
    on the M/M/1/K acceptance): the share of its jobs accepted at a hop that
    then leave there (at an exit, or after the last hop)."""
    from torch_geometric.utils import scatter

    # the logit written out, as the shipped models were trained: torch.logit gives the same
    # predictions to 1e-9 but rounds differently, and training would then drift away from them
    prior = batch.fragment_x[:, _ACCEPT].clamp(1e-6, 1.0 - 1e-6)
    log_accept = nn.functional.logsigmoid(logit + prior.log() - (-prior).log1p())
    passing = (1.0 - batch.fragment_x[:, _EXIT]).clamp_min(1e-6)
    step = log_accept + passing.log()
    # summed chain by chain (one row each), not over the batch: a float32 sum over
    # a large batch would round a chain's share by the batch's size
    chain, position = batch.fragment_chain, batch.fragment_position
    rows = step.new_zeros(batch.num_chains, int(batch.chain_length.max()))
    rows[chain, position] = step
    log_reach = rows.cumsum(1)[chain, position] - step
    last = position == batch.chain_length[chain] - 1
    leave = torch.where(last, torch.ones_like(passing), 1.0 - passing)
    done = scatter(torch.exp(log_reach + log_accept) * leave, chain, 0,
                   dim_size=batch.num_chains, reduce="sum")
    return done.clamp(1e-6, 1.0)


class _ConvModel(SurrogateModel):
    """An off-the-shelf PyG convolution on the homogeneous graph of devices and
    fragments (edges: fragment <-> its device, fragment <-> next fragment);
    a chain is read out from the mean of its fragments and its own features.
    ``conv`` builds one convolution layer."""

    def __init__(self, hidden: int, layers: int, seed: int, end_to_end: bool,
                 conv: Callable[[], nn.Module]) -> None:
        super().__init__(hidden, seed, end_to_end)
        v.integer(type(self).__name__, "layers", layers, low=1)
        self.config["layers"] = layers
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.embed = nn.ModuleDict({k: _mlp([n, hidden, hidden]) for k, n in _SETS.items()})
            self.convs = nn.ModuleList(conv() for _ in range(layers))
            self.readout = _mlp([2 * hidden, hidden, hidden, 2 + end_to_end])

    def forward(self, batch: DeploymentGraph) -> torch.Tensor:
        from torch_geometric.utils import scatter

        dx, fx, cx = self.normalized(batch)
        n_dev = dx.shape[0]
        x = torch.cat([self.embed["device"](dx), self.embed["fragment"](fx)])
        frags = torch.arange(fx.shape[0]) + n_dev
        pairs = torch.cat([torch.stack([frags, batch.fragment_device]),
                           batch.next_pairs() + n_dev], 1)
        edges = torch.cat([pairs, pairs.flip(0)], 1)
        for conv in self.convs:
            x = x + nn.functional.silu(conv(x, edges))
        pooled = scatter(x[n_dev:], batch.fragment_chain, 0, dim_size=cx.shape[0], reduce="mean")
        return _head(self.readout(torch.cat([pooled, self.embed["chain"](cx)], 1)))


class GATModel(_ConvModel):
    """Baseline: ``GATConv`` layers (``heads`` heads, concatenated)."""

    name = "gat"

    def __init__(self, hidden: int = 64, layers: int = 3, heads: int = 4, seed: int = 0,
                 end_to_end: bool = False) -> None:
        if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1 \
                or not isinstance(hidden, int) or hidden % heads:
            raise v.fail("GATModel", "heads", f"an int >= 1 dividing hidden ({hidden})", heads)
        from torch_geometric.nn import GATConv

        super().__init__(hidden, layers, seed, end_to_end,
                         conv=lambda: GATConv(hidden, hidden // heads, heads=heads))
        self.config["heads"] = heads


class GCNModel(_ConvModel):
    """Baseline: ``GCNConv`` layers."""

    name = "gcn"

    def __init__(self, hidden: int = 64, layers: int = 3, seed: int = 0,
                 end_to_end: bool = False) -> None:
        from torch_geometric.nn import GCNConv

        super().__init__(hidden, layers, seed, end_to_end, conv=lambda: GCNConv(hidden, hidden))


class MLPModel(SurrogateModel):
    """Baseline without message passing: per chain, its features with the mean
    and max of its fragments' and their devices' features."""

    name = "mlp"

    def __init__(self, hidden: int = 64, seed: int = 0, end_to_end: bool = False) -> None:
        super().__init__(hidden, seed, end_to_end)
        size = _SETS["chain"] + 2 * (_SETS["fragment"] + _SETS["device"])
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = _mlp([size, hidden, hidden, hidden, 2 + end_to_end])

    def forward(self, batch: DeploymentGraph) -> torch.Tensor:
        from torch_geometric.utils import scatter

        dx, fx, cx = self.normalized(batch)
        hop = torch.cat([fx, dx[batch.fragment_device]], 1)
        pooled = [scatter(hop, batch.fragment_chain, 0, dim_size=cx.shape[0], reduce=r)
                  for r in ("mean", "max")]
        return _head(self.net(torch.cat([cx, *pooled], 1)))


class AnalyticModel:
    """Baseline without learning: a decomposition of the multi-class network.

    Each station (device or non-ideal link) is solved as an exact M/G/1/K
    (:func:`edgeperf.queueing.mg1k`) fed by the sum of the Poisson flows of the
    chains that visit it, each thinned by the losses and exits upstream on its
    path; its service law is the mixture of the chains' laws weighted by their
    flows. FCFS with Poisson arrivals makes the loss and the mean wait the same
    for every class, so a chain's response at the station is that wait plus its
    own mean service. Losses downstream change the flows that other chains
    meet, so the thinning is iterated to a fixed point. Exact for one station;
    an approximation for more (flows after a finite queue are not Poisson). The
    response time is the sum of the chain's responses at its devices, the
    definition of ChainNet's label (link stations and delays left out); the
    end-to-end one (third column) is the mean time of the jobs that complete,
    each leaving at an exit or the end after the waits, services and delays of
    the stations it crossed.
    """

    name = "analytic"
    end_to_end = True

    def __init__(self, tolerance: float = 1e-9, max_iterations: int = 100) -> None:
        self.tolerance = v.positive("AnalyticModel", "tolerance", tolerance)
        self.max_iterations = v.integer("AnalyticModel", "max_iterations", max_iterations, low=1)
        self.config = {"tolerance": tolerance, "max_iterations": max_iterations}

    supports = staticmethod(_supports)  # the learned models' domain, so they compare alike

    def predict(self, graphs: object) -> np.ndarray:
        """(tput_ratio, response_time, response_time_e2e) per chain, solving each
        encoded system."""
        batch = as_batch(graphs, "AnalyticModel.predict")  # encoding checked the domain
        return np.concatenate([self._solve(s) for s in batch.systems])

    def solve(self, system: System) -> np.ndarray:
        """(tput_ratio, response_time, response_time_e2e) per chain of ``system``."""
        _supports(system)
        return self._solve(system)

    def _solve(self, system: System) -> np.ndarray:
        from ..queueing import stations_by_chain

        stations = stations_by_chain(system)
        routes = [(c.arrival_rate, stations[c.name]) for c in system.chains]
        solved: dict[str, tuple[float, float]] = {}  # station -> (loss, mean wait)
        for _ in range(self.max_iterations):
            new = self._stations(routes, solved)
            change = max((abs(new[k][0] - solved.get(k, (0.0, 0.0))[0]) for k in new), default=0)
            solved = new
            if change < self.tolerance:
                break
        devices = {d.name for d in system.devices}
        return np.array([self._chain(rate, route, solved, devices) for rate, route in routes])

    @staticmethod
    def _stations(routes: list, solved: dict[str, tuple[float, float]]
                  ) -> dict[str, tuple[float, float]]:
        from ..dists import Mixture
        from ..queueing import mg1k

        flows: dict[str, list] = {}
        for rate, route in routes:
            for station in route:
                flows.setdefault(station.name, []).append((rate, station))
                rate *= (1.0 - solved.get(station.name, (0.0, 0.0))[0]) * \
                    station.pass_probability
        out = {}
        for name, items in flows.items():
            total = sum(r for r, _ in items)
            if total <= 0.0:
                out[name] = (0.0, 0.0)
                continue
            laws = [s.law for r, s in items if r > 0.0]
            weights = [r / total for r, _ in items if r > 0.0]
            law = laws[0] if len(laws) == 1 else Mixture(tuple(laws), tuple(weights))
            m = mg1k(total, law, items[0][1].capacity)
            out[name] = (m.loss_probability, m.mean_waiting_time)
        return out

    @staticmethod
    def _chain(rate: float, route: Sequence, solved: dict[str, tuple[float, float]],
               devices: set[str]) -> tuple[float, float, float]:
        """(completed / offered, sum of the responses at its devices, mean time of
        the completed jobs) of one chain: ChainNet's label leaves link stations and
        link delays out, the end-to-end time does not."""
        offered, done, response = rate, 0.0, 0.0
        elapsed = time_done = 0.0  # time to reach the station; completed jobs' total time
        for n, station in enumerate(route):
            loss, wait = solved[station.name]
            accepted = offered * (1.0 - loss)
            leaving = 1.0 - station.pass_probability if n + 1 < len(route) else 1.0
            done += accepted * leaving
            for out in station.exits:
                time_done += accepted * out.probability * (elapsed + wait + out.service.mean)
            elapsed += wait + station.service.mean + station.delay_s
            if n + 1 == len(route):
                time_done += accepted * station.pass_probability * elapsed
            if station.name in devices:
                response += wait + station.law.mean
            offered = accepted * station.pass_probability
        return done / rate, response, time_done / done if done > 0 else math.inf


MODELS: dict[str, type] = {m.name: m for m in (ChainNetModel, GATModel, GCNModel, MLPModel,
                                                AnalyticModel)}


def build_model(name: str, **config: Any) -> SurrogateModel | AnalyticModel:
    """A model by name (``chainnet``, ``gat``, ``gcn``, ``mlp``, ``analytic``) and its config."""
    if not isinstance(name, str) or name not in MODELS:
        raise v.fail("build_model", "name", f"one of {sorted(MODELS)}", name)
    try:
        return MODELS[name](**config)
    except TypeError as err:
        raise v.fail("build_model", "config", f"keyword arguments of {MODELS[name].__name__} "
                     f"({err})", config) from None
