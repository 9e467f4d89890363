"""The knapsack scheduler: an online single-exit policy that plans the queue.

Each time a job starts service, :class:`KnapsackPolicy` looks at the station:
the starting job and the ``waiting`` jobs queued behind it must all be served,
and there is a time budget ``B`` to do it in. It picks one exit per job so that
the total expected accuracy is largest while the total expected service time
stays within ``B``: a *multiple-choice knapsack*, solved exactly by dynamic
programming over discretised time. Only the starting job's exit is used; the
queued jobs are planned again when they start (receding horizon), with what is
known then.

**Rate.** ``λ̂ = (n - 1) / (t_last - t_first)`` over the last ``window``
arrival times the station saw (lost arrivals included, so λ̂ is the offered
rate); with fewer than ``MIN_ARRIVALS`` of them, or no time between them, the
problem's ``arrival_rate`` stands in.

**Budget.** With ``jobs_present`` jobs at a station of capacity K there are
``free = K - jobs_present`` free places. At rate λ̂ they fill in about
``free / λ̂``, and the arrival after that, at about ``(free + 1) / λ̂``, is the
first one lost unless a job has left by then. So

    B = (free + 1) / λ̂ = (K - waiting) / λ̂     (one server: jobs_present = waiting + 1)

is the time in which the jobs present now can be served without the queue
overflowing: if the backlog is cleared by then, every place it held is free
again when the queue would otherwise fill. B shrinks as the rate or the queue
grows: low load gives a large budget and deep exits, high load a small budget
and early exits. At an empty station it is ``K / λ̂``; with a full one ``1 / λ̂``.

**Values.** The starting job's value at exit e is the empirical accuracy of
exit e among the exit-table samples whose confidence at e falls in the same bin
as the job's (a calibration curve per exit, ``bins`` equal-width bins, shrunk
towards the exit's mean accuracy and made non-decreasing by pool-adjacent
violators, all computed once). A queued job's confidences are unknown: its
value is the table's mean accuracy per exit, ``accuracy_by_exit``. Without a
confidence row (a simulation without a table) the starting job is valued as a
queued one.

**Weights.** A job leaving at exit e takes ``exit_means[e]`` on average. The
budget is cut into ``resolution`` cells of ``B / resolution`` seconds; weights
are rounded *up* to whole cells and the capacity is ``resolution`` cells, so a
plan that fits in cells fits in B (the rounding can only waste up to one cell
per job, ``n / resolution`` of B in all). The DP costs at most
``jobs × exits × resolution`` steps whatever B is.

**Overload.** If even every job at the first exit exceeds B, the loss can no
longer be avoided by the plan; every job is given the first (fastest) exit.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from .. import _validation as v
from ..exceptions import InfeasibleError
from ..model import ExitTable
from ._problem import ExitProblem

if TYPE_CHECKING:
    from ..sim import JobOutcome, JobState

__all__ = ["KnapsackPolicy", "solve_mckp", "calibration_curves", "MIN_ARRIVALS", "harder_inputs",
           "simulate_shift", "Phase", "ShiftRun"]

#: Fewest arrival times from which the rate is estimated; below, the problem's rate.
MIN_ARRIVALS = 8
#: Weight (in pseudo-samples) of the exit's mean accuracy in each calibration bin.
_PRIOR = 5.0


# ---------------------------------------------------------------- exact DP kernels

@njit(cache=True)
def _mckp_kernel(values, weights, capacity):  # pragma: no cover - compiled
    """Multiple-choice knapsack: one choice per row of ``values`` [n, m] (float)
    with ``weights`` [n, m] (int >= 0), total weight <= ``capacity``, largest
    total value. Returns (value, choice[n]); (-inf, all -1) when nothing fits.
    Ties go to the lowest choice index."""
    n, m = values.shape
    choice = np.full(n, -1, np.int64)
    low = np.empty(n, np.int64)
    base, top = 0, 0
    for i in range(n):  # each row's lightest choice is taken for granted
        lo, hi = weights[i, 0], weights[i, 0]
        for e in range(1, m):
            lo = min(lo, weights[i, e])
            hi = max(hi, weights[i, e])
        low[i] = lo
        base += lo
        top += hi - lo
    if base > capacity:
        return -np.inf, choice
    cap = min(capacity - base, top)  # beyond `top` the constraint no longer binds
    width = cap + 1
    best = np.zeros(width)  # best[c]: best value of the rows so far within c cells
    nxt = np.empty(width)
    pick = np.empty((n, width), np.int32)
    for i in range(n):
        nxt[:] = -np.inf
        for e in range(m):
            w = weights[i, e] - low[i]
            if w > cap:
                continue
            x = values[i, e]
            for c in range(w, width):
                cand = best[c - w] + x
                if cand > nxt[c]:
                    nxt[c] = cand
                    pick[i, c] = e
        best, nxt = nxt, best
    c = cap
    for i in range(n - 1, -1, -1):
        e = pick[i, c]
        choice[i] = e
        c -= weights[i, e] - low[i]
    return best[cap], choice


@njit(cache=True)
def _first_choice(first, rest, weights, copies, capacity):  # pragma: no cover - compiled
    """The policy's case: one item valued ``first`` [m] and ``copies`` identical
    items valued ``rest`` [m], all with ``weights`` [m] (int >= 0). Returns the
    first item's choice in an optimal plan (ties: lowest index), or -1 when
    nothing fits. Same DP as ``_mckp_kernel``; only the first item's choice is
    kept, so the copies need no back-pointers. The two DP rows live in one
    buffer indexed by unsigned offsets: with no negative index to wrap around,
    LLVM vectorises the inner loop (about 5x faster)."""
    m = len(weights)
    lo, hi = weights[0], weights[0]
    for e in range(1, m):
        lo = min(lo, weights[e])
        hi = max(hi, weights[e])
    base = lo * (copies + 1)
    if base > capacity:
        return -1
    cap = min(capacity - base, (hi - lo) * (copies + 1))
    width = cap + 1
    buf = np.zeros(2 * width)  # rows [0, width) and [width, 2 width)
    cur = 0
    for _ in range(copies):
        out = width - cur
        for c in range(width):
            buf[out + c] = -np.inf
        for e in range(m):
            w = weights[e] - lo
            if w > cap:
                continue
            x = rest[e]
            src, dst = np.uint64(cur), np.uint64(out + w)
            for c in range(np.uint64(width - w)):
                cand = buf[src + c] + x
                if cand > buf[dst + c]:
                    buf[dst + c] = cand
        cur = out
    chosen, top = -1, -np.inf
    for e in range(m):
        w = weights[e] - lo
        if w <= cap:
            cand = buf[cur + cap - w] + first[e]
            if cand > top:
                chosen, top = e, cand
    return chosen


def solve_mckp(values: np.ndarray, weights: np.ndarray, capacity: int) -> tuple[float, np.ndarray]:
    """Exact multiple-choice knapsack by dynamic programming over the weights.

    ``values[n, m]``: the value of giving item i choice e; ``weights[n, m]``:
    its integer weight (>= 0). Exactly one choice per item, total weight at
    most ``capacity``, largest total value; ties go to the lower choice index.
    Returns ``(total value, choice[n])``. Raises InfeasibleError when even the
    lightest choices exceed the capacity. O(n × m × capacity) time.
    """
    owner = "solve_mckp"
    vals = np.asarray(values, dtype=float)
    if vals.ndim != 2 or vals.shape[0] < 1 or vals.shape[1] < 1 or not np.isfinite(vals).all():
        raise v.fail(owner, "values", "a 2-D array [items, choices] of finite numbers",
                     vals.shape if vals.ndim != 2 or not vals.size else "non-finite entries")
    raw = np.asarray(weights)
    if raw.shape != vals.shape or not np.issubdtype(raw.dtype, np.integer) or (raw < 0).any():
        raise v.fail(owner, "weights", f"integers >= 0 of the shape of values {vals.shape}",
                     raw.shape if raw.shape != vals.shape else raw.dtype.name
                     if not np.issubdtype(raw.dtype, np.integer) else int(raw.min()))
    cap = v.integer(owner, "capacity", capacity, low=0)
    w = np.ascontiguousarray(raw, dtype=np.int64)
    total, choice = _mckp_kernel(np.ascontiguousarray(vals), w, cap)
    if choice[0] < 0:
        raise InfeasibleError(f"{owner}: no choice fits the capacity {cap}: the lightest "
                              f"choices weigh {int(w.min(axis=1).sum())} together.")
    return float(total), choice


# ---------------------------------------------------------------- calibration

def _isotonic(y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Pool adjacent violators: the non-decreasing fit of y, weighted least squares."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for yi, wi in zip(y, weight):
        blocks.append([float(yi), float(wi), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            b = blocks.pop()
            a = blocks[-1]
            a[0] = (a[0] * a[1] + b[0] * b[1]) / (a[1] + b[1])
            a[1] += b[1]
            a[2] += b[2]
    return np.concatenate([np.full(int(c), m) for m, _, c in blocks])


def calibration_curves(confidence: np.ndarray, correct: np.ndarray, bins: int) -> np.ndarray:
    """``curves[E, bins]``: per exit, the share of samples classified correctly among
    those whose confidence there falls in each of ``bins`` equal-width bins of
    [0, 1], shrunk towards the exit's mean accuracy (``_PRIOR`` pseudo-samples)
    and made non-decreasing in confidence."""
    conf = np.asarray(confidence, dtype=float)
    right = np.asarray(correct, dtype=float)
    n_exits = conf.shape[1]
    index = np.minimum((conf * bins).astype(np.int64), bins - 1)
    curves = np.empty((n_exits, bins))
    for e in range(n_exits):
        count = np.bincount(index[:, e], minlength=bins)
        hits = np.bincount(index[:, e], weights=right[:, e], minlength=bins)
        mean = right[:, e].mean()
        curves[e] = _isotonic((hits + _PRIOR * mean) / (count + _PRIOR), count + _PRIOR)
    return curves


# ---------------------------------------------------------------- the policy

class KnapsackPolicy:
    """Online single-exit policy: a multiple-choice knapsack over the queue at
    each service start (see the module docstring for the rate, budget, values
    and weights). Drives the simulator's event engine and the runtime through
    ``decide(state)`` / ``observe(outcome)``.

    ``window``: arrival times (at most the 64 a state carries) the rate is
    estimated from. ``resolution``: cells the budget is cut into (the DP's
    size). ``bins``: confidence bins of the calibration curves.
    ``decision_times_s`` holds the wall time of every ``decide`` call,
    ``decision_time_stats()`` sums it up; ``last_budget_s`` is the last budget.
    """

    def __init__(self, problem: ExitProblem, *, window: int = 64, resolution: int = 1024,
                 bins: int = 20) -> None:
        owner = "KnapsackPolicy"
        v.instance(owner, "problem", problem, ExitProblem, "an ExitProblem")
        self.problem = problem
        self.window = v.integer(owner, "window", window, low=2)
        self.resolution = v.integer(owner, "resolution", resolution, low=1)
        self.bins = v.integer(owner, "bins", bins, low=1)
        table = problem.table
        self.n_exits = table.n_exits
        self.means = np.asarray(problem.exit_means, dtype=float)
        self.mean_values = np.ascontiguousarray(table.accuracy_by_exit, dtype=float)
        self.curves = calibration_curves(table.confidence, table.correct, self.bins)
        self._exits = np.arange(self.n_exits)
        self._fastest = int(np.argmin(self.means))
        self._times = array("d")  # 8 bytes a decision, however long the run
        self.last_budget_s = math.nan
        _first_choice(self.mean_values, self.mean_values,  # compile (or load) the kernel now
                      np.ones(self.n_exits, np.int64), 1, self.n_exits)

    # -- the pieces, public so that they can be checked and reported

    def rate_estimate(self, arrivals: Sequence[float]) -> float:
        """λ̂ = (n - 1) / (t_last - t_first) over the last ``window`` arrival times."""
        n = min(len(arrivals), self.window)
        if n >= MIN_ARRIVALS:
            span = arrivals[-1] - arrivals[-n]
            if span > 0.0:
                return (n - 1) / span
        return self.problem.arrival_rate

    def budget_s(self, jobs_present: int, rate: float) -> float:
        """B = (free places + 1) / λ̂: when, at rate λ̂, an arrival would first find
        the station full unless a job has left."""
        free = max(self.problem.capacity - jobs_present, 0)
        return (free + 1) / rate

    def values(self, confidence: np.ndarray | None) -> np.ndarray:
        """The starting job's expected accuracy at each exit, from its confidences."""
        if confidence is None:
            return self.mean_values
        row = np.asarray(confidence, dtype=float)
        index = (row * self.bins).astype(np.int64)
        return self.curves[self._exits, np.clip(index, 0, self.bins - 1)]

    def weights(self, budget_s: float) -> np.ndarray:
        """Exit means in cells of ``budget_s / resolution``, rounded up (capped at
        one cell over the capacity: such an exit never fits)."""
        cells = np.ceil(self.means * (self.resolution / budget_s))
        return np.minimum(cells, self.resolution + 1).astype(np.int64)

    def plan(self, first: np.ndarray, waiting: int, budget_s: float) -> int:
        """The starting job's exit in an optimal plan for it and ``waiting`` queued
        jobs within ``budget_s``; the fastest (first) exit when even that overruns."""
        w = self.weights(budget_s)
        cap = self.resolution
        if (waiting + 1) * w[self._fastest] > cap:
            return self._fastest
        best_first = int(np.argmax(first))
        if w[best_first] + waiting * w[int(np.argmax(self.mean_values))] <= cap:
            return best_first  # everyone's most accurate exit fits
        e = _first_choice(np.ascontiguousarray(first), self.mean_values, w, waiting, cap)
        return int(e) if e >= 0 else self._fastest

    # -- the online-policy protocol

    def decide(self, state: JobState) -> int:
        """The starting job's exit: rate, budget, values, then the knapsack (timed)."""
        start = time.perf_counter()
        if state.n_exits != self.n_exits:
            raise v.fail("KnapsackPolicy", "state", f"a state of a chain with {self.n_exits} "
                         "exits (the problem's)", state.n_exits)
        rate = self.rate_estimate(state.recent_arrivals)
        budget = self.budget_s(state.jobs_present, rate)
        self.last_budget_s = budget
        exit_ = self.plan(self.values(state.confidence), state.waiting, budget)
        self._times.append(time.perf_counter() - start)
        return exit_

    def observe(self, outcome: JobOutcome) -> None:
        """Nothing to learn: the plan depends only on the state."""

    # -- decision-time statistics

    @property
    def decision_times_s(self) -> np.ndarray:
        return np.array(self._times)

    def decision_time_stats(self) -> dict[str, float]:
        """Count, mean, median, p99 and max wall time of ``decide`` (seconds)."""
        t = self.decision_times_s
        if not len(t):
            return {"count": 0, "mean_s": math.nan, "median_s": math.nan, "p99_s": math.nan,
                    "max_s": math.nan}
        return {"count": len(t), "mean_s": float(t.mean()), "median_s": float(np.median(t)),
                "p99_s": float(np.quantile(t, 0.99)), "max_s": float(t.max())}


# ---------------------------------------------------------------- distribution shift

def harder_inputs(table: ExitTable, *, confidence_drop: float = 0.15, noise: float = 0.15,
                  error_rate: float = 0.1, seed: int = 0) -> ExitTable:
    """The table's samples as noisy inputs: every confidence lowered by
    ``confidence_drop`` plus Gaussian noise of sd ``noise`` (clipped to [0, 1]),
    and each right answer turned wrong with probability ``error_rate``. A
    threshold policy then sends more jobs to deeper exits, so the load rises."""
    owner = "harder_inputs"
    v.instance(owner, "table", table, ExitTable, "an ExitTable")
    drop = v.real(owner, "confidence_drop", confidence_drop, low=0.0, high=1.0)
    sd = v.non_negative(owner, "noise", noise)
    flip = v.probability(owner, "error_rate", error_rate)
    rng = np.random.default_rng(v.integer(owner, "seed", seed, low=0))
    conf = np.clip(table.confidence - drop + rng.normal(0.0, sd, table.confidence.shape), 0, 1)
    correct = table.correct & (rng.random(table.correct.shape) >= flip)
    return ExitTable(conf, correct)


@dataclass(frozen=True, slots=True)
class Phase:
    """What the jobs arriving in one phase of a run became."""

    offered: int
    loss_probability: float
    accuracy: float  # of the completed jobs
    exit_shares: tuple[float, ...]  # of the completed jobs


@dataclass(frozen=True, slots=True)
class ShiftRun:
    before: Phase
    after: Phase


def _phase(record, mask: np.ndarray, n_exits: int) -> Phase:  # noqa: ANN001 - a RunRecord
    lost = record.lost_at >= 0
    done = mask & ~lost
    shares = np.bincount(record.exit[done], minlength=n_exits) / max(int(done.sum()), 1)
    return Phase(offered=int(mask.sum()), loss_probability=float(lost[mask].mean()),
                 accuracy=float(record.correct[done].mean()) if done.any() else math.nan,
                 exit_shares=tuple(float(x) for x in shares))


def simulate_shift(problem: ExitProblem, shifted: ExitTable, *, policy: object = None,
                   thresholds: Sequence[float] | None = None, jobs: int = 20_000,
                   switch: float = 0.5, warmup: float = 0.1, seed: int = 0) -> ShiftRun:
    """One event-engine run on the problem's device whose inputs change mid-stream:
    jobs arriving before ``switch`` × the horizon draw their sample from the
    problem's table, later ones from ``shifted`` (the two tables may hold different numbers of
    samples).
    Exits come from an online ``policy`` (seeing each job's row) or from
    threshold ``thresholds``. Returns the loss, accuracy and exit shares of the
    jobs arriving before the switch (after the first ``warmup`` of the horizon)
    and after it."""
    from ..sim import StaticExits
    from ..sim._engine import run_events
    from ..sim._network import network_of
    from ..sim._plan import plan_run

    owner = "simulate_shift"
    clean = problem.table
    if not isinstance(shifted, ExitTable) or shifted.n_exits != clean.n_exits:
        raise v.fail(owner, "shifted", f"an ExitTable with {clean.n_exits} exits",
                     getattr(shifted, "n_exits", type(shifted).__name__))
    if (policy is None) == (thresholds is None):
        raise v.fail(owner, "policy", "given, or else thresholds, but not both",
                     (policy, thresholds))
    cut = v.real(owner, "switch", switch, low=0.0, low_open=True, high=1.0)
    head = v.real(owner, "warmup", warmup, low=0.0, high=cut)
    both = ExitTable(np.vstack([clean.confidence, shifted.confidence]),
                     np.vstack([clean.correct, shifted.correct]))
    network = network_of(problem.system())
    rng = np.random.default_rng(v.integer(owner, "seed", seed, low=0))
    plan = plan_run(network, rng, v.integer(owner, "jobs", jobs, low=100), 0.0,
                    [StaticExits(table=both)])
    route = plan.routes[0]
    late = route.arrival >= cut * plan.t_end
    draw = rng.integers(0, np.where(late, shifted.n_samples, clean.n_samples))
    route.row = np.where(late, clean.n_samples + draw, draw)
    route.correct = both.correct[route.row]
    if policy is None:
        route.exit = both.exits_for(thresholds, route.row)
        record = run_events(network, plan, rng)
    else:
        record = run_events(network, plan, rng, policies={0: policy},
                            confidences={0: both.confidence[route.row]})
    early = ~late & (record.arrival >= head * plan.t_end)
    return ShiftRun(before=_phase(record, early, clean.n_exits),
                    after=_phase(record, late, clean.n_exits))
