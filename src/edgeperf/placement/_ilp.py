"""Exact placement of one chain on many devices: a mixed-integer program
solved by HiGHS (``scipy.optimize.milp``).

Variables: ``x[b, d]`` (binary) puts block b on device d; for each cut after
block b, ``stay[b, d]`` (block b+1 stays on d) and ``y[b, k]`` (the job
crosses link k from block b to b+1) split the flow of ``x[b, ·]`` into
``x[b+1, ·]``. These flow equalities make ``y`` the exact transition
indicators for binary ``x`` (a linearisation of ``x[b, d] * x[b+1, e]`` that
is tighter than ``y >= x + x - 1``) and forbid consecutive blocks on devices
without a link (radio range), since only linked pairs have a ``y``. The entries
into a device (the first block, plus incoming transitions) are at most one: one
contiguous fragment per device. ``p[d]`` is the largest activation on d, so
weights plus ``p[d]`` fit in memory; ``t`` is the bottleneck utilisation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from .. import _validation as v
from ..exceptions import InfeasibleError
from ..model import System
from ._costs import Costs
from ._decision import PlacementDecision

__all__ = ["ilp", "link_utilisation", "bottleneck_utilisation"]

OBJECTIVES = ("latency", "bottleneck", "mix")
_STATUS = {0: "optimal", 1: "time limit reached", 2: "infeasible", 3: "unbounded",
           4: "solver error"}
_MIP_REL_GAP = 1e-7  # objectives are scaled to about 1, so this is near-exact


def link_utilisation(costs: Costs, assignment: np.ndarray) -> dict[str, float]:
    """Offered load of each non-ideal link the assignment uses (the upload
    from the source included): arrival rate x reach x transmission time."""
    v.instance("link_utilisation", "costs", costs, Costs, "a Costs (Costs.of(system))")
    a = costs.checked("link_utilisation", assignment)
    load: dict[str, float] = {}
    hops = [(costs.source, int(a[0]), 0)] if costs.source is not None else []
    hops += [(int(a[b - 1]), int(a[b]), b) for b in range(1, costs.n_blocks) if a[b] != a[b - 1]]
    for i, j, b in hops:
        link = costs.link(i, j) if i != j else None
        if link is not None and not link.ideal:
            share = costs.arrival_rate * costs.reach[b] * link.transmission_time_s(
                costs.cut_bytes(b))
            load[link.name] = load.get(link.name, 0.0) + share
    return load


def bottleneck_utilisation(costs: Costs, assignment: np.ndarray) -> float:
    """The largest utilisation over devices and non-ideal links: the station
    that saturates first as the arrival rate grows."""
    v.instance("bottleneck_utilisation", "costs", costs, Costs, "a Costs (Costs.of(system))")
    a = costs.checked("bottleneck_utilisation", assignment)
    return max([float(costs.utilisation(a).max()), *link_utilisation(costs, a).values()])


def ilp(system: System, *, chain: str | None = None, objective: str = "latency",
        weight: float = 0.5, max_utilisation: float | Mapping[str, float] | None = None,
        time_limit_s: float = 60.0) -> PlacementDecision:
    """The placement minimising ``objective`` among the valid ones (see
    :mod:`._enumerate`) whose devices stay within ``max_utilisation``.

    ``"latency"`` is :meth:`Costs.latency_s`; ``"bottleneck"`` is
    :func:`bottleneck_utilisation`; ``"mix"`` is ``weight * latency / L +
    (1 - weight) * bottleneck / B``, where L and B are the latency and the
    utilisation of the whole chain on the one device where it is fastest
    (ignoring memory and links): fixed scales that need no extra solve, given
    in ``details["references"]``. ``max_utilisation`` is one budget for every
    device or budgets by device name (unnamed devices have none).

    Raises InfeasibleError naming the binding constraint when no placement
    exists or none is found within ``time_limit_s``.
    """
    _check(objective, weight, time_limit_s)
    costs = Costs.of(system, chain)
    budget = _budget(costs, max_utilisation)
    _diagnose(costs, budget)
    start = time.perf_counter()
    refs = _references(costs)
    w_latency, w_bottleneck = {"latency": (1.0, 0.0), "bottleneck": (0.0, 1.0),
                               "mix": (weight, 1.0 - weight)}[objective]
    program = _Program(costs, budget, bottleneck=w_bottleneck > 0)
    cost = w_latency / refs[0] * program.latency + w_bottleneck / refs[1] * program.t_unit
    res = milp(cost, integrality=program.integrality, bounds=Bounds(program.lo, program.hi),
               constraints=program.constraint(),
               options={"time_limit": time_limit_s, "mip_rel_gap": _MIP_REL_GAP})
    elapsed = time.perf_counter() - start
    if res.x is None:
        raise _failure(costs, budget, res.status, time_limit_s)
    a = program.assignment(res.x)
    latency, peak = costs.latency_s(a), bottleneck_utilisation(costs, a)
    value = {"latency": latency, "bottleneck": peak,
             "mix": weight * latency / refs[0] + (1.0 - weight) * peak / refs[1]}[objective]
    details = {"status": _STATUS.get(res.status, str(res.status)), "mip_gap": res.mip_gap,
               "n_variables": program.size, "n_constraints": program.n_rows,
               "proven_optimal": res.status == 0,
               "utilisation": dict(zip((d.name for d in costs.devices),
                                       costs.utilisation(a).tolist())),
               "link_utilisation": link_utilisation(costs, a),
               "references": {"latency_s": refs[0], "utilisation": refs[1]}}
    return PlacementDecision(method="ilp", system=costs.placed(a), chain=costs.chain,
                             assignment=tuple(int(d) for d in a), objective=objective,
                             value=float(value), latency_s=latency, solve_time_s=elapsed,
                             details=details)


# ------------------------------------------------------------------ parameters


def _check(objective: object, weight: object, time_limit_s: object) -> None:
    if objective not in OBJECTIVES:
        raise v.fail("ilp", "objective", f"one of {', '.join(map(repr, OBJECTIVES))}", objective)
    v.probability("ilp", "weight", weight)
    v.positive("ilp", "time_limit_s", time_limit_s)


def _budget(costs: Costs, max_utilisation: object) -> np.ndarray:
    """The processing budget of each device (infinite: none)."""
    names = [d.name for d in costs.devices]
    rule = f"None, a number >= 0, or a mapping from device names {names} to numbers >= 0"
    if max_utilisation is None:
        return np.full(costs.n_devices, np.inf)
    if isinstance(max_utilisation, Mapping):
        unknown = [k for k in max_utilisation if k not in names]
        if unknown:
            raise v.fail("ilp", "max_utilisation", rule, dict(max_utilisation))
        return np.array([v.non_negative("ilp", "max_utilisation", max_utilisation[n])
                         if n in max_utilisation else np.inf for n in names])
    try:
        return np.full(costs.n_devices, v.non_negative("ilp", "max_utilisation",
                                                       max_utilisation))
    except ValueError:
        raise v.fail("ilp", "max_utilisation", rule, max_utilisation) from None


def _unit_load(costs: Costs) -> np.ndarray:
    """``[b, d]``: the utilisation block b adds to device d."""
    servers = np.array([d.servers for d in costs.devices])
    return costs.arrival_rate * costs.reach[:, None] * costs.compute_s / servers


def _references(costs: Costs) -> tuple[float, float]:
    """Latency and utilisation of the whole chain on its fastest device."""
    latency = (costs.reach[:, None] * costs.compute_s).sum(axis=0)
    return float(latency.min()), float(_unit_load(costs).sum(axis=0).min())


# ----------------------------------------------------------------- diagnostics


def _first_devices(costs: Costs) -> list[int]:
    if costs.source is None:
        return list(range(costs.n_devices))
    return [costs.source] + [d for d in range(costs.n_devices)
                             if d != costs.source and costs.link(costs.source, d) is not None]


def _diagnose(costs: Costs, budget: np.ndarray) -> None:
    """Cheap necessary conditions, so that the error names what binds."""
    costs.check_fits()
    if costs.source is not None and _first_devices(costs) == [costs.source]:
        name = costs.devices[costs.source].name
        whole = np.full(costs.n_blocks, costs.source)
        need, limit = costs.memory_bytes(whole)[costs.source], costs.memory_limits()[costs.source]
        if need > limit:
            raise InfeasibleError(
                f"The source device {name!r} links to no other device, so it must run the whole "
                f"chain, which needs {int(need)} bytes of memory; it has {int(limit)}.")
    load = _unit_load(costs)
    for b in range(costs.n_blocks):
        if np.all(load[b] > budget):
            raise InfeasibleError(
                f"Block {costs.blocks[b]!r} alone adds a utilisation of at least "
                f"{load[b].min():.4g} on any device, above every device's processing budget "
                f"(max_utilisation); raise the budget or lower the arrival rate.")
    least, total = float(load.min(axis=1).sum()), float(budget.sum())
    if least > total:
        raise InfeasibleError(
            f"The chain adds a utilisation of at least {least:.4g} in all, above the sum of the "
            f"processing budgets (max_utilisation) {total:.4g}.")


def _failure(costs: Costs, budget: np.ndarray, status: int,
             time_limit_s: float) -> InfeasibleError:
    if status == 1:
        return InfeasibleError(f"The ILP found no placement within time_limit_s={time_limit_s:g} "
                               "s; raise the time limit.")
    families = ["one contiguous fragment per device",
                "links between consecutive fragments (radio range)"]
    if costs.source is not None:
        families.append(f"a first device reachable from the source "
                        f"{costs.devices[costs.source].name!r}")
    if np.isfinite(costs.memory_limits()).any():
        families.append("memory")
    if np.isfinite(budget).any():
        families.append("processing budgets (max_utilisation)")
    return InfeasibleError(f"No placement meets all the constraints together "
                           f"(HiGHS: {_STATUS.get(status, status)}): {', '.join(families)}.")


# --------------------------------------------------------------------- program


class _Program:
    """The MILP's columns (x, stay, y, p, t), rows and bounds, built sparse."""

    def __init__(self, costs: Costs, budget: np.ndarray, *, bottleneck: bool) -> None:
        self.costs, self.n, self.m = costs, costs.n_blocks, costs.n_devices
        self.links = [(i, j) for i in range(self.m) for j in range(self.m)
                      if i != j and costs.link(i, j) is not None]
        n, m, k = self.n, self.m, len(self.links)
        self.x0, self.stay0 = 0, n * m
        self.y0 = self.stay0 + (n - 1) * m
        self.p0 = self.y0 + (n - 1) * k
        self.t = self.p0 + m
        self.size = self.t + 1
        self._rows: list[np.ndarray] = []
        self._cols: list[np.ndarray] = []
        self._vals: list[np.ndarray] = []
        self._lo: list[float] = []
        self._hi: list[float] = []
        self._bounds()
        self._assignment_rows()
        self._flow_rows()
        self._memory_rows()
        self._budget_rows(budget)
        if bottleneck:
            self._bottleneck_rows()
        self.latency = self._latency()

    # columns
    def x(self, b: int, d: int) -> int:
        return self.x0 + b * self.m + d

    def stay(self, b: int, d: int) -> int:
        return self.stay0 + b * self.m + d

    def y(self, b: int, k: int) -> int:
        return self.y0 + b * len(self.links) + k

    @property
    def t_unit(self) -> np.ndarray:
        out = np.zeros(self.size)
        out[self.t] = 1.0
        return out

    @property
    def integrality(self) -> np.ndarray:
        out = np.zeros(self.size)
        out[self.x0:self.stay0] = 1
        return out

    @property
    def n_rows(self) -> int:
        return len(self._lo)

    def _bounds(self) -> None:
        """x, stay and y in [0, 1]; x[b, d] = 0 where block b alone overflows d,
        and x[0, d] = 0 where the source cannot send inputs to d."""
        self.lo, self.hi = np.zeros(self.size), np.ones(self.size)
        self.hi[self.p0:] = np.inf
        fits = (self.costs.param_bytes + self.costs.activation_bytes)[:, None] \
            <= self.costs.memory_limits()[None, :]
        self.hi[self.x0:self.stay0] = fits.ravel().astype(float)
        allowed = set(_first_devices(self.costs))
        for d in range(self.m):
            if d not in allowed:
                self.hi[self.x(0, d)] = 0.0

    def _add(self, cols: list[int], vals: list[float] | np.ndarray, lo: float,
             hi: float) -> None:
        self._rows.append(np.full(len(cols), len(self._lo)))
        self._cols.append(np.asarray(cols, dtype=np.int64))
        self._vals.append(np.asarray(vals, dtype=float))
        self._lo.append(lo)
        self._hi.append(hi)

    def constraint(self) -> LinearConstraint:
        matrix = sparse.csr_array((np.concatenate(self._vals), (np.concatenate(self._rows),
                                   np.concatenate(self._cols))), shape=(self.n_rows, self.size))
        return LinearConstraint(matrix, self._lo, self._hi)

    # rows
    def _assignment_rows(self) -> None:
        for b in range(self.n):
            self._add([self.x(b, d) for d in range(self.m)], np.ones(self.m), 1.0, 1.0)

    def _flow_rows(self) -> None:
        """x[b, d] = stay[b, d] + out-transitions; x[b+1, e] = stay[b, e] +
        in-transitions; entries into each device <= 1."""
        out = [[k for k, (i, _) in enumerate(self.links) if i == d] for d in range(self.m)]
        into = [[k for k, (_, j) in enumerate(self.links) if j == d] for d in range(self.m)]
        for b in range(self.n - 1):
            for d in range(self.m):
                for cell, ks in ((self.x(b, d), out[d]), (self.x(b + 1, d), into[d])):
                    cols = [cell, self.stay(b, d)] + [self.y(b, k) for k in ks]
                    self._add(cols, [1.0, -1.0] + [-1.0] * len(ks), 0.0, 0.0)
        for d in range(self.m):
            cols = [self.x(0, d)] + [self.y(b, k) for b in range(self.n - 1) for k in into[d]]
            self._add(cols, np.ones(len(cols)), -np.inf, 1.0)

    def _memory_rows(self) -> None:
        """Weights + p[d] <= memory, with p[d] >= each activation on d."""
        limits = self.costs.memory_limits()
        for d in np.flatnonzero(np.isfinite(limits)):
            blocks = range(self.n)
            self._add([self.x(b, d) for b in blocks] + [self.p0 + d],
                      list(self.costs.param_bytes.astype(float)) + [1.0], -np.inf, limits[d])
            for b in blocks:
                self._add([self.x(b, d), self.p0 + d],
                          [float(self.costs.activation_bytes[b]), -1.0], -np.inf, 0.0)

    def _budget_rows(self, budget: np.ndarray) -> None:
        load = _unit_load(self.costs)
        for d in np.flatnonzero(np.isfinite(budget)):
            self._add([self.x(b, d) for b in range(self.n)], load[:, d], -np.inf, budget[d])

    def _bottleneck_rows(self) -> None:
        """t >= each device's utilisation and each non-ideal link's."""
        load = _unit_load(self.costs)
        for d in range(self.m):
            self._add([self.x(b, d) for b in range(self.n)] + [self.t],
                      list(load[:, d]) + [-1.0], -np.inf, 0.0)
        c = self.costs
        for k, (i, j) in enumerate(self.links):
            link = c.link(i, j)
            if link is None or link.ideal:
                continue
            cols = [self.y(b, k) for b in range(self.n - 1)]
            vals = [c.arrival_rate * c.reach[b + 1] * link.transmission_time_s(c.cut_bytes(b + 1))
                    for b in range(self.n - 1)]
            if c.source == i:  # the upload shares this link
                cols.append(self.x(0, j))
                vals.append(c.arrival_rate * link.transmission_time_s(c.input_bytes))
            self._add(cols + [self.t], vals + [-1.0], -np.inf, 0.0)

    def _latency(self) -> np.ndarray:
        """Objective row equal to :meth:`Costs.latency_s` for binary x."""
        c, out = self.costs, np.zeros(self.size)
        out[self.x0:self.stay0] = (c.reach[:, None] * c.compute_s).ravel()
        if c.source is not None:
            for d in _first_devices(c):
                out[self.x(0, d)] += c.transfer_s(c.source, d, c.input_bytes)
        for k, (i, j) in enumerate(self.links):
            for b in range(self.n - 1):
                out[self.y(b, k)] = c.reach[b + 1] * c.transfer_s(i, j, c.cut_bytes(b + 1))
        return out

    def assignment(self, solution: np.ndarray) -> np.ndarray:
        x = solution[self.x0:self.stay0].reshape(self.n, self.m)
        return np.argmax(x, axis=1)
