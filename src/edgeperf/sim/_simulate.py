"""Simulate a System: independent replications, 95% half-widths, either engine.

``engine="auto"`` runs the compiled kernel when it can express the system (one
chain of single-server stations, exits fixed up front) and the event engine
otherwise. Replication r draws from the r-th child of ``SeedSequence(seed)``,
so the same seed gives the same numbers bit for bit, whatever else runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import stats

from .. import _validation as v
from ..dists import ServiceLaw
from ..exceptions import UnsupportedModelError
from ..model import ErlangArrivals, Metrics, PoissonArrivals, System
from ._engine import run_events
from ._exits import ExitPolicy
from ._kernel import kernel_supports, run_kernel
from ._network import Hop, Network, Route, SimStation, network_of
from ._plan import plan_run
from ._policy import OnlinePolicy
from ._record import RunRecord, chain_metrics, write_trace

__all__ = ["simulate", "simulate_chains", "simulate_station", "SimulationEvaluator", "Engine"]

Engine = Literal["auto", "kernel", "event"]
_ENGINES = ("auto", "kernel", "event")

_SCALARS = ("arrival_rate", "throughput", "loss_probability", "mean_response_time",
            "p50_response_time", "p95_response_time", "p99_response_time", "accuracy")
_STATION_FIELDS = ("arrival_rate", "loss_probability", "throughput", "utilization", "mean_number",
                   "mean_response_time", "mean_waiting_time")


def _per_chain(value: object, names: list[str], what: str, kind: type | tuple) -> list:
    """A value for every chain: one object for a single chain, or a mapping by name."""
    if value is None:
        return [None] * len(names)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise v.fail("simulate", what, f"keys naming chains {names}", unknown)
        out = [value.get(n) for n in names]
    elif len(names) == 1:
        out = [value]
    else:
        raise v.fail("simulate", what, "a mapping from chain name for a system with several chains",
                     type(value).__name__)
    for x in out:
        if x is not None and not isinstance(x, kind):
            raise v.fail("simulate", what, f"a {getattr(kind, '__name__', 'policy')} per chain", x)
    return out


def _replications(seed: int, reps: int, progress: bool):
    """The replications' seeds, with a progress bar on stderr when asked."""
    children = np.random.SeedSequence(seed).spawn(reps)
    if not progress:
        return enumerate(children)
    from rich.console import Console
    from rich.progress import track
    return enumerate(track(children, description="replications", transient=True,
                           console=Console(stderr=True)))


def _run_options(owner: str, jobs: object, replications: object, seed: object, warmup: object,
                 engine: object) -> tuple[int, int, int, float, str]:
    """The run options checked: jobs, replications, seed, warmup share, engine."""
    checked = (v.integer(owner, "jobs", jobs, low=100),
               v.integer(owner, "replications", replications, low=1),
               v.integer(owner, "seed", seed, low=0),
               v.real(owner, "warmup", warmup, low=0.0, high=0.9))
    if engine not in _ENGINES:
        raise v.fail(owner, "engine", f"one of {list(_ENGINES)}", engine)
    return (*checked, str(engine))


def _run(network: Network, *, jobs: int, replications: int, seed: int, warmup: float,
         engine: str, exits: list, policies: list, trace: str | Path | None,
         progress: bool = False) -> list[Metrics]:
    n, reps, seed, share, engine = _run_options("simulate", jobs, replications, seed, warmup,
                                                engine)
    online = {r: p for r, p in enumerate(policies) if p is not None}
    why_not = kernel_supports(network) or ("an online policy decides exits" if online else None)
    if engine == "kernel" and why_not:
        raise UnsupportedModelError(f"The kernel cannot simulate this system: {why_not}; "
                                    "use engine='event' (or 'auto').")
    use_kernel = engine == "kernel" or (engine == "auto" and why_not is None)
    runs: list[list[Metrics]] = []
    for r, child in _replications(seed, reps, progress):
        rng = np.random.default_rng(child)
        plan = plan_run(network, rng, n, share, exits)
        if use_kernel:
            record: RunRecord = run_kernel(network, plan, rng)
        else:
            # a policy sees the confidence row its job drew from the exit table
            confidences = {r: exits[r].table.confidence[plan.routes[r].row] for r in online
                           if exits[r] is not None and exits[r].table is not None}
            record = run_events(network, plan, rng, policies=online, confidences=confidences)
        if trace is not None and r == 0:
            write_trace(record, trace)
        runs.append([chain_metrics(record, i) for i in range(len(network.routes))])
    return [_combine([run[i] for run in runs]) for i in range(len(network.routes))]


def _mean_hw(values: list, t: float) -> tuple[float | None, float | None]:
    if any(x is None for x in values):
        return None, None
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x[0]), None
    return float(x.mean()), float(t * x.std(ddof=1) / np.sqrt(len(x)))


def _combine(runs: list[Metrics]) -> Metrics:
    """Mean over replications and the 95% t half-width of every metric: by name for
    end-to-end ones, ``exit_distribution[exit]`` and ``<field>[station]`` otherwise.
    One replication gives no half-widths."""
    reps = len(runs)
    t = float(stats.t.ppf(0.975, reps - 1)) if reps > 1 else float("nan")
    half: dict[str, float] = {}

    def mean(key: str, values: list) -> float | None:
        m, hw = _mean_hw(values, t)
        if hw is not None:
            half[key] = hw
        return m

    summary = {name: mean(name, [getattr(r, name) for r in runs]) for name in _SCALARS}
    exits = {e: mean(f"exit_distribution[{e}]", [r.exit_distribution[e] for r in runs])
             for e in runs[0].exit_distribution}
    stations = []
    for k, first in enumerate(runs[0].stations):
        fields = {f: mean(f"{f}[{first.name}]", [getattr(r.stations[k], f) for r in runs])
                  for f in _STATION_FIELDS}
        stations.append(replace(first, method=runs[0].method + (f" x{reps}" if reps > 1 else ""),
                                **fields))
    return Metrics(kind="estimate", method=runs[0].method + (f" x{reps}" if reps > 1 else ""),
                   exit_distribution=exits, stations=tuple(stations), half_widths=half,
                   **summary)  # type: ignore[arg-type]


def simulate_chains(system: System, *, jobs: int = 200_000, replications: int = 5, seed: int = 0,
                    warmup: float = 0.1, engine: Engine = "auto",
                    exits: ExitPolicy | Mapping[str, ExitPolicy] | None = None,
                    policies: OnlinePolicy | Mapping[str, OnlinePolicy] | None = None,
                    trace: str | Path | None = None, progress: bool = False) -> dict[str, Metrics]:
    """Metrics of every chain of ``system``, by chain name.

    ``jobs`` arrivals per replication (over all chains), the first ``warmup``
    share of the simulated time discarded. ``exits`` fixes exits up front
    (default: the scenario's probabilities); ``policies`` decide them online
    (event engine). ``trace`` writes the first replication's jobs as CSV;
    ``progress`` shows a bar over the replications on stderr.
    Station rows of a chain describe that chain's jobs at each station.
    """
    v.instance("simulate", "system", system, System, "a System")
    if trace is not None:  # before the simulation, not after
        trace = v.output_file("simulate", "trace", trace)
    network = network_of(system)
    names = [c.name for c in system.chains]
    exit_list = _per_chain(exits, names, "exits", ExitPolicy.__args__)
    policy_list = _per_chain(policies, names, "policies", OnlinePolicy)
    metrics = _run(network, jobs=jobs, replications=replications, seed=seed, warmup=warmup,
                   engine=engine, exits=exit_list, policies=policy_list, trace=trace,
                   progress=progress)
    return dict(zip(names, metrics))


def simulate(system: System, **options: object) -> Metrics:
    """Metrics of a single-chain system; options as :func:`simulate_chains`."""
    if isinstance(system, System) and len(system.chains) != 1:
        raise v.fail("simulate", "system", "a single chain (use simulate_chains for several)",
                     [c.name for c in system.chains])
    return next(iter(simulate_chains(system, **options).values()))  # type: ignore[arg-type]


def simulate_station(arrival_rate: float, law: ServiceLaw, capacity: int, *,
                     jobs: int = 200_000, replications: int = 5, seed: int = 0,
                     warmup: float = 0.1, engine: Engine = "auto",
                     name: str = "station", phases: int = 1) -> Metrics:
    """One M/G/1/K station with Poisson arrivals, or E_k/G/1/K with Erlang-k gaps
    for ``phases`` = k > 1: its row is ``.stations[0]``, its half-widths
    ``half_widths["<field>[name]"]``."""
    k = v.integer("simulate_station", "phases", phases, low=1)
    arrival = PoissonArrivals(rate=arrival_rate) if k == 1 else \
        ErlangArrivals(rate=arrival_rate, phases=k)
    if not isinstance(law, ServiceLaw):
        raise v.fail("simulate_station", "law", "a service law from edgeperf.dists", law)
    cap = v.integer("simulate_station", "capacity", capacity, low=1)
    v.name_string("simulate_station", "name", name)
    network = Network((SimStation(name, 1, cap),),
                      (Route(chain="station", arrival=arrival, hops=(Hop(0, 0, 0, (law,)),),
                             exit_names=("final",), exit_blocks=(0,), exit_probabilities=()),))
    return _run(network, jobs=jobs, replications=replications, seed=seed, warmup=warmup,
                engine=engine, exits=[None], policies=[None], trace=None)[0]


class SimulationEvaluator:
    """The simulator as an evaluator: ``evaluate(system) -> Metrics`` with half-widths."""

    def __init__(self, *, jobs: int = 200_000, replications: int = 5, seed: int = 0,
                 warmup: float = 0.1, engine: Engine = "auto"):
        checked = _run_options("SimulationEvaluator", jobs, replications, seed, warmup, engine)
        self.options = dict(zip(("jobs", "replications", "seed", "warmup", "engine"), checked))

    def supports(self, system: System) -> None:
        if len(system.chains) != 1:
            raise UnsupportedModelError("SimulationEvaluator.evaluate returns one chain's Metrics; "
                                        f"use simulate_chains for {len(system.chains)} chains.")

    def evaluate(self, system: System) -> Metrics:
        self.supports(system)
        return simulate(system, **self.options)
