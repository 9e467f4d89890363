"""Metrics and StationMetrics: lookup and the JSON-friendly to_dict."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from edgeperf.model import Metrics, StationMetrics


def station(name: str, utilization: float, **overrides: object) -> StationMetrics:
    kwargs: dict[str, object] = {
        "name": name, "kind": "exact", "method": "exact", "arrival_rate": 10.0, "capacity": 3,
        "loss_probability": 0.125, "throughput": 8.75, "utilization": utilization,
        "mean_number": 1.5, "mean_response_time": 0.25, "mean_waiting_time": 0.125,
        "queue_length_distribution": (0.25, 0.5, 0.125, 0.125)}
    kwargs.update(overrides)
    return StationMetrics(**kwargs)  # type: ignore[arg-type]


def metrics(**overrides: object) -> Metrics:
    kwargs: dict[str, object] = {
        "kind": "approximate", "method": "two-moment/exact", "arrival_rate": 10.0,
        "throughput": 8.5, "loss_probability": 0.15, "mean_response_time": 0.5,
        "exit_distribution": {"b1": 0.25, "b2": 0.75},
        "stations": (station("pi", 0.75), station("pi->server", 0.5),
                     station("server", 0.25))}
    kwargs.update(overrides)
    return Metrics(**kwargs)  # type: ignore[arg-type]


METRICS_KEYS = {"kind", "method", "arrival_rate", "throughput", "loss_probability",
                "mean_response_time", "exit_distribution", "stations", "p50_response_time",
                "p95_response_time", "p99_response_time", "accuracy", "half_widths",
                "utilization"}
STATION_KEYS = {"name", "kind", "method", "arrival_rate", "capacity", "loss_probability",
                "throughput", "utilization", "mean_number", "mean_response_time",
                "mean_waiting_time", "queue_length_distribution"}


def test_utilization_is_a_dict_per_station_in_chain_order():
    m = metrics()
    assert m.utilization == {"pi": 0.75, "pi->server": 0.5, "server": 0.25}
    assert list(m.utilization) == ["pi", "pi->server", "server"]


def test_station_looks_up_by_name():
    m = metrics()
    assert m.station("pi->server") is m.stations[1]
    assert m.station("server").utilization == 0.25


def test_station_of_an_unknown_name_raises_key_error_naming_it():
    with pytest.raises(KeyError, match="^'gpu'$"):
        metrics().station("gpu")


def test_metrics_to_dict_has_the_documented_keys_and_values():
    d = metrics().to_dict()
    assert set(d) == METRICS_KEYS
    assert d["utilization"] == {"pi": 0.75, "pi->server": 0.5, "server": 0.25}
    assert d["exit_distribution"] == {"b1": 0.25, "b2": 0.75}
    assert (d["kind"], d["method"], d["arrival_rate"], d["throughput"],
            d["loss_probability"], d["mean_response_time"]) == \
        ("approximate", "two-moment/exact", 10.0, 8.5, 0.15, 0.5)
    assert d["p50_response_time"] is None and d["accuracy"] is None
    assert d["half_widths"] == {}
    assert [s["name"] for s in d["stations"]] == ["pi", "pi->server", "server"]
    assert all(set(s) == STATION_KEYS for s in d["stations"])


def test_station_to_dict_turns_tuples_into_lists():
    d = station("pi", 0.75).to_dict()
    assert set(d) == STATION_KEYS
    assert d["queue_length_distribution"] == [0.25, 0.5, 0.125, 0.125]
    assert type(d["queue_length_distribution"]) is list


def test_metrics_to_dict_turns_nested_tuples_into_lists():
    d = metrics().to_dict()
    assert type(d["stations"]) is list
    assert type(d["stations"][0]["queue_length_distribution"]) is list


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_to_dict_maps_non_finite_numbers_to_none_everywhere(bad):
    m = metrics(mean_response_time=bad, accuracy=bad,
                exit_distribution={"b1": bad, "b2": 0.75},
                half_widths={"mean_response_time": bad, "loss_probability": 0.01},
                stations=(station("pi", bad, mean_waiting_time=bad,
                                  queue_length_distribution=(0.5, bad, 0.5)),))
    d = m.to_dict()
    assert d["mean_response_time"] is None
    assert d["accuracy"] is None
    assert d["exit_distribution"] == {"b1": None, "b2": 0.75}
    assert d["half_widths"] == {"mean_response_time": None, "loss_probability": 0.01}
    assert d["utilization"] == {"pi": None}
    assert d["stations"][0]["utilization"] is None
    assert d["stations"][0]["mean_waiting_time"] is None
    assert d["stations"][0]["queue_length_distribution"] == [0.5, None, 0.5]
    # and so the result is strict JSON
    assert json.loads(json.dumps(d, allow_nan=False)) == d


def test_missing_fields_stay_none_in_to_dict():
    d = station("link", 0.5, mean_number=None, mean_response_time=None, mean_waiting_time=None,
                queue_length_distribution=None, kind="approximate", method="mgs").to_dict()
    assert (d["mean_number"], d["mean_response_time"], d["mean_waiting_time"],
            d["queue_length_distribution"]) == (None, None, None, None)


def test_to_dict_leaves_the_metrics_unchanged():
    m = metrics(mean_response_time=math.nan)
    m.to_dict()
    assert math.isnan(m.mean_response_time)  # type: ignore[arg-type]
    assert m.stations[0].queue_length_distribution == (0.25, 0.5, 0.125, 0.125)


@pytest.mark.parametrize("obj, field", [(metrics(), "throughput"),
                                        (station("pi", 0.5), "utilization")])
def test_metrics_are_frozen(obj, field):
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, field, 0.0)


def test_half_widths_default_is_not_shared_between_instances():
    assert metrics().half_widths is not metrics().half_widths
