"""Bayesian optimisation of threshold vectors, its lookup table and online policy."""

import dataclasses
import json
import re

import numpy as np
import pytest

from exit_problems import make_problem
from edgeperf.exceptions import InfeasibleError, InvalidParameterError
from edgeperf.schedule import ThresholdDecision, predict, static_tuned
from edgeperf.schedule._bayes import (HIGHEST_THRESHOLD, BayesLookup, BayesLookupPolicy, bayes)
from edgeperf.sim import JobState, StaticExits, simulate

RATES = (200.0, 225.0, 250.0, 275.0, 300.0)


@pytest.fixture(scope="module")
def lookup() -> BayesLookup:
    return BayesLookup.build(make_problem(loss_target=0.05), RATES, trials=200, seed=0,
                             progress=False)


def state(arrivals=(), confidence=None, n_exits=4) -> JobState:
    return JobState(time=arrivals[-1] if arrivals else 0.0, chain="c", job=0, station="device",
                    jobs_present=1, waiting=0, recent_arrivals=tuple(arrivals), queue_lengths={},
                    n_exits=n_exits, confidence=confidence)


# ---------------------------------------------------------------------- search


def test_the_same_seed_gives_the_same_decision():
    problem = make_problem(rate=250.0, loss_target=0.05)
    first, again = bayes(problem, trials=60, seed=3), bayes(problem, trials=60, seed=3)
    assert first.policy == "bayes"
    assert first.thresholds == again.thresholds
    assert len(first.thresholds) == 3


@pytest.mark.parametrize("loss_target", [0.01, 0.05])
@pytest.mark.parametrize("rate", [150.0, 250.0, 350.0])
def test_meets_the_target_exactly_and_matches_or_beats_static_tuned(rate, loss_target):
    problem = make_problem(rate=rate, loss_target=loss_target)
    decision = bayes(problem)  # 200 trials
    m, baseline = predict(problem, decision), predict(problem, static_tuned(problem))
    assert m.loss_probability <= loss_target
    assert m.accuracy >= baseline.accuracy
    assert decision.solve_time_s < 10.0  # seconds, not minutes (about 0.4 s here)


def test_several_thresholds_beat_a_single_one_under_load():
    problem = make_problem(rate=250.0, loss_target=0.05)
    gain = predict(problem, bayes(problem)).accuracy - predict(problem,
                                                               static_tuned(problem)).accuracy
    assert gain > 0.03  # 0.716 against 0.648


def test_a_warm_start_is_tried():
    problem = make_problem(rate=250.0, loss_target=0.05)
    good = bayes(problem).thresholds
    # 4 trials: static_tuned, all-final, all-first, then the warm start
    assert bayes(problem, trials=4, warm_start=good).thresholds == good
    assert bayes(problem, trials=4, warm_start=[good, (0.5, 0.5, 0.5)]).thresholds == good


def test_simulated_feasibility_still_meets_the_target_exactly():
    problem = make_problem(rate=250.0, loss_target=0.05)
    decision = bayes(problem, trials=30, evaluate="simulate", sim_jobs=5000, sim_replications=3)
    m = predict(problem, decision)
    assert m.loss_probability <= problem.loss_target
    assert m.accuracy >= predict(problem, static_tuned(problem)).accuracy


def test_optuna_stays_quiet(capfd):
    import optuna
    level = optuna.logging.get_verbosity()
    bayes(make_problem(rate=200.0), trials=15)
    out, err = capfd.readouterr()
    assert out == err == ""
    assert optuna.logging.get_verbosity() == level


def test_an_infeasible_target_names_the_lowest_achievable_loss():
    with pytest.raises(InfeasibleError, match=r"^bayes: no policy meets the loss target 0\.01 at "
                       r"arrival rate 2000/s with capacity 8: the lowest achievable loss is "
                       r"0\.\d+ \(every job at the fastest exit\)\.$"):
        bayes(make_problem(rate=2000.0, loss_target=0.01))


@pytest.mark.parametrize("kwargs, message", [
    ({"trials": 0}, "The 'trials' parameter of bayes must be an int >= 1. Got 0."),
    ({"evaluate": "guess"}, "The 'evaluate' parameter of bayes must be one of ['exact', "
                            "'simulate']. Got 'guess'."),
    ({"warm_start": (0.5, 0.5)}, "The 'warm_start' parameter of bayes must be a vector of 3 "
                                 "thresholds in [0, 1.01] or a list of them. Got (0.5, 0.5)."),
    ({"warm_start": (0.5, 0.5, 2.0)}, "The 'warm_start' parameter of bayes must be a vector of "
                                      "3 thresholds in [0, 1.01] or a list of them. Got "
                                      "(0.5, 0.5, 2.0)."),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(InvalidParameterError, match="^" + re.escape(message) + "$"):
        bayes(make_problem(), **kwargs)


# ---------------------------------------------------------------------- lookup


def test_every_entry_meets_the_target_at_its_rate(lookup):
    problem = make_problem(loss_target=0.05)
    assert lookup.rates == RATES
    for rate, decision, accuracy in zip(lookup.rates, lookup.decisions, lookup.accuracy):
        m = predict(problem.with_rate(rate), decision)
        assert m.loss_probability <= 0.05
        assert m.accuracy == accuracy
        assert accuracy >= predict(problem.with_rate(rate),
                                   static_tuned(problem.with_rate(rate))).accuracy


def test_a_rate_takes_the_nearest_entry_at_or_above_it(lookup):
    at = dict(zip(RATES, lookup.decisions))
    assert lookup.decision_for(250.0) is at[250.0]
    assert lookup.decision_for(230.0) is at[250.0]  # conservative: the higher rate
    assert lookup.decision_for(10.0) is at[200.0]
    assert lookup.decision_for(900.0) is at[300.0]  # beyond the table: the highest
    with pytest.raises(InvalidParameterError, match=re.escape(
            "The 'arrival_rate' parameter of BayesLookup.decision_for must be a finite number "
            "> 0. Got 0.")):
        lookup.decision_for(0)


def test_save_and_load_round_trip(lookup, tmp_path):
    path = lookup.save(tmp_path / "lookup.json")
    assert json.loads(path.read_text())["format"] == "edgeperf-bayes-lookup"
    loaded = BayesLookup.load(path)
    assert loaded == lookup
    for rate in (1.0, 199.0, 200.0, 212.5, 260.0, 300.0, 1e4):
        assert loaded.decision_for(rate).thresholds == lookup.decision_for(rate).thresholds
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left behind
    with pytest.raises(InvalidParameterError, match=re.escape(
            "The 'path' parameter of BayesLookup.save must be a file path (str or os.PathLike). "
            "Got None.")):
        lookup.save(None)


def _entry(rate=200.0, thresholds=(0.5, 0.5, 0.5)):
    return {"arrival_rate": rate, "thresholds": list(thresholds), "accuracy": 0.9,
            "loss_probability": 0.01}


def _file(**changes):
    data = {"format": "edgeperf-bayes-lookup", "version": 1, "loss_target": 0.05,
            "capacity": 8, "exit_names": ["b0", "b1", "b2", "b3"], "entries": [_entry()]}
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize("text, message", [
    ("{", r"is not valid JSON: Expecting property name enclosed in double quotes at line 1 "
          r"column 2\."),
    ("[]", r"\(top level\): must be a mapping \(an edgeperf bayes lookup\)\. Got list\."),
    (_file(format="other"), r"format: Input should be 'edgeperf-bayes-lookup'\. Got 'other'\."),
    (_file(entries=[{k: x for k, x in _entry().items() if k != "thresholds"}]),
     r"entries\[0\]\.thresholds: is required but missing\."),
    (_file(entries=[{"arrival_rate": 1.0}]), r"entries\[0\]\.thresholds: is required but "
                                             r"missing\. \(and 2 more problems\)"),
    (_file(capacity="8"), r"capacity: Input should be a valid integer\. Got '8'\."),
    (_file(entries=[_entry(300.0), _entry(200.0)]),
     r"entries\.arrival_rate: The 'rates' parameter of BayesLookup must be a non-empty list of "
     r"increasing rates > 0\. Got \[300\.0, 200\.0\]\."),
    (_file(entries=[_entry(thresholds=(0.5,))]),
     r"entries\.thresholds: The 'decisions' parameter of BayesLookup must be ThresholdDecisions "
     r"of 3 finite thresholds >= 0 .*Got \[0\.5\]\."),
])
def test_a_bad_file_gets_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InvalidParameterError) as info:
        BayesLookup.load(path)
    assert "\n" not in str(info.value)
    assert re.match(re.escape(str(path)) + ": " + message + "$", str(info.value)), str(info.value)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(InvalidParameterError, match=r"missing\.json: cannot be read: No such "
                       r"file or directory\.$"):
        BayesLookup.load(tmp_path / "missing.json")


def test_a_path_that_is_not_one_is_named():
    with pytest.raises(InvalidParameterError, match=r"^The 'path' parameter of BayesLookup.load "
                       r"must be a file path \(str or os\.PathLike\)\. Got None\.$"):
        BayesLookup.load(None)


def test_a_lookup_needs_sequences(lookup):
    with pytest.raises(InvalidParameterError, match=r"^The 'rates' parameter of BayesLookup "
                       r"must be a non-empty list of increasing rates > 0\. Got 'NoneType'\.$"):
        dataclasses.replace(lookup, rates=None)
    with pytest.raises(InvalidParameterError, match=r"^The 'accuracy' parameter of BayesLookup "
                       r"must be a sequence\. Got 'float'\.$"):
        dataclasses.replace(lookup, accuracy=0.9)


@pytest.mark.parametrize("field, value, message", [
    ("accuracy", float("nan"), "The 'accuracy' parameter of BayesLookup must be a finite "
                               "number >= 0 and <= 1. Got nan."),
    ("loss_probability", -1.0, "The 'loss_probability' parameter of BayesLookup must be a finite "
                               "number >= 0 and <= 1. Got -1.0."),
    ("exit_names", ("b0", "b0", "b2", "b3"), "The 'exit_names' parameter of BayesLookup must be a "
     "non-empty list of distinct exit names. Got ['b0', 'b0', 'b2', 'b3']."),
])
def test_a_lookup_refuses_entries_that_are_not_what_they_say(lookup, field, value, message):
    entries = value if field == "exit_names" else (value,) + getattr(lookup, field)[1:]
    with pytest.raises(InvalidParameterError, match="^" + re.escape(message) + "$"):
        dataclasses.replace(lookup, **{field: entries})


@pytest.mark.parametrize("rates", [[], [-1.0]])
def test_build_refuses_bad_rates(rates):
    with pytest.raises(InvalidParameterError, match=r"^The 'rates' parameter of "
                       r"BayesLookup\.build must be a"):
        BayesLookup.build(make_problem(), rates, progress=False)


def test_build_stops_at_an_infeasible_rate():
    with pytest.raises(InfeasibleError, match=r"^bayes: .* at arrival rate 2000/s"):
        BayesLookup.build(make_problem(), [200.0, 2000.0], trials=5, progress=False)


def test_build_shows_progress_on_request(capsys):
    BayesLookup.build(make_problem(), [200.0], trials=5, progress=False)
    assert capsys.readouterr().err == ""
    built = BayesLookup.build(make_problem(), [200.0], trials=5, progress=True)
    assert built.rates == (200.0,)
    assert capsys.readouterr().err != ""  # the bar wrote to stderr (a blank line off a terminal)


# ---------------------------------------------------------------------- online


def handmade() -> BayesLookup:
    return BayesLookup(rates=(100.0, 200.0), decisions=(
        ThresholdDecision(policy="bayes", thresholds=(0.9, 0.9, 0.9)),
        ThresholdDecision(policy="bayes", thresholds=(0.2, 0.6, 1.01))),
        accuracy=(0.9, 0.5), loss_probability=(0.01, 0.01), loss_target=0.05, capacity=8,
        exit_names=("b0", "b1", "b2", "b3"))


@pytest.mark.parametrize("rate, confidence, exit", [
    (50.0, [0.95, 0.0, 0.0, 0.0], 0),
    (50.0, [0.5, 0.95, 0.0, 0.0], 1),
    (100.0, [0.5, 0.5, 0.5, 0.5], 3),
    (150.0, [0.5, 0.5, 0.5, 0.5], 0),  # the 200/s thresholds: 0.5 >= 0.2
    (150.0, [0.1, 0.7, 0.5, 0.5], 1),
    (150.0, [0.1, 0.5, 1.0, 0.5], 3),  # 1.01 at the third exit: nobody leaves there
    (900.0, [0.1, 0.5, 1.0, 0.5], 3),
])
def test_the_policy_applies_the_estimated_rates_thresholds(rate, confidence, exit):
    policy = BayesLookupPolicy(handmade())
    arrivals = tuple(np.arange(64) / rate)
    assert policy.decide(state(arrivals, np.array(confidence))) == exit
    assert policy.estimate_rate() == pytest.approx(rate)
    assert sum(policy.used.values()) == 1


def test_the_policy_remembers_more_arrivals_than_a_state_shows():
    policy = BayesLookupPolicy(handmade(), window=200)
    assert policy.estimate_rate() is None
    times = np.arange(500) / 100.0
    for end in range(64, 501, 10):  # each state shows the last 64
        policy.remember(tuple(times[end - 64:end]))
    assert len(policy._arrivals) == 200
    assert policy.estimate_rate() == pytest.approx(100.0)
    policy.remember((0.0, 0.5))  # time ran backwards: a new replication
    assert policy.estimate_rate() == pytest.approx(2.0)


def test_with_no_arrivals_seen_the_highest_rate_is_used():
    policy = BayesLookupPolicy(handmade())
    assert policy.decide(state((0.1,), np.array([0.5, 0.5, 0.5, 0.5]))) == 0
    assert policy.used == {200.0: 1}


@pytest.mark.parametrize("loss_target, rate", [(0.05, 240.0), (0.01, 290.0)])
def test_online_loss_and_accuracy_agree_with_the_offline_decision(lookup, loss_target, rate):
    """With a long window the estimate (+-1.6 %) stays between two entries: the
    policy runs the offline decision of the entry at or above the rate."""
    problem = make_problem(rate=rate, loss_target=loss_target)
    if loss_target != lookup.loss_target:
        lookup = BayesLookup.build(problem, (275.0, 300.0), trials=200, progress=False)
    exact = predict(problem, lookup.decision_for(rate))
    policy = BayesLookupPolicy(lookup, window=4096)
    sim = simulate(problem.system(), exits=StaticExits(table=problem.table), policies=policy,
                   engine="event", jobs=20_000, replications=10, seed=1)
    for field in ("loss_probability", "accuracy"):
        assert abs(getattr(sim, field) - getattr(exact, field)) <= sim.half_widths[field], field


def test_the_policy_draws_rows_from_its_table_when_the_simulator_passes_none(lookup):
    problem = make_problem(rate=250.0)
    m = simulate(problem.system(), policies=BayesLookupPolicy(lookup, problem.table),
                 engine="event", jobs=2000, replications=1)
    assert m.throughput > 0
    with pytest.raises(InvalidParameterError, match=r"^The 'table' parameter of "
                       r"BayesLookupPolicy must be an ExitTable when the simulator passes no "
                       r"confidence rows"):
        simulate(problem.system(), policies=BayesLookupPolicy(lookup), engine="event",
                 jobs=2000, replications=1)


def test_the_policy_refuses_a_lookup_for_other_exits(lookup):
    with pytest.raises(InvalidParameterError, match=r"^The 'lookup' parameter of "
                       r"BayesLookupPolicy must be a lookup for 2 exits"):
        BayesLookupPolicy(lookup).decide(state((0.0, 0.01), np.ones(2), n_exits=2))
    with pytest.raises(InvalidParameterError, match=r"^The 'window' parameter of "
                       r"BayesLookupPolicy must be an int >= 2\. Got 1\."):
        BayesLookupPolicy(lookup, window=1)


def test_thresholds_stay_in_the_search_range(lookup):
    for d in lookup.decisions:
        assert all(0.0 <= t <= HIGHEST_THRESHOLD for t in d.thresholds)
