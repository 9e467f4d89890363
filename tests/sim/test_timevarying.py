"""The time-varying two-tier simulator: checked against edgeperf's own simulator
and the exact M/G/1/K when nothing varies, then on what varies."""

from __future__ import annotations

import numpy as np
import pytest

from edgeperf.dists import Exponential, Gamma
from edgeperf.exceptions import InvalidParameterError
from edgeperf.model import (DNN, Block, Device, Link, Placement, PoissonArrivals, System,
                            Workload)
from edgeperf.queueing import mg1k
from edgeperf.sim import Piecewise, simulate, simulate_timevarying

FIELDS = ("loss_probability", "throughput", "mean_response_time")


def tandem(rate: float = 30.0, *, exit_probability: float | None = 0.3, pi_speed: float = 1.0,
           capacity: int = 4) -> System:
    """Pi -> 20 Mbit/s uplink -> server; the Pi is busy (offered load ~0.6 on b0)."""
    blocks = (Block(name="b0", latency=Exponential(0.02), output_bytes=50_000,
                    exit_probability=exit_probability),
              Block(name="b1", latency=Gamma(shape=2.0, mean=0.03), output_bytes=20_000),
              Block(name="b2", latency=Exponential(0.02), output_bytes=1_000))
    return System(model=DNN(blocks=blocks, input_bytes=150_000),
                  workload=Workload(arrival=PoissonArrivals(rate=rate)),
                  placement=Placement.from_mapping({"pi": ["b0"], "server": ["b1", "b2"]}),
                  devices=(Device(name="pi", capacity=capacity, speed=pi_speed),
                           Device(name="server", capacity=capacity, speed=2.0)),
                  links=(Link(source="pi", target="server", bandwidth_bps=20e6,
                              capacity=capacity, latency_s=0.005),),
                  source="pi")


def run(system: System, **options) -> object:
    defaults = dict(device="pi", server="server", cuts=1, duration_s=500.0, replications=5,
                    seed=3)
    return simulate_timevarying(system, **{**defaults, **options})


def test_constant_conditions_agree_with_edgeperf_simulator():
    # Both estimates are means of 10 independent replications (~15,000 jobs each) with
    # 95% t half-widths hw1, hw2. The difference of two independent estimates has
    # half-width sqrt(hw1² + hw2²) <= hw1 + hw2, so asking |m1 - m2| <= hw1 + hw2 is
    # the combined-interval test at >= 95% (about 99.4% for equal widths): a correct
    # simulator fails it rarely, while a wrong transmission time, a missed loss or
    # a misplaced exit shifts the means by many half-widths. Seeds are fixed, so
    # the outcome is reproducible.
    system = tandem()
    ours = run(system, duration_s=500.0, replications=10, seed=11)
    theirs = simulate(system, jobs=15_000, replications=10, seed=12)
    assert ours.loss_probability > 0.01  # the losses are exercised, not all zero
    for name in FIELDS:
        gap = abs(getattr(ours, name) - getattr(theirs, name))
        assert gap <= ours.half_widths[name] + theirs.half_widths[name], name
    for mine, other in zip(ours.stations, theirs.stations):
        assert mine.name == other.name
        key = f"mean_response_time[{mine.name}]"
        gap = abs(mine.mean_response_time - other.mean_response_time)
        assert gap <= ours.half_widths[key] + theirs.half_widths[key], mine.name


def test_single_station_agrees_with_exact_mg1k():
    # One block on the device (cut = 1 = all blocks): an M/G/1/4 station. The
    # exact value has no error, so each estimate's 95% half-width is the test.
    law = Gamma(shape=0.5, mean=0.03)
    system = System(model=DNN(blocks=(Block(name="b0", latency=law, output_bytes=10),),
                              input_bytes=100),
                    workload=Workload(arrival=PoissonArrivals(rate=30.0)),
                    placement=Placement.from_mapping({"pi": ["b0"]}),
                    devices=(Device(name="pi", capacity=4), Device(name="server", capacity=4)),
                    links=(Link(source="pi", target="server", bandwidth_bps=1e6, capacity=2),),
                    source="pi")
    ours = run(system, cuts=1, duration_s=2_000.0, replications=10, seed=5)
    exact = mg1k(30.0, law, 4)
    assert exact.loss_probability > 0.1
    for name in FIELDS:
        gap = abs(getattr(ours, name) - getattr(exact, name))
        assert gap <= ours.half_widths[name], name


def test_speed_factor_divides_device_work():
    # The same draws, scaled two ways: a factor 2 equals a device twice as fast.
    slow = run(tandem(pi_speed=1.0), speed=2.0)
    fast = run(tandem(pi_speed=2.0))
    for name in FIELDS:
        assert getattr(slow, name) == pytest.approx(getattr(fast, name), rel=1e-9)


def test_job_uses_cut_in_force_at_arrival():
    # all on the Pi for the first half, then upload every input: half the jobs use each
    cuts = Piecewise((0.0, 250.0), (3, 0))
    m = run(tandem(rate=10.0), cuts=cuts, warmup=0.0)
    rate = m.arrival_rate
    assert m.station("pi").arrival_rate == pytest.approx(rate / 2, rel=0.1)
    assert m.station("pi->server").arrival_rate == pytest.approx(rate / 2, rel=0.1)


def test_jobs_exiting_before_the_cut_never_use_the_link():
    m = run(tandem(rate=10.0, exit_probability=1.0), cuts=1)
    assert m.station("pi->server").arrival_rate == 0.0
    assert m.exit_distribution["b0"] == 1.0


def test_low_bandwidth_slows_the_upload():
    fast = run(tandem(rate=5.0), cuts=0)
    slow = run(tandem(rate=5.0), cuts=0, bandwidth_bps=Piecewise((0.0, 250.0), (20e6, 5e6)))
    assert slow.mean_response_time > fast.mean_response_time + 0.05


def test_transfer_integrates_over_bandwidth_steps():
    link = Piecewise((0.0, 1.0), (1e6, 3e6))
    # 0.5 Mbit by t = 1 s, the remaining 1.5 Mbit at 3 Mbit/s: 0.5 s more
    assert link.reach(0.5, 2e6) == pytest.approx(1.5)
    assert link.reach(2.0, 3e6) == pytest.approx(3.0)
    assert link.at(0.99) == 1e6 and link.at(1.0) == 3e6


def test_same_seed_same_numbers():
    a, b = run(tandem(), seed=7), run(tandem(), seed=7)
    c = run(tandem(), seed=8)
    assert a == b
    assert a.mean_response_time != c.mean_response_time


@pytest.mark.parametrize("options, match", [
    ({"cuts": 4}, r"'cuts' parameter of simulate_timevarying must be an int in \[0, 3\]"),
    ({"cuts": Piecewise((0.0, 1.0), (1, 1.5))}, r"'cuts' .* must be cut indices"),
    ({"bandwidth_bps": 0.0}, r"'bandwidth_bps' .* must be a finite number > 0"),
    ({"speed": Piecewise((0.0,), (-1.0,))}, r"'speed' .* must be a step function with values"),
    ({"device": "phone"}, r"'device' parameter of simulate_timevarying must be a device"),
    ({"server": "pi", "device": "server"}, r"must be a link server->pi with a bandwidth"),
    ({"duration_s": -1.0}, r"'duration_s' .* must be a finite number > 0"),
])
def test_bad_options_are_named(options, match):
    with pytest.raises(InvalidParameterError, match=match):
        run(tandem(), **options)


@pytest.mark.parametrize("times, values, match", [
    ((1.0, 2.0), (1.0, 2.0), "strictly increasing finite times starting at 0"),
    ((0.0, 0.0), (1.0, 2.0), "strictly increasing finite times starting at 0"),
    ((0.0, 1.0), (1.0,), "2 finite numbers, one per time"),
    ((0.0,), (np.nan,), "1 finite numbers, one per time"),
])
def test_bad_step_functions_are_named(times, values, match):
    with pytest.raises(InvalidParameterError, match=f"of Piecewise must be {match}"):
        Piecewise(times, values)
