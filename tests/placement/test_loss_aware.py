"""Loss-aware placement: exact on small instances, a search that finds the
optimum, exit options under a loss target, and its errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edgeperf.exceptions import InfeasibleError, InvalidParameterError, UnsupportedModelError
from edgeperf.io import load_scenario
from edgeperf.model import ExitTable
from edgeperf.placement import (Costs, ExitOption, exit_options, loss_aware, place,
                                valid_assignments)
from edgeperf.queueing import DecompositionEvaluator
from edgeperf.sim._network import network_of
from placement_systems import three_devices


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def brute_force(system) -> list[tuple[float, float, tuple[int, ...]]]:
    """(loss, mean response, assignment) of every valid placement, best first."""
    costs = Costs.of(system)
    evaluator = DecompositionEvaluator(matched_laws=True)
    rows = []
    for a in valid_assignments(costs):
        m = evaluator.evaluate(costs.placed(a))
        rows.append((m.loss_probability, m.mean_response_time, tuple(int(x) for x in a)))
    return sorted(rows)


@pytest.mark.parametrize("rate", [2.0, 12.0, 30.0])
def test_exhaustive_search_finds_the_least_loss(rate):
    system = three_devices(rate)
    decision = loss_aware(system, confirm=0)
    rows = brute_force(system)
    least = rows[0][0]
    tied = [r for r in rows if r[0] <= least + 1e-4]
    assert decision.details["search"] == "exhaustive"
    assert decision.details["scored"] == len(rows)
    assert decision.assignment == min(tied, key=lambda r: r[1])[2]
    assert decision.details["predicted"]["loss_probability"] <= least + 1e-4


def test_local_search_reaches_the_exhaustive_optimum():
    system = three_devices(30.0)
    exact = loss_aware(system, confirm=0)
    searched = loss_aware(system, confirm=0, exhaustive_limit=1)
    assert searched.details["search"] == "ilp seeds + local search"
    assert searched.details["scored"] < len(brute_force(system))
    assert searched.assignment == exact.assignment


def test_under_load_it_loses_less_than_the_latency_optimum():
    system = three_devices(30.0)
    fastest = place(system, "ilp", objective="latency")
    aware = loss_aware(system, confirm=0)
    evaluator = DecompositionEvaluator()
    loss_fast = evaluator.evaluate(fastest.system).loss_probability
    loss_aware_ = evaluator.evaluate(aware.system).loss_probability
    assert fastest.assignment != aware.assignment
    assert loss_aware_ < loss_fast


def test_confirmation_simulates_the_best_candidates():
    decision = loss_aware(three_devices(12.0), confirm=2, jobs=20_000, replications=2)
    confirmed = decision.details["confirmed"]
    assert len(confirmed) == 2
    assert decision.placement.as_dict() in [c["placement"] for c in confirmed]
    for c in confirmed:  # the simulator and the analytic model agree on these
        assert abs(c["simulated_loss"] - c["predicted_loss"]) < 0.02


def options() -> list[ExitOption]:
    """Leaving early more often: less work, lower accuracy."""
    return [ExitOption(probabilities={"b1": q}, accuracy=0.95 - 0.2 * q, label=f"q={q}")
            for q in (0.0, 0.3, 0.6, 0.9)]


def test_the_most_accurate_exit_option_within_the_loss_target_wins():
    system = three_devices(20.0)
    target = 0.02  # met by q = 0.3, 0.6 and 0.9, not by q = 0 (least loss 0.023)
    decision = loss_aware(system, options=options(), loss_target=target, confirm=0)
    best_accuracy = -1.0
    for option in options():
        placed = three_devices(20.0, exits=(None, option.probabilities["b1"], None, None))
        if brute_force(placed)[0][0] <= target:
            best_accuracy = max(best_accuracy, option.accuracy)
    assert decision.objective == "accuracy"
    assert decision.value == best_accuracy == options()[1].accuracy
    assert decision.details["predicted"]["loss_probability"] <= target
    exits = decision.system.model.blocks[1].exit_probability
    assert exits == decision.details["exit_option"]["probabilities"]["b1"]


def test_an_unmeetable_loss_target():
    with pytest.raises(InfeasibleError, match=r"^No placement of chain 'main' meets the loss "
                                              r"target 1e-09: the least predicted loss is "):
        loss_aware(three_devices(45.0), loss_target=1e-9, confirm=0)


def test_several_chains_are_sent_to_the_joint_searches():
    shared = load_scenario(Path(__file__).parents[2] / "examples" / "scenarios" /
                           "shared_edge.yaml")
    with pytest.raises(UnsupportedModelError, match=r"^loss_aware scores a chain with the "
                       r"analytic decomposition, which cannot model chains sharing devices "
                       r"\(2 here\); place every chain at once with method 'surrogate' or "
                       r"'simulation'\.$"):
        loss_aware(shared, chain="camera", confirm=0)


def test_exit_options_from_a_table_reproduce_its_shares():
    rng = np.random.default_rng(3)
    confidence = rng.random((400, 3))
    table = ExitTable(confidence=confidence, correct=rng.random((400, 3)) < 0.8)
    model = three_devices(exits=(None, 0.0, 0.0, None)).model
    thresholds = [[0.5, 0.7], [0.9, 0.2]]
    shares, accuracy = table.evaluate(thresholds)
    for option, row, acc in zip(exit_options(table, model, thresholds), shares, accuracy):
        route = network_of(three_devices(exits=(None, option.probabilities["b1"],
                                                option.probabilities["b2"], None))).routes[0]
        assert route.static_exit_shares() == pytest.approx(row)
        assert option.accuracy == acc


def test_exit_options_need_as_many_exits_as_the_model():
    table = ExitTable(confidence=np.ones((4, 2)), correct=np.ones((4, 2), dtype=bool))
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'table' parameter of exit_options must be 3 exits, as the model has (exits "
            "after ['b1', 'b2'] and the final one). Got 2.")):
        exit_options(table, three_devices(exits=(None, 0.0, 0.0, None)).model, [[0.5]])


def test_exit_options_check_their_arguments():
    table = ExitTable(confidence=np.ones((4, 3)), correct=np.ones((4, 3), dtype=bool))
    model = three_devices(exits=(None, 0.0, 0.0, None)).model
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'table' parameter of exit_options must be an ExitTable. Got None.")):
        exit_options(None, model, [[0.5, 0.5]])
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'model' parameter of exit_options must be a DNN. Got 'str'.")):
        exit_options(table, "resnet", [[0.5, 0.5]])
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'probabilities' parameter of ExitOption must be a mapping exit block -> "
            "probability. Got 'list'.")):
        ExitOption(probabilities=[0.1], accuracy=0.9)
    for ragged in ([[0.5], [0.1, 0.2]], [["high", "low"]]):  # were numpy's ValueError
        with pytest.raises(InvalidParameterError, match=exactly(
                "The 'thresholds' parameter of exit_options must be threshold vectors of 2 "
                "numbers (one per early exit), or one of them. Got 'list'.")):
            exit_options(table, model, ragged)
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'probabilities' parameter of ExitOption must be keyed by exit block names. "
            "Got [1].")):
        ExitOption(probabilities={1: 0.5}, accuracy=0.9)
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'model' parameter of ExitOption.apply must be a DNN. Got None.")):
        ExitOption(probabilities={"b1": 0.5}, accuracy=0.9).apply(None)


def test_place_refuses_a_method_that_is_not_a_name():
    with pytest.raises(InvalidParameterError, match=r"^The 'method' parameter of place must be "
                       r"one of \[.*\]\. Got \['ilp'\]\.$"):
        place(three_devices(), ["ilp"])


def test_an_option_must_name_the_model_exits():
    bad = [ExitOption(probabilities={"b2": 0.1}, accuracy=0.9)]
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'probabilities' parameter of ExitOption must be keyed by the model's exits "
            "['b1']. Got ['b2'].")):
        loss_aware(three_devices(), options=bad, confirm=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"loss_target": 1.5}, "The 'loss_target' parameter of loss_aware must be a finite number >= 0 "
     "and <= 1. Got 1.5."),
    ({"confirm": -1}, "The 'confirm' parameter of loss_aware must be an int >= 0. Got -1."),
    ({"seed": -1}, "The 'seed' parameter of loss_aware must be an int from 0 to 2**64 - 1. "
     "Got -1."),
    ({"options": ["fast"]}, "The 'options' parameter of loss_aware must be a list of "
     "ExitOption (from exit_options). Got ['fast']."),
    ({"options": 0.9}, "The 'options' parameter of loss_aware must be a list of ExitOption "
     "(from exit_options). Got 'float'."),
    ({"progress": 3}, "The 'progress' parameter of loss_aware must be None or a function of the "
     "placements scored. Got 3."),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(InvalidParameterError, match=exactly(message)):
        loss_aware(three_devices(), **kwargs)


def test_what_is_not_a_system_is_refused():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'system' parameter of loss_aware must be a System. Got 'str'.")):
        loss_aware("scenario.yaml")


def test_moves_slide_a_fragment_both_ways():
    from edgeperf.placement._loss_aware import _moves

    moves = set(_moves((0, 0, 1, 2, 2), n_devices=4))
    assert {(0, 1, 2, 2, 2), (0, 0, 0, 1, 2)} <= moves  # slid left, slid right
    assert (0, 0, 3, 2, 2) in moves and (0, 0, 1, 1, 2) in moves  # moved, boundary shifted
