"""Split points between tiers by exhaustive search: Neurosurgeon (device ->
server, one cut) and Scission (device -> edge -> cloud, two cuts).

Both enumerate every configuration, so they are exact within their family of
placements; a model has tens of blocks, so the search stays cheap (Neurosurgeon
n + 1 cuts per server, Scission O(D² n²)). The device tier is where requests
arrive: the returned system's chain has its ``source`` set to it, so a split
that runs nothing on the device uploads the input over the link station.

Objectives: ``"latency"`` is :meth:`Costs.latency_s` (mean end-to-end latency
without queueing); ``"energy"`` is the device tier's energy per request under a
:class:`PowerModel`.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .. import _validation as v
from ..exceptions import InfeasibleError
from ..model import System
from ._costs import Costs
from ._decision import PlacementDecision

__all__ = ["PowerModel", "neurosurgeon", "scission"]

_OBJECTIVES = ("latency", "energy")


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerModel:
    """Power draw of the device tier in watts, as Neurosurgeon's energy model.

    Energy per request (joules) = ``compute_w`` × the seconds the device
    computes its blocks + ``transmit_w`` × the seconds it transmits over its
    uplinks (the input or a cut tensor; transmission only, propagation is not
    the radio's work) + ``idle_w`` × the seconds it waits for the rest of the
    request (the mean latency minus the two). Each term is weighted by the share
    of jobs doing it (reach), so a job leaving at an early exit on the device
    costs no transmission and no wait. Returning the result is not modelled,
    as in :meth:`Costs.latency_s`.
    """

    compute_w: float
    transmit_w: float
    idle_w: float = 0.0

    def __post_init__(self) -> None:
        for name in ("compute_w", "transmit_w", "idle_w"):
            v.non_negative("PowerModel", name, getattr(self, name))

    def energy_j(self, costs: Costs, assignment: Sequence[int] | np.ndarray,
                 device: int) -> float:
        """Joules per request spent by ``device`` (an index into ``costs.devices``)."""
        compute, transmit, idle = device_seconds(costs, assignment, device)
        return self.compute_w * compute + self.transmit_w * transmit + self.idle_w * idle


def device_seconds(costs: Costs, assignment: Sequence[int] | np.ndarray,
                   device: int) -> tuple[float, float, float]:
    """Reach-weighted seconds ``device`` spends computing, transmitting and waiting."""
    a = np.asarray(assignment)
    mine = a == device
    compute = float((costs.reach * costs.compute_s[np.arange(costs.n_blocks), a])[mine].sum())
    sends = [(1.0, int(a[0]), 0)] if costs.source == device and a[0] != device else []
    sends += [(float(costs.reach[b]), int(a[b]), b) for b in range(1, costs.n_blocks)
              if a[b - 1] == device and a[b] != device]
    transmit = 0.0
    for share, target, b in sends:
        link = costs.link(device, target)
        transmit += share * (np.inf if link is None else link.transmission_time_s(
            costs.cut_bytes(b)))
    return compute, transmit, max(costs.latency_s(a) - compute - transmit, 0.0)


# --------------------------------------------------------------------------- checks


def _objective(owner: str, costs: Costs, objective: str, power: PowerModel | None,
               device: int) -> Callable[[np.ndarray], float]:
    if objective not in _OBJECTIVES:
        raise v.fail(owner, "objective", "one of " + ", ".join(map(repr, _OBJECTIVES)), objective)
    if power is not None and not isinstance(power, PowerModel):
        raise v.fail(owner, "power", "a PowerModel or None", power)
    if objective == "latency":
        return costs.latency_s
    if power is None:
        raise v.fail(owner, "power", "a PowerModel when objective is 'energy'", None)
    return lambda a: power.energy_j(costs, a, device)


def _infeasible(what: str, reasons: Sequence[str]) -> InfeasibleError:
    """An error naming the binding constraints: each reason's kind (the words
    before its colon, e.g. 'memory of pi') with how many candidates it ruled out."""
    counts = Counter(r.split(":")[0] for r in reasons)
    binding = "; ".join(f"{kind} ({n} of {len(reasons)})" for kind, n in counts.most_common())
    return InfeasibleError(f"No feasible {what}: {binding}. First: {reasons[0]}.")


def _decision(method: str, costs: Costs, best: np.ndarray, objective: str, value: float,
              start: float, details: dict) -> PlacementDecision:
    return PlacementDecision(method=method, system=costs.placed(best), chain=costs.chain,
                             assignment=tuple(int(d) for d in best), objective=objective,
                             value=float(value), latency_s=float(costs.latency_s(best)),
                             solve_time_s=time.perf_counter() - start, details=details)


# --------------------------------------------------------------------------- Neurosurgeon


def neurosurgeon(system: System, *, chain: str | None = None, device: str | None = None,
                 server: str | None = None, objective: str = "latency",
                 power: PowerModel | None = None) -> PlacementDecision:
    """The best single cut between a device and a server (Kang et al., 2017).

    Cut c runs blocks < c on ``device`` and the rest on ``server``: c = n_blocks
    keeps everything on the device, c = 0 uploads the input. ``device``
    defaults to the chain's source, else the device of its first fragment;
    ``server`` to every device the device has a link to (the best one wins).
    Cuts breaking a rule of :meth:`Costs.violation` (memory, links) are skipped.

    ``details``: ``cut``, ``device``, ``server``, ``curve`` (server -> the
    objective of every cut 0..n, None where infeasible, to plot), ``infeasible``
    (server -> {cut: reason}) and ``evaluated`` (cuts tried).
    """
    start, owner = time.perf_counter(), "neurosurgeon"
    costs = Costs.of(system, chain)
    home = costs.home if device is None else costs.device_index(owner, "device", device)
    costs = costs.with_source(home)
    score = _objective(owner, costs, objective, power, home)
    servers = costs.servers(owner, home, server)
    curve, infeasible, best = _sweep(costs, home, servers, score)
    if best is None:
        reasons = [r for per in infeasible.values() for r in per.values()]
        raise _infeasible(f"cut of chain {costs.chain!r} from {costs.devices[home].name!r}",
                          reasons)
    value, s, c = best
    details = {"cut": c, "device": costs.devices[home].name, "server": costs.devices[s].name,
               "curve": curve, "infeasible": infeasible,
               "evaluated": len(servers) * (costs.n_blocks + 1)}
    return _decision(owner, costs, _two_tier(costs, home, s, c), objective, value, start,
                     details)


def _sweep(costs: Costs, home: int, servers: list[int], score: Callable[[np.ndarray], float]
           ) -> tuple[dict[str, list[float | None]], dict[str, dict[int, str]],
                      tuple[float, int, int] | None]:
    """Every cut to every server: the curve, the infeasible cuts' reasons and
    the best (value, server, cut), the first one found on ties."""
    curve: dict[str, list[float | None]] = {}
    infeasible: dict[str, dict[int, str]] = {}
    best: tuple[float, int, int] | None = None
    for s in servers:
        name = costs.devices[s].name
        curve[name], infeasible[name] = [], {}
        for c in range(costs.n_blocks + 1):
            a = _two_tier(costs, home, s, c)
            reason = costs.violation(a)
            value = None if reason else float(score(a))
            curve[name].append(value)
            if reason:
                infeasible[name][c] = reason
            elif value is not None and (best is None or value < best[0]):
                best = (value, s, c)
    return curve, infeasible, best


def _two_tier(costs: Costs, device: int, server: int, cut: int) -> np.ndarray:
    return np.array([device] * cut + [server] * (costs.n_blocks - cut))


# --------------------------------------------------------------------------- Scission


def scission(system: System, *, chain: str | None = None, tiers: Sequence[str] | None = None,
             objective: str = "latency", power: PowerModel | None = None) -> PlacementDecision:
    """The best device -> edge -> cloud split with two cuts (Scission, Lockhart
    et al., 2020), by exhaustive search over tiers and cuts.

    The device tier is the chain's source, else its first fragment's device
    (``tiers[0]`` when given). ``tiers`` fixes the machines (device, edge,
    cloud; one to three distinct names); by default every edge and cloud
    device linked in that order is tried. Any tier may be empty: blocks
    [0, c1) run on the device, [c1, c2) on the edge and [c2, n) on the cloud
    with 0 <= c1 <= c2 <= n, so two-tier and one-tier splits are candidates
    too. Each distinct placement is evaluated once; the result equals brute
    force over all assignments whose fragments, after the device tier, use
    at most two other devices.

    ``details``: ``tiers`` (device, edge, cloud; None for an unused tier),
    ``cuts`` (c1, c2), ``evaluated`` (configurations) and ``infeasible`` (how
    many of them broke a rule).
    """
    start, owner = time.perf_counter(), "scission"
    costs = Costs.of(system, chain)
    fixed = _fixed_tiers(owner, costs, tiers)
    home = costs.home if fixed is None else fixed[0]
    costs = costs.with_source(home)
    score = _objective(owner, costs, objective, power, home)
    best: tuple[float, tuple[int, ...], tuple[int, ...]] | None = None
    reasons: list[str] = []
    evaluated = 0
    for chosen in _tier_options(costs, home, fixed):
        for cuts in itertools.combinations(range(costs.n_blocks), len(chosen)):
            evaluated += 1
            a = _multi_tier(costs, home, chosen, cuts)
            reason = costs.violation(a)
            if reason:
                reasons.append(reason)
                continue
            value = float(score(a))
            if best is None or value < best[0]:
                best = (value, chosen, cuts)
    if best is None:
        raise _infeasible(f"split of chain {costs.chain!r} from {costs.devices[home].name!r}",
                          reasons)
    value, chosen, cuts = best
    names = [costs.devices[d].name for d in chosen] + [None] * (2 - len(chosen))
    full = list(cuts) + [costs.n_blocks] * (2 - len(cuts))
    details = {"tiers": (costs.devices[home].name, *names), "cuts": tuple(full),
               "evaluated": evaluated, "infeasible": len(reasons)}
    return _decision(owner, costs, _multi_tier(costs, home, chosen, cuts), objective, value,
                     start, details)


def _fixed_tiers(owner: str, costs: Costs, tiers: Sequence[str] | None) -> list[int] | None:
    if tiers is None:
        return None
    rule = "one to three distinct device names (device, edge, cloud)"
    if isinstance(tiers, str) or not isinstance(tiers, Sequence) or not 1 <= len(tiers) <= 3 \
            or not all(isinstance(t, str) for t in tiers) or len(set(tiers)) != len(tiers):
        raise v.fail(owner, "tiers", rule, tiers)
    return [costs.device_index(owner, "tiers", t) for t in tiers]


def _tier_options(costs: Costs, home: int, fixed: list[int] | None) -> list[tuple[int, ...]]:
    """The non-empty tiers after the device: (), (edge,), (edge, cloud), each
    hop linked (an empty edge tier is the pair (cloud,))."""
    others = fixed[1:] if fixed is not None else [d for d in range(costs.n_devices) if d != home]
    if fixed is not None:
        options = [c for k in range(3) for c in itertools.combinations(others, k)]
    else:
        options = [p for k in range(3) for p in itertools.permutations(others, k)]
    return [t for t in options
            if all(costs.link(i, j) is not None for i, j in zip((home, *t), t))]


def _multi_tier(costs: Costs, home: int, chosen: tuple[int, ...],
                cuts: tuple[int, ...]) -> np.ndarray:
    """Blocks before cuts[0] on ``home``, then each chosen tier from its cut on."""
    bounds = (*cuts, costs.n_blocks)
    a = np.full(costs.n_blocks, home)
    for tier, first, last in zip(chosen, bounds, bounds[1:]):
        a[first:last] = tier
    return a
