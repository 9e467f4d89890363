"""Neurosurgeon and Scission splits: hand-computed optima, brute force, regimes,
energy, and every error."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from edgeperf.dists import Deterministic, Gamma
from edgeperf.exceptions import InfeasibleError, InvalidParameterError
from edgeperf.model import (DNN, Block, Device, Link, Placement, PoissonArrivals, System,
                            Workload)
from edgeperf.placement import Costs, PowerModel, fragments_of, neurosurgeon, scission
from edgeperf.placement._split import device_seconds
from edgeperf.queueing import DecompositionEvaluator

# Three blocks, an exit after b1 taken by half the jobs; the server is 10x faster.
# Latencies (phone): 10, 20, 30 ms; input 100 kB, cuts 400 kB, 10 kB, 400 B.
MODEL = DNN(input_bytes=100_000, blocks=(
    Block(name="b0", latency=Deterministic(0.010), output_bytes=400_000),
    Block(name="b1", latency=Deterministic(0.020), output_bytes=10_000, exit_probability=0.5),
    Block(name="b2", latency=Deterministic(0.030), output_bytes=400, param_bytes=5_000_000),
))
MBPS = 8e6  # one byte per microsecond


def two_tier(*, bandwidth_bps: float = MBPS, phone_speed: float = 1.0,
             phone_memory: int | None = None, server_memory: int | None = None) -> System:
    devices = (Device(name="phone", capacity=5, speed=phone_speed, memory_bytes=phone_memory),
               Device(name="server", capacity=10, speed=10.0, memory_bytes=server_memory))
    link = Link(source="phone", target="server", bandwidth_bps=bandwidth_bps, capacity=10,
                latency_s=0.002)
    return System(model=MODEL, devices=devices, links=(link,),
                  workload=Workload(arrival=PoissonArrivals(rate=5.0)),
                  placement=Placement.from_mapping({"phone": ["b0", "b1", "b2"]}))


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


# --------------------------------------------------------------------------- Neurosurgeon


def test_hand_computed_optimum_on_three_blocks():
    # cut 0: 0.100 upload + 0.002 + 0.001 + 0.002 + 0.5 * 0.003         = 0.1065
    # cut 1: 0.010 + 0.400 + 0.002 + 0.002 + 0.5 * 0.003               = 0.4155
    # cut 2: 0.010 + 0.020 + 0.5 * (0.010 + 0.002 + 0.003)               = 0.0375
    # cut 3: 0.010 + 0.020 + 0.5 * 0.030                                 = 0.045
    d = neurosurgeon(two_tier())
    assert d.details["cut"] == 2 and d.assignment == (0, 0, 1)
    assert d.value == pytest.approx(0.0375) and d.latency_s == pytest.approx(0.0375)
    assert d.details["curve"]["server"] == pytest.approx([0.1065, 0.4155, 0.0375, 0.045])
    assert d.details["infeasible"] == {"server": {}}
    assert (d.details["device"], d.details["server"], d.details["evaluated"]) == \
        ("phone", "server", 4)
    assert d.placement.as_dict() == {"phone": ["b0", "b1"], "server": ["b2"]}
    assert d.method == "neurosurgeon" and d.objective == "latency" and d.solve_time_s > 0


@pytest.mark.parametrize("bandwidth_bps", [1e5, MBPS, 1e8, 1e10])
@pytest.mark.parametrize("phone_speed", [0.05, 1.0, 20.0])
def test_result_equals_brute_force_over_cuts(bandwidth_bps, phone_speed):
    system = two_tier(bandwidth_bps=bandwidth_bps, phone_speed=phone_speed)
    costs = Costs.of(system).with_source(0)
    cuts = [np.array([0] * c + [1] * (3 - c)) for c in range(4)]
    best = min(costs.latency_s(a) for a in cuts)
    d = neurosurgeon(system)
    assert d.value == pytest.approx(best)
    assert d.details["curve"]["server"] == pytest.approx([costs.latency_s(a) for a in cuts])


def test_fast_link_and_slow_device_upload_the_input():
    d = neurosurgeon(two_tier(bandwidth_bps=1e10, phone_speed=0.1))
    assert d.details["cut"] == 0 and d.assignment == (1, 1, 1)
    assert d.system.source == "phone" and d.system.chains[0].upload == ("phone", "server")


def test_slow_link_keeps_everything_on_the_device():
    d = neurosurgeon(two_tier(bandwidth_bps=1e4))
    assert d.details["cut"] == 3 and d.assignment == (0, 0, 0)
    assert d.system.chains[0].upload is None


def test_a_cut_that_breaks_memory_is_skipped_and_reported():
    # b2's 5 MB of weights do not fit on the phone: the slow link would keep everything there.
    d = neurosurgeon(two_tier(bandwidth_bps=1e4, phone_memory=2_000_000))
    assert d.details["cut"] == 2
    assert d.details["curve"]["server"][3] is None
    assert d.details["infeasible"]["server"][3].startswith("memory of phone")


def test_energy_objective_trades_compute_for_transmission():
    # compute_w = 10 W makes the phone's compute dear: uploading wins although it is slower.
    # cut 0: transmit 0.100 s, idle 0.1065 - 0.100 = 0.0065 s -> 0.100 + 0.5 * 0.0065
    # cut 2: compute 0.030 s, transmit 0.5 * 0.010, idle 0.0375 - 0.035 -> 0.300 + 0.005 + ...
    power = PowerModel(compute_w=10.0, transmit_w=1.0, idle_w=0.5)
    d = neurosurgeon(two_tier(), objective="energy", power=power)
    assert d.details["cut"] == 0 and d.objective == "energy"
    assert d.value == pytest.approx(0.10325) and d.latency_s == pytest.approx(0.1065)
    assert d.details["curve"]["server"][2] == pytest.approx(0.30625)
    assert d.details["curve"]["server"][3] == pytest.approx(0.45)


def test_device_seconds_split_the_latency():
    costs = Costs.of(two_tier()).with_source(0)
    compute, transmit, idle = device_seconds(costs, [0, 0, 1], 0)
    assert (compute, transmit, idle) == pytest.approx((0.030, 0.005, 0.0025))
    assert compute + transmit + idle == pytest.approx(costs.latency_s([0, 0, 1]))


def test_the_best_of_several_servers_wins():
    system = three_devices(links=[("phone", "edge", 1e6), ("phone", "cloud", 1e9)])
    d = neurosurgeon(system)
    assert d.details["server"] == "cloud" and set(d.details["curve"]) == {"edge", "cloud"}
    assert neurosurgeon(system, server="edge").details["server"] == "edge"


def test_the_returned_system_validates_and_evaluates():
    for bandwidth_bps in (1e4, MBPS, 1e10):  # cuts 3, 2 and 0
        d = neurosurgeon(two_tier(bandwidth_bps=bandwidth_bps, phone_speed=0.1))
        d.system.validate()
        metrics = DecompositionEvaluator().evaluate(d.system)
        assert 0.0 < metrics.throughput <= 5.0 and metrics.mean_response_time > 0.0
        assert d.to_dict()["placement"] == d.placement.as_dict()


# --------------------------------------------------------------------------- Neurosurgeon errors


def test_unknown_device_and_server_names():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'device' parameter of neurosurgeon must be one of ['phone', 'server']. "
            "Got 'tablet'.")):
        neurosurgeon(two_tier(), device="tablet")
    with pytest.raises(InvalidParameterError, match=r"'server' parameter .* Got 'cloud'"):
        neurosurgeon(two_tier(), server="cloud")
    with pytest.raises(InvalidParameterError, match="a device other than the device tier"):
        neurosurgeon(two_tier(), server="phone")
    with pytest.raises(InvalidParameterError, match=r"'chain' parameter .* Got 'other'"):
        neurosurgeon(two_tier(), chain="other")
    with pytest.raises(InvalidParameterError,
                       match="^The 'system' parameter of Costs.of must be a System"):
        neurosurgeon("pi_server.yaml")  # type: ignore[arg-type]


def test_an_unreachable_server_names_the_missing_link():
    system = three_devices(links=[("phone", "edge", 1e6)])
    with pytest.raises(InfeasibleError, match=exactly(
            "The server 'cloud' is unreachable: no link phone->cloud.")):
        neurosurgeon(system, server="cloud")
    with pytest.raises(InfeasibleError, match="no link from it to any other device"):
        neurosurgeon(system, device="cloud")


def test_no_feasible_cut_names_the_binding_memory():
    system = two_tier(phone_memory=1_000, server_memory=5_400_000)
    # cuts 1-3 overflow the phone; cut 0 puts all weights and a 500 kB activation on the server.
    with pytest.raises(InfeasibleError, match=r"^No feasible cut of chain 'main' from 'phone': "
                       r"memory of phone \(3 of 4\); memory of server \(1 of 4\)\. First: "):
        neurosurgeon(system)


def test_a_zero_byte_input_cannot_be_uploaded():
    model = DNN(blocks=MODEL.blocks)  # input_bytes = 0
    system = System(model=model, devices=two_tier().devices, links=two_tier().links,
                    workload=two_tier().workload, placement=two_tier().placement)
    d = neurosurgeon(system, device="phone")
    assert d.details["infeasible"]["server"] == {
        0: "input_bytes is 0: nothing to send over phone->server"}


def test_bad_objective_and_power():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'objective' parameter of neurosurgeon must be one of 'latency', 'energy'. "
            "Got 'cost'.")):
        neurosurgeon(two_tier(), objective="cost")
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'power' parameter of neurosurgeon must be a PowerModel when objective is "
            "'energy'. Got None.")):
        neurosurgeon(two_tier(), objective="energy")
    with pytest.raises(InvalidParameterError, match="must be a PowerModel or None. Got 3"):
        neurosurgeon(two_tier(), objective="energy", power=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'idle_w' parameter of PowerModel must be a finite number >= 0. Got -1.")):
        PowerModel(compute_w=1.0, transmit_w=1.0, idle_w=-1)


# --------------------------------------------------------------------------- Scission


def three_devices(links: list[tuple[str, str, float]]) -> System:
    devices = (Device(name="phone", capacity=5), Device(name="edge", capacity=5, speed=3.0),
               Device(name="cloud", capacity=5, speed=30.0))
    return System(model=MODEL, devices=devices,
                  links=[Link(source=s, target=t, bandwidth_bps=b, capacity=5)
                         for s, t, b in links],
                  workload=Workload(arrival=PoissonArrivals(rate=5.0)),
                  placement=Placement.from_mapping({"phone": ["b0", "b1", "b2"]}))


def random_system(seed: int, n_devices: int = 4, n_blocks: int = 5) -> System:
    rng = np.random.default_rng(seed)
    names = [f"d{i}" for i in range(n_devices)]
    memory = [None if rng.random() < 0.5 else int(rng.integers(2_000_000, 8_000_000))
              for _ in names]
    speeds = [float(rng.uniform(0.05, 1.0))] + list(rng.uniform(1.0, 30.0, n_devices - 1))
    devices = [Device(name=n, capacity=4, speed=float(x), memory_bytes=m)
               for n, x, m in zip(names, speeds, memory)]
    links = [Link(source=s, target=t, bandwidth_bps=float(10 ** rng.uniform(6, 9.5)), capacity=4,
                  latency_s=float(rng.uniform(0, 0.01)))
             for s, t in itertools.permutations(names, 2) if rng.random() < 0.6]
    blocks = [Block(name=f"b{i}", latency=Gamma(2.0, float(rng.uniform(0.001, 0.05))),
                    output_bytes=int(rng.integers(100, 500_000)),
                    param_bytes=int(rng.integers(0, 2_000_000)),
                    exit_probability=None if i == n_blocks - 1 else float(rng.uniform(0, 0.4)))
              for i in range(n_blocks)]
    model = DNN(blocks=tuple(blocks), input_bytes=int(rng.integers(1_000, 200_000)))
    return System(model=model, devices=devices, links=links,
                  workload=Workload(arrival=PoissonArrivals(rate=2.0)),
                  placement=Placement.from_mapping({"d0": list(model.names)}))


def brute_force(system: System, score) -> float:
    """The best assignment whose tiers (the source first) are at most three distinct devices."""
    costs = Costs.of(system).with_source(0)
    best = np.inf
    for a in itertools.product(range(costs.n_devices), repeat=costs.n_blocks):
        tiers = [d for d, _, _ in fragments_of(a)]
        tiers = tiers if tiers[0] == 0 else [0, *tiers]
        if len(tiers) <= 3 and len(set(tiers)) == len(tiers) and costs.violation(a) is None:
            best = min(best, score(costs, np.array(a)))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_scission_equals_brute_force_over_three_tier_prefixes(seed):
    system = random_system(seed)
    try:
        d = scission(system)
    except InfeasibleError:
        assert brute_force(system, lambda c, a: c.latency_s(a)) == np.inf
        return
    assert d.value == pytest.approx(brute_force(system, lambda c, a: c.latency_s(a)))
    costs = Costs.of(d.system)
    assert costs.latency_s(costs.assignment_of(d.placement)) == pytest.approx(d.latency_s)
    # Each distinct placement once: the empty configuration plus C(5, k) per k-tier option.
    assert d.details["evaluated"] <= 1 + 3 * 5 + 6 * 10


@pytest.mark.parametrize("seed", range(3))
def test_scission_energy_equals_brute_force(seed):
    power = PowerModel(compute_w=4.0, transmit_w=1.5, idle_w=0.3)
    system = random_system(seed + 10)
    d = scission(system, objective="energy", power=power)
    assert d.value == pytest.approx(brute_force(system, lambda c, a: power.energy_j(c, a, 0)))


def test_scission_on_two_tiers_equals_neurosurgeon():
    for bandwidth_bps in (1e4, MBPS, 1e10):
        system = two_tier(bandwidth_bps=bandwidth_bps, phone_speed=0.1)
        assert scission(system).assignment == neurosurgeon(system).assignment


def test_scission_uses_three_tiers_and_reports_them():
    system = three_devices(links=[("phone", "edge", 1e9), ("edge", "cloud", 1e8)])
    d = scission(system)
    assert d.details["tiers"][0] == "phone"
    c1, c2 = d.details["cuts"]
    assert 0 <= c1 <= c2 <= 3 and d.details["evaluated"] == 1 + 3 + 3
    d.system.validate()
    assert DecompositionEvaluator().evaluate(d.system).throughput > 0.0


def test_fixed_tiers_allow_empty_tiers():
    system = three_devices(links=[("phone", "edge", 1e9), ("edge", "cloud", 1e9),
                                  ("phone", "cloud", 1e3)])
    d = scission(system, tiers=["phone", "edge", "cloud"])
    assert d.details["tiers"][1] in ("edge", "cloud", None)
    only_phone = scission(system, tiers=["phone"])
    assert only_phone.assignment == (0, 0, 0) and only_phone.details["evaluated"] == 1
    assert only_phone.details["tiers"] == ("phone", None, None)
    assert only_phone.details["cuts"] == (3, 3)


def test_scission_errors():
    system = three_devices(links=[("phone", "edge", 1e9)])
    rule = "one to three distinct device names (device, edge, cloud)"
    with pytest.raises(InvalidParameterError, match=re.escape(rule)):
        scission(system, tiers=["phone", "phone"])
    with pytest.raises(InvalidParameterError, match=re.escape(rule)):
        scission(system, tiers="phone")
    with pytest.raises(InvalidParameterError, match=re.escape(rule)):
        scission(system, tiers=[["phone"]])  # was a TypeError: unhashable list
    with pytest.raises(InvalidParameterError, match=r"'tiers' parameter .* Got 'moon'"):
        scission(system, tiers=["phone", "moon"])
    with pytest.raises(InvalidParameterError, match="'objective' parameter of scission"):
        scission(system, objective="money")
    with pytest.raises(InvalidParameterError, match="'power' parameter of scission"):
        scission(system, objective="energy")
    tight = two_tier(phone_memory=1_000, server_memory=1_000)
    with pytest.raises(InfeasibleError, match=r"^No feasible split of chain 'main' from "
                       r"'phone': memory of phone \(3 of 4\); memory of server \(1 of 4\)"):
        scission(tight)


def test_the_random_instances_exercise_two_and_three_tiers():
    used = {sum(t is not None for t in scission(random_system(s)).details["tiers"])
            for s in range(6)}
    assert used == {2, 3}
