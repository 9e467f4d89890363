"""Costs: the arithmetic every placement method shares, checked by hand."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edgeperf.exceptions import InfeasibleError, InvalidParameterError, UnsupportedModelError
from edgeperf.io import load_scenario
from edgeperf.placement import Costs, fragments_of
from placement_systems import three_devices

SHARED_EDGE = Path(__file__).parents[2] / "examples" / "scenarios" / "shared_edge.yaml"


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def test_fragments_of_runs():
    assert fragments_of([0, 0, 2, 2, 1]) == [(0, 0, 1), (2, 2, 3), (1, 4, 4)]
    assert fragments_of(np.array([1, 1, 0])) == [(1, 0, 1), (0, 2, 2)]


@pytest.mark.parametrize("assignment, shown", [(None, "'NoneType'"), ("012", "'str'"),
                                               ([0, 1.5], "[0, 1.5]")])
def test_fragments_of_needs_device_indices(assignment, shown):
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'assignment' parameter of fragments_of must be a sequence of device indices "
            f"(ints), one per block. Got {shown}.")):
        fragments_of(assignment)


def test_latency_by_hand():
    costs = Costs.of(three_devices())
    # b0, b1 on edge (speed 1.5), b2, b3 on server (speed 3); the input is uploaded cam->edge
    a = np.array([1, 1, 2, 2])
    upload = 12_000 * 8 / 20e6 + 0.002
    compute = (0.030 + 0.040) / 1.5 + 0.7 * (0.050 + 0.020) / 3.0
    transfer = 0.7 * (10_000 * 8 / 50e6 + 0.002)  # b1's output, for the 70 % that pass its exit
    assert costs.latency_s(a) == pytest.approx(upload + compute + transfer)
    assert costs.utilisation(a) == pytest.approx(
        [0.0, 6.0 * 0.070 / 1.5, 6.0 * 0.7 * 0.070 / 3.0])
    assert costs.memory_bytes(a)[1] == 2_000 + 12_000 + 20_000  # weights + b0's in and out


def test_placement_round_trip():
    system = three_devices()
    costs = Costs.of(system)
    a = np.array([0, 1, 1, 2])
    assert list(costs.assignment_of(costs.placement_of(a))) == list(a)
    assert costs.placed(a).placement == costs.placement_of(a)


@pytest.mark.parametrize("a, rule", [
    ([0, 1, 0, 0], "each device runs one contiguous fragment"),
    ([2, 2, 0, 0], "no link server->cam"),
])
def test_violations(a, rule):
    assert Costs.of(three_devices()).violation(np.array(a)) == rule


def test_a_zero_byte_upload_is_a_violation():
    costs = Costs.of(three_devices(input_bytes=0))
    assert costs.violation(np.array([1, 1, 1, 1])) == \
        "input_bytes is 0: nothing to send over cam->edge"


def test_memory_limits():
    costs = Costs.of(three_devices(memory_bytes=35_000))
    assert costs.violation(np.array([0, 0, 0, 0])) == \
        "memory of cam: 36000 bytes needed > 35000"
    with pytest.raises(InfeasibleError, match=r"^Block 'b0' needs 33000 bytes \(weights and "
                                              r"activations\); no device has that much memory "
                                              r"\(largest: 30000\)\.$"):
        Costs.of(three_devices(memory_bytes=30_000)).check_fits()


def test_several_chains_need_a_name():
    system = load_scenario(SHARED_EDGE)
    with pytest.raises(UnsupportedModelError, match="name one"):
        Costs.of(system)
    with pytest.raises(InvalidParameterError, match=r"^The 'chain' parameter of Costs.of must "
                                                    r"be one of \[.*\]\. Got 'nope'\.$"):
        Costs.of(system, "nope")
