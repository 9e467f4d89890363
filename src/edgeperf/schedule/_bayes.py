"""Bayesian optimisation of threshold vectors, and a lookup table over arrival rates.

``bayes`` searches one threshold per early exit with optuna's TPE sampler
(seeded, so the same seed gives the same decision). Each trial's objective is
the exit table's exact accuracy of its vector; its constraint is the loss of
the exit distribution that vector induces, the exact M/G/1/K loss by default
(``evaluate="exact"``), which must not exceed the problem's loss target. The
``static_tuned`` threshold (one value at every exit) is enqueued as the first
trial, with the all-final and all-first vectors and any ``warm_start``
vectors, so the result is never less accurate than ``static_tuned``. The most
accurate feasible trial is returned after an exact re-check.

``evaluate="simulate"`` judges feasibility during the search by the
simulator's mean loss instead (``sim_jobs`` jobs x ``sim_replications``
replications per trial, common random numbers across trials). It is slower
(a simulation per trial instead of a cached M/G/1/K solve) and noisy near the
target: it steers the search only, and the decision returned still passes
the exact check (``static_tuned``'s vector when no simulated-feasible trial
does). Loss depends on the exit shares alone, not on which samples take
which exit, so a trial is simulated as the single-exit policy with the
shares its thresholds induce.

``BayesLookup`` precomputes ``bayes`` at a grid of arrival rates for online
use (each rate warm-started from the previous rate's best), is saved as
JSON and loaded back, and ``BayesLookupPolicy`` applies it online in the
simulator's event engine (or the runtime): it estimates the arrival rate
from the recent arrivals and applies that rate's thresholds to the job's
confidence row.
"""

from __future__ import annotations

import bisect
import json
import time
import warnings
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ValidationError

from .. import _validation as v
from .._atomic import write_text_atomic
from ..exceptions import InvalidParameterError
from ..model import ExitTable
from ._problem import ExitProblem, ProbabilityDecision, ThresholdDecision, simulate_decision
from ._static import static_tuned

__all__ = ["bayes", "BayesLookup", "BayesLookupPolicy", "HIGHEST_THRESHOLD", "FORMAT",
           "VERSION"]

#: The search range of every threshold is [0, HIGHEST_THRESHOLD]: 0 takes every
#: job reaching the exit, a value above 1 none (confidences lie in [0, 1]).
HIGHEST_THRESHOLD = 1.01
FORMAT = "edgeperf-bayes-lookup"
VERSION = 1
_EVALUATE = ("exact", "simulate")


# ---------------------------------------------------------------------- search


@contextmanager
def _quiet_optuna() -> Iterator[object]:
    """optuna imported lazily, its per-trial log lines and warnings silenced
    for the search only (its logging level is restored afterwards)."""
    import optuna
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)  # constraints_func, deprecated in 5.0
            yield optuna
    finally:
        optuna.logging.set_verbosity(level)


def _warm_vectors(warm_start: object, n: int) -> list[tuple[float, ...]]:
    """``warm_start``: None, one vector of n thresholds, or a list of them."""
    if warm_start is None:
        return []
    rule = f"a vector of {n} thresholds in [0, {HIGHEST_THRESHOLD:g}] or a list of them"
    try:
        arr = np.asarray(warm_start, dtype=float)
    except (TypeError, ValueError):
        raise v.fail("bayes", "warm_start", rule, warm_start) from None
    arr = arr[None, :] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] != n or not np.all(np.isfinite(arr)) \
            or np.any(arr < 0) or np.any(arr > HIGHEST_THRESHOLD):
        raise v.fail("bayes", "warm_start", rule, warm_start)
    return [tuple(map(float, row)) for row in arr]


class _Feasibility:
    """The loss of the exit shares a vector induces, by exact M/G/1/K or by
    simulation, cached by shares (many vectors induce the same shares)."""

    def __init__(self, problem: ExitProblem, evaluate: str, jobs: int, replications: int,
                 seed: int) -> None:
        self.problem, self.evaluate = problem, evaluate
        self.jobs, self.replications, self.seed = jobs, replications, seed
        self._cache: dict[bytes, float] = {}

    def loss(self, shares: np.ndarray) -> float:
        key = np.round(shares * self.problem.table.n_samples).astype(np.int64).tobytes()
        if key not in self._cache:
            self._cache[key] = self._loss(shares)
        return self._cache[key]

    def _loss(self, shares: np.ndarray) -> float:
        if self.evaluate == "exact":
            return self.problem.loss(shares)
        p = np.asarray(shares, dtype=float)
        decision = ProbabilityDecision(policy="bayes", probabilities=tuple(p / p.sum()))
        return float(simulate_decision(self.problem, decision, jobs=self.jobs,
                                       replications=self.replications,
                                       seed=self.seed).loss_probability)


def _exact(problem: ExitProblem, thresholds: Sequence[float]) -> tuple[float, float]:
    """Accuracy and exact loss of one vector."""
    shares, accuracy = problem.table.evaluate(np.asarray(thresholds, dtype=float))
    return float(accuracy[0]), problem.loss(shares[0])


def _study(problem: ExitProblem, starts: list[tuple[float, ...]], trials: int, seed: int,
           feasibility: _Feasibility):
    """Run the TPE search; returns the finished trials."""
    n = problem.table.n_exits - 1
    names = [f"threshold_{e}" for e in range(n)]
    target = problem.loss_target

    def objective(trial) -> float:  # noqa: ANN001 - an optuna Trial
        thr = np.array([trial.suggest_float(name, 0.0, HIGHEST_THRESHOLD) for name in names])
        shares, accuracy = problem.table.evaluate(thr)
        trial.set_user_attr("loss", feasibility.loss(shares[0]))
        return float(accuracy[0])

    with _quiet_optuna() as optuna:
        sampler = optuna.samplers.TPESampler(
            seed=seed, multivariate=True,
            constraints_func=lambda t: (t.user_attrs["loss"] - target,))
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for start in dict.fromkeys(starts):  # unique, in order
            study.enqueue_trial(dict(zip(names, start)))
        study.optimize(objective, n_trials=trials)
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [(tuple(t.params[name] for name in names), t.value, t.user_attrs["loss"])
            for t in done]


def bayes(problem: ExitProblem, *, trials: int = 200, seed: int = 0,
          evaluate: Literal["exact", "simulate"] = "exact", sim_jobs: int = 20_000,
          sim_replications: int = 5,
          warm_start: Sequence[float] | Sequence[Sequence[float]] | None = None
          ) -> ThresholdDecision:
    """The most accurate threshold vector found by TPE whose loss meets the target.

    ``trials`` includes the enqueued starts (``static_tuned``'s threshold at
    every exit, all-final, all-first, then ``warm_start``). ``evaluate`` is
    ``"exact"`` (M/G/1/K, the default) or ``"simulate"`` (slower and noisy;
    see the module notes); the returned vector always meets the target under
    the exact M/G/1/K. Raises InfeasibleError, with the lowest achievable
    loss, when no policy meets the target.
    """
    start = time.perf_counter()
    v.instance("bayes", "problem", problem, ExitProblem, "an ExitProblem")
    trials = v.integer("bayes", "trials", trials, low=1)
    seed = v.integer("bayes", "seed", seed, low=0)
    if evaluate not in _EVALUATE:
        raise v.fail("bayes", "evaluate", f"one of {list(_EVALUATE)}", evaluate)
    jobs = v.integer("bayes", "sim_jobs", sim_jobs, low=100)
    reps = v.integer("bayes", "sim_replications", sim_replications, low=1)
    n = problem.table.n_exits - 1
    warm = _warm_vectors(warm_start, n)
    if problem.lowest_loss() > problem.loss_target:
        raise problem.infeasible("bayes")
    if n == 0:  # a single exit: nothing to search
        return ThresholdDecision(policy="bayes", thresholds=(),
                                 solve_time_s=time.perf_counter() - start)
    baseline = tuple(static_tuned(problem).thresholds)
    starts = [baseline, (HIGHEST_THRESHOLD,) * n, (0.0,) * n, *warm]
    feasibility = _Feasibility(problem, evaluate, jobs, reps, seed)
    done = _study(problem, starts, trials, seed, feasibility)
    best = _best_exactly_feasible(problem, done, baseline)
    return ThresholdDecision(policy="bayes", thresholds=tuple(map(float, best)),
                             solve_time_s=time.perf_counter() - start)


def _best_exactly_feasible(problem: ExitProblem, done: list, baseline: tuple) -> tuple:
    """The most accurate trial feasible in the search (less loss first among equals)
    that the exact M/G/1/K confirms; ``baseline`` (exactly feasible) if none."""
    target = problem.loss_target
    candidates = sorted((t for t in done if t[2] <= target), key=lambda t: (-t[1], t[2]))
    floor = _exact(problem, baseline)[0]
    for thresholds, accuracy, _ in candidates:
        if accuracy < floor:
            break
        if _exact(problem, thresholds)[1] <= target:
            return thresholds
    return baseline


# ---------------------------------------------------------------------- lookup


@dataclass(frozen=True, slots=True, kw_only=True)
class BayesLookup:
    """``bayes`` decisions at increasing arrival rates, for online use.

    ``accuracy`` and ``loss_probability`` are each decision's exact values at
    its rate. :meth:`decision_for` is conservative: loss grows with the
    arrival rate for fixed thresholds, so the decision of the nearest rate at
    or above an estimate meets the target at the estimate; beyond the highest
    rate the highest rate's decision is the best the table holds, but it is
    not guaranteed to meet the target there.
    """

    rates: tuple[float, ...]
    decisions: tuple[ThresholdDecision, ...]
    accuracy: tuple[float, ...]
    loss_probability: tuple[float, ...]
    loss_target: float
    capacity: int
    exit_names: tuple[str, ...]

    def __post_init__(self) -> None:
        owner = "BayesLookup"
        rule = "a non-empty list of increasing rates > 0"
        rates = tuple(v.positive(owner, "rates", r)
                      for r in v.listed(owner, "rates", self.rates, rule))
        if not rates or any(b <= a for a, b in zip(rates, rates[1:])):
            raise v.fail(owner, "rates", rule, list(rates))
        for name in ("decisions", "accuracy", "loss_probability", "exit_names"):
            v.listed(owner, name, getattr(self, name), "a sequence")
        size = len(rates)
        for name in ("decisions", "accuracy", "loss_probability"):
            if len(getattr(self, name)) != size:
                raise v.fail(owner, name, f"one entry per rate ({size})", len(getattr(self, name)))
        names = list(self.exit_names)
        if not names or not all(isinstance(e, str) for e in names) or len(set(names)) < len(names):
            raise v.fail(owner, "exit_names", "a non-empty list of distinct exit names", names)
        for name in ("accuracy", "loss_probability"):  # shares of jobs
            for x in getattr(self, name):
                v.probability(owner, name, x)
        n = len(self.exit_names) - 1
        rule = (f"ThresholdDecisions of {n} finite thresholds >= 0 (one per early exit of "
                f"{list(self.exit_names)})")
        for d in self.decisions:
            if not isinstance(d, ThresholdDecision) or len(d.thresholds) != n \
                    or not all(np.isfinite(t) and t >= 0 for t in d.thresholds):
                raise v.fail(owner, "decisions", rule,
                             list(d.thresholds) if isinstance(d, ThresholdDecision) else d)
        v.real(owner, "loss_target", self.loss_target, low=0.0, high=1.0, low_open=True)
        v.integer(owner, "capacity", self.capacity, low=1)
        object.__setattr__(self, "rates", rates)

    @classmethod
    def build(cls, problem: ExitProblem, rates: Sequence[float], *, trials: int = 200,
              seed: int = 0, progress: bool = True) -> BayesLookup:
        """``bayes`` at each rate (sorted), each warm-started from the previous rate's
        best. Raises InfeasibleError naming the first rate where no policy meets
        the target. ``progress`` shows a bar on stderr."""
        v.instance("BayesLookup.build", "problem", problem, ExitProblem, "an ExitProblem")
        try:
            grid = sorted(set(v.positive("BayesLookup.build", "rates", r) for r in rates))
        except TypeError:
            raise v.fail("BayesLookup.build", "rates", "a non-empty list of rates > 0",
                         rates) from None
        if not grid:
            raise v.fail("BayesLookup.build", "rates", "a non-empty list of rates > 0", rates)
        decisions, accuracy, loss = [], [], []
        warm = None
        for rate in _progress(grid, progress):
            at = problem.with_rate(rate)
            decision = bayes(at, trials=trials, seed=seed, warm_start=warm)
            acc, lost = _exact(at, decision.thresholds)
            decisions.append(decision)
            accuracy.append(acc)
            loss.append(lost)
            warm = decision.thresholds or None
        return cls(rates=tuple(grid), decisions=tuple(decisions), accuracy=tuple(accuracy),
                   loss_probability=tuple(loss), loss_target=problem.loss_target,
                   capacity=problem.capacity, exit_names=problem.exit_names)

    def index_for(self, arrival_rate: float) -> int:
        """The entry for an estimated rate: the nearest at or above it, else the highest."""
        rate = v.positive("BayesLookup.decision_for", "arrival_rate", arrival_rate)
        return min(bisect.bisect_left(self.rates, rate), len(self.rates) - 1)

    def decision_for(self, arrival_rate: float) -> ThresholdDecision:
        """The decision of the nearest tabulated rate at or above ``arrival_rate``
        (conservative), or of the highest rate beyond the table."""
        return self.decisions[self.index_for(arrival_rate)]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "loss_target": self.loss_target,
                "capacity": self.capacity, "exit_names": list(self.exit_names),
                "entries": [{"arrival_rate": r, "thresholds": list(d.thresholds),
                             "accuracy": a, "loss_probability": lp, "solve_time_s": d.solve_time_s}
                            for r, d, a, lp in zip(self.rates, self.decisions, self.accuracy,
                                                   self.loss_probability)]}

    def save(self, path: str | Path) -> Path:
        """Write the lookup as JSON, atomically (readers never see half a file)."""
        path = v.output_file("BayesLookup.save", "path", path)
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> BayesLookup:
        """Read a lookup written by :meth:`save`; a bad file raises one ScenarioError
        line naming the file, the field, the rule and the value."""
        from ..io._files import ScenarioError, _from_validation, read_text
        file = v.path("BayesLookup.load", "path", path)
        try:
            data = json.loads(read_text(file))
        except json.JSONDecodeError as err:
            raise ScenarioError(f"{file}: is not valid JSON: {err.msg} at line {err.lineno} "
                                f"column {err.colno}.") from None
        if not isinstance(data, dict):
            raise ScenarioError(f"{file}: (top level): must be a mapping (an edgeperf bayes "
                                f"lookup). Got {type(data).__name__}.")
        try:
            spec = _LookupSpec.model_validate(data)
        except ValidationError as err:
            raise _from_validation(str(file), err) from None
        try:
            return spec.build()
        except InvalidParameterError as err:
            field = _FILE_FIELDS.get(getattr(err, "parameter", ""), "(top level)")
            raise ScenarioError(f"{file}: {field}: {err}") from None


def _progress(rates: list[float], show: bool):  # noqa: ANN202 - an iterable of rates
    if not show:
        return rates
    from rich.console import Console
    from rich.progress import track
    return track(rates, description="bayes lookup", transient=True,
                 console=Console(stderr=True))


class _EntrySpec(BaseModel):
    model_config = {"extra": "forbid", "strict": True}
    arrival_rate: float
    thresholds: list[float]
    accuracy: float
    loss_probability: float
    solve_time_s: float = 0.0


class _LookupSpec(BaseModel):
    model_config = {"extra": "forbid", "strict": True}
    format: Literal["edgeperf-bayes-lookup"]
    version: Literal[1]
    loss_target: float
    capacity: int
    exit_names: list[str]
    entries: list[_EntrySpec]

    def build(self) -> BayesLookup:
        decisions = tuple(ThresholdDecision(policy="bayes", thresholds=tuple(e.thresholds),
                                            solve_time_s=e.solve_time_s) for e in self.entries)
        return BayesLookup(rates=tuple(e.arrival_rate for e in self.entries), decisions=decisions,
                           accuracy=tuple(e.accuracy for e in self.entries),
                           loss_probability=tuple(e.loss_probability for e in self.entries),
                           loss_target=self.loss_target, capacity=self.capacity,
                           exit_names=tuple(self.exit_names))


#: BayesLookup's parameters as the file spells them, for load's messages
_FILE_FIELDS = {"rates": "entries.arrival_rate", "decisions": "entries.thresholds",
                "accuracy": "entries.accuracy", "loss_probability": "entries.loss_probability",
                "loss_target": "loss_target", "capacity": "capacity", "exit_names": "exit_names"}


# ---------------------------------------------------------------------- online


class BayesLookupPolicy:
    """An online threshold policy driven by a :class:`BayesLookup`.

    When a job starts, the arrival rate is estimated from the station's last
    ``window`` arrivals (k arrival times spanning ``d`` seconds give
    (k - 1) / d); the lookup's decision for that estimate (see
    :meth:`BayesLookup.decision_for`) is applied to the job's confidence row:
    it leaves at the first exit whose confidence reaches its threshold, at the
    final exit otherwise. With fewer than two arrivals seen, the highest
    rate's (most conservative) thresholds are used.

    A state shows the station's last 64 arrivals; the policy keeps its own
    history of the last ``window`` from them. 64 arrivals estimate a rate
    within about +-12 % (one standard deviation), and since a noisy estimate
    often picks a higher rate's entry, the policy then runs well below the
    target (less accurate than the lookup's decision). The default 1024
    (+-3 %, about 4 s of history at 250 jobs/s) follows the offline decision
    closely; a smaller window reacts faster to a change of load.

    The confidence row is ``state.confidence`` (the simulator passes it when
    its ``exits`` policy carries the exit table). When a state has none, a
    row is drawn from ``table`` with this policy's own generator (``seed``).
    ``used`` counts the decisions taken per tabulated rate.
    """

    def __init__(self, lookup: BayesLookup, table: ExitTable | None = None, *,
                 window: int = 1024, seed: int = 0) -> None:
        owner = "BayesLookupPolicy"
        v.instance(owner, "lookup", lookup, BayesLookup, "a BayesLookup")
        n_exits = len(lookup.exit_names)
        if table is not None and (not isinstance(table, ExitTable) or table.n_exits != n_exits):
            raise v.fail(owner, "table", f"None or an ExitTable with {n_exits} exits",
                         getattr(table, "n_exits", type(table).__name__))
        self.lookup, self.table = lookup, table
        self.window = v.integer(owner, "window", window, low=2)
        self._rng = np.random.default_rng(v.integer(owner, "seed", seed, low=0))
        self._thresholds = [np.asarray(d.thresholds, dtype=float) for d in lookup.decisions]
        self.n_exits = n_exits
        self.used: Counter[float] = Counter()
        self._arrivals: deque[float] = deque(maxlen=self.window)

    def remember(self, recent_arrivals: Sequence[float]) -> None:
        """Add the arrival times not seen yet (a state shows the last 64 at most)
        to the policy's own history; time running backwards (a new replication)
        starts it afresh."""
        seen = self._arrivals
        if not recent_arrivals:
            return
        if seen and recent_arrivals[-1] < seen[-1]:
            seen.clear()
        last = seen[-1] if seen else -np.inf
        i = len(recent_arrivals)
        while i > 0 and recent_arrivals[i - 1] > last:
            i -= 1
        seen.extend(recent_arrivals[i:])

    def estimate_rate(self) -> float | None:
        """Arrivals per second over the remembered arrival times (k times spanning
        d seconds give (k - 1) / d), or None with fewer than two."""
        times = self._arrivals
        span = times[-1] - times[0] if len(times) >= 2 else 0.0
        return (len(times) - 1) / span if span > 0 else None

    def decide(self, state) -> int:  # noqa: ANN001 - edgeperf.sim.JobState
        if state.n_exits != self.n_exits:
            raise v.fail("BayesLookupPolicy", "lookup", f"a lookup for {state.n_exits} exits "
                         f"(chain {state.chain!r})", self.n_exits)
        self.remember(state.recent_arrivals)
        rate = self.estimate_rate()
        i = len(self.lookup.rates) - 1 if rate is None else self.lookup.index_for(rate)
        self.used[self.lookup.rates[i]] += 1
        return self._exit(self._confidence(state), self._thresholds[i])

    def _confidence(self, state) -> np.ndarray:  # noqa: ANN001
        if state.confidence is not None:
            return np.asarray(state.confidence)
        if self.table is None:
            raise v.fail("BayesLookupPolicy", "table", "an ExitTable when the simulator passes "
                         "no confidence rows (give it exits=StaticExits(table=...))", None)
        return self.table.confidence[self._rng.integers(self.table.n_samples)]

    def _exit(self, confidence: np.ndarray, thresholds: np.ndarray) -> int:
        hit = np.flatnonzero(confidence[:-1] >= thresholds)
        return int(hit[0]) if len(hit) else self.n_exits - 1

    def observe(self, outcome) -> None:  # noqa: ANN001 - edgeperf.sim.JobOutcome
        """Nothing to learn: the rate comes from the arrivals the states show."""
