"""Sweep grids: --set specs, scenario paths and the variants they make."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from edgeperf.exceptions import InvalidParameterError
from edgeperf.sim._grid import SweepError, apply_point, check_paths, grid_points, parse_set


# --------------------------------------------------------------------------- grid specs


def test_a_range_includes_its_stop_despite_float_rounding():
    assert parse_set("w.rate=0.1:0.3:0.1") == ("w.rate", (0.1, 0.2, 0.3))
    rates = parse_set("rate=1:20:0.5")[1]
    assert len(rates) == 39 and rates[0] == 1.0 and rates[-1] == 20.0
    assert parse_set("rate=0:1:0.3")[1] == (0.0, 0.3, 0.6, 0.9)  # 1 is off the grid
    ints = parse_set("devices[0].capacity=1:5:2")[1]
    assert ints == (1, 3, 5) and all(type(x) is int for x in ints)
    assert parse_set("rate=2:2:1")[1] == (2,)


def test_lists_and_single_values_keep_their_types():
    assert parse_set("devices.0.capacity=1, 2,5") == ("devices.0.capacity", (1, 2, 5))
    assert parse_set("x=0.5")[1] == (0.5,)
    assert parse_set("x=gamma,exponential")[1] == ("gamma", "exponential")
    assert parse_set("x=true")[1] == (True,)


def test_several_sets_make_the_cartesian_product_first_varying_slowest():
    points = grid_points(["a=1,2", "b[0].c=x,y,z"])
    assert len(points) == 6
    assert points[:2] == [{"a": 1, "b[0].c": "x"}, {"a": 1, "b[0].c": "y"}]
    assert points[-1] == {"a": 2, "b[0].c": "z"}
    assert grid_points({"a": [1, 2]}) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(("spec", "message"), [
    ("workload.arrival.rate", r"--set 'workload.arrival.rate' must look like PATH=VALUES \(e\.g\."),
    ("=1,2", r"must look like PATH=VALUES"),
    ("rate=", r"--set rate: has no values after '='"),
    ("rate=1:2", r"--set rate: range '1:2' must be start:stop:step \(e\.g\."),
    ("rate=1:2:3:4", r"range '1:2:3:4' must be start:stop:step"),
    ("rate=a:2:1", r"range 'a:2:1' must be three numbers start:stop:step"),
    ("rate=1:inf:1", r"range '1:inf:1' must have finite numbers"),
    ("rate=1:2:0", r"--set rate: the step of range '1:2:0' must be > 0\. Got 0\."),
    ("rate=1:2:-0.5", r"the step of range '1:2:-0.5' must be > 0\. Got -0\.5\."),
    ("rate=2:1:1", r"range '2:1:1' must have stop >= start"),
    ("rate=1:1e9:1", r"range '1:1e9:1' has 1000000000 values; at most 100000"),
    ("rate=1,,2", r"--set rate: list '1,,2' has an empty item"),
    ("a..b=1", r"--set path 'a\.\.b' is malformed: use names joined by dots"),
    ("devices[x].capacity=1", r"--set path 'devices\[x\]\.capacity' is malformed"),
    ("devices[0.capacity=1", r"is malformed"),
])
def test_a_malformed_set_gets_one_clear_message(spec, message):
    with pytest.raises(SweepError, match=message):
        grid_points([spec])


def test_grid_errors_for_duplicates_emptiness_and_size():
    twice = (r"the same parameter is set twice "
             r"\('devices\[0\]\.capacity' and 'devices\.0\.capacity'\)")
    with pytest.raises(SweepError, match=r"--set devices\.0\.capacity: " + twice):
        grid_points(["devices[0].capacity=1", "devices.0.capacity=2"])
    with pytest.raises(SweepError, match=r"A sweep needs at least one --set PATH=VALUES"):
        grid_points([])
    with pytest.raises(SweepError, match=r"The grid has 1000000 points; at most 100000"):
        grid_points(["a=1:1000:1", "b=1:1000:1"])
    with pytest.raises(SweepError, match=r"--set a: needs a non-empty list of values"):
        grid_points({"a": []})
    for values in (5, None, iter([1])):  # were TypeErrors from len()
        with pytest.raises(SweepError, match=r"^--set a: needs a non-empty list of values\."):
            grid_points({"a": values})
    assert grid_points({"a": np.array([1.0, 2.0])}) == [{"a": 1.0}, {"a": 2.0}]
    with pytest.raises(SweepError, match=r"^A sweep's parameter must be a PATH string .*Got 3\.$"):
        grid_points({3: [1]})
    with pytest.raises(SweepError, match=r"^A sweep's parameter must be a PATH string .*Got 3\.$"):
        apply_point({"a": 1}, {3: 1})


def test_what_is_not_a_spec_gets_one_clear_message():
    with pytest.raises(InvalidParameterError, match=r"^The 'spec' parameter of parse_set must "
                       r"be a string PATH=VALUES \(e\.g\. .*\)\. Got None\.$"):
        parse_set(None)
    with pytest.raises(InvalidParameterError, match=r"^The 'sets' parameter of grid_points must "
                       r"be a list of PATH=VALUES strings or a mapping PATH -> values\. "
                       r"Got 'str'\.$"):
        grid_points("a=1")
    with pytest.raises(InvalidParameterError, match=r"^The 'point' parameter of apply_point "
                       r"must be a mapping PATH -> value\. Got 'list'\.$"):
        apply_point({"a": 1}, ["a"])


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(("path", "message"), [
    ("workload.arival.rate",
     r"Unknown --set path 'workload\.arival\.rate': workload has no key 'arival'; "
     r"its keys are: arrival\."),
    ("worklaod.arrival.rate",
     r"the top level has no key 'worklaod'; its keys are: workload, model, devices, links, "
     r"placement\."),
    ("devices[2].capacity", r"'devices\[2\]\.capacity': devices is a list with indices 0\.\.1\. "
                            r"Got 2\."),
    ("devices.name.capacity", r"devices is a list with indices 0\.\.1\. Got 'name'\."),
    ("workload.arrival.rate.mean",
     r"workload\.arrival\.rate is a value \(26\.0\) with no key 'mean'\."),
    ("model.blocks[1].exit.probability.x", r"model\.blocks\[1\]\.exit\.probability is a value"),
])
def test_an_unknown_path_names_where_it_fails_and_what_exists(pi_server, path, message):
    with pytest.raises(SweepError, match=message):
        check_paths(pi_server, [path])


def test_apply_point_copies_and_accepts_both_index_spellings(pi_server, two_chains):
    before = copy.deepcopy(pi_server)
    out = apply_point(pi_server, {"devices[0].capacity": 3, "links.0.latency_s": 0.5})
    assert pi_server == before
    assert out["devices"][0]["capacity"] == 3 and out["links"][0]["latency_s"] == 0.5
    other = apply_point(two_chains, {"chains[1].workload.arrival.rate": 7.0})
    assert [c["workload"]["arrival"]["rate"] for c in other["chains"]] == [26.0, 7.0]
    assert two_chains["chains"][1]["workload"]["arrival"]["rate"] == 26.0
