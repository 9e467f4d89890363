"""The queueing LP: the most accurate single-exit policy whose loss meets the target.

After Casale & Roveri (IEEE TC 2023). Each job is given exit e with probability
p_e before it starts, so the device serves the mixture of the exit laws. The
loss of an M/G/1/K depends on the service law mostly through its load and its
SCV, and both are simple in p. Every quantity is defined once, here:

- ``m_e = E[S_e]``: the mean service time of exit e (seconds);
- ``s2_e = E[S_e²] = m_e² (1 + SCV_e)``: its **second moment**. It is neither
  the variance ``m_e² SCV_e`` nor a standard deviation;
- the mixture p has ``E[S] = Σ p_e m_e`` and ``E[S²] = Σ p_e s2_e``. Both are
  linear in p. Its load is ``ρ = λ E[S]`` and its SCV ``E[S²] / E[S]² − 1``
  (:func:`mixture_moments`). SCV is var / mean², and MacGregor Smith's ``s²``
  is this SCV, never its square root.

For each candidate load ρ_c on a grid, :func:`max_scv` finds the largest SCV
c²(ρ_c) whose MacGregor Smith loss at ρ_c is within the target. A linear
program then gives the most accurate p whose load is at most ρ_c and whose SCV
is at most c²(ρ_c) (:func:`lp_at_load`, solved with HiGHS). The best of these
LP solutions is checked with the exact M/G/1/K loss of its mixture. MacGregor
Smith's formula is only an approximation, so the target the LPs use is then
scaled to the largest value whose LP solution still meets the real target
under the exact loss: scaled down where the formula is optimistic (tighten),
up where it is pessimistic. Last, the policy moves along the LP path towards
the solution that just missed, as far as the exact loss allows: the grid of
loads would otherwise leave part of the target unused. The pure policies
(every job at one exit) are candidates too, so the result is never less
accurate than the best of them that meets the target. Every policy returned
has been checked with the exact loss (:func:`queueing_lp`).
:class:`QueueingLPPolicy` re-solves when the arrival rate it estimates moves.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque

import numpy as np
from scipy.optimize import brentq, linprog

from .. import _validation as v
from ..exceptions import InfeasibleError
from ..queueing._mg1k import _mgs_loss
from ..sim._policy import JobOutcome, JobState
from ._problem import ExitProblem, ProbabilityDecision

__all__ = ["queueing_lp", "QueueingLPPolicy", "max_scv", "mixture_moments", "lp_at_load",
           "clean_probabilities", "LOADS"]

_OWNER = "queueing_lp"
#: Candidate loads per solve, evenly spaced from all jobs at the fastest exit
#: to all jobs at the slowest.
LOADS = 48
#: Steps of the bisection on the LPs' target, after it is bracketed. Each
#: halves the bracket on a log scale: 10 steps leave it within 0.07%.
_BISECTIONS = 10
#: Steps of the final bisection along the LP path (to 1e-9 of the segment).
_POLISH = 30
#: Bracketing doubles or halves the LPs' target at most this many times.
_BRACKETS = 12
#: Probabilities below this are set to 0: far below HiGHS's tolerances, so
#: only rounding noise is removed.
_ZERO = 1e-10
#: The SCV search does not go beyond this (no mixture of real laws comes near).
_SCV_CEILING = 1e8


# -- the quantities ----------------------------------------------------------------------------

def mixture_moments(probabilities: np.ndarray, means: np.ndarray,
                    second_moments: np.ndarray) -> tuple[float, float, float]:
    """Mean, second moment and SCV of the mixture that takes law e with
    ``probabilities[e]``; ``second_moments[e]`` is E[S_e²] (not a variance)."""
    p = np.asarray(probabilities, dtype=float)
    mean = float(p @ np.asarray(means, dtype=float))
    second = float(p @ np.asarray(second_moments, dtype=float))
    return mean, second, second / mean**2 - 1.0


def clean_probabilities(x: np.ndarray) -> np.ndarray:
    """An LP solution made a probability vector: negative rounding noise is
    clipped to 0 element-wise (``np.clip``, never the builtin ``max``, which
    compares whole arrays), specks below 1e-10 are dropped, and the rest is
    renormalised to sum to 1."""
    p = np.clip(np.asarray(x, dtype=float), 0.0, None)
    p[p < _ZERO] = 0.0
    return p / p.sum()


def _mgs(load: float, scv: float, capacity: int) -> float:
    """MacGregor Smith's loss, +inf where the closed form breaks down (it
    overflows for loads near 3 and above, where losses are above 60%)."""
    try:
        loss = _mgs_loss(load, scv, capacity)
    except (OverflowError, ZeroDivisionError):
        return math.inf
    return loss if math.isfinite(loss) and loss >= 0.0 else math.inf


def max_scv(load: float, capacity: int, loss_target: float) -> float | None:
    """The largest SCV whose MacGregor Smith loss at ``load`` is at most the target.

    ``None`` when even deterministic service (SCV 0) misses it; ``math.inf``
    when every SCV meets it (the loss tends to ρ / (1 + ρ) as the SCV grows).
    MacGregor Smith's loss increases with the SCV at a fixed load, and with
    the load at a fixed SCV (checked numerically for K = 1..100, loads up to
    2.8, SCVs up to 1e5), so the answer is one root, found by Brent's method.
    """
    def excess(scv: float) -> float:
        return _mgs(load, scv, capacity) - loss_target

    if excess(0.0) > 0.0:
        return None
    if load / (1.0 + load) <= loss_target:
        return math.inf
    high = 1.0
    while excess(high) <= 0.0:
        high *= 4.0
        if high > _SCV_CEILING:
            return math.inf
    return brentq(excess, 0.0, high, xtol=1e-12, rtol=1e-10)


# -- one LP ------------------------------------------------------------------------------------

def lp_at_load(accuracy: np.ndarray, means: np.ndarray, second_moments: np.ndarray,
               arrival_rate: float, load: float, scv: float) -> np.ndarray | None:
    """The most accurate exit probabilities with load at most ``load`` and SCV
    at most ``scv``, or ``None`` when no p has both.

    With x0 = load / λ, the constraints are, for the mixture p:

    1. E[S] = Σ p_e m_e <= x0, so the load λ E[S] is at most ``load``;
    2. E[S²] <= (1 + scv) x0 (2 E[S] − x0), both sides linear in p.

    (2) implies SCV <= ``scv``: x0 (2 E[S] − x0) = E[S]² − (E[S] − x0)² is the
    tangent of E[S]² at x0, below E[S]² for every mean, and E[S²] <= (1 + scv) E[S]²
    is the SCV bound. At E[S] = x0 the two agree; below x0, (2) is stricter by
    (1 + scv)(x0 − E[S])²: that is its conservatism, second order in the distance
    to x0, so small where the optimum lies (the load constraint nearly binding).
    The simpler bound E[S²] <= (1 + scv) x0² is *not* sound: it relaxes E[S]² to
    its upper bound x0², so when E[S] < x0 it admits SCVs above ``scv``. It would
    still be safe if the loss grew with the load at a fixed second moment, but
    MacGregor Smith's does not for large SCVs: at K = 8 and λ² E[S²] = 0.8 it
    falls from 0.0250 at load 0.12 (SCV 55) to 0.0218 at load 0.15 (SCV 35).
    With (1) and (2) MacGregor Smith's loss is at most its value at (load, scv),
    since it increases with both (see :func:`max_scv`).

    Times are divided by x0 (and the second constraint by 1 + scv) so that every
    coefficient is of order one for HiGHS, whatever the unit.
    """
    x0 = load / arrival_rate
    m = np.asarray(means, dtype=float) / x0
    rows, bounds = [m], [1.0]
    if math.isfinite(scv):
        rows.append(np.asarray(second_moments, dtype=float) / x0**2 / (1.0 + scv) - 2.0 * m)
        bounds.append(-1.0)
    n = len(m)
    result = linprog(-np.asarray(accuracy, dtype=float), A_ub=np.vstack(rows), b_ub=bounds,
                     A_eq=np.ones((1, n)), b_eq=[1.0], bounds=(0.0, None), method="highs")
    return clean_probabilities(result.x) if result.status == 0 else None


def _mean_bound(accuracy: np.ndarray, means: np.ndarray, mean: float) -> float:
    """The best accuracy with E[S] <= ``mean`` and no SCV constraint: at most
    two exits mix (the LP has two constraints). It bounds every LP at this load."""
    ok = means <= mean
    best = float(accuracy[ok].max()) if ok.any() else -math.inf
    lo, hi = np.meshgrid(np.flatnonzero(ok), np.flatnonzero(~ok), indexing="ij")
    if lo.size:
        share = (mean - means[lo]) / (means[hi] - means[lo])  # of the slower exit
        best = max(best, float((accuracy[lo] + share * (accuracy[hi] - accuracy[lo])).max()))
    return best


def _best_lp(problem: ExitProblem, loads: np.ndarray, target: float) -> np.ndarray | None:
    """The most accurate LP solution over the candidate loads for ``target``.

    Loads are tried from the highest down; the bound without the SCV
    constraint only falls with the load, so the search stops once it cannot
    beat the best solution found.
    """
    accuracy, means = problem.table.accuracy_by_exit, problem.exit_means
    best, best_accuracy = None, -math.inf
    for load in loads[::-1]:
        if _mean_bound(accuracy, means, load / problem.arrival_rate) <= best_accuracy + 1e-12:
            break
        scv = max_scv(float(load), problem.capacity, target)
        if scv is None:
            continue
        p = lp_at_load(accuracy, means, problem.exit_second_moments, problem.arrival_rate,
                       float(load), scv)
        if p is not None and p @ accuracy > best_accuracy:
            best, best_accuracy = p, float(p @ accuracy)
    return best


# -- the search --------------------------------------------------------------------------------

class _Search:
    """Candidates checked with the exact loss; keeps the most accurate that meets the target,
    and the LP solution that missed it at the tightest LP target (for :meth:`polish`)."""

    def __init__(self, problem: ExitProblem, loads: int) -> None:
        self.problem = problem
        rate = problem.arrival_rate
        self.loads = np.linspace(rate * problem.exit_means.min(), rate * problem.exit_means.max(),
                                 loads)
        self.best: np.ndarray | None = None
        self.best_accuracy = -math.inf
        self.missed: np.ndarray | None = None
        self.missed_scale = math.inf
        self.sweeps = 0  # LP sweeps over the candidate loads

    def offer(self, p: np.ndarray) -> bool:
        """Whether ``p`` meets the target under the exact loss (kept if the best)."""
        ok = self.problem.loss(p) <= self.problem.loss_target
        accuracy = float(p @ self.problem.table.accuracy_by_exit)
        if ok and accuracy > self.best_accuracy:
            self.best, self.best_accuracy = p, accuracy
        return ok

    def too_loose(self, scale: float) -> bool:
        """Whether the LPs' target ``scale`` L* gives a policy that misses L*.
        No LP solution at all counts as too tight."""
        self.sweeps += 1
        p = _best_lp(self.problem, self.loads, min(scale * self.problem.loss_target, 1.0))
        if p is None or self.offer(p):
            return False
        if scale < self.missed_scale:
            self.missed, self.missed_scale = p, scale
        return True

    def calibrate(self) -> None:
        """The largest scale of the LPs' target whose solution meets the real target.

        MacGregor Smith's loss differs from the exact one (by some percent,
        either way), so the target handed to the LPs is bracketed by doubling
        or halving from L*, then bisected on a log scale. Exact losses need not
        be monotone in the scale, so every solution met on the way is checked
        and the most accurate that meets L* is kept.
        """
        target = self.problem.loss_target
        low, high = 1.0, 1.0
        if self.too_loose(1.0):
            for _ in range(_BRACKETS):
                low /= 2.0
                if not self.too_loose(low):
                    break
            else:
                return  # the pure exits stand
        else:
            for _ in range(_BRACKETS):
                if high * target >= 1.0:
                    return  # no tighter bound: every p the LP allows was checked
                high *= 2.0
                if self.too_loose(high):
                    break
            else:
                return
        for _ in range(_BISECTIONS):
            middle = math.sqrt(low * high)
            if self.too_loose(middle):
                high = middle
            else:
                low = middle

    def polish(self) -> None:
        """Move from the best policy towards the LP solution that just missed the
        target, as far as the exact loss allows (bisection on the segment).

        The LP solutions come from a grid of loads, and where the load
        constraint binds they jump from one grid load to the next: a few
        percent of load, which can be a fifth of the loss target. Between two
        loads with the same optimal basis the LP optimum moves linearly with
        the load (a right-hand side), so the segment between them is the LP's
        own path; accuracy grows linearly along it.
        """
        if self.best is None or self.missed is None:
            return
        start, end = self.best, self.missed
        accuracy = self.problem.table.accuracy_by_exit
        if end @ accuracy <= start @ accuracy:
            return
        low, high = 0.0, 1.0
        for _ in range(_POLISH):
            middle = 0.5 * (low + high)
            if self.offer(clean_probabilities((1.0 - middle) * start + middle * end)):
                low = middle
            else:
                high = middle


def queueing_lp(problem: ExitProblem, *, loads: int = LOADS) -> ProbabilityDecision:
    """The most accurate single-exit policy whose exact M/G/1/K loss meets the target.

    ``loads``: candidate loads per LP sweep. Raises InfeasibleError, naming the
    lowest achievable loss, when no policy found meets the target.
    """
    start = time.perf_counter()
    v.instance(_OWNER, "problem", problem, ExitProblem, "an ExitProblem")
    count = v.integer(_OWNER, "loads", loads, low=2)
    search = _Search(problem, count)
    accuracy = problem.table.accuracy_by_exit
    for e in np.argsort(-accuracy, kind="stable"):  # the pure policies, most accurate first
        if search.offer(np.eye(len(accuracy))[e]):
            break
    if search.best is None or search.best_accuracy < accuracy.max():
        search.calibrate()  # a mixture may beat the pure exits
        search.polish()
    if search.best is None:
        raise problem.infeasible(_OWNER)
    p = search.best
    if not problem.loss(p) <= problem.loss_target:  # an invariant, not a check of input
        raise AssertionError(f"queueing_lp chose a policy with loss {problem.loss(p)!r} above "
                             f"the target {problem.loss_target!r}")
    return ProbabilityDecision(policy=_OWNER, probabilities=tuple(float(x) for x in p),
                               solve_time_s=time.perf_counter() - start)


# -- online ------------------------------------------------------------------------------------

class QueueingLPPolicy:
    """The queueing LP online: it estimates the arrival rate and re-solves when it moves.

    At each decision it adds the station's arrival times in ``state.recent_arrivals``
    to its own history of the last ``window`` arrivals (lost ones included, so it
    estimates the offered rate) and estimates λ = (n − 2) / (t_last − t_first),
    which is unbiased for n Poisson arrivals. It starts from the problem's rate.
    When the estimate moves from the rate of the current policy by more than
    ``tolerance`` (relative), it re-solves :func:`queueing_lp` at the estimate
    rounded up to a grid of relative step ``tolerance / 4`` (a grid point is
    solved once and cached; rounding up leans to the safe side). Where no policy
    meets the target at the estimate, every job goes to the fastest exit: the
    least loss there is. Each job's exit is drawn from the current probabilities
    with the policy's own generator, seeded by ``seed``.

    The window holds 256 arrivals by default: the estimate's relative standard
    deviation is about 1 / sqrt(n), 6% there, below the 10% tolerance, so noise
    alone seldom triggers a re-solve (the engine shows only 64 at a time, which
    would give 13%).
    """

    _MIN_ARRIVALS = 16

    def __init__(self, problem: ExitProblem, *, window: int = 256, tolerance: float = 0.1,
                 seed: int = 0, loads: int = LOADS) -> None:
        owner = "QueueingLPPolicy"
        v.instance(owner, "problem", problem, ExitProblem, "an ExitProblem")
        self.problem = problem
        self.window = v.integer(owner, "window", window, low=self._MIN_ARRIVALS)
        self.tolerance = v.positive(owner, "tolerance", tolerance)
        self.loads = v.integer(owner, "loads", loads, low=2)
        self._rng = np.random.default_rng(v.integer(owner, "seed", seed, low=0))
        self._times: deque[float] = deque(maxlen=self.window)
        self._cache: dict[int, np.ndarray] = {}
        self.solves = 0  # LP solves run (cache misses)
        self.solve_time_s = 0.0  # their total time
        self._use(problem.arrival_rate)

    @property
    def probabilities(self) -> np.ndarray:
        return self._p.copy()

    def _use(self, rate: float) -> None:
        step = math.log1p(self.tolerance / 4.0)
        key = math.ceil(math.log(rate) / step - 1e-9)
        if key not in self._cache:
            start = time.perf_counter()
            try:
                p = np.asarray(queueing_lp(self.problem.with_rate(math.exp(key * step)),
                                           loads=self.loads).probabilities)
            except InfeasibleError:
                p = np.eye(self.problem.table.n_exits)[int(np.argmin(self.problem.exit_means))]
            self._cache[key] = p
            self.solves += 1
            self.solve_time_s += time.perf_counter() - start
        self.rate = rate  # the estimate the current probabilities stand for
        self.solved_rate = math.exp(key * step)  # the rate they were solved at (>= rate)
        self._p = self._cache[key]
        self._cdf = np.cumsum(self._p)

    def _record(self, arrivals: tuple[float, ...]) -> None:
        if not arrivals:
            return
        if self._times and (arrivals[-1] < self._times[-1] or arrivals[0] > self._times[-1]):
            self._times.clear()  # a new run, or arrivals missed since the last look
        last = self._times[-1] if self._times else -math.inf
        self._times.extend(arrivals[bisect.bisect_right(arrivals, last):])

    def estimate(self) -> float | None:
        """The arrival rate estimated from the window, or None with too few arrivals."""
        n = len(self._times)
        span = self._times[-1] - self._times[0] if n else 0.0
        return (n - 2) / span if n >= self._MIN_ARRIVALS and span > 0.0 else None

    def decide(self, state: JobState) -> int:
        self._record(state.recent_arrivals)
        rate = self.estimate()
        if rate is not None and abs(rate - self.rate) > self.tolerance * self.rate:
            self._use(rate)
        e = int(np.searchsorted(self._cdf, self._rng.random(), side="right"))
        return min(e, len(self._p) - 1)

    def observe(self, outcome: JobOutcome) -> None:
        """Nothing to learn from outcomes: the policy follows the arrival rate only."""
