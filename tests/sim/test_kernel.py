"""The compiled kernel against exact M/G/1/K results and the reference simulator.

Each comparison is a 95% confidence interval from independent replications, so
about 5% of them miss by chance: the suite checks that the misses are no more
than a Binomial(N, 0.05) count allows (at the 99.9% level) and that no metric
misses by more than a 99.99% interval would allow.
"""

import itertools

import numpy as np
import pytest
from scipy import stats

from edgeperf.dists import Deterministic, Empirical, Exponential, Gamma, Lognormal, Mixture
from edgeperf.exceptions import InvalidParameterError, UnsupportedModelError
from edgeperf.io import parse_scenario
from edgeperf.queueing import Station, StationExit, mg1k
from edgeperf.sim import (AssignedExits, ExitShares, ExitTable, SimulationEvaluator,
                          StaticExits, ThresholdExits, replicate_chain, simulate,
                          simulate_station)

LAWS = {"D": Deterministic(1.0), "M": Exponential(1.0), "G-scv2": Gamma(0.5, 1.0),
        "E4": Gamma(4, 1.0), "LN-scv3": Lognormal(1.0, 3.0),
        "empirical": Empirical((0.2, 0.5, 1.0, 2.3)),
        "mixture": Mixture((Deterministic(0.4), Exponential(2.2)), (0.75, 0.25))}
REPS, JOBS = 10, 40_000
T95 = stats.t.ppf(0.975, REPS - 1)
T9999 = stats.t.ppf(1 - 0.5e-4, REPS - 1)


def _grid_misses():
    """(comparisons, misses at 95%, worst miss in half-widths), rare losses apart."""
    compared, misses, worst = 0, 0, 0.0
    for (name, law), k, rho in itertools.product(LAWS.items(), [1, 2, 5, 10, 20, 50],
                                                 [0.3, 0.7, 1.0, 1.5]):
        rate = rho / law.mean
        sim = simulate_station(rate, law, k, jobs=JOBS, replications=REPS, seed=7)
        exact, row = mg1k(rate, law, k), sim.stations[0]
        expected_losses = exact.loss_probability * REPS * JOBS * 0.9
        for field in ("loss_probability", "throughput", "mean_response_time"):
            if field == "loss_probability" and expected_losses < 100:
                # too rare for a t interval: the count of losses is Poisson instead
                losses = row.loss_probability * REPS * JOBS * 0.9
                assert losses <= stats.poisson.ppf(0.9999, expected_losses) + 0.5, (name, k, rho)
                continue
            # a floor for the exactly-known cases (deterministic service at K = 1)
            half = sim.half_widths[f"{field}[station]"] + 1e-9 * abs(getattr(exact, field))
            miss = abs(getattr(row, field) - getattr(exact, field)) / half
            compared += 1
            misses += miss > 1.0
            worst = max(worst, miss)
    return compared, misses, worst


@pytest.mark.slow
def test_single_stations_agree_with_exact_mg1k_within_confidence_intervals():
    compared, misses, worst = _grid_misses()
    assert compared > 400
    assert misses <= stats.binom.ppf(0.999, compared, 0.05)
    assert worst <= T9999 / T95


def test_kernel_matches_the_reference_simulator_on_a_chain_with_exits():
    law_a, law_b = Gamma(2, 0.02), Exponential(0.03)
    stations = [Station(name="a", capacity=4, service=law_a,
                        exits=(StationExit(name="e", probability=0.3, service=law_a),)),
                Station(name="link", capacity=3, service=Deterministic(0.01), delay_s=0.004),
                Station(name="b", capacity=5, service=law_b)]
    reference = replicate_chain(40.0, stations, replications=10, n_jobs=40_000, seed=3)
    system = parse_scenario({
        "workload": {"arrival": {"process": "poisson", "rate": 40.0}},
        "model": {"blocks": [
            {"name": "e", "latency": {"kind": "gamma", "shape": 2, "mean": 0.02},
             "output_bytes": 10_000, "exit": {"probability": 0.3}},
            {"name": "f", "latency": {"kind": "exponential", "mean": 0.03}, "output_bytes": 1}]},
        "devices": [{"name": "a", "capacity": 4}, {"name": "b", "capacity": 5}],
        "links": [{"from": "a", "to": "b", "bandwidth_bps": 8e6, "capacity": 3, "latency_s": 0.004}],
        "placement": {"a": ["e"], "b": ["f"]}})
    kernel = simulate(system, jobs=40_000, replications=10, seed=5, engine="kernel")
    for field in ("loss_probability", "mean_response_time", "throughput"):
        diff = abs(getattr(kernel, field) - getattr(reference, field))
        both = np.hypot(kernel.half_widths[field], reference.half_widths[field])
        assert diff <= both, field
    key = "exit_distribution[e]"
    assert abs(kernel.exit_distribution["e"] - reference.exit_distribution["e"]) <= \
        np.hypot(kernel.half_widths[key], reference.half_widths[key])


def test_same_seed_same_numbers_bit_for_bit():
    a = simulate_station(0.8, Gamma(3, 1.0), 4, jobs=20_000, replications=3, seed=42)
    b = simulate_station(0.8, Gamma(3, 1.0), 4, jobs=20_000, replications=3, seed=42)
    c = simulate_station(0.8, Gamma(3, 1.0), 4, jobs=20_000, replications=3, seed=43)
    assert a.to_dict() == b.to_dict()
    assert a.loss_probability != c.loss_probability


def _table(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    confidence = rng.random((n, 3))
    correct = rng.random((n, 3)) < np.array([0.6, 0.75, 0.9])
    return ExitTable(confidence, correct)


def _two_exit_system(rate=5.0, capacity=3):
    return parse_scenario({
        "workload": {"arrival": {"process": "poisson", "rate": rate}},
        "model": {"blocks": [
            {"name": "b0", "latency": {"kind": "exponential", "mean": 0.02}, "output_bytes": 1,
             "exit": {"probability": 0.0}},
            {"name": "b1", "latency": {"kind": "exponential", "mean": 0.02}, "output_bytes": 1,
             "exit": {"probability": 0.0}},
            {"name": "b2", "latency": {"kind": "exponential", "mean": 0.05}, "output_bytes": 1}]},
        "devices": [{"name": "pi", "capacity": capacity}], "placement": {"pi": ["b0", "b1", "b2"]}})


def test_threshold_policy_gives_the_exact_empirical_accuracy_and_exits():
    table = _table()
    thresholds = (0.7, 0.5)
    exits = table.exits_for(thresholds)
    exact_accuracy = table.correct[np.arange(len(exits)), exits].mean()
    shares = np.bincount(exits, minlength=3) / len(exits)
    # one station: admission does not depend on a job's own exit, so completed jobs
    # have the table's exit and accuracy distribution
    m = simulate(_two_exit_system(), jobs=30_000, replications=10, seed=1,
                 exits=ThresholdExits(table, thresholds))
    assert abs(m.accuracy - exact_accuracy) <= m.half_widths["accuracy"]
    for name, share in zip(("b0", "b1", "b2"), shares):
        assert abs(m.exit_distribution[name] - share) <= m.half_widths[f"exit_distribution[{name}]"]


def test_assigned_exits_are_taken_in_order():
    m = simulate(_two_exit_system(rate=0.5, capacity=50), jobs=3000, replications=2, seed=1,
                 exits=AssignedExits((0, 2, 2)))
    assert m.loss_probability == 0.0
    assert m.exit_distribution["b1"] == 0.0
    assert m.exit_distribution["b0"] == pytest.approx(1 / 3, abs=2e-3)


def test_threshold_table_must_match_the_chain_exits():
    table = ExitTable(np.full((5, 2), 0.5), np.ones((5, 2)))
    with pytest.raises(InvalidParameterError, match=r"'table' parameter of ThresholdExits must be "
                       r"3 exit columns for chain 'main' \(exits \['b0', 'b1', 'b2'\]\)\. Got 2\."):
        simulate(_two_exit_system(), jobs=1000, exits=ThresholdExits(table, (0.5,)))


def test_kernel_refuses_what_it_cannot_express():
    system = parse_scenario({
        "workload": {"arrival": {"process": "poisson", "rate": 1.0}},
        "model": {"blocks": [{"name": "b", "latency": {"kind": "exponential", "mean": 0.1},
                              "output_bytes": 1}]},
        "devices": [{"name": "gpu", "capacity": 4, "servers": 2}], "placement": {"gpu": ["b"]}})
    with pytest.raises(UnsupportedModelError, match="^The kernel cannot simulate this system: a "
                       "device has several servers; use engine='event'"):
        simulate(system, jobs=1000, engine="kernel")


@pytest.mark.parametrize("option, value, message", [
    ("jobs", 0, "The 'jobs' parameter of simulate must be an int >= 100. Got 0."),
    ("replications", 0, "The 'replications' parameter of simulate must be an int >= 1. Got 0."),
    ("warmup", 0.95, "The 'warmup' parameter of simulate must be"),
    ("engine", "fast", "The 'engine' parameter of simulate must be one of ['auto', 'kernel', "
                       "'event']. Got 'fast'."),
])
def test_bad_options_get_one_clear_message(option, value, message):
    with pytest.raises(InvalidParameterError, match="^" + __import__("re").escape(message)):
        simulate(_two_exit_system(), **{option: value})


@pytest.mark.parametrize("option, value", [("jobs", 0), ("seed", 1.5), ("engine", "fast")])
def test_simulation_evaluator_refuses_bad_options_when_made(option, value):
    # not at each evaluate, under simulate's name: a sweep makes it once for every point
    with pytest.raises(InvalidParameterError,
                       match=f"^The '{option}' parameter of SimulationEvaluator must be"):
        SimulationEvaluator(**{option: value})


@pytest.mark.parametrize("make", [lambda: StaticExits("table.npz"),
                                  lambda: ExitShares((0.5, 0.5), "table.npz"),
                                  lambda: AssignedExits((0,), "table.npz")])
def test_exit_policies_refuse_a_table_that_is_not_one(make):
    # it failed only inside the run, with an AttributeError
    with pytest.raises(InvalidParameterError, match=r"^The 'table' parameter of \w+ must be None "
                       r"or an ExitTable\. Got 'str'\.$"):
        make()


def test_trace_file_has_one_row_per_job(tmp_path):
    file = tmp_path / "jobs.csv"
    m = simulate(_two_exit_system(rate=40.0, capacity=2), jobs=500, replications=1, seed=3,
                 trace=file)
    lines = file.read_text().splitlines()
    assert lines[0] == "job,chain,arrival_s,exit,completion_s,lost_at,measured"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 500
    lost = [r for r in rows if r[5]]
    assert lost and all(r[5] == "pi" and r[4] == "" for r in lost)
    measured = [r for r in rows if r[6] == "1"]
    assert 1 - sum(1 for r in measured if not r[5]) / len(measured) == pytest.approx(
        m.loss_probability)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_progress_bar_changes_nothing_but_stderr(capsys):
    quiet = simulate(_two_exit_system(), jobs=2000, replications=3, seed=4)
    shown = simulate(_two_exit_system(), jobs=2000, replications=3, seed=4, progress=True)
    assert quiet.to_dict() == shown.to_dict()
    assert capsys.readouterr().out == ""
