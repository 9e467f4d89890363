"""The problem, decisions and the static baselines."""

import numpy as np
import pytest

from exit_problems import make_problem
from edgeperf.exceptions import InfeasibleError, InvalidParameterError
from edgeperf.queueing import mg1k
from edgeperf.schedule import (ProbabilityDecision, online_policy, predict, problem_of,
                               simulate_decision, solve, static, static_tuned)


def test_exit_laws_add_the_blocks_up_to_each_exit(problem):
    np.testing.assert_allclose(problem.exit_means, [0.002, 0.0035, 0.005, 0.007])
    assert problem.exit_names == ("b0", "b1", "b2", "b3")


def test_loss_is_the_exact_mg1k_of_the_mixture(problem):
    shares = np.array([0.1, 0.2, 0.3, 0.4])
    from edgeperf.dists import Mixture
    law = Mixture(tuple(l.law for l in problem.exit_laws), tuple(shares))
    assert problem.loss(shares) == pytest.approx(
        mg1k(problem.arrival_rate, law, problem.capacity).loss_probability, rel=1e-12)


def test_static_keeps_its_threshold_whatever_the_load():
    light, heavy = static(make_problem(rate=50.0)), static(make_problem(rate=600.0))
    assert light.thresholds == heavy.thresholds == (0.9, 0.9, 0.9)


def test_static_tuned_is_the_most_accurate_single_threshold_meeting_the_target():
    problem = make_problem(rate=200.0)
    decision = static_tuned(problem)
    m = predict(problem, decision)
    assert m.loss_probability <= problem.loss_target
    # any single threshold that is more accurate misses the target
    grid = np.linspace(0, 1.01, 203)
    shares, accuracy = problem.table.evaluate(np.repeat(grid[:, None], 3, axis=1))
    better = accuracy > m.accuracy + 1e-12
    assert all(problem.loss(s) > problem.loss_target for s in shares[better])


def test_static_misses_the_target_under_heavy_load_where_tuned_meets_it():
    problem = make_problem(rate=200.0)
    assert predict(problem, static(problem)).loss_probability > problem.loss_target
    assert predict(problem, static_tuned(problem)).loss_probability <= problem.loss_target


def test_an_infeasible_target_names_the_lowest_achievable_loss():
    problem = make_problem(rate=2000.0, loss_target=0.01)
    with pytest.raises(InfeasibleError, match=r"^static_tuned: no policy meets the loss target "
                       r"0\.01 at arrival rate 2000/s with capacity 8: the lowest achievable "
                       r"loss is 0\.\d+ \(every job at the fastest exit\)\.$"):
        static_tuned(problem)


def test_simulation_agrees_with_the_prediction(problem):
    decision = static_tuned(problem.with_rate(200.0))
    q = problem.with_rate(200.0)
    exact, sim = predict(q, decision), simulate_decision(q, decision, jobs=40_000,
                                                         replications=10, seed=3)
    for field in ("loss_probability", "accuracy"):
        assert abs(getattr(sim, field) - getattr(exact, field)) <= sim.half_widths[field], field


def test_probability_decision_predicts_its_mixture(problem):
    decision = ProbabilityDecision(policy="test", probabilities=(0.5, 0.0, 0.0, 0.5))
    m = predict(problem, decision)
    assert m.accuracy == pytest.approx(0.5 * problem.table.accuracy_by_exit[0]
                                       + 0.5 * problem.table.accuracy_by_exit[3])
    assert m.exit_distribution == {"b0": 0.5, "b1": 0.0, "b2": 0.0, "b3": 0.5}


@pytest.mark.parametrize("kwargs, message", [
    ({"capacity": 0}, "The 'capacity' parameter of ExitProblem must be an int >= 1. Got 0."),
    ({"loss_target": 0.0}, "The 'loss_target' parameter of ExitProblem must be a finite number "
                           "> 0 and <= 1. Got 0.0."),
])
def test_bad_problems_are_refused(kwargs, message):
    with pytest.raises(InvalidParameterError, match="^" + __import__("re").escape(message)):
        make_problem(**kwargs)


@pytest.mark.parametrize("call, message", [
    (lambda p: static(None), "The 'problem' parameter of static must be an ExitProblem. "
                             "Got None."),
    (lambda p: static_tuned("p"), "The 'problem' parameter of static_tuned must be an "
                                  "ExitProblem. Got 'str'."),
    (lambda p: predict(None, static(p)), "The 'problem' parameter of predict must be an "
                                         "ExitProblem. Got None."),
    (lambda p: predict(p, (0.5, 0.5, 0.5)), "The 'decision' parameter of predict must be a "
                                            "ThresholdDecision or a ProbabilityDecision. "
                                            "Got 'tuple'."),
    (lambda p: simulate_decision(p, None), "The 'decision' parameter of simulate_decision "
                                           "must be a ThresholdDecision or a "
                                           "ProbabilityDecision. Got None."),
    (lambda p: static_tuned(p, grid=[]), "The 'grid' parameter of static_tuned must be a "
                                         "non-empty 1-D array of thresholds >= 0. Got []."),
    (lambda p: static_tuned(p, grid="fine"), "The 'grid' parameter of static_tuned must be a "
                                             "non-empty 1-D array of thresholds >= 0. "
                                             "Got 'fine'."),
    (lambda p: predict(p, ProbabilityDecision(policy="x", probabilities=(0.5, 0.7, 0.0, 0.0))),
     "The 'probabilities' parameter of ProbabilityDecision must be 4 non-negative finite "
     "numbers summing to 1. Got [0.5, 0.7, 0.0, 0.0]."),
    (lambda p: predict(p, ProbabilityDecision(policy="x", probabilities=(1.0,))),
     "The 'probabilities' parameter of ProbabilityDecision must be 4 non-negative finite "
     "numbers summing to 1. Got [1.0]."),
    (lambda p: p.loss([-1.0, 2.0, 0.0, 0.0]), "The 'shares' parameter of ExitProblem.loss must "
                                              "be 4 non-negative finite numbers summing to 1. "
                                              "Got [-1.0, 2.0, 0.0, 0.0]."),
    (lambda p: solve(p, "static", thresholds=0.5), "The 'thresholds' parameter of solve must be "
                                                   "an option static takes (threshold). Got 0.5."),
    (lambda p: online_policy(p, "bayes_lookup", table=p.table),
     "The 'table' parameter of online_policy must be an option bayes_lookup takes (lookup, seed, "
     "window). Got 'ExitTable'."),
    (lambda p: problem_of(None, p.table, 0.01), "The 'system' parameter of problem_of must be "
                                                "a System. Got None."),
    (lambda p: problem_of(p.system(), None, 0.01), "The 'table' parameter of problem_of must "
                                                   "be an ExitTable. Got None."),
])
def test_what_is_not_a_problem_or_decision_is_refused(problem, call, message):
    with pytest.raises(InvalidParameterError, match="^" + __import__("re").escape(message) + "$"):
        call(problem)
