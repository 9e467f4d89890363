"""Arrival processes: rates, burstiness, pieces and trace replay."""

import numpy as np
import pytest
from scipy import stats

from edgeperf.exceptions import InvalidParameterError
from edgeperf.io import parse_scenario
from edgeperf.model import (ErlangArrivals, MMPPArrivals, PiecewiseArrivals, PoissonArrivals,
                            TraceArrivals)
from edgeperf.sim._arrivals import arrival_times, arrivals_until


def _rate_ci(process, reps=20, horizon=2000.0):
    counts = np.array([len(arrivals_until(process, np.random.default_rng(s), horizon))
                       for s in range(reps)]) / horizon
    half = stats.t.ppf(0.975, reps - 1) * counts.std(ddof=1) / np.sqrt(reps)
    return counts.mean(), half


@pytest.mark.parametrize("process", [
    PoissonArrivals(rate=3.0),
    ErlangArrivals(rate=3.0, phases=5),
    MMPPArrivals(rates=(1.0, 10.0), switch_rates=(0.1, 0.5)),
    PiecewiseArrivals(rates=(2.0, 8.0, 0.0), durations=(30.0, 10.0, 5.0)),
], ids=["poisson", "erlang", "mmpp", "piecewise"])
def test_long_run_rate_is_the_mean_rate(process):
    mean, half = _rate_ci(process)
    assert abs(mean - process.mean_rate) <= half


@pytest.mark.parametrize("phases", [1, 4, 16])
def test_erlang_gaps_have_scv_one_over_k(phases):
    # 20 runs of 5000 gaps: a t-interval on the gaps' SCV
    scv = []
    for seed in range(20):
        gaps = np.diff(arrival_times(ErlangArrivals(rate=2.0, phases=phases),
                                     np.random.default_rng(seed), 5001))
        scv.append(gaps.var() / gaps.mean() ** 2)
    half = stats.t.ppf(0.975, 19) * np.std(scv, ddof=1) / np.sqrt(20)
    assert abs(np.mean(scv) - 1.0 / phases) <= half


def test_erlang_starts_stationary():
    # the first arrival comes after the equilibrium gap, (k + 1) / (2 k rate) on average
    process = ErlangArrivals(rate=2.0, phases=4)
    first = np.array([arrival_times(process, np.random.default_rng(s), 1)[0]
                      for s in range(4000)])
    half = stats.t.ppf(0.975, len(first) - 1) * first.std(ddof=1) / np.sqrt(len(first))
    assert abs(first.mean() - 5.0 / 16.0) <= half


def test_mmpp_is_burstier_than_poisson():
    process = MMPPArrivals(rates=(1.0, 10.0), switch_rates=(0.1, 0.5))
    times = arrivals_until(process, np.random.default_rng(0), 20_000.0)
    counts = np.bincount((times // 10.0).astype(int))
    dispersion = counts.var() / counts.mean()  # 1 for Poisson
    assert dispersion > 5.0


def test_piecewise_rate_holds_within_each_piece():
    process = PiecewiseArrivals(rates=(2.0, 8.0), durations=(30.0, 10.0))
    times = arrivals_until(process, np.random.default_rng(1), 40.0 * 500)
    phase = times % 40.0
    low, high = (phase < 30.0).sum() / (30.0 * 500), (phase >= 30.0).sum() / (10.0 * 500)
    # counts are Poisson: 99.99% intervals on the two rates
    assert abs(low - 2.0) < 4 * np.sqrt(2.0 / (30.0 * 500))
    assert abs(high - 8.0) < 4 * np.sqrt(8.0 / (10.0 * 500))


def test_trace_replays_its_gaps_cyclically():
    trace = TraceArrivals(times=(10.0, 10.5, 12.0, 13.0))
    times = arrival_times(trace, np.random.default_rng(0), 10)
    assert trace.period == pytest.approx(4.0)
    np.testing.assert_allclose(times, [0, 0.5, 2, 3, 4, 4.5, 6, 7, 8, 8.5])


def test_first_n_arrivals_are_sorted_and_counted():
    for process in (MMPPArrivals(rates=(0.0, 5.0), switch_rates=(1.0, 1.0)),
                    PiecewiseArrivals(rates=(1.0,), durations=(1.0,))):
        times = arrival_times(process, np.random.default_rng(3), 5000)
        assert len(times) == 5000 and np.all(np.diff(times) >= 0)


def test_trace_file_in_a_scenario_is_read_relative_to_it(tmp_path):
    (tmp_path / "arrivals.csv").write_text("# t\n0.0\n0.2\n0.5\n")
    (tmp_path / "s.yaml").write_text(
        "workload: {arrival: {process: trace, path: arrivals.csv}}\n"
        "model: {blocks: [{name: b, latency: {kind: deterministic, value: 0.1}, output_bytes: 1}]}\n"
        "devices: [{name: d, capacity: 2}]\nplacement: {d: [b]}\n")
    from edgeperf.io import load_scenario
    system = load_scenario(tmp_path / "s.yaml")
    assert system.workload.arrival.times == (0.0, 0.2, 0.5)


def test_erlang_arrivals_from_a_scenario():
    data = {"workload": {"arrival": {"process": "erlang", "rate": 26.0, "phases": 8}},
            "model": {"blocks": [{"name": "b", "latency": {"kind": "deterministic", "value": 0.1},
                                  "output_bytes": 1}]},
            "devices": [{"name": "d", "capacity": 2}], "placement": {"d": ["b"]}}
    assert parse_scenario(data).workload.arrival == ErlangArrivals(rate=26.0, phases=8)


@pytest.mark.parametrize("arrival, message", [
    ({"process": "mmpp", "rates": [1.0], "switch_rates": [1.0, 1.0]},
     "workload.arrival.rates: The 'rates' parameter of MMPPArrivals must be two values, one per "
     "state. Got (1.0,)."),
    ({"process": "mmpp", "rates": [0.0, 0.0], "switch_rates": [1.0, 1.0]},
     "The 'rates' parameter of MMPPArrivals must be at least one positive rate. Got (0.0, 0.0)."),
    ({"process": "piecewise", "rates": [1.0, 2.0], "durations": [1.0]},
     "The 'durations' parameter of PiecewiseArrivals must be one duration per rate (2). Got 1."),
    ({"process": "trace", "times": [0.0, 2.0, 1.0]},
     "The 'times' parameter of TraceArrivals must be finite, non-decreasing timestamps. "
     "Got '1.0 at position 2'."),
    ({"process": "trace"}, "give exactly one of 'path' or 'times'"),
    ({"process": "erlang", "rate": 2.0, "phases": 0},
     "workload.arrival.phases: The 'phases' parameter of ErlangArrivals must be an int >= 1. "
     "Got 0."),
    ({"process": "erlang", "rate": 2.0}, "workload.arrival.phases"),
    ({"process": "trace", "path": "missing.csv"}, "trace file"),
])
def test_bad_arrival_specs_get_one_message(arrival, message):
    data = {"workload": {"arrival": arrival},
            "model": {"blocks": [{"name": "b", "latency": {"kind": "deterministic", "value": 0.1},
                                  "output_bytes": 1}]},
            "devices": [{"name": "d", "capacity": 2}], "placement": {"d": ["b"]}}
    with pytest.raises(InvalidParameterError) as info:
        parse_scenario(data, "s.yaml")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
