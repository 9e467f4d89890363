"""The queueing LP: its quantities, its LPs, the policy it returns, and its online form."""

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from exit_problems import make_problem, synthetic_table
from edgeperf.dists import Deterministic, Exponential, Gamma, Mixture
from edgeperf.exceptions import InfeasibleError, InvalidParameterError
from edgeperf.model import DNN, Block, ExitTable
from edgeperf.queueing._mg1k import mgs_loss
from edgeperf.schedule import ExitProblem, predict, simulate_decision
from edgeperf.schedule._lp import (LOADS, QueueingLPPolicy, _best_lp, _Search, clean_probabilities,
                                   lp_at_load, max_scv, mixture_moments, queueing_lp)
from edgeperf.sim import JobState, StaticExits, simulate

# -- the quantities, each defined once -----------------------------------------------------------


def test_second_moments_are_second_moments_not_variances_or_deviations():
    m = 0.004
    assert Exponential(m).second_moment == pytest.approx(2 * m**2)  # var m², sd m
    assert Deterministic(m).second_moment == pytest.approx(m**2)  # var 0
    assert Gamma(4, m).second_moment == pytest.approx(m**2 * 1.25)  # SCV 1/4, not CV 1/2
    problem = make_problem()
    # exit 0: Gamma(4, 2 ms); exit 1 adds a 1.5 ms constant: var 1e-6 s², mean 3.5 ms
    np.testing.assert_allclose(problem.exit_second_moments[:2], [5e-6, 1e-6 + 0.0035**2],
                               rtol=1e-12)


def test_mixture_moments_are_those_of_the_mixture_law():
    a, b = 0.001, 0.003
    mean, second, scv = mixture_moments(np.array([0.5, 0.5]), np.array([a, b]),
                                        np.array([a**2, b**2]))
    assert (mean, second) == pytest.approx(((a + b) / 2, (a * a + b * b) / 2))
    assert scv == pytest.approx(((b - a) / (a + b))**2)  # var / mean² = 0.25, its root 0.5
    laws = (Exponential(0.002), Gamma(4, 0.005), Deterministic(0.001))
    p = np.array([0.2, 0.5, 0.3])
    law = Mixture(laws, tuple(p))
    got = mixture_moments(p, [x.mean for x in laws], [x.second_moment for x in laws])
    assert got == pytest.approx((law.mean, law.second_moment, law.scv), rel=1e-12)


def test_max_scv_is_one_where_the_mm1k_loss_meets_the_target():
    """MacGregor Smith's formula is exact for exponential service (SCV 1): at the
    load where the M/M/1/K loss equals the target, the largest SCV is 1."""
    k, target = 8, 0.01

    def mm1k(rho):
        return (1 - rho) * rho**k / (1 - rho**(k + 1))

    rho = brentq(lambda r: mm1k(r) - target, 0.1, 0.99, xtol=1e-14)
    assert max_scv(rho, k, target) == pytest.approx(1.0, rel=1e-6)
    assert max_scv(rho - 0.02, k, target) > 1.0 > max_scv(rho + 0.02, k, target)


def test_max_scv_meets_the_target_and_names_the_extremes():
    scv = max_scv(0.55, 8, 0.01)
    assert mgs_loss(0.55, scv, 8) == pytest.approx(0.01, rel=1e-8)
    assert max_scv(1.5, 8, 0.01) is None  # even constant service misses it
    assert max_scv(0.05, 8, 0.05) == math.inf  # the loss tends to rho/(1+rho) < 0.05


def test_the_naive_second_moment_bound_would_be_unsound():
    """MacGregor Smith's loss can fall as the load grows at a fixed second
    moment, so E[S²] <= (1+c²) x0² with E[S] < x0 is no safe bound; the LP
    uses the tangent form instead."""
    m2 = 0.8  # λ² E[S²]
    assert mgs_loss(0.12, m2 / 0.12**2 - 1, 8) > mgs_loss(0.15, m2 / 0.15**2 - 1, 8)


def test_clean_probabilities_clips_every_entry_and_renormalises():
    p = clean_probabilities(np.array([-1e-12, 0.3, 0.7 + 1e-12, 5e-13]))
    assert (p >= 0).all() and p.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(p, [0.0, 0.3, 0.7, 0.0], atol=1e-15)
    assert p[0] == 0.0 and p[3] == 0.0


# -- one LP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("load, scv", [(0.6, 0.3), (0.75, 0.1), (0.9, 0.2), (1.2, 0.08),
                                       (0.9, math.inf)])
def test_lp_solution_keeps_its_load_and_scv(load, scv):
    problem = make_problem(rate=200.0)
    m, s2 = problem.exit_means, problem.exit_second_moments
    p = lp_at_load(problem.table.accuracy_by_exit, m, s2, 200.0, load, scv)
    assert p is not None
    mean, _, got = mixture_moments(p, m, s2)
    assert 200.0 * mean <= load * (1 + 1e-9)
    assert got <= scv * (1 + 1e-6) + 1e-9
    assert (p >= 0).all() and p.sum() == pytest.approx(1.0)


def test_lp_is_infeasible_when_no_mixture_is_that_regular():
    problem = make_problem(rate=200.0)
    # every exit law has an SCV of at least 0.046: none reaches 0.01
    assert lp_at_load(problem.table.accuracy_by_exit, problem.exit_means,
                      problem.exit_second_moments, 200.0, 1.0, 0.01) is None


def test_pruning_the_loads_keeps_the_best_lp():
    problem = make_problem(rate=250.0)
    loads = _Search(problem, LOADS).loads
    acc = problem.table.accuracy_by_exit
    every = []
    for load in loads:
        scv = max_scv(load, problem.capacity, 0.01)
        if scv is not None:
            p = lp_at_load(acc, problem.exit_means, problem.exit_second_moments, 250.0, load,
                           scv)
            every.append(-math.inf if p is None else p @ acc)
    assert _best_lp(problem, loads, 0.01) @ acc == pytest.approx(max(every), abs=1e-12)


# -- the policy ------------------------------------------------------------------------------------


def _best_pure_accuracy(problem):
    accuracy = problem.table.accuracy_by_exit
    ok = [e for e in range(len(accuracy)) if problem.loss(np.eye(len(accuracy))[e])
          <= problem.loss_target]
    return max(accuracy[ok])


@pytest.mark.parametrize("target", [0.01, 0.05])
@pytest.mark.parametrize("rate", [100.0, 150.0, 200.0, 250.0, 300.0, 350.0])
def test_the_policy_meets_the_target_and_beats_every_pure_exit(rate, target):
    problem = make_problem(rate=rate, loss_target=target)
    if problem.lowest_loss() > target:
        pytest.skip("infeasible (tested below)")
    decision = queueing_lp(problem)
    p = np.asarray(decision.probabilities)
    assert decision.policy == "queueing_lp" and decision.solve_time_s > 0
    assert (p >= 0).all() and p.sum() == pytest.approx(1.0, abs=1e-12)
    m = predict(problem, decision)
    assert m.loss_probability <= target
    assert m.accuracy >= _best_pure_accuracy(problem) - 1e-12
    if m.accuracy < problem.table.accuracy_by_exit.max():
        assert m.loss_probability >= 0.999 * target  # on the boundary: nothing left unused


@settings(max_examples=12)
@given(rate=st.floats(50.0, 450.0), target=st.sampled_from([0.005, 0.01, 0.03, 0.1]),
       capacity=st.integers(2, 16))
def test_the_exact_loss_never_exceeds_the_target(rate, target, capacity):
    problem = make_problem(rate=rate, loss_target=target, capacity=capacity)
    try:
        p = np.asarray(queueing_lp(problem, loads=24).probabilities)
    except InfeasibleError:
        assert problem.lowest_loss() > target
        return
    assert problem.loss(p) <= target


def _two_exit_problem(rate, blocks=(Gamma(4, 0.003), Gamma(4, 0.003)), capacity=6,
                     target=0.02):
    """Exit 0 after the first block, the final exit after both."""
    full = synthetic_table()
    table = ExitTable(full.confidence[:, [1, 3]], full.correct[:, [1, 3]])
    model = DNN(blocks=(Block(name="b0", latency=blocks[0], output_bytes=1000,
                              exit_probability=0.0),
                        Block(name="b1", latency=blocks[1], output_bytes=1000)))
    return ExitProblem(table=table, model=model, capacity=capacity, arrival_rate=rate,
                       loss_target=target)


#: Constant service at K = 2: MacGregor Smith's loss is optimistic there, so the
#: LP at the real target misses it and the search must tighten.
_OPTIMISTIC = {"blocks": (Deterministic(0.002), Deterministic(0.001)), "capacity": 2,
               "target": 0.1}


@pytest.mark.parametrize("rate, options", [(120.0, {}), (180.0, {}), (240.0, {}),
                                           (200.0, _OPTIMISTIC)])
def test_the_policy_is_optimal_among_probability_vectors_on_two_exits(rate, options):
    """Brute force over p = (1 - q, q), q on a grid of step 1/1000, with the
    exact loss. Grid points are policies, so the brute force is at most the
    optimum; the LP's path is bisected to 1e-9, so it may trail the optimum by
    far less than one grid step, which is the tolerance."""
    problem = _two_exit_problem(rate, **options)
    acc = problem.table.accuracy_by_exit
    q = np.linspace(0.0, 1.0, 1001)
    ok = [x for x in q if problem.loss(np.array([1 - x, x])) <= problem.loss_target]
    brute = max(np.array([1 - x, x]) @ acc for x in ok)
    got = np.asarray(queueing_lp(problem).probabilities) @ acc
    assert got >= brute - (acc[1] - acc[0]) / 1000
    assert got <= brute + (acc[1] - acc[0]) / 1000  # and no better than possible


def test_the_search_tightens_where_macgregor_smith_is_optimistic():
    problem = _two_exit_problem(200.0, **_OPTIMISTIC)
    assert _Search(problem, LOADS).too_loose(1.0)  # the LP at L* itself misses L*
    assert problem.loss(np.asarray(queueing_lp(problem).probabilities)) <= problem.loss_target


def test_an_infeasible_target_names_the_lowest_achievable_loss():
    problem = make_problem(rate=2000.0, loss_target=0.01)
    with pytest.raises(InfeasibleError, match=r"^queueing_lp: no policy meets the loss target "
                       r"0\.01 at arrival rate 2000/s with capacity 8: the lowest achievable "
                       r"loss is 0\.\d+ \(every job at the fastest exit\)\.$"):
        queueing_lp(problem)


def test_light_load_sends_every_job_to_the_most_accurate_exit():
    decision = queueing_lp(make_problem(rate=50.0))
    assert decision.probabilities == (0.0, 0.0, 0.0, 1.0)


def test_simulation_meets_the_target_within_its_confidence_interval():
    problem = make_problem(rate=250.0, loss_target=0.05)
    decision = queueing_lp(problem)
    exact = predict(problem, decision)
    sim = simulate_decision(problem, decision, jobs=40_000, replications=10, seed=3)
    hw = sim.half_widths["loss_probability"]
    assert sim.loss_probability - hw <= problem.loss_target
    for field in ("loss_probability", "accuracy"):
        assert abs(getattr(sim, field) - getattr(exact, field)) <= sim.half_widths[field], field


@pytest.mark.parametrize("call, message", [
    (lambda: queueing_lp("problem"),
     "The 'problem' parameter of queueing_lp must be an ExitProblem. Got 'str'."),
    (lambda: queueing_lp(make_problem(), loads=1),
     "The 'loads' parameter of queueing_lp must be an int >= 2. Got 1."),
    (lambda: QueueingLPPolicy(make_problem(), window=8),
     "The 'window' parameter of QueueingLPPolicy must be an int >= 16. Got 8."),
    (lambda: QueueingLPPolicy(make_problem(), tolerance=0.0),
     "The 'tolerance' parameter of QueueingLPPolicy must be a finite number > 0. Got 0.0."),
    (lambda: QueueingLPPolicy(None),
     "The 'problem' parameter of QueueingLPPolicy must be an ExitProblem. Got None."),
])
def test_bad_input_is_refused(call, message):
    with pytest.raises(InvalidParameterError, match="^" + re.escape(message) + "$"):
        call()


# -- online ----------------------------------------------------------------------------------------


def _state(arrivals):
    return JobState(time=arrivals[-1], chain="c", job=0, station="device", jobs_present=1,
                    waiting=0, recent_arrivals=tuple(arrivals[-64:]),
                    queue_lengths={"device": 1}, n_exits=4)


def _feed(policy, times):
    """Decide once every 8 arrivals, showing the last 64, as the engine would."""
    for end in range(8, len(times) + 1, 8):
        policy.decide(_state(times[:end]))


def test_the_online_policy_re_solves_when_the_rate_moves():
    problem = make_problem(rate=150.0, loss_target=0.05)
    policy = QueueingLPPolicy(problem)
    np.testing.assert_allclose(policy.probabilities, queueing_lp(
        problem.with_rate(policy.solved_rate)).probabilities)
    assert policy.solved_rate >= 150.0
    _feed(policy, np.arange(1, 400) / 152.0)  # within tolerance: no new solve
    assert policy.solves == 1
    faster = 400 / 152.0 + np.arange(1, 600) / 250.0
    _feed(policy, faster)
    solves = policy.solves
    assert solves >= 2 and policy.rate == pytest.approx(250.0, rel=0.1)
    # solved at the estimate rounded up, by less than a quarter of the tolerance
    assert policy.rate <= policy.solved_rate <= policy.rate * 1.025 * (1 + 1e-9)
    np.testing.assert_allclose(policy.probabilities, queueing_lp(
        problem.with_rate(policy.solved_rate)).probabilities)
    for _ in range(2):  # new runs (time restarts) through the same rates ...
        _feed(policy, np.arange(1, 400) / 152.0)
        _feed(policy, faster)
        solves, before = policy.solves, solves
    assert solves == before  # ... hit the cache once the rates were solved


def test_the_online_policy_falls_back_to_the_fastest_exit_when_infeasible():
    policy = QueueingLPPolicy(make_problem(rate=150.0))
    _feed(policy, np.arange(1, 400) / 3000.0)
    assert policy.probabilities.tolist() == [1.0, 0.0, 0.0, 0.0]


def test_online_draws_follow_the_probabilities_and_the_seed():
    problem = make_problem(rate=250.0, loss_target=0.05)
    state = _state(np.arange(1, 65) / 250.0)
    draws = [QueueingLPPolicy(problem, seed=7) for _ in range(2)]
    runs = [np.array([p.decide(state) for _ in range(20_000)]) for p in draws]
    np.testing.assert_array_equal(runs[0], runs[1])
    p = draws[0].probabilities
    share = np.bincount(runs[0], minlength=4) / len(runs[0])
    assert np.all(np.abs(share - p) <= 4 * np.sqrt(p * (1 - p) / len(runs[0])) + 1e-12)


def test_the_online_policy_in_the_event_engine_loses_about_what_the_offline_one_does():
    problem = make_problem(rate=250.0, loss_target=0.05)
    offline = predict(problem, queueing_lp(problem))
    policy = QueueingLPPolicy(problem, seed=1)
    online = simulate(problem.system(), policies=policy, exits=StaticExits(table=problem.table),
                      engine="event", jobs=20_000, replications=5, seed=2)
    hw = online.half_widths
    # the rate estimate jitters by about 6%, which moves the policy a little
    assert abs(online.loss_probability - offline.loss_probability) \
        <= hw["loss_probability"] + 0.1 * problem.loss_target
    assert abs(online.accuracy - offline.accuracy) <= hw["accuracy"] + 0.02
    assert policy.solves <= 30
