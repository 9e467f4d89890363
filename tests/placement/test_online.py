"""Online re-splitting under a bandwidth trace and a changing number of cores."""

from __future__ import annotations

import numpy as np
import pytest

from edgeperf.dists import Exponential
from edgeperf.exceptions import InvalidParameterError
from edgeperf.model import (DNN, Block, Device, Link, Placement, PoissonArrivals, System,
                            Workload)
from edgeperf.placement import (BandwidthTrace, CoreScaling, CoresTrace, Costs, ReSplitter,
                                compare_resplitting)

N_BLOCKS = 3


def system(link_bps: float = 20e6) -> System:
    """A Pi (slow) and a server 10x faster; b0's activation is bigger than the
    input, so the cuts that matter are 0 (upload), 2 and 3 (all on the Pi)."""
    blocks = (Block(name="b0", latency=Exponential(0.02), output_bytes=200_000,
                    exit_probability=0.2),
              Block(name="b1", latency=Exponential(0.03), output_bytes=20_000),
              Block(name="b2", latency=Exponential(0.02), output_bytes=1_000))
    return System(model=DNN(blocks=blocks, input_bytes=150_000),
                  workload=Workload(arrival=PoissonArrivals(rate=10.0)),
                  placement=Placement.from_mapping({"pi": ["b0"], "server": ["b1", "b2"]}),
                  devices=(Device(name="pi", capacity=10),
                           Device(name="server", capacity=10, speed=10.0)),
                  links=(Link(source="pi", target="server", bandwidth_bps=link_bps,
                              capacity=10, latency_s=0.005),))


def splitter(**options) -> ReSplitter:
    return ReSplitter(Costs.of(system()), 0, 1, **options)


def alternating(low: float, high: float, period_s: float, count: int) -> BandwidthTrace:
    return BandwidthTrace(tuple(period_s * np.arange(count)), tuple([low, high] * (count // 2)))


# ------------------------------------------------------------------ traces

def test_trace_is_piecewise_constant():
    trace = BandwidthTrace((0.0, 10.0), (2e6, 8e6))
    assert trace.at(0.0) == 2e6 and trace.at(9.99) == 2e6 and trace.at(10.0) == 8e6
    assert trace.at(1e9) == 8e6
    assert trace.mean_bps(20.0) == pytest.approx(5e6)


@pytest.mark.parametrize("times, values, match", [
    ((1.0, 2.0), (1e6, 2e6), r"'times_s' parameter of BandwidthTrace must be strictly"),
    ((0.0, 5.0, 5.0), (1e6, 2e6, 3e6), r"'times_s' .* strictly increasing finite times"),
    ((0.0, 5.0), (1e6, 0.0), r"'bandwidth_bps' parameter of BandwidthTrace must be 2 finite "
                             r"numbers > 0"),
    ((0.0, 5.0), (1e6,), r"'bandwidth_bps' .* must be 2 finite numbers > 0"),
    ((0.0,), ("fast",), r"^The 'bandwidth_bps' parameter of BandwidthTrace must be a list of "
                        r"numbers\. Got \('fast',\)\.$"),
])
def test_bad_traces_are_named(times, values, match):
    with pytest.raises(InvalidParameterError, match=match):
        BandwidthTrace(times, values)


def test_wifi_trace_is_seeded_and_switches_among_levels():
    a = BandwidthTrace.wifi(3_000.0, seed=4, levels_bps=(2e6, 8e6, 30e6), mean_hold_s=20.0)
    assert a == BandwidthTrace.wifi(3_000.0, seed=4, levels_bps=(2e6, 8e6, 30e6),
                                    mean_hold_s=20.0)
    assert set(a.bandwidth_bps) == {2e6, 8e6, 30e6}
    assert all(x != y for x, y in zip(a.bandwidth_bps, a.bandwidth_bps[1:]))
    # ~150 holds of mean 20 s: the sample mean is within a few standard errors
    assert np.mean(np.diff(a.times_s)) == pytest.approx(20.0, rel=0.25)


@pytest.mark.parametrize("levels", [(5e6,), ()])
def test_wifi_needs_two_levels(levels):
    with pytest.raises(InvalidParameterError, match=r"'levels_bps' .* at least two levels"):
        BandwidthTrace.wifi(100.0, seed=0, levels_bps=levels)


def test_trace_round_trips_through_csv(tmp_path):
    path = tmp_path / "uplink.csv"
    path.write_text("time_s,bandwidth_bps\n0,2000000\n12.5,30000000\n")
    assert BandwidthTrace.from_csv(path) == BandwidthTrace((0.0, 12.5), (2e6, 30e6))
    path.write_text("time_s,bandwidth_bps\n0,2000000\n12.5,-1\n")
    with pytest.raises(InvalidParameterError, match=r"uplink.csv: The 'bandwidth_bps'"):
        BandwidthTrace.from_csv(path)
    path.write_text("time,bw\n0,1\n")
    with pytest.raises(InvalidParameterError, match=r"'path' parameter of BandwidthTrace.from_csv "
                       r"must be a CSV with a header time_s,bandwidth_bps.*uplink.csv: columns"):
        BandwidthTrace.from_csv(path)
    path.write_text("time_s,bandwidth_bps\n0,fast\n")
    with pytest.raises(InvalidParameterError, match=r"numeric rows.*could not convert"):
        BandwidthTrace.from_csv(path)
    for unreadable in (tmp_path / "missing.csv", tmp_path):
        with pytest.raises(InvalidParameterError, match=r"'path' parameter of BandwidthTrace."
                           r"from_csv must be a readable CSV .*\(\[Errno"):
            BandwidthTrace.from_csv(unreadable)
    path.write_bytes(b"\xff\xfe time_s")
    with pytest.raises(InvalidParameterError, match=r"must be a readable CSV .*can't decode"):
        BandwidthTrace.from_csv(path)


def test_cores_trace_needs_whole_cores():
    assert CoresTrace((0.0, 5.0), (2, 1)).at(6.0) == 1
    with pytest.raises(InvalidParameterError, match=r"'cores' parameter of CoresTrace must be"):
        CoresTrace((0.0, 5.0), (2, 1.5))


# ------------------------------------------------------------- core scaling

def test_amdahl_speed_is_sublinear():
    scaling = CoreScaling(0.8)
    assert scaling.speed(1) == 1.0
    assert scaling.speed(2) == pytest.approx(1 / 0.6)
    assert scaling.speed(1e12) == pytest.approx(5.0)
    profiled_on_two = CoreScaling(0.8, reference_cores=2)
    assert profiled_on_two.factor(1) == pytest.approx(0.6)  # losing a core: 0.6x, not 0.5x


def test_fit_recovers_a_known_parallel_fraction():
    cores = np.array([1, 2, 4, 8])
    exact = CoreScaling(0.7).speed(cores)
    assert CoreScaling.fit(cores, exact).parallel_fraction == pytest.approx(0.7, abs=1e-6)
    noisy = exact * np.random.default_rng(0).normal(1.0, 0.01, len(cores))
    assert CoreScaling.fit(cores, noisy).parallel_fraction == pytest.approx(0.7, abs=0.03)
    # two torch thread counts are enough: 1 thread 40 ms, 2 threads 25 ms
    assert CoreScaling.fit([1, 2], [1.0, 40 / 25]).parallel_fraction == pytest.approx(0.75)


@pytest.mark.parametrize("cores, speeds, match", [
    ([2, 2], [1.0, 1.0], r"'cores' parameter of CoreScaling.fit must be ints >= 1, at least"),
    ([0, 1], [1.0, 1.0], r"'cores' .* ints >= 1"),
    ([1, 2], [1.0, -1.0], r"'speeds' parameter of CoreScaling.fit must be 2 finite numbers"),
])
def test_bad_fits_are_named(cores, speeds, match):
    with pytest.raises(InvalidParameterError, match=match):
        CoreScaling.fit(cores, speeds)


def test_bad_parallel_fraction_is_named():
    with pytest.raises(InvalidParameterError, match=r"'parallel_fraction' .* <= 1. Got 1.5"):
        CoreScaling(1.5)


@pytest.mark.parametrize("cores", [0, -1, float("nan"), [1, 0.5]])
def test_speed_needs_at_least_one_core(cores):  # 0 gave a speed of 0, -1 an infinite one
    with pytest.raises(InvalidParameterError, match=r"^The 'cores' parameter of "
                       r"CoreScaling.speed must be a number of cores >= 1"):
        CoreScaling(0.5).speed(cores)


# --------------------------------------------------------------- controller

def test_cut_latencies_match_costs_at_nominal_bandwidth():
    costs = Costs.of(system()).with_source(0)
    control = splitter()
    predicted = control.latencies_s(20e6)
    assert len(predicted) == N_BLOCKS + 1
    for cut in range(N_BLOCKS + 1):
        assert predicted[cut] == pytest.approx(costs.latency_s(control.assignment(cut)),
                                               rel=1e-12)


def test_extremes_upload_or_stay_on_the_device():
    control = splitter()
    assert control.best_cut(1e9) == 0            # a fast link: upload the input
    assert control.best_cut(1e5) == N_BLOCKS     # a slow link: all on the Pi


def test_losing_cores_pushes_work_to_the_server():
    control = splitter(scaling=CoreScaling(0.9, reference_cores=4))
    assert control.best_cut(6e6, cores=4) == N_BLOCKS
    assert control.best_cut(6e6, cores=1) < N_BLOCKS


def break_even(control: ReSplitter) -> float:
    """The bandwidth where the best cut first changes, by bisection on log scale."""
    low, high = 1e5, 1e9
    for _ in range(60):
        mid = np.sqrt(low * high)
        low, high = (mid, high) if control.best_cut(mid) == control.best_cut(low) else (low, mid)
    return float(np.sqrt(low * high))


def test_hysteresis_suppresses_flapping_around_break_even():
    eager = splitter(hysteresis=0.0, min_dwell_s=0.0)
    edge = break_even(eager)
    trace = alternating(0.97 * edge, 1.03 * edge, period_s=2.0, count=50)
    assert eager.decisions(trace).switches == 49
    assert splitter(hysteresis=0.1, min_dwell_s=0.0).decisions(trace).switches == 0
    assert splitter(hysteresis=0.0, min_dwell_s=10.0).decisions(trace).switches < 15


def test_dwell_delays_a_switch_until_it_ends():
    trace = BandwidthTrace((0.0, 3.0, 4.0), (1e9, 1e5, 1e5 * 1.01))
    schedule = splitter(min_dwell_s=10.0).decisions(trace)
    assert schedule.times_s == (0.0, 10.0)
    assert schedule.cuts == (0, N_BLOCKS)
    assert schedule.cut_at(9.9) == 0


@pytest.mark.parametrize("options, match", [
    ({"hysteresis": -0.1}, r"'hysteresis' parameter of ReSplitter must be a finite number >= 0"),
    ({"min_dwell_s": -1.0}, r"'min_dwell_s' .* >= 0"),
    ({"scaling": 0.5}, r"'scaling' .* a CoreScaling or None"),
])
def test_bad_controller_options_are_named(options, match):
    with pytest.raises(InvalidParameterError, match=match):
        splitter(**options)


@pytest.mark.parametrize("call, match", [
    (lambda c: c.assignment(-1), r"'cut' parameter of ReSplitter.assignment must be an int "
                                 r"from 0 to \d+ \(blocks on the device\)\. Got -1\."),
    (lambda c: c.latencies_s(1e6, cores=-3), r"'cores' parameter of ReSplitter.speed_factor "
                                             r"must be an int >= 1\. Got -3\."),
    (lambda c: c.decisions(None), r"'bandwidth' parameter of ReSplitter.decisions must be a "
                                  r"BandwidthTrace\. Got None\."),
    (lambda c: c.decisions(BandwidthTrace((0.0,), (1e6,)), cores=3),
     r"'cores' parameter of ReSplitter.decisions must be None or a CoresTrace\. Got 3\."),
    (lambda c: c.decisions(BandwidthTrace((0.0,), (1e6,)), until_s=float("nan")),
     r"'until_s' parameter of ReSplitter.decisions must be a time > 0 \(inf: every change\)"),
])
def test_bad_controller_calls_are_named(call, match):
    with pytest.raises(InvalidParameterError, match="^The " + match):
        call(splitter())


def test_controller_needs_a_real_uplink():
    costs = Costs.of(system())
    with pytest.raises(InvalidParameterError, match=r"'server' .* other than the device's"):
        ReSplitter(costs, 0, 0)
    with pytest.raises(InvalidParameterError, match=r"'costs' .* a link server->pi"):
        ReSplitter(costs, 1, 0)


# --------------------------------------------------------------- simulation

def test_resplitting_beats_the_best_fixed_split_on_big_swings():
    # Bandwidth swings between 1 and 100 Mbit/s every minute; the Pi has 2 cores
    # for a while then loses one. The fixed cut is the best in hindsight for the
    # predicted latency over the whole trace. Re-splitting helps when the two
    # 95% intervals of the mean response time do not overlap (same seeds).
    trace = alternating(1e6, 100e6, period_s=60.0, count=10)
    result = compare_resplitting(system(), trace, device=0, server=1, duration_s=600.0,
                                 cores=CoresTrace((0.0, 300.0), (2, 1)),
                                 scaling=CoreScaling(0.8, reference_cores=2),
                                 min_dwell_s=5.0, fixed="hindsight", seed=2, replications=5)
    fixed, resplit = result.metrics["fixed"], result.metrics["resplit"]
    key = "mean_response_time"
    assert resplit.mean_response_time + resplit.half_widths[key] \
        < fixed.mean_response_time - fixed.half_widths[key]
    assert result.schedules["resplit"].switches >= 9
    assert result.schedules["oracle"].switches >= result.schedules["resplit"].switches
    assert resplit.loss_probability <= fixed.loss_probability + fixed.half_widths[
        "loss_probability"] + resplit.half_widths["loss_probability"]
    assert [row["strategy"] for row in result.rows()] == ["fixed", "resplit", "oracle"]


def test_comparison_rejects_an_unknown_rule():
    trace = BandwidthTrace((0.0,), (1e6,))
    with pytest.raises(InvalidParameterError, match=r"'fixed' .* one of 'mean', 'initial'"):
        compare_resplitting(system(), trace, device=0, server=1, duration_s=10.0,
                            fixed="best")  # type: ignore[arg-type]


def test_comparison_names_a_bandwidth_that_is_not_a_trace_in_one_line():
    with pytest.raises(InvalidParameterError) as err:
        compare_resplitting(system(), np.arange(3000.0).reshape(30, 100), device=0, server=1,
                            duration_s=10.0)  # type: ignore[arg-type]
    assert str(err.value) == ("The 'bandwidth' parameter of compare_resplitting must be a "
                              "BandwidthTrace. Got 'ndarray'.")
