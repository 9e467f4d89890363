"""The knapsack scheduler: exact DP, budget, decisions, speed, and the policy in
the event engine (heavy load and inputs that get harder mid-stream)."""

import itertools

import numpy as np
import pytest

from exit_problems import make_problem
from edgeperf.dists import Deterministic
from edgeperf.exceptions import InfeasibleError, InvalidParameterError
from edgeperf.model import DNN, Block, ExitTable
from edgeperf.schedule import ExitProblem, static
from edgeperf.schedule._knapsack import (MIN_ARRIVALS, KnapsackPolicy, _first_choice,
                                         calibration_curves, harder_inputs, simulate_shift,
                                         solve_mckp)
from edgeperf.sim import JobOutcome, JobState, OnlinePolicy, StaticExits, simulate


def state(*, waiting: int = 0, rate: float = 100.0, n_exits: int = 4, confidence=None,
          arrivals: int = 64) -> JobState:
    """A job starting service with ``waiting`` jobs behind it, after evenly spaced
    arrivals at ``rate``."""
    times = tuple(np.arange(arrivals) / rate)
    return JobState(time=times[-1] if times else 0.0, chain="c", job=0, station="device",
                    jobs_present=waiting + 1, waiting=waiting, recent_arrivals=times,
                    queue_lengths={"device": waiting + 1}, n_exits=n_exits,
                    confidence=confidence)


def brute_force(values: np.ndarray, weights: np.ndarray, capacity: int) -> float:
    best = -np.inf
    n, m = values.shape
    for pick in itertools.product(range(m), repeat=n):
        rows = np.arange(n)
        if weights[rows, pick].sum() <= capacity:
            best = max(best, values[rows, pick].sum())
    return best


# ---------------------------------------------------------------- the exact DP

def test_dp_matches_brute_force_on_small_random_instances():
    rng = np.random.default_rng(0)
    checked = infeasible = 0
    for _ in range(400):
        n = int(rng.integers(1, 5))
        values = rng.random((n, 4))
        weights = rng.integers(0, 7, (n, 4))
        capacity = int(rng.integers(0, 22))
        expected = brute_force(values, weights, capacity)
        if expected == -np.inf:
            infeasible += 1
            with pytest.raises(InfeasibleError):
                solve_mckp(values, weights, capacity)
            continue
        total, choice = solve_mckp(values, weights, capacity)
        rows = np.arange(n)
        assert total == pytest.approx(expected, abs=1e-12)
        assert values[rows, choice].sum() == pytest.approx(total, abs=1e-12)
        assert weights[rows, choice].sum() <= capacity
        checked += 1
    assert checked > 300 and infeasible > 5


def test_the_policy_kernel_gives_the_first_item_of_an_optimal_plan():
    """One item with its own values, copies of another: the choice it returns for
    the first item completes to a plan as good as the brute-force optimum."""
    rng = np.random.default_rng(1)
    for _ in range(300):
        copies = int(rng.integers(0, 4))
        first, rest = rng.random(4), rng.random(4)
        weights = rng.integers(0, 7, 4)
        capacity = int(rng.integers(0, 25))
        values = np.vstack([first] + [rest] * copies)
        expected = brute_force(values, np.tile(weights, (copies + 1, 1)), capacity)
        e = _first_choice(first, rest, weights.astype(np.int64), copies, capacity)
        if expected == -np.inf:
            assert e == -1
            continue
        left = capacity - weights[e]
        assert left >= 0
        tail = brute_force(np.tile(rest, (copies, 1)), np.tile(weights, (copies, 1)), left) \
            if copies else 0.0
        assert first[e] + tail == pytest.approx(expected, abs=1e-12)


def test_a_bigger_capacity_never_lowers_the_optimum():
    rng = np.random.default_rng(2)
    for _ in range(30):
        values = rng.random((6, 5))
        weights = rng.integers(1, 9, (6, 5))
        lowest = int(weights.min(axis=1).sum())
        totals = [solve_mckp(values, weights, c)[0] for c in range(lowest, lowest + 40)]
        assert np.all(np.diff(totals) >= -1e-12)


def test_solve_mckp_ties_go_to_the_lower_choice():
    total, choice = solve_mckp(np.ones((3, 4)), np.ones((3, 4), dtype=int), 10)
    assert total == 3.0 and choice.tolist() == [0, 0, 0]


def test_solve_mckp_rejects_bad_input():
    with pytest.raises(InvalidParameterError, match=r"The 'values' parameter of solve_mckp must "
                       r"be a 2-D array \[items, choices\] of finite numbers\. Got \(3,\)\."):
        solve_mckp(np.ones(3), np.ones(3, dtype=int), 1)
    with pytest.raises(InvalidParameterError, match=r"of finite numbers\. Got 'non-finite "):
        solve_mckp(np.array([[1.0, np.nan]]), np.ones((1, 2), dtype=int), 1)
    with pytest.raises(InvalidParameterError, match=r"The 'weights' parameter of solve_mckp must "
                       r"be integers >= 0 of the shape of values \(1, 2\)\. Got \(2,\)\."):
        solve_mckp(np.ones((1, 2)), np.ones(2, dtype=int), 1)
    with pytest.raises(InvalidParameterError, match=r"shape of values \(1, 2\)\. Got 'float64'"):
        solve_mckp(np.ones((1, 2)), np.ones((1, 2)), 1)
    with pytest.raises(InvalidParameterError, match=r"shape of values \(1, 2\)\. Got -1\."):
        solve_mckp(np.ones((1, 2)), np.array([[1, -1]]), 1)
    with pytest.raises(InvalidParameterError, match=r"The 'capacity' parameter of solve_mckp "
                       r"must be an int >= 0\. Got -1\."):
        solve_mckp(np.ones((1, 2)), np.ones((1, 2), dtype=int), -1)
    with pytest.raises(InfeasibleError, match=r"^solve_mckp: no choice fits the capacity 3: the "
                       r"lightest choices weigh 4 together\.$"):
        solve_mckp(np.ones((2, 2)), np.array([[2, 5], [3, 2]]), 3)


# ---------------------------------------------------------------- rate, budget, values, weights

def test_rate_is_estimated_over_the_window_and_falls_back_with_few_arrivals(problem):
    policy = KnapsackPolicy(problem, window=10)
    times = tuple(np.arange(50) * 0.01) + tuple(0.49 + np.arange(1, 11) * 0.002)
    assert policy.rate_estimate(times) == pytest.approx(9 / (times[-1] - times[-10]))
    assert policy.rate_estimate(times[:MIN_ARRIVALS - 1]) == problem.arrival_rate
    assert policy.rate_estimate((1.0,) * 20) == problem.arrival_rate  # no time between them
    assert KnapsackPolicy(problem).rate_estimate(times) == pytest.approx(59 / times[-1] * 1.0)


def test_budget_shrinks_with_the_queue_and_the_rate(problem):
    policy = KnapsackPolicy(problem)
    k = problem.capacity
    assert policy.budget_s(1, 100.0) == pytest.approx(k / 100.0)  # empty: K / rate
    assert policy.budget_s(k, 100.0) == pytest.approx(1 / 100.0)  # full: 1 / rate
    by_queue = [policy.budget_s(j, 250.0) for j in range(1, k + 1)]
    by_rate = [policy.budget_s(3, r) for r in (10.0, 100.0, 300.0, 1000.0)]
    assert np.all(np.diff(by_queue) < 0) and np.all(np.diff(by_rate) < 0)


def test_weights_round_up_so_a_plan_in_cells_fits_the_budget(problem):
    policy = KnapsackPolicy(problem, resolution=100)
    for budget in (0.004, 0.0123, 0.05, 1e-6):
        cells = policy.weights(budget)
        cell = budget / policy.resolution
        fits = cells <= policy.resolution
        assert np.all(cells[fits] * cell >= problem.exit_means[fits] - 1e-15)
        assert np.all(cells[fits] * cell < problem.exit_means[fits] + cell)  # at most one cell up
        assert np.all(cells[~fits] == policy.resolution + 1)  # longer than the whole budget
        assert np.all(problem.exit_means[~fits] > budget)
    rng = np.random.default_rng(3)
    for budget in rng.uniform(0.004, 0.04, 20):  # any plan the DP accepts fits in seconds
        w = policy.weights(budget)
        values = rng.random((5, 4))
        try:
            _, choice = solve_mckp(values, np.tile(w, (5, 1)), policy.resolution)
        except InfeasibleError:
            continue
        assert problem.exit_means[choice].sum() <= budget


def test_calibration_curves_are_non_decreasing_accuracies(problem):
    curves = calibration_curves(problem.table.confidence, problem.table.correct, 20)
    assert curves.shape == (4, 20)
    assert np.all((curves >= 0) & (curves <= 1)) and np.all(np.diff(curves, axis=1) >= -1e-12)
    policy = KnapsackPolicy(problem)
    sure, unsure = np.full(4, 0.99), np.full(4, 0.3)
    assert np.all(policy.values(sure) > policy.values(unsure))
    np.testing.assert_allclose(policy.values(None), problem.table.accuracy_by_exit)


# ---------------------------------------------------------------- decisions

def test_light_load_takes_the_final_exit_and_overload_the_first(problem):
    policy = KnapsackPolicy(problem)
    rows = problem.table.confidence[:200]
    light = [policy.decide(state(rate=10.0, confidence=r)) for r in rows]
    assert policy.decide(state(rate=10.0)) == 3
    # at light load the whole plan fits: each job takes its most accurate exit
    assert light == [int(np.argmax(policy.values(r))) for r in rows]
    assert np.mean(np.array(light) == 3) > 0.9
    full = problem.capacity - 1
    heavy = [policy.decide(state(waiting=full, rate=2000.0, confidence=r)) for r in rows]
    assert set(heavy) == {0}


def test_easy_inputs_leave_early_when_the_budget_is_tight(problem):
    """Between the extremes the starting job's own confidences matter: a job the
    first exit is sure about leaves there; one only the third exit is sure about
    leaves there; one only the final exit is sure about goes to the end."""
    policy = KnapsackPolicy(problem)
    s = dict(waiting=3, rate=300.0)  # 5 jobs in 16.7 ms: 3.3 ms each
    assert policy.decide(state(confidence=np.array([0.99, 0.99, 0.99, 0.99]), **s)) == 0
    assert policy.decide(state(confidence=np.array([0.2, 0.3, 0.9, 0.99]), **s)) == 2
    assert policy.decide(state(confidence=np.array([0.2, 0.3, 0.5, 0.99]), **s)) == 3


def test_the_chosen_plan_value_grows_with_the_budget(problem):
    """The optimum of the policy's own knapsack never falls as the budget grows,
    and the starting job's exit drifts from the first to the final."""
    policy = KnapsackPolicy(problem, resolution=256)
    means_value = problem.table.accuracy_by_exit
    budgets = np.linspace(0.0125, 0.05, 40)  # 6 jobs: 12 ms all first, 42 ms all final
    totals, exits = [], []
    for b in budgets:
        w = np.tile(policy.weights(b), (6, 1))
        totals.append(solve_mckp(np.tile(means_value, (6, 1)), w, policy.resolution)[0])
        exits.append(policy.plan(means_value, 5, b))
    assert np.all(np.diff(totals) >= -1e-12)
    assert exits[0] == 0 and exits[-1] == 3


def test_decision_times_are_recorded(problem):
    policy = KnapsackPolicy(problem)
    assert policy.decision_time_stats()["count"] == 0
    assert np.isnan(policy.decision_time_stats()["median_s"])
    for w in range(5):
        policy.decide(state(waiting=w, rate=300.0))
    stats = policy.decision_time_stats()
    assert stats["count"] == 5 == len(policy.decision_times_s)
    assert 0 < stats["median_s"] <= stats["p99_s"] <= stats["max_s"]
    assert isinstance(policy, OnlinePolicy)
    assert policy.observe(JobOutcome(1.0, "c", 0, 0, True, 0.01, True, None)) is None


def test_policy_rejects_bad_parameters(problem):
    with pytest.raises(InvalidParameterError, match=r"The 'problem' parameter of KnapsackPolicy "
                       r"must be an ExitProblem\. Got 3\."):
        KnapsackPolicy(3)
    with pytest.raises(InvalidParameterError, match=r"The 'window' parameter of KnapsackPolicy "
                       r"must be an int >= 2\. Got 1\."):
        KnapsackPolicy(problem, window=1)
    with pytest.raises(InvalidParameterError, match=r"The 'resolution' parameter of "
                       r"KnapsackPolicy must be an int >= 1\. Got 0\."):
        KnapsackPolicy(problem, resolution=0)
    with pytest.raises(InvalidParameterError, match=r"The 'bins' parameter of KnapsackPolicy "
                       r"must be an int >= 1\. Got 2\.5\."):
        KnapsackPolicy(problem, bins=2.5)
    with pytest.raises(InvalidParameterError, match=r"The 'state' parameter of KnapsackPolicy "
                       r"must be a state of a chain with 4 exits \(the problem's\)\. Got 3\."):
        KnapsackPolicy(problem).decide(state(n_exits=3))


# ---------------------------------------------------------------- speed

def deep_problem(exits: int = 24, capacity: int = 50) -> ExitProblem:
    """``exits`` exits of 1 ms blocks; deeper exits more accurate and confident."""
    rng = np.random.default_rng(4)
    model = DNN(blocks=tuple(Block(name=f"b{i}", latency=Deterministic(0.001), output_bytes=10,
                                   exit_probability=0.0 if i < exits - 1 else None)
                             for i in range(exits)))
    margin = np.linspace(0.05, 1, exits)[None, :] - rng.random((2000, 1)) + \
        rng.normal(0, 0.1, (2000, exits))
    table = ExitTable(np.clip(0.5 + 0.5 * np.tanh(3 * margin), 0, 1), margin > 0)
    return ExitProblem(table=table, model=model, capacity=capacity, arrival_rate=100.0,
                       loss_target=0.01)


def test_decides_in_well_under_a_millisecond_with_24_exits_and_50_jobs():
    """A full queue (49 waiting) at rates where the DP has to run, every exit
    competing: the median decide() over many calls is far below 1 ms."""
    problem = deep_problem()
    policy = KnapsackPolicy(problem)
    rows = problem.table.confidence[:50]
    states = [state(waiting=49, rate=rate, n_exits=24, confidence=r)
              for rate in (1.0, 2.0, 5.0, 10.0) for r in rows]
    for s in states[:20]:  # warm-up
        policy.decide(s)
    del policy._times[:]
    exits = [policy.decide(s) for s in states * 3]
    stats = policy.decision_time_stats()
    print(f"\nknapsack decide(), 24 exits, 50 jobs, {stats['count']} calls: median "
          f"{stats['median_s'] * 1e6:.0f} us, mean {stats['mean_s'] * 1e6:.0f} us, p99 "
          f"{stats['p99_s'] * 1e6:.0f} us")
    assert len(set(exits)) > 5  # the DP really ran: many exits in use
    assert stats["median_s"] < 1e-3


# ---------------------------------------------------------------- in the event engine

def test_under_heavy_load_the_knapsack_loses_far_less_than_static():
    problem = make_problem(rate=300.0)
    policy = KnapsackPolicy(problem)
    knap = simulate(problem.system(), policies=policy, exits=StaticExits(table=problem.table),
                    engine="event", jobs=20_000, replications=1, seed=1)
    fixed = simulate(problem.system(), exits=static(problem).exit_policy(problem),
                     engine="event", jobs=20_000, replications=1, seed=1)
    stats = policy.decision_time_stats()
    print(f"\nrate 300/s, K=8: knapsack loss {knap.loss_probability:.4f} accuracy "
          f"{knap.accuracy:.4f} exits {knap.exit_distribution}; static(0.9) loss "
          f"{fixed.loss_probability:.4f} accuracy {fixed.accuracy:.4f}; decide median "
          f"{stats['median_s'] * 1e6:.1f} us over {stats['count']} jobs")
    assert fixed.loss_probability > 0.3
    assert knap.loss_probability < fixed.loss_probability / 5
    assert 0.5 < knap.accuracy < fixed.accuracy  # it buys the low loss with early exits
    # per answered request it is still ahead: accuracy x (1 - loss)
    assert knap.accuracy * (1 - knap.loss_probability) > \
        fixed.accuracy * (1 - fixed.loss_probability)
    assert stats["median_s"] < 1e-3


def test_harder_inputs_lower_confidence_and_accuracy(problem):
    hard = harder_inputs(problem.table, seed=1)
    assert hard.confidence.mean() < problem.table.confidence.mean() - 0.1
    assert np.all(hard.accuracy_by_exit <= problem.table.accuracy_by_exit)
    shares_clean, _ = problem.table.evaluate([0.9] * 3)
    shares_hard, _ = hard.evaluate([0.9] * 3)
    assert shares_hard[0, -1] > shares_clean[0, -1] + 0.1  # static sends more jobs deep
    with pytest.raises(InvalidParameterError, match=r"The 'error_rate' parameter of "
                       r"harder_inputs must be a finite number >= 0 and <= 1\. Got 2\."):
        harder_inputs(problem.table, error_rate=2)
    with pytest.raises(InvalidParameterError, match=r"The 'table' parameter of harder_inputs "
                       r"must be an ExitTable\. Got None\."):
        harder_inputs(None)


def test_when_inputs_get_harder_mid_stream_the_knapsack_keeps_its_loss():
    """Noisy inputs start half-way: static's thresholds send more jobs to deep exits
    and its loss climbs; the knapsack plans against the queue, so its loss stays
    where it was (the accuracy of both falls with the inputs)."""
    problem = make_problem(rate=200.0)
    hard = harder_inputs(problem.table, seed=1)
    knap = simulate_shift(problem, hard, policy=KnapsackPolicy(problem), seed=2)
    fixed = simulate_shift(problem, hard, thresholds=(0.9,) * 3, seed=2)
    print(f"\nrate 200/s, noisy inputs from mid-stream: knapsack loss "
          f"{knap.before.loss_probability:.4f} -> {knap.after.loss_probability:.4f}, accuracy "
          f"{knap.before.accuracy:.4f} -> {knap.after.accuracy:.4f}; static(0.9) loss "
          f"{fixed.before.loss_probability:.4f} -> {fixed.after.loss_probability:.4f}, accuracy "
          f"{fixed.before.accuracy:.4f} -> {fixed.after.accuracy:.4f}")
    assert knap.after.offered > 8000 and knap.before.offered > 6000
    assert fixed.after.loss_probability > fixed.before.loss_probability + 0.03
    assert knap.after.loss_probability < knap.before.loss_probability + 0.01
    assert knap.after.loss_probability < fixed.after.loss_probability / 5
    assert fixed.after.accuracy < fixed.before.accuracy  # the inputs are harder
    assert sum(knap.after.exit_shares) == pytest.approx(1.0)


def test_simulate_shift_rejects_bad_input(problem):
    with pytest.raises(InvalidParameterError, match=r"The 'shifted' parameter of simulate_shift "
                       r"must be an ExitTable with 4 exits\. Got 2\."):
        simulate_shift(problem, ExitTable(np.ones((3, 2)), np.ones((3, 2))), thresholds=(0.9,))
    with pytest.raises(InvalidParameterError, match=r"The 'policy' parameter of simulate_shift "
                       r"must be given, or else thresholds, but not both\."):
        simulate_shift(problem, problem.table)
    with pytest.raises(InvalidParameterError, match=r"The 'switch' parameter of simulate_shift "
                       r"must be a finite number > 0 and <= 1\. Got 0\."):
        simulate_shift(problem, problem.table, thresholds=(0.9,) * 3, switch=0)
