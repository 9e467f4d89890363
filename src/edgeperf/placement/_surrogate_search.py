"""Joint placement of several chains sharing devices, searched with the learned twin
(:func:`surrogate_search`) or with short simulations (:func:`simulation_search`:
slower, but it takes what the twin does not model, bursty arrivals and
multi-server devices).

Every chain's blocks are placed as :mod:`._costs` defines for one chain (one
contiguous fragment per device, consecutive fragments on linked devices, the
first on or next to the chain's source), and the memory of each device holds
the weights plus the largest activation of *every* chain's blocks on it,
summed over the chains. The objective is the predicted worst-chain loss
(``worst_loss``: max over chains of 1 - throughput ratio) or the mean loss
(``mean_loss``); losses are compared in steps of ``loss_tolerance`` and ties
go to the least mean predicted response time, so that at light load, where
every loss is noise, the fastest placement wins. That is the end-to-end
response time when the scorer predicts it (a third column: the simulator and
a twin trained with ``end_to_end``), else ChainNet's response at the devices,
which leaves link time out.

Search: **batched steepest-descent local search with restarts**. A climb
generates every neighbour of the current joint placement (the moves of
:func:`._loss_aware._moves` applied to one chain at a time), drops invalid and
already scored ones, scores the rest with one ``predict`` call per batch (the
GNN's cost is per call as much as per graph) and moves to the best neighbour
while it improves. The first climb starts from the scenario's own placement
(when valid); later ones alternate between a random joint placement and a
kick of the best so far (``_KICK`` random valid moves), until the time budget
is spent or ``_IDLE`` restarts in a row meet no placement not seen before (a
small space is exhausted long before the budget). Batches shrink near the
deadline from the measured cost per candidate, so the budget holds even for a
slow scorer (the simulator).

:class:`PlacementDecision` describes one chain; the decision returned is that
of the requested chain (default: the first) with the whole system placed in
``.system`` and every chain's placement in ``details["placements"]``.
"""

from __future__ import annotations

import math
import os
import sysconfig
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import _validation as v
from ..exceptions import InfeasibleError
from ..model import System
from ._costs import Costs
from ._decision import PlacementDecision
from ._loss_aware import _moves, _random_placement

__all__ = ["surrogate_search", "simulation_search", "compare_search", "default_model",
           "OBJECTIVES", "DEFAULT_MODELS"]

OBJECTIVES = ("worst_loss", "mean_loss")


def _shipped_folder(source: Path = Path(__file__)) -> Path:
    """Where the shipped models are: the repository's ``models/surrogate`` for a
    checkout or an editable install, else the copy a wheel installs under
    ``<prefix>/share/edgeperf`` (pyproject's data-files)."""
    checkout = source.resolve().parents[3] / "models" / "surrogate"
    if checkout.is_dir():
        return checkout
    return Path(sysconfig.get_path("data")) / "share" / "edgeperf" / "models" / "surrogate"


#: the shipped ChainNet-style models: trained on ChainNet's regime, and on it
#: plus ours (early exits, links, variable service)
DEFAULT_MODELS = {regime: _shipped_folder() / file
                  for regime, file in (("chainnet", "chainnet.safetensors"),
                                       ("edgeperf", "chainnet_edgeperf.safetensors"))}
_BATCH = 256  # most candidates per predict call
_FIRST_BATCH = 8  # until the cost per candidate is measured
_TRIES = 50  # random draws per restart before it is skipped
_KICK = 3  # random moves of a kick
_IDLE = 200  # restarts in a row that meet no new placement: the space is spent, stop early

Joint = tuple[tuple[int, ...], ...]  # one assignment per chain, in the system's chain order


class Scorer(Protocol):
    def predict(self, systems: Sequence[System]) -> np.ndarray: ...


class _Space:
    """Joint placements of all chains: validity (shared memory included) and systems."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.costs = [Costs.of(system, c.name) for c in system.chains]
        for costs in self.costs:
            costs.check_fits()
        self.limits = self.costs[0].memory_limits()
        self._chain_ok: dict[tuple[int, tuple[int, ...]], bool] = {}

    @property
    def n_devices(self) -> int:
        return self.costs[0].n_devices

    def initial(self) -> Joint:
        return tuple(tuple(int(d) for d in c.assignment_of(c.system.chain(c.chain).placement))
                     for c in self.costs)

    def violation(self, joint: Joint) -> str | None:
        """The first rule ``joint`` breaks, in words, or None when valid."""
        for c, a in enumerate(joint):
            if not self._ok(c, a):
                costs = self.costs[c]
                return f"chain {costs.chain!r}: {costs.violation(np.asarray(a))}"
        need = self.memory(joint)
        over = np.flatnonzero(need > self.limits)
        if len(over):
            d = self.costs[0].devices[int(over[0])]
            return (f"memory of {d.name}: {int(need[over[0]])} bytes needed by all chains "
                    f"> {d.memory_bytes}")
        return None

    def _ok(self, c: int, a: tuple[int, ...]) -> bool:
        """Chain c's own rules, memoised (the joint memory is checked apart)."""
        key = (c, a)
        if key not in self._chain_ok:
            self._chain_ok[key] = self.costs[c].violation(np.asarray(a)) is None
        return self._chain_ok[key]

    def memory(self, joint: Joint) -> np.ndarray:
        return sum(c.memory_bytes(np.asarray(a)) for c, a in zip(self.costs, joint))

    def placed(self, joint: Joint) -> System:
        """The system with every chain placed (one validation, not one per chain)."""
        chains = [replace(chain, placement=costs.placement_of(a))
                  for chain, costs, a in zip(self.system.chains, self.costs, joint)]
        return System(devices=self.system.devices, links=self.system.links, chains=chains)

    def neighbours(self, joint: Joint) -> Iterator[Joint]:
        for c, a in enumerate(joint):
            for move in _moves(a, self.n_devices):
                yield joint[:c] + (move,) + joint[c + 1:]

    def random(self, rng: np.random.Generator) -> Joint | None:
        for _ in range(_TRIES):
            joint = tuple(_random_placement(c, rng) for c in self.costs)
            if self.violation(joint) is None:
                return joint
        return None

    def kick(self, joint: Joint, rng: np.random.Generator) -> Joint:
        """``joint`` after up to ``_KICK`` random valid moves."""
        for _ in range(_KICK):
            options = [n for n in self.neighbours(joint) if self.violation(n) is None]
            if options:
                joint = options[int(rng.integers(len(options)))]
        return joint


class _Search:
    """Scores memoised by joint placement; the climbs; the time budget."""

    def __init__(self, space: _Space, scorer: Scorer, objective: str, tolerance: float,
                 budget_s: float) -> None:
        self.space, self.scorer = space, scorer
        self.objective, self.tolerance = objective, tolerance
        self.deadline = time.perf_counter() + budget_s
        # per chain (tput, response[, end-to-end response]); None: invalid
        self.seen: dict[Joint, np.ndarray | None] = {}
        self.per_candidate_s = 0.0
        self.climbs = 0

    def key(self, joint: Joint) -> tuple[float, float]:
        """Smaller is better: (loss in steps of the tolerance, mean response time:
        the end-to-end one when the scorer gives it)."""
        pred = self.seen[joint]
        assert pred is not None
        losses = 1.0 - np.clip(pred[:, 0], 0.0, 1.0)
        loss = float(losses.max() if self.objective == "worst_loss" else losses.mean())
        step = math.floor(loss / self.tolerance) if self.tolerance > 0 else loss
        return step, float(np.mean(pred[:, -1]))

    @property
    def evaluated(self) -> int:
        return sum(p is not None for p in self.seen.values())

    def left_s(self) -> float:
        return self.deadline - time.perf_counter()

    def score(self, joints: Sequence[Joint]) -> list[Joint]:
        """Score the new valid ``joints`` in batches while time lasts; the scored valid ones."""
        new = []
        for j in dict.fromkeys(joints):
            if j not in self.seen and self.space.violation(j) is not None:
                self.seen[j] = None
            elif j not in self.seen:
                new.append(j)
        while new and self.left_s() > 0:
            room = _FIRST_BATCH if self.per_candidate_s == 0 else \
                int(0.8 * self.left_s() / self.per_candidate_s)
            size = max(1, min(room, _BATCH))
            self._predict(new[:size])
            new = new[size:]
        return [j for j in joints if self.seen.get(j) is not None]

    def _predict(self, batch: list[Joint]) -> None:
        start = time.perf_counter()
        rows = np.asarray(self.scorer.predict([self.space.placed(j) for j in batch]), float)
        # an infinite response time ranks last (the simulator's, when no job completes);
        # NaN (broken weights) or an infinite ratio cannot be ranked at all
        if np.isnan(rows).any() or not np.isfinite(rows[:, 0]).all():
            raise v.fail("surrogate_search", "model", "a model that predicts a finite "
                         "throughput ratio and a response time that is not NaN for this system "
                         "(it predicted NaN or an infinite ratio for a placement)",
                         getattr(self.scorer, "name", type(self.scorer).__name__))
        n = len(self.space.costs)
        for k, j in enumerate(batch):
            self.seen[j] = rows[k * n:(k + 1) * n]
        self.per_candidate_s = (time.perf_counter() - start) / len(batch)

    def climb(self, start: Joint) -> None:
        """Steepest descent from ``start`` until no neighbour improves or time is up."""
        self.climbs += 1
        current = start
        while self.left_s() > 0:
            scored = self.score(list(self.space.neighbours(current)))
            best = min(scored, key=self.key, default=None)
            if best is None or self.key(best) >= self.key(current):
                return
            current = best

    def best(self) -> Joint | None:
        return min((j for j, p in self.seen.items() if p is not None), key=self.key,
                   default=None)

    def run(self, rng: np.random.Generator) -> Joint:
        """Climbs from the scenario's placement, then alternating random and kicked
        restarts, until the budget is spent or ``_IDLE`` restarts in a row meet no
        placement not seen before (a small space is then exhausted)."""
        starts = self.score([self.space.initial()])
        idle = 0
        while self.left_s() > 0 and idle < _IDLE:
            known = len(self.seen)
            if starts:
                self.climb(starts[0])
            best = self.best()
            fresh = self.space.random(rng) if self.climbs % 2 or best is None else \
                self.space.kick(best, rng)
            starts = self.score([fresh]) if fresh is not None else []
            idle = idle + 1 if len(self.seen) == known else 0
        best = self.best()
        if best is None:
            raise InfeasibleError("No valid joint placement of the chains "
                                  f"{[c.chain for c in self.space.costs]} was found within the "
                                  "time budget (memory shared by all chains, links, one "
                                  "fragment per device and chain).")
        return best


def _check(owner: str, system: object, objective: object, time_budget_s: object,
           loss_tolerance: object, seed: object, chain: object, confirm: object, jobs: object,
           replications: object) -> None:
    """Every option, before the search: a bad confirmation would fail only after it."""
    v.instance(owner, "system", system, System, "a System")
    v.instance(owner, "confirm", confirm, bool, "True or False")
    if confirm:
        v.integer(owner, "jobs", jobs, low=100)  # simulate's own bounds
        v.integer(owner, "replications", replications, low=1)
    if objective not in OBJECTIVES:
        raise v.fail(owner, "objective", f"one of {list(OBJECTIVES)}", objective)
    v.positive(owner, "time_budget_s", time_budget_s)
    v.non_negative(owner, "loss_tolerance", loss_tolerance)
    v.integer(owner, "seed", seed, low=0)
    names = [c.name for c in system.chains]
    if chain is not None and chain not in names:
        raise v.fail(owner, "chain", f"one of {names}", chain)


def default_model(system: System) -> Path:
    """The shipped model for ``system``: the one trained on our regime too when a
    chain has what ChainNet's data lacks (an early exit, a non-ideal link, service
    that is not deterministic), else the one trained on ChainNet's regime."""
    from ..queueing import stations_by_chain

    v.instance("default_model", "system", system, System, "a System")
    devices = {d.name for d in system.devices}
    ours = any(s.exits or s.name not in devices or s.law.scv > 1e-12
               for route in stations_by_chain(system).values() for s in route)
    return DEFAULT_MODELS["edgeperf" if ours else "chainnet"]


def _model(owner: str, model: object, system: System) -> Scorer:
    """``model`` itself, the model saved at a path, or the default for ``system``."""
    if model is None:
        model = default_model(system)
        if not model.is_file():
            raise v.fail(owner, "model", "a surrogate or the path of a saved one: the default "
                         "model file is missing (train it as docs/background/surrogate.md "
                         "says, or pass model=)", str(model))
    if isinstance(model, (str, os.PathLike)):
        from ..surrogate import load_model
        return load_model(model)
    if not callable(getattr(model, "predict", None)):
        raise v.fail(owner, "model", "an object with predict(systems), a path or None",
                     type(model).__name__)
    return model  # type: ignore[return-value]


def surrogate_search(system: System, *, chain: str | None = None, model: object = None,
                     objective: str = "worst_loss", time_budget_s: float = 10.0, seed: int = 0,
                     confirm: bool = True, jobs: int = 30_000, replications: int = 5,
                     loss_tolerance: float = 1e-3) -> PlacementDecision:
    """The joint placement of all chains the learned twin predicts best (module docstring).

    ``model``: a surrogate (anything with ``predict(systems) -> [chains, 2]``,
    or ``[chains, 3]`` with the end-to-end response time),
    the path of a saved one, or None for :func:`default_model`. The search stops
    after ``time_budget_s``; with ``confirm`` the winner is simulated (event
    engine, ``jobs`` x ``replications``, ``seed``) and ``details`` reports the
    predicted and the simulated loss of every chain. The shipped models take
    Poisson arrivals and single-server devices only
    (:func:`edgeperf.surrogate.supports`); :func:`simulation_search` takes any.
    A model that keeps its training domain (:class:`edgeperf.surrogate.Domain`)
    also lists in ``details["outside_training"]`` what of the winner lies
    outside it: there the twin extrapolates, and the simulation is the figure
    to trust.
    """
    owner = "surrogate_search"
    _check(owner, system, objective, time_budget_s, loss_tolerance, seed, chain, confirm, jobs,
           replications)
    return _searched(system, _model(owner, model, system), "surrogate", chain=chain,
                     objective=objective, time_budget_s=time_budget_s, seed=seed,
                     tolerance=loss_tolerance, confirm=(jobs, replications) if confirm else None)


def simulation_search(system: System, *, chain: str | None = None, objective: str = "worst_loss",
                      time_budget_s: float = 30.0, seed: int = 0, scoring_jobs: int = 2_000,
                      confirm: bool = True, jobs: int = 30_000, replications: int = 5,
                      loss_tolerance: float = 1e-3) -> PlacementDecision:
    """The same search as :func:`surrogate_search`, each candidate scored by one
    event-engine run of ``scoring_jobs`` arrivals (the same ``seed`` for every
    candidate: common random numbers make their differences less noisy). Any
    system the simulator takes (bursty arrivals, several servers); far fewer
    candidates per second than the twin scores, hence the longer default budget.
    """
    owner = "simulation_search"
    _check(owner, system, objective, time_budget_s, loss_tolerance, seed, chain, confirm, jobs,
           replications)
    v.integer(owner, "scoring_jobs", scoring_jobs, low=1)
    return _searched(system, _SimulationScorer(scoring_jobs, seed), "simulation", chain=chain,
                     objective=objective, time_budget_s=time_budget_s, seed=seed,
                     tolerance=loss_tolerance, confirm=(jobs, replications) if confirm else None)


def _searched(system: System, scorer: Scorer, method: str, *, chain: str | None,
              objective: str, time_budget_s: float, seed: int, tolerance: float,
              confirm: tuple[int, int] | None) -> PlacementDecision:
    """Search with ``scorer``, then the decision with predicted and simulated losses."""
    start = time.perf_counter()
    space = _Space(system)
    search = _Search(space, scorer, objective, tolerance, time_budget_s)
    joint = search.run(np.random.default_rng(seed))
    searched_s = time.perf_counter() - start
    placed = space.placed(joint)
    pred = search.seen[joint]
    k = 0 if chain is None else [c.chain for c in space.costs].index(chain)
    details: dict[str, Any] = {
        "search": f"batched steepest descent, {search.climbs} climbs (scenario placement, "
                  "then random and kicked restarts by turns)",
        "evaluated": search.evaluated, "search_time_s": searched_s,
        "placements": {c.chain: c.placement_of(a).as_dict() for c, a in zip(space.costs, joint)},
        "predicted": {c.chain: {"loss": 1.0 - float(np.clip(p[0], 0.0, 1.0)),
                                "response_time": float(p[1]),
                                **({"response_time_e2e": float(p[2])} if len(p) > 2 else {})}
                      for c, p in zip(space.costs, pred)}}
    domain = getattr(scorer, "domain", None)
    if domain is not None:  # the winner beyond what the twin learned: trust the simulation
        from ..surrogate import encode
        details["outside_training"] = list(domain.gaps(encode(placed))[0])
    if confirm is not None:
        details["simulated"] = _simulated(placed, *confirm, seed)
    losses = 1.0 - np.clip(pred[:, 0], 0.0, 1.0)
    costs = space.costs[k]
    return PlacementDecision(
        method=method, system=placed, chain=costs.chain, assignment=joint[k],
        objective=objective,
        value=float(losses.max() if objective == "worst_loss" else losses.mean()),
        latency_s=costs.latency_s(joint[k]), solve_time_s=time.perf_counter() - start,
        details=details)


def _simulated(system: System, jobs: int, replications: int, seed: int) -> dict[str, dict]:
    """Per chain: simulated loss, its 95 % half-width and mean response time."""
    from ..sim import simulate_chains

    metrics = simulate_chains(system, engine="event", jobs=jobs, replications=replications,
                              seed=seed)
    return {name: {"loss": m.loss_probability,
                   "loss_half_width": m.half_widths.get("loss_probability"),
                   "mean_response_time": m.mean_response_time} for name, m in metrics.items()}


class _SimulationScorer:
    """The simulator as a scorer: short event-engine runs, the same seed for every
    candidate (common random numbers make differences less noisy). Per chain:
    throughput ratio, the sum of its mean responses at its devices (the twin's
    label) and its end-to-end response time; a time nothing measured (no job
    completed, or none reached a device) is infinite and ranks last."""

    def __init__(self, jobs: int, seed: int) -> None:
        self.jobs, self.seed = jobs, seed

    def predict(self, systems: Sequence[System]) -> np.ndarray:
        from ..sim import simulate_chains

        rows = []
        for system in systems:
            devices = {d.name for d in system.devices}
            for m in simulate_chains(system, engine="event", jobs=self.jobs, replications=1,
                                     seed=self.seed).values():
                times = [s.mean_response_time for s in m.stations if s.name in devices]
                at_devices = math.inf if None in times else math.fsum(times)  # type: ignore
                rows.append((1.0 - m.loss_probability, at_devices,
                             math.inf if m.mean_response_time is None else m.mean_response_time))
        return np.array(rows)


def compare_search(system: System, *, time_budget_s: float = 10.0, seed: int = 0,
                   model: object = None, objective: str = "worst_loss", jobs: int = 30_000,
                   replications: int = 5, scoring_jobs: int = 2_000) -> dict[str, dict]:
    """Surrogate-, simulation- and analytic-driven searches under one time budget,
    and the ILP latency placement of each chain on its own, all confirmed by one
    simulation (``jobs`` x ``replications``, ``seed``). Per method: the worst
    chain's simulated loss and half-width, candidates evaluated, search time,
    placements and (the ILP only can break it) the shared-memory violation.
    Five replications, as in :func:`surrogate_search`: with two, the 95%
    half-width takes Student's t at one degree of freedom (12.7) and hides
    differences between the methods' winners."""
    owner = "compare_search"
    _check(owner, system, objective, time_budget_s, 0.0, seed, None, True, jobs, replications)
    v.integer(owner, "scoring_jobs", scoring_jobs, low=1)
    from ..surrogate import AnalyticModel

    scorers = {"surrogate": _model(owner, model, system),
               "simulation": _SimulationScorer(scoring_jobs, seed),
               "analytic": AnalyticModel()}
    out = {}
    for method, scorer in scorers.items():
        decision = _searched(system, scorer, method, chain=None, objective=objective,
                             time_budget_s=time_budget_s, seed=seed, tolerance=1e-3,
                             confirm=(jobs, replications))
        out[method] = _summary(decision.details["simulated"], decision.details["evaluated"],
                               decision.details["search_time_s"],
                               decision.details["placements"], None)
    out["ilp"] = _ilp_each(system, jobs, replications, seed)
    return out


def _ilp_each(system: System, jobs: int, replications: int, seed: int) -> dict[str, Any]:
    """Each chain's ILP latency optimum, placed one chain after another; the
    ILP sees one chain, so the memory the chains share may overflow (reported)."""
    from ._ilp import ilp

    start, placed = time.perf_counter(), system
    try:
        for chain in system.chains:
            placed = ilp(placed, chain=chain.name, objective="latency").system
    except InfeasibleError as err:
        return {"error": str(err), "evaluated": 0, "search_time_s": time.perf_counter() - start}
    searched_s = time.perf_counter() - start
    space = _Space(system)
    joint = tuple(tuple(int(d) for d in c.assignment_of(placed.chain(c.chain).placement))
                  for c in space.costs)
    return _summary(_simulated(placed, jobs, replications, seed), len(system.chains),
                    searched_s, {c.name: c.placement.as_dict() for c in placed.chains},
                    space.violation(joint))


def _summary(simulated: dict[str, dict], evaluated: int, search_time_s: float,
             placements: dict, violation: str | None) -> dict[str, Any]:
    worst = max(simulated, key=lambda name: simulated[name]["loss"])
    return {"worst_loss": simulated[worst]["loss"],
            "worst_loss_half_width": simulated[worst]["loss_half_width"],
            "worst_chain": worst, "evaluated": evaluated, "search_time_s": search_time_s,
            "placements": placements, "violation": violation, "simulated": simulated}
