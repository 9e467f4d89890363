"""UCB bandits over confidence thresholds (AdaEE, online), plain and queue-aware.

AdaEE (Pacheco et al., ICC 2023) learns the early-exit threshold online with
UCB1: each arm is a threshold α, applied at every early exit; a job leaves at
the first exit whose confidence reaches α (the final exit otherwise). No labels
are needed: the reward trades the confidence a job gains by going deeper
against the time that costs. Our simulator fixes a job's exit when it starts
its first service, and the job's row of the exit table holds the confidence
of every exit, so ``decide`` picks the arm, computes the exit and the reward
from that row at once, and the arm is credited when ``observe`` reports the
job's fate (so the reward, as on a real device, arrives after the job ran).

The reward, defined once here (:func:`adaee_reward`) and used for learning,
for the exact expected rewards and for the regret. For a job whose exit-table
row is ``c`` (confidences of exits 0..E-1), leaving at exit ``e``:

- confidences are first made valid: NaN counts as 0, the rest is clipped
  to [0, 1] (a table's rows already are; a runtime's need not be);
- ``gain = clip(c[e] - c[0], 0, 1)``: AdaEE's ``max(ΔC, 0)``, the confidence
  gained over the first exit, never negative (a deeper exit that is less sure
  gains nothing) and at most 1. It is an element-wise ``np.clip``, tested on
  arrays: a ``max(x, 0)`` that does not clip is a known mistake of the
  public AdaEE code (on an array, ``np.max(x, 0)`` is a reduction);
- ``overhead = clip((m[e] - m[0]) / (m[E-1] - m[0]), 0, 1)``: the extra
  service time over leaving at the first exit, as a share of the most extra
  time (``m`` the problem's ``exit_means``; 0 when every exit takes as long).
  AdaEE's offloading overhead ``o``, with one value per exit;
- ``reward = clip(gain - w * overhead, -1, 1)``, ``w >= 0`` the overhead
  weight. A job at the first exit gets 0, as in AdaEE. With ``w <= 1`` the
  value lies in [-1, 1] already; a larger ``w`` (the queue-aware variant under
  a long queue) saturates at -1, which keeps UCB's bounded-reward assumption:
  the clip is real, not a reduction.
- a job lost after its exit was decided (a later station of a chain dropped
  it) gets ``LOST_REWARD`` = -1, the worst reward; a job lost before any
  decision (at an arrival) is credited to no arm and only counted.

The *queue-aware* variant (:class:`QueueAwareUCB`) keeps one bandit per
bucket of ``jobs_present`` (this job included). Going deeper delays the job
itself and every job queued behind it, so the time overhead of a bucket is
weighted by the number of jobs present at its lower edge: ``w_b = w * n_b``
(1, 2, 4 with the default edges). Under a long queue it thus learns lower
thresholds, and sheds load where plain UCB keeps its one threshold.

Regret: every decision records the gap between the best arm's exact expected
reward and the chosen arm's, both computed from a reference exit table (the
problem's, or the one given to :meth:`ThresholdUCB.set_reference` after a
shift), per bucket for the queue-aware variant; :meth:`regret_curve` is their
running sum (the exact pseudo-regret against the best fixed arm, per context).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import _validation as v
from ..model import ExitTable
from ..sim._policy import JobOutcome, JobState
from ._problem import ExitProblem

__all__ = ["ThresholdUCB", "QueueAwareUCB", "adaee_reward", "overhead_shares", "threshold_exits",
           "ARMS", "LOST_REWARD"]

#: Default arms: thresholds 0 (every job leaves at the first exit) to 1.
ARMS = tuple(round(0.1 * i, 1) for i in range(11))
#: Reward credited to an arm whose job was lost after its exit was decided.
LOST_REWARD = -1.0


def _valid_confidences(confidence: np.ndarray) -> np.ndarray:
    """Confidences as the reward and exit rule read them: NaN -> 0, clipped to [0, 1]."""
    c = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)  # a new array: +-inf clipped
    c[np.isnan(c)] = 0.0
    return c


def threshold_exits(confidence: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    """The exit of each row ``[..., E]`` under each single threshold ``[A]``: the
    first early exit whose confidence reaches it, the final exit otherwise.
    Returns ``[..., A]`` (the rule of ``ExitTable.exits_for``, one threshold for
    every exit)."""
    return _exits(_valid_confidences(confidence), np.asarray(thresholds, dtype=float))


def _exits(c: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    hit = c[..., None, :-1] >= alpha[:, None]  # [..., A, E-1]
    return np.where(hit.any(axis=-1), hit.argmax(axis=-1), c.shape[-1] - 1)


def overhead_shares(exit_means: Sequence[float] | np.ndarray) -> np.ndarray:
    """Each exit's extra mean service time over the first exit, as a share of
    the last exit's, clipped to [0, 1] (zeros when all take as long)."""
    m = np.asarray(exit_means, dtype=float)
    span = m[-1] - m[0]
    if not span > 0:
        return np.zeros(len(m))
    with np.errstate(over="ignore"):  # a subnormal span: the share is clipped to 1 anyway
        return np.clip((m - m[0]) / span, 0.0, 1.0)


def adaee_reward(confidence: np.ndarray, exits: np.ndarray, exit_means: Sequence[float],
                 overhead_weight: float) -> np.ndarray:
    """The reward of leaving at ``exits`` for rows ``confidence [..., E]``:
    ``clip(clip(c[e] - c[0], 0, 1) - overhead_weight * overhead[e], -1, 1)``,
    ``overhead`` the :func:`overhead_shares` of ``exit_means``.

    ``exits`` has the rows' leading shape, optionally with one more axis (one
    exit per arm). Always in [-1, 1], whatever the confidences (NaN, inf).
    """
    owner = "adaee_reward"
    w = v.non_negative(owner, "overhead_weight", overhead_weight)
    try:
        c = _valid_confidences(confidence)
    except (TypeError, ValueError):
        c = np.empty(0)  # refused just below
    if c.ndim < 1 or c.shape[-1] < 1:
        raise v.fail(owner, "confidence", "rows of confidences [..., exits]", v.brief(confidence))
    try:
        means = np.asarray(exit_means, dtype=float)
    except (TypeError, ValueError):
        means = np.empty(0)  # refused just below
    if means.shape != c.shape[-1:] or not np.all(np.isfinite(means)):
        raise v.fail(owner, "exit_means", f"{c.shape[-1]} finite numbers, one per exit",
                     exit_means)
    e = np.asarray(exits)
    if not np.issubdtype(e.dtype, np.integer) or (e.size and (e.min() < 0
                                                              or e.max() >= c.shape[-1])):
        raise v.fail(owner, "exits", f"exit indices in [0, {c.shape[-1]})", exits)
    lead = c.shape[:-1]
    if e.shape[:len(lead)] != lead or e.ndim > len(lead) + 1:
        raise v.fail(owner, "exits", f"an array of the rows' shape {lead}, or with one more "
                     "axis (an exit per arm)", f"shape {e.shape}")
    return _reward(c, e.astype(np.int64), overhead_shares(means), w)


def _reward(c: np.ndarray, e: np.ndarray, overhead: np.ndarray, weight: float) -> np.ndarray:
    """:func:`adaee_reward` of valid confidences ``c``."""
    rows = c[..., None, :] if e.ndim > c.ndim - 1 else c  # exits with an arm axis
    at_exit = np.take_along_axis(rows, e[..., None], axis=-1)[..., 0]
    gain = np.clip(at_exit - rows[..., 0], 0.0, 1.0)
    return np.clip(gain - weight * overhead[e], -1.0, 1.0)


class ThresholdUCB:
    """AdaEE: UCB1 over one confidence threshold for every early exit.

    ``arms`` are the thresholds (default 0, 0.1, ..., 1: a threshold of 0 lets
    the bandit send every job to the first exit when the overhead weighs most).
    ``overhead_weight`` (w >= 0) prices the extra service time against the
    confidence gain: raise it with the load. ``exploration`` (c >= 0) scales
    UCB1's bonus ``c * sqrt(ln T / n_a)``: the rewards may span [-1, 1], but
    one job's reward varies by about 0.2 (its standard deviation per arm on
    the synthetic test table), and c of that order explores enough, where
    UCB1's worst-case ``sqrt(2) * range`` (2.8) would sample poor arms for
    far longer; a much lower c risks settling on a near-best arm. ``discount`` (gamma in
    (0, 1]) multiplies counts and reward sums by gamma at every step
    (discounted UCB, Garivier & Moulines 2011), so old rewards fade and the
    bandit follows a shift within a few ``1 / (1 - gamma)`` jobs; 1 is plain
    UCB1 (AdaEE), best on a stationary stream but slow to unlearn one.

    Every arm is tried once before any is repeated; ties are broken at random
    by the policy's own generator (``seed``). Counts are discounted per
    decision, reward sums per observation; means of arms whose jobs have not
    been observed yet count as 0. ``observe`` must be called for the decided
    jobs (the simulator's event engine does). The exit table's rows reach
    ``decide`` through ``state.confidence``: simulate with
    ``exits=StaticExits(table=problem.table)``.
    """

    _owner = "ThresholdUCB"

    def __init__(self, problem: ExitProblem, *, arms: Sequence[float] = ARMS,
                 overhead_weight: float = 0.3, exploration: float = 0.2,
                 discount: float = 1.0, seed: int = 0) -> None:
        owner = self._owner
        v.instance(owner, "problem", problem, ExitProblem, "an ExitProblem")
        self.arms = _arms(owner, arms)
        self.exploration = v.non_negative(owner, "exploration", exploration)
        self.discount = v.real(owner, "discount", discount, low=0.0, low_open=True, high=1.0)
        self.n_exits = problem.table.n_exits
        self.overhead = overhead_shares(problem.exit_means)
        self._rng = np.random.default_rng(v.integer(owner, "seed", seed, low=0))
        shape = (self.n_contexts, len(self.arms))
        self._tried = np.zeros(shape, dtype=bool)
        self._untried = [len(self.arms)] * self.n_contexts
        self._pulls = np.zeros(shape)  # discounted, per decision
        self._obs_n = np.zeros(shape)  # discounted, per observation
        self._obs_sum = np.zeros(shape)
        self._pending: dict[tuple[str, int], tuple[int, int, float]] = {}
        self._gaps: list[float] = []
        self._chosen: list[int] = []
        self._contexts: list[int] = []
        self.lost_undecided = 0
        self._reference = problem.table
        self.set_overhead_weight(overhead_weight)

    # --- contexts: one for plain UCB -------------------------------------------------------
    n_contexts = 1

    def context(self, state: JobState) -> int:
        """The bandit (context) that decides for this job: always 0 here."""
        return 0

    def context_weights(self) -> np.ndarray:
        """The overhead weight of each context."""
        return np.array([self.overhead_weight])

    # --- the reference the regret is measured against ---------------------------------------
    def set_overhead_weight(self, overhead_weight: float) -> None:
        """Change w from the next decision on. Rewards already observed keep their
        old w: with ``discount`` < 1 they fade, with 1 they weigh on for long."""
        self.overhead_weight = v.non_negative(self._owner, "overhead_weight", overhead_weight)
        self.set_reference(self._reference)

    def set_reference(self, table: ExitTable) -> None:
        """The exit table the regret of the next decisions is measured against
        (call it when the input stream shifts). It does not change what the
        bandit knows or does."""
        v.instance(self._owner, "table", table, ExitTable, f"an ExitTable with {self.n_exits} "
                   "exits")
        self._weights = self.context_weights()
        self._expected = self.expected_rewards(table)
        self._reference = table
        self._best = self._expected.max(axis=1)

    def expected_rewards(self, table: ExitTable | None = None) -> np.ndarray:
        """Exact expected reward of every arm in every context, ``[contexts, arms]``:
        the mean of :func:`adaee_reward` over the table's rows (default: the reference)."""
        table = self._reference if table is None else table
        if not isinstance(table, ExitTable) or table.n_exits != self.n_exits:
            raise v.fail(self._owner, "table", f"an ExitTable with {self.n_exits} exits",
                         getattr(table, "n_exits", type(table).__name__))
        conf = _valid_confidences(table.confidence)
        exits = _exits(conf, self.arms)  # [N, A]
        return np.array([_reward(conf, exits, self.overhead, w).mean(axis=0)
                         for w in self.context_weights()])

    def best_thresholds(self, table: ExitTable | None = None) -> np.ndarray:
        """The arm with the highest exact expected reward, per context."""
        return self.arms[np.argmax(self.expected_rewards(table), axis=1)]

    # --- the online policy -----------------------------------------------------------------
    def decide(self, state: JobState) -> int:
        row = _valid_confidences(self._row(state))
        ctx = self.context(state)
        arm = self._select(ctx)
        exit_ = _exits(row, self.arms[arm:arm + 1])[0]
        reward = float(_reward(row, exit_, self.overhead, self._weights[ctx]))
        exit_ = int(exit_)
        self._pending[(state.chain, state.job)] = (ctx, arm, reward)
        self._gaps.append(float(self._best[ctx] - self._expected[ctx, arm]))
        self._chosen.append(arm)
        self._contexts.append(ctx)
        return exit_

    def observe(self, outcome: JobOutcome) -> None:
        v.instance(f"{self._owner}.observe", "outcome", outcome, JobOutcome, "a JobOutcome")
        pending = self._pending.pop((outcome.chain, outcome.job), None)
        if pending is None:
            if outcome.exit is None:
                self.lost_undecided += 1
            return
        ctx, arm, reward = pending
        if not outcome.completed:
            reward = LOST_REWARD
        if self.discount < 1.0:
            self._obs_n[ctx] *= self.discount
            self._obs_sum[ctx] *= self.discount
        self._obs_n[ctx, arm] += 1.0
        self._obs_sum[ctx, arm] += reward

    def _row(self, state: JobState) -> np.ndarray:
        owner = f"{self._owner}.decide"
        if not isinstance(state, JobState) or state.confidence is None:
            raise v.fail(owner, "state", "a JobState carrying the job's exit-table row "
                         "(simulate with exits=StaticExits(table=...))",
                         getattr(state, "confidence", type(state).__name__))
        row = np.asarray(state.confidence, dtype=float)
        if row.shape != (self.n_exits,) or state.n_exits != self.n_exits:
            raise v.fail(owner, "state", f"a confidence row of the problem's {self.n_exits} "
                         "exits", row.shape)
        return row

    def _select(self, ctx: int) -> int:
        """UCB1 in context ``ctx``: untried arms first, then the highest index."""
        if self._untried[ctx]:
            arm = int(self._rng.choice(np.flatnonzero(~self._tried[ctx])))
            self._tried[ctx, arm] = True
            self._untried[ctx] -= 1
        else:
            index = self._index(ctx)
            best = np.flatnonzero(index == index.max())
            arm = int(best[0] if len(best) == 1 else self._rng.choice(best))
        if self.discount < 1.0:
            self._pulls[ctx] *= self.discount
        self._pulls[ctx, arm] += 1.0
        return arm

    def means(self) -> np.ndarray:
        """The (discounted) mean observed reward of every arm, ``[contexts, arms]``
        (0 for arms with no observed job yet)."""
        n = self._obs_n
        return np.divide(self._obs_sum, n, out=np.zeros_like(n), where=n > 0)

    def ucb_index(self, ctx: int = 0) -> np.ndarray:
        """``mean + c * sqrt(ln T / n)`` of every arm of a context, T the sum of
        its counts n (inf where n is 0)."""
        if not v.is_int(ctx) or not 0 <= ctx < self.n_contexts:
            raise v.fail(f"{self._owner}.ucb_index", "ctx", f"a context index from 0 to "
                         f"{self.n_contexts - 1}", ctx)
        return self._index(int(ctx))

    def _index(self, ctx: int) -> np.ndarray:
        n, obs = self._pulls[ctx], self._obs_n[ctx]
        mean = np.divide(self._obs_sum[ctx], obs, out=np.zeros_like(obs), where=obs > 0)
        log_t = math.log(max(float(n.sum()), 1.0))
        with np.errstate(divide="ignore"):
            bonus = self.exploration * np.sqrt(log_t / n)
        return mean + np.where(n > 0, bonus, np.inf)

    # --- what it did ---------------------------------------------------------------------
    def regret_curve(self) -> np.ndarray:
        """Cumulative exact pseudo-regret after each decision."""
        return np.cumsum(np.asarray(self._gaps, dtype=float))

    def choices(self) -> np.ndarray:
        """The threshold chosen for each decided job, in decision order."""
        return self.arms[np.asarray(self._chosen, dtype=np.int64)]

    def decision_contexts(self) -> np.ndarray:
        """The context of each decision, in decision order."""
        return np.asarray(self._contexts, dtype=np.int64)

    def pull_counts(self) -> np.ndarray:
        """Undiscounted number of decisions per arm, ``[contexts, arms]``."""
        counts = np.zeros((self.n_contexts, len(self.arms)), dtype=np.int64)
        np.add.at(counts, (self.decision_contexts(), np.asarray(self._chosen, dtype=np.int64)), 1)
        return counts


class QueueAwareUCB(ThresholdUCB):
    """AdaEE with one UCB per queue-length bucket.

    ``bucket_edges`` (increasing ints >= 2) cut ``jobs_present`` (this job
    included) into buckets: the default (2, 4) gives {1}, {2, 3}, {>= 4}.
    Bucket b weights the time overhead by the jobs present at its lower edge
    ``n_b`` (1, 2, 4): ``w_b = overhead_weight * n_b``, since the extra time
    delays the job and each one queued behind it.
    """

    _owner = "QueueAwareUCB"

    def __init__(self, problem: ExitProblem, *, bucket_edges: Sequence[int] = (2, 4),
                 **options: object) -> None:
        self.bucket_edges = _edges(self._owner, bucket_edges)
        self.n_contexts = len(self.bucket_edges) + 1
        super().__init__(problem, **options)  # type: ignore[arg-type]

    def context(self, state: JobState) -> int:
        return int(np.searchsorted(self.bucket_edges, state.jobs_present, side="right"))

    def context_weights(self) -> np.ndarray:
        lower = np.concatenate(([1], self.bucket_edges)).astype(float)
        return self.overhead_weight * lower


def _arms(owner: str, arms: Sequence[float]) -> np.ndarray:
    rule = "a non-empty list of distinct finite thresholds"
    try:
        values = np.asarray(arms, dtype=float)
    except (TypeError, ValueError):
        raise v.fail(owner, "arms", rule, arms) from None
    if values.ndim != 1 or len(values) == 0 or not np.all(np.isfinite(values)) \
            or len(np.unique(values)) != len(values):
        raise v.fail(owner, "arms", rule, arms)
    return values


def _edges(owner: str, edges: Sequence[int]) -> np.ndarray:
    rule = "a non-empty increasing list of ints >= 2"
    values = list(edges) if isinstance(edges, (list, tuple, np.ndarray)) else None
    if not values or any(not isinstance(x, (int, np.integer)) or isinstance(x, bool) or x < 2
                         for x in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise v.fail(owner, "bucket_edges", rule, edges)
    return np.asarray(values, dtype=np.int64)
