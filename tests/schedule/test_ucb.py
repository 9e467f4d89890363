"""The AdaEE-style UCB bandits: the reward and its clips, convergence, regret,
adaptation after a shift, the queue-aware variant under heavy load."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from exit_problems import make_problem
from edgeperf.exceptions import InvalidParameterError
from edgeperf.model import ExitTable
from edgeperf.schedule import static
from edgeperf.schedule._problem import simulate_decision
from edgeperf.schedule._ucb import (ARMS, LOST_REWARD, QueueAwareUCB, ThresholdUCB, adaee_reward,
                                    overhead_shares, threshold_exits)
from edgeperf.sim import JobOutcome, JobState, StaticExits, simulate

MEANS = np.array([0.002, 0.0035, 0.005, 0.007])  # the synthetic problem's exit means


def state(row, job=0, jobs_present=1, chain="c"):
    return JobState(time=0.0, chain=chain, job=job, station="device", jobs_present=jobs_present,
                    waiting=jobs_present - 1, recent_arrivals=(), queue_lengths={},
                    n_exits=len(row), confidence=np.asarray(row, dtype=float))


def outcome(job, exit_, completed=True, chain="c"):
    return JobOutcome(time=0.0, chain=chain, job=job, exit=exit_, completed=completed,
                      response_time=0.0 if completed else None, correct=None,
                      lost_at=None if completed else "device")


def play(policy, table, n, rng, start=0, jobs_present=1):
    """A stationary stream of jobs drawn from ``table``, each observed at once."""
    for k, row in enumerate(rng.integers(0, table.n_samples, n)):
        e = policy.decide(state(table.confidence[row], start + k, jobs_present))
        policy.observe(outcome(start + k, e))


def good_share(policy, choices, table=None, tol=0.02):
    """Share of choices among the arms within ``tol`` of the best expected reward."""
    mu = policy.expected_rewards(table)[0]
    return float(np.isin(choices, policy.arms[mu >= mu.max() - tol]).mean())


# --- the reward, defined once ---------------------------------------------------------------

def test_reward_is_the_clipped_gain_minus_the_weighted_time_share():
    row = np.array([0.6, 0.7, 0.9, 0.95])
    o = overhead_shares(MEANS)
    np.testing.assert_allclose(o, [0.0, 0.3, 0.6, 1.0])
    for e in range(4):
        expected = min(max(row[e] - row[0], 0.0), 1.0) - 0.3 * o[e]
        assert adaee_reward(row, np.int64(e), MEANS, 0.3) == pytest.approx(expected)
    assert adaee_reward(row, np.int64(0), MEANS, 5.0) == 0.0  # the first exit earns 0, as in AdaEE


def test_the_gain_clip_is_element_wise_not_a_reduction():
    # AdaEE's public code wrote max(x, 0) on an array: a reduction, not a clip
    rows = np.array([[0.9, 0.5, 0.4, 0.3],    # deeper exits less sure: the gain is 0, not < 0
                     [0.2, 0.5, 0.6, 0.99],
                     [0.5, 0.1, 0.2, 0.1]])
    exits = np.array([3, 3, 1])
    r = adaee_reward(rows, exits, MEANS, 0.0)
    np.testing.assert_allclose(r, [0.0, 0.79, 0.0], atol=1e-12)
    assert r.shape == (3,)


def test_the_outer_clip_saturates_at_minus_one():
    row = np.array([0.1, 0.1, 0.1, 0.2])
    assert adaee_reward(row, np.int64(3), MEANS, 4.0) == -1.0  # 0.1 - 4, clipped
    assert adaee_reward(row, np.int64(1), MEANS, 4.0) == -1.0  # 0 - 1.2, clipped
    assert adaee_reward(row, np.int64(3), MEANS, 1.0) == pytest.approx(-0.9)  # inside: kept


def test_invalid_confidences_are_read_as_nan_0_and_clipped_to_the_unit_interval():
    row = np.array([np.nan, 7.0, -3.0, np.inf])
    assert adaee_reward(row, np.int64(1), MEANS, 0.0) == 1.0  # 1 - 0
    assert adaee_reward(row, np.int64(2), MEANS, 0.0) == 0.0
    np.testing.assert_array_equal(threshold_exits(row, [0.5, 1.0]), [1, 1])


@given(conf=hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 5)),
                       elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
       weight=st.floats(0.0, 1e300),
       means=st.lists(st.floats(-1e6, 1e6), min_size=5, max_size=5),
       data=st.data())
def test_rewards_never_leave_minus_one_to_one_whatever_the_input(conf, weight, means, data):
    n, e = conf.shape
    exits = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, e - 1)))
    r = adaee_reward(conf, exits, np.asarray(means[:e]), weight)
    assert r.shape == (n,)
    assert np.all((r >= -1.0) & (r <= 1.0))  # NaN fails this too


def test_threshold_exits_follow_the_exit_table_rule(problem):
    table = problem.table
    exits = threshold_exits(table.confidence, ARMS)
    for a, alpha in enumerate(ARMS):
        np.testing.assert_array_equal(exits[:, a], table.exits_for([alpha] * 3))


def test_expected_rewards_are_the_table_means_of_the_reward(problem):
    policy = QueueAwareUCB(problem, overhead_weight=0.3)
    table = ExitTable(problem.table.confidence[:300], problem.table.correct[:300])
    got = policy.expected_rewards(table)
    assert got.shape == (3, len(ARMS))
    for ctx, w in enumerate([0.3, 0.6, 1.2]):
        for a, alpha in enumerate(ARMS):
            exits = table.exits_for([alpha] * 3)
            direct = np.mean([adaee_reward(table.confidence[i], np.int64(exits[i]), MEANS, w)
                              for i in range(table.n_samples)])
            assert got[ctx, a] == pytest.approx(direct, abs=1e-12)


# --- UCB1 on a stationary stream ------------------------------------------------------------

def test_every_arm_is_tried_once_before_any_is_repeated(problem):
    policy = ThresholdUCB(problem, seed=4)
    play(policy, problem.table, len(ARMS), np.random.default_rng(0))
    assert sorted(policy.choices()) == sorted(ARMS)
    assert list(policy.choices()) != list(ARMS)  # the order is the seeded draw's


def test_ucb_concentrates_on_the_best_arm_with_sublinear_regret(problem):
    policy = ThresholdUCB(problem, seed=0)  # overhead weight 0.3: the best threshold is 0.8
    assert policy.best_thresholds()[0] == 0.8
    play(policy, problem.table, 30_000, np.random.default_rng(1))
    counts = policy.pull_counts()[0]
    share = counts[list(ARMS).index(0.8)] / counts.sum()
    regret = policy.regret_curve()
    rate = [regret[t - 1] / t for t in (1000, 3000, 10_000, 30_000)]
    print(f"share of the best arm {share:.2f}; regret/t {np.round(rate, 4)}")
    assert share >= 0.6 and counts.argmax() == list(ARMS).index(0.8)
    assert all(b < a for a, b in zip(rate, rate[1:]))
    assert rate[-1] < 0.25 * rate[0]
    # the pull share of the best arm grows: the last third beats the first
    best = policy.choices() == 0.8
    assert best[20_000:].mean() > best[:10_000].mean()


def test_regret_is_zero_for_the_best_arm_and_the_gap_otherwise(problem):
    policy = ThresholdUCB(problem, arms=(0.8,), seed=0)
    play(policy, problem.table, 50, np.random.default_rng(0))
    np.testing.assert_array_equal(policy.regret_curve(), np.zeros(50))
    two = ThresholdUCB(problem, arms=(0.8, 0.0), exploration=0.0, seed=0)
    mu = two.expected_rewards()[0]
    play(two, problem.table, 2, np.random.default_rng(0))
    assert two.regret_curve()[-1] == pytest.approx(mu[0] - mu[1])


def test_lost_jobs_are_credited_the_worst_reward(problem):
    policy = ThresholdUCB(problem, arms=(0.5,))
    e = policy.decide(state(problem.table.confidence[0], job=7))
    policy.observe(outcome(7, e, completed=False))
    assert policy.means()[0, 0] == LOST_REWARD
    policy.observe(outcome(8, None, completed=False))  # lost before any decision
    assert policy.lost_undecided == 1 and policy.pull_counts().sum() == 1


# --- shifts -------------------------------------------------------------------------------

T0, AFTER = 6000, 5000


def test_it_moves_to_the_new_best_arm_after_the_inputs_shift(problem):
    # distorted inputs: every confidence drops by 0.3, the best threshold from 0.8 to 0.5
    lower = ExitTable(np.clip(problem.table.confidence - 0.3, 0, 1), problem.table.correct)
    policy = ThresholdUCB(problem, exploration=0.1, discount=0.999, seed=0)
    rng = np.random.default_rng(2)
    play(policy, problem.table, T0, rng)
    before = good_share(policy, policy.choices()[T0 - 2000:])
    policy.set_reference(lower)  # only the regret's yardstick: the bandit is not told
    play(policy, lower, AFTER, rng, start=T0)
    after = policy.choices()[T0 + 1000:]
    share, old = good_share(policy, after), float(np.mean(after == 0.8))
    print(f"near-best share before {before:.2f}, 1000 jobs after the shift {share:.2f}; "
          f"old best {old:.2f}; best now {policy.best_thresholds()}")
    assert policy.best_thresholds()[0] == 0.5
    # over 8 seeds the share is 0.70-0.88 and the slope 0.009-0.020: this seed is the worst
    assert before >= 0.7 and share >= 0.6 and old < 0.1
    slope = np.diff(policy.regret_curve()[[T0 + 1000, T0 + AFTER - 1]])[0] / (AFTER - 1001)
    assert slope < 0.03  # regret per job, against 0.075 for staying on the old best arm


def test_it_follows_a_change_of_overhead_weight_only_when_discounting(problem):
    shares = {}
    for discount in (0.999, 1.0):
        policy = ThresholdUCB(problem, exploration=0.1, discount=discount, seed=0)
        rng = np.random.default_rng(3)
        play(policy, problem.table, T0, rng)
        policy.set_overhead_weight(1.0)  # time now weighs most: the best threshold is 0
        play(policy, problem.table, AFTER, rng, start=T0)
        assert policy.best_thresholds()[0] == 0.0
        shares[discount] = good_share(policy, policy.choices()[T0 + 1000:])
    print(f"near-best share after the change: {shares}")
    assert shares[0.999] >= 0.7
    assert shares[1.0] < 0.3  # plain UCB1 is still unlearning 6000 jobs of the old weight


# --- the queue-aware variant under heavy load ---------------------------------------------------

def test_queue_buckets_weigh_the_overhead_by_the_jobs_present(problem):
    policy = QueueAwareUCB(problem, overhead_weight=0.3, bucket_edges=(2, 4))
    assert [policy.context(state([0.5] * 4, jobs_present=n)) for n in (1, 2, 3, 4, 9)] \
        == [0, 1, 1, 2, 2]
    np.testing.assert_allclose(policy.context_weights(), [0.3, 0.6, 1.2])
    assert list(policy.best_thresholds()) == [0.8, 0.6, 0.0]


def test_queue_aware_ucb_sheds_load_where_ucb_and_static_do_not():
    heavy = make_problem(rate=200.0)  # at threshold 0.8 the load is 1.06
    options = {"exits": StaticExits(table=heavy.table), "engine": "event", "jobs": 8000,
               "replications": 4, "seed": 1}
    # one policy object learns on through the replications: their spread is a rough CI
    ucb, aware = ThresholdUCB(heavy, seed=0), QueueAwareUCB(heavy, seed=0)
    m_ucb = simulate(heavy.system(), policies=ucb, **options)
    m_aware = simulate(heavy.system(), policies=aware, **options)
    m_static = simulate_decision(heavy, static(heavy), jobs=8000, replications=4, seed=1)
    rows = {"static 0.9": m_static, "ucb": m_ucb, "queue-aware ucb": m_aware}
    for name, m in rows.items():
        print(f"{name}: loss {m.loss_probability:.4f} ± {m.half_widths['loss_probability']:.4f}"
              f", accuracy {m.accuracy:.3f}")
    ctx, chosen = aware.decision_contexts(), aware.choices()
    mean_threshold = [chosen[ctx == k].mean() for k in range(3)]
    print("queue-aware mean threshold by bucket {1}, {2,3}, {>=4}:", np.round(mean_threshold, 2))
    assert mean_threshold[2] < mean_threshold[1] < mean_threshold[0]
    assert mean_threshold[2] < 0.2 < 0.7 < mean_threshold[0]
    # the most pulled arm of each bucket is near-best (0.6 and 0.7 differ by 0.001 in {2,3})
    mu = aware.expected_rewards()
    learned = aware.pull_counts().argmax(axis=1)
    assert np.all(mu[np.arange(3), learned] >= mu.max(axis=1) - 0.01)
    assert list(aware.arms[learned][[0, 2]]) == [0.8, 0.0]

    def upper(m):
        return m.loss_probability + m.half_widths["loss_probability"]

    def lower(m):
        return m.loss_probability - m.half_widths["loss_probability"]

    assert upper(m_aware) < lower(m_ucb) and upper(m_aware) < lower(m_static)


# --- determinism ------------------------------------------------------------------------------

def test_same_seed_same_choices_and_metrics():
    heavy = make_problem(rate=200.0)
    runs = []
    for seed in (5, 5, 6):
        policy = QueueAwareUCB(heavy, seed=seed)
        m = simulate(heavy.system(), policies=policy, exits=StaticExits(table=heavy.table),
                     engine="event", jobs=1000, replications=1, seed=0)
        runs.append((policy.choices(), m.loss_probability, m.accuracy))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1:] == runs[1][1:]
    assert not np.array_equal(runs[0][0][:11], runs[2][0][:11])  # another seed, another order


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"arms": ()}, "The 'arms' parameter of ThresholdUCB must be a non-empty list of distinct "
                   "finite thresholds. Got ()."),
    ({"arms": (0.5, 0.5)}, "The 'arms' parameter of ThresholdUCB must be a non-empty list of "
                           "distinct finite thresholds. Got (0.5, 0.5)."),
    ({"exploration": -1.0}, "The 'exploration' parameter of ThresholdUCB must be a finite number "
                            ">= 0. Got -1.0."),
    ({"discount": 0.0}, "The 'discount' parameter of ThresholdUCB must be a finite number > 0 "
                        "and <= 1. Got 0.0."),
    ({"overhead_weight": float("nan")}, "The 'overhead_weight' parameter of ThresholdUCB must be "
                                        "a finite number >= 0. Got nan."),
    ({"seed": -1}, "The 'seed' parameter of ThresholdUCB must be an int >= 0. Got -1."),
])
def test_bad_parameters_are_refused(problem, kwargs, message):
    with pytest.raises(InvalidParameterError, match="^" + re.escape(message) + "$"):
        ThresholdUCB(problem, **kwargs)


def test_bad_problem_buckets_states_and_tables_are_refused(problem):
    with pytest.raises(InvalidParameterError, match=r"^The 'problem' parameter of ThresholdUCB "
                       r"must be an ExitProblem\. Got None\.$"):
        ThresholdUCB(None)
    with pytest.raises(InvalidParameterError, match=r"^The 'bucket_edges' parameter of "
                       r"QueueAwareUCB must be a non-empty increasing list of ints >= 2\. "
                       r"Got \(4, 2\)\.$"):
        QueueAwareUCB(problem, bucket_edges=(4, 2))
    policy = ThresholdUCB(problem)
    bare = JobState(time=0.0, chain="c", job=0, station="device", jobs_present=1, waiting=0,
                    recent_arrivals=(), queue_lengths={}, n_exits=4)
    with pytest.raises(InvalidParameterError, match=r"^The 'state' parameter of "
                       r"ThresholdUCB\.decide must be a JobState carrying the job's exit-table "
                       r"row \(simulate with exits=StaticExits\(table=\.\.\.\)\)\. Got None\.$"):
        policy.decide(bare)
    with pytest.raises(InvalidParameterError, match=r"^The 'state' parameter of "
                       r"ThresholdUCB\.decide must be a confidence row of the problem's 4 "
                       r"exits\. Got \(3,\)\.$"):
        policy.decide(state([0.5, 0.5, 0.5]))
    with pytest.raises(InvalidParameterError, match=r"^The 'table' parameter of ThresholdUCB "
                       r"must be an ExitTable with 4 exits\. Got 'str'\.$"):
        policy.set_reference("x")
    with pytest.raises(InvalidParameterError, match=r"^The 'table' parameter of ThresholdUCB "
                       r"must be an ExitTable with 4 exits\. Got None\.$"):
        policy.set_reference(None)  # was taken, and broke the next set_overhead_weight
    policy.set_overhead_weight(0.5)
    with pytest.raises(InvalidParameterError, match=r"^The 'outcome' parameter of "
                       r"ThresholdUCB\.observe must be a JobOutcome\. Got None\.$"):
        policy.observe(None)
    for ctx in (-1, 1, 0.5):  # -1 read the last context, 1 is past the only one
        with pytest.raises(InvalidParameterError, match=r"^The 'ctx' parameter of "
                           r"ThresholdUCB\.ucb_index must be a context index from 0 to 0\."):
            policy.ucb_index(ctx)


def test_bad_reward_inputs_are_refused():
    with pytest.raises(InvalidParameterError, match=r"^The 'overhead_weight' parameter of "
                       r"adaee_reward must be a finite number >= 0\. Got -0\.5\.$"):
        adaee_reward([0.5, 0.6], np.int64(1), [1.0, 2.0], -0.5)
    with pytest.raises(InvalidParameterError, match=r"^The 'exit_means' parameter of "
                       r"adaee_reward must be 2 finite numbers, one per exit\. Got \[1\.0\]\.$"):
        adaee_reward([0.5, 0.6], np.int64(1), [1.0], 0.5)
    with pytest.raises(InvalidParameterError, match=r"^The 'exits' parameter of adaee_reward "
                       r"must be exit indices in \[0, 2\)\. Got 2\.$"):
        adaee_reward([0.5, 0.6], 2, [1.0, 2.0], 0.5)
    rows = np.array([[0.2, 0.8], [0.5, 0.4]])
    with pytest.raises(InvalidParameterError, match=r"^The 'exits' parameter of adaee_reward "
                       r"must be an array of the rows' shape \(2,\), or with one more axis "
                       r"\(an exit per arm\)\. Got 'shape \(3,\)'\.$"):
        adaee_reward(rows, [1, 0, 1], [1.0, 2.0], 0.5)  # was an IndexError
    with pytest.raises(InvalidParameterError, match=r"^The 'confidence' parameter of adaee_reward "
                       r"must be rows of confidences \[\.\.\., exits\]\. Got 'str'\.$"):
        adaee_reward("high", [0], [1.0, 2.0], 0.5)
    with pytest.raises(InvalidParameterError, match=r"^The 'exit_means' parameter of "
                       r"adaee_reward must be 2 finite numbers"):
        adaee_reward(rows, [1, 0], "ab", 0.5)
