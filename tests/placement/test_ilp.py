"""ilp: its optimum equals the brute-force optimum over valid_assignments for
each objective; it reaches proven optimality on 56 blocks x 10 devices; its
errors name the binding constraint or the bad parameter."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import numpy as np
import pytest
from test_enumerate import random_system

from edgeperf.dists import Exponential
from edgeperf.exceptions import InfeasibleError, InvalidParameterError
from edgeperf.model import DNN, Block, Device, Link, Placement, PoissonArrivals, System, Workload
from edgeperf.placement import _ilp
from edgeperf.placement import (Costs, bottleneck_utilisation, ilp, link_utilisation,
                                valid_assignments)

SEEDS = [0, 1, 2, 3, 4, 6, 7]  # seed 5's source cannot hold the chain: tested below


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def score(costs: Costs, a: np.ndarray, objective: str, refs: dict, weight: float) -> float:
    latency, peak = costs.latency_s(a), bottleneck_utilisation(costs, a)
    return {"latency": latency, "bottleneck": peak,
            "mix": weight * latency / refs["latency_s"]
            + (1 - weight) * peak / refs["utilisation"]}[objective]


def assert_consistent(decision, costs: Costs) -> None:
    a = np.array(decision.assignment)
    assert costs.violation(a) is None
    decision.system.validate()
    assert decision.placement == costs.placement_of(a)
    assert decision.latency_s == costs.latency_s(a)
    assert decision.details["proven_optimal"] is True


# ------------------------------------------------------------------ optimality


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("objective,weight", [("latency", 0.5), ("bottleneck", 0.5),
                                              ("mix", 0.5), ("mix", 0.1)])
def test_the_optimum_equals_the_brute_force_optimum(seed, objective, weight):
    system = random_system(seed)
    costs = Costs.of(system)
    decision = ilp(system, objective=objective, weight=weight)
    refs = decision.details["references"]
    best = min(score(costs, a, objective, refs, weight) for a in valid_assignments(costs))
    assert decision.value == pytest.approx(best, rel=1e-9, abs=1e-12)
    assert decision.value == score(costs, np.array(decision.assignment), objective, refs, weight)
    assert_consistent(decision, costs)


@pytest.mark.parametrize("seed", [0, 3, 6])
def test_mix_at_the_ends_of_the_weight_is_the_single_objective(seed):
    system = random_system(seed, source=False)
    assert ilp(system, objective="mix", weight=1.0).latency_s == pytest.approx(
        ilp(system).value, rel=1e-9)
    lone = ilp(system, objective="bottleneck").value
    mixed = ilp(system, objective="mix", weight=0.0)
    assert bottleneck_utilisation(Costs.of(system), np.array(mixed.assignment)) \
        == pytest.approx(lone, rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 6])
@pytest.mark.parametrize("share", [0.9, 0.6])
def test_a_processing_budget_is_respected_and_optimal(seed, share):
    system = random_system(seed, rate=20.0)
    costs = Costs.of(system)
    budget = share * float(costs.utilisation(np.array(ilp(system).assignment)).max())
    valid = [a for a in valid_assignments(costs) if costs.utilisation(a).max() <= budget]
    if not valid:  # seed 1 at 0.6: the budget leaves no placement
        with pytest.raises(InfeasibleError):
            ilp(system, max_utilisation=budget)
        return
    decision = ilp(system, max_utilisation=budget)
    assert max(decision.details["utilisation"].values()) <= budget * (1 + 1e-9)
    assert decision.value == pytest.approx(min(costs.latency_s(a) for a in valid), rel=1e-9)


def test_budgets_by_device_name_bind_only_the_named_devices():
    system = random_system(0, memory=None, rate=20.0)
    decision = ilp(system, max_utilisation={"d0": 0.0})
    assert decision.details["utilisation"]["d0"] == 0.0
    assert 0 not in decision.assignment


def test_details_describe_the_solve():
    system = random_system(0)
    decision = ilp(system, objective="bottleneck")
    d = decision.details
    assert d["status"] == "optimal" and d["mip_gap"] <= 1e-6
    assert d["n_variables"] > 6 * 4 and d["n_constraints"] > 6
    assert set(d["utilisation"]) == {"d0", "d1", "d2", "d3"}
    costs = Costs.of(system)
    assert d["link_utilisation"] == link_utilisation(costs, np.array(decision.assignment))
    assert decision.method == "ilp" and decision.objective == "bottleneck"
    assert decision.solve_time_s > 0


@pytest.mark.parametrize("objective", ["latency", "mix"])
def test_56_blocks_on_10_devices_are_solved_to_proven_optimality(objective, record_property):
    system = random_system(0, n_blocks=56, n_devices=10, radius=0.5, memory=0.15)
    start = time.perf_counter()
    decision = ilp(system, objective=objective, time_limit_s=60.0)
    elapsed = time.perf_counter() - start
    record_property("solve_time_s", elapsed)
    print(f"56x10 {objective}: {elapsed:.2f} s")
    assert_consistent(decision, Costs.of(system))
    assert len(set(decision.assignment)) >= 3  # memory forces a split
    assert elapsed < 20.0


# ---------------------------------------------------------------- infeasibility


def tiny(memory: tuple[int | None, ...] = (None, None), links: bool = True,
         source: str | None = "d0", n_blocks: int = 3) -> System:
    blocks = tuple(Block(name=f"b{i}", latency=Exponential(0.01), output_bytes=1000,
                         param_bytes=1000) for i in range(n_blocks))
    return System(model=DNN(blocks=blocks, input_bytes=1000),
                  devices=[Device(name=f"d{j}", capacity=5, memory_bytes=m)
                           for j, m in enumerate(memory)],
                  links=[Link(source="d0", target="d1", bandwidth_bps=1e6, capacity=5)]
                  if links else [],
                  workload=Workload(arrival=PoissonArrivals(rate=10.0)),
                  placement=Placement.from_mapping({"d0": [b.name for b in blocks]}),
                  source=source)


def test_a_block_that_fits_no_device_is_named():
    with pytest.raises(InfeasibleError, match=re.escape("Block 'b0' needs 3000 bytes")):
        ilp(tiny(memory=(2999, 2999)))


def test_a_source_without_links_and_too_little_memory_is_named():
    message = ("The source device 'd0' links to no other device, so it must run the whole "
               "chain, which needs 5000 bytes of memory; it has 4000.")
    with pytest.raises(InfeasibleError, match=exactly(message)):
        ilp(tiny(memory=(4000, None), links=False))


def test_a_block_above_every_budget_is_named():
    message = ("Block 'b0' alone adds a utilisation of at least 0.1 on any device, above every "
               "device's processing budget (max_utilisation); raise the budget or lower the "
               "arrival rate.")
    with pytest.raises(InfeasibleError, match=exactly(message)):
        ilp(tiny(), max_utilisation=0.05)


def test_a_chain_above_the_total_budget_is_named():
    message = ("The chain adds a utilisation of at least 0.3 in all, above the sum of the "
               "processing budgets (max_utilisation) 0.25.")
    with pytest.raises(InfeasibleError, match=exactly(message)):
        ilp(tiny(), max_utilisation={"d0": 0.15, "d1": 0.1})


def test_a_solver_infeasibility_names_the_active_constraints():
    message = ("No placement meets all the constraints together (HiGHS: infeasible): one "
               "contiguous fragment per device, links between consecutive fragments (radio "
               "range), a first device reachable from the source 'd0', memory.")
    with pytest.raises(InfeasibleError, match=exactly(message)):
        ilp(tiny(memory=(3000, 3000)))  # one block per device, three blocks, two devices


def test_a_budget_infeasibility_is_named_too():
    with pytest.raises(InfeasibleError, match=re.escape(
            "(HiGHS: infeasible): one contiguous fragment per device, links between "
            "consecutive fragments (radio range), processing budgets (max_utilisation).")):
        ilp(tiny(source=None, links=False), max_utilisation=0.2)


def test_running_out_of_time_without_a_placement_says_so(monkeypatch):
    monkeypatch.setattr(_ilp, "milp", lambda *a, **k: SimpleNamespace(x=None, status=1))
    with pytest.raises(InfeasibleError, match=exactly(
            "The ILP found no placement within time_limit_s=0.5 s; raise the time limit.")):
        ilp(tiny(), time_limit_s=0.5)


# ------------------------------------------------------------------- parameters

BUDGET_RULE = ("None, a number >= 0, or a mapping from device names ['d0', 'd1'] to numbers "
               ">= 0")


@pytest.mark.parametrize("kwargs,message", [
    ({"objective": "speed"}, "The 'objective' parameter of ilp must be one of 'latency', "
                             "'bottleneck', 'mix'. Got 'speed'."),
    ({"weight": 1.5}, "The 'weight' parameter of ilp must be a finite number >= 0 and <= 1. "
                      "Got 1.5."),
    ({"time_limit_s": 0}, "The 'time_limit_s' parameter of ilp must be a finite number > 0. "
                          "Got 0."),
    ({"max_utilisation": -1.0}, f"The 'max_utilisation' parameter of ilp must be "
                                f"{BUDGET_RULE}. Got -1.0."),
    ({"max_utilisation": "high"}, f"The 'max_utilisation' parameter of ilp must be "
                                  f"{BUDGET_RULE}. Got 'high'."),
    ({"max_utilisation": {"d9": 0.5}}, f"The 'max_utilisation' parameter of ilp must be "
                                       f"{BUDGET_RULE}. Got {{'d9': 0.5}}."),
    ({"max_utilisation": {"d0": -0.5}}, "The 'max_utilisation' parameter of ilp must be a "
                                        "finite number >= 0. Got -0.5."),
])
def test_bad_parameters_are_rejected(kwargs, message):
    with pytest.raises(InvalidParameterError, match=exactly(message)):
        ilp(tiny(), **kwargs)


@pytest.mark.parametrize("function", [link_utilisation, bottleneck_utilisation])
def test_utilisations_check_their_arguments(function):
    costs, owner = Costs.of(tiny()), function.__name__
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'costs' parameter of {owner} must be a Costs (Costs.of(system)). "
            "Got None.")):
        function(None, [0, 0, 0])
    rule = (f"The 'assignment' parameter of {owner} must be 3 device indices from 0 to 1, "
            "one per block.")
    for bad, shown in [(None, "None"), ([0, 1], "[0, 1]"), ([0, 2, 0], "[0, 2, 0]"),
                       ([0, 0.5, 1], "[0, 0.5, 1]")]:
        with pytest.raises(InvalidParameterError, match=exactly(f"{rule} Got {shown}.")):
            function(costs, bad)
