"""Validation of the frozen domain objects: Block, DNN, Device, Link, workload, Placement."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

from edgeperf.dists import Deterministic, Exponential, Gamma
from edgeperf.exceptions import EdgePerfError, InvalidParameterError
from edgeperf.model import (DNN, Block, Device, ErlangArrivals, Link, MMPPArrivals,
                            PiecewiseArrivals, Placement, PoissonArrivals, TraceArrivals, Workload)


def exactly(message: str) -> str:
    """A pattern that matches the whole message and nothing else."""
    return "^" + re.escape(message) + "$"


def block(name: str = "b0", **overrides: object) -> Block:
    kwargs: dict[str, object] = {"name": name, "latency": Deterministic(0.01),
                                 "output_bytes": 1000}
    kwargs.update(overrides)
    return Block(**kwargs)  # type: ignore[arg-type]


def device(**overrides: object) -> Device:
    kwargs: dict[str, object] = {"name": "pi", "capacity": 5}
    kwargs.update(overrides)
    return Device(**kwargs)  # type: ignore[arg-type]


def link(**overrides: object) -> Link:
    kwargs: dict[str, object] = {"source": "pi", "target": "server", "bandwidth_bps": 8e6,
                                 "capacity": 10}
    kwargs.update(overrides)
    return Link(**kwargs)  # type: ignore[arg-type]


NOT_FINITE = [math.nan, math.inf, -math.inf]


# --------------------------------------------------------------------------- errors


def test_invalid_parameter_error_is_a_value_error_and_an_edgeperf_error():
    with pytest.raises(ValueError) as info:
        device(capacity=0)
    assert isinstance(info.value, InvalidParameterError)
    assert isinstance(info.value, EdgePerfError)


# --------------------------------------------------------------------------- Block


def test_block_keeps_its_fields():
    b = Block(name="conv", latency=Gamma(4, 0.01), output_bytes=0, exit_probability=0.25)
    assert (b.name, b.latency, b.output_bytes, b.exit_probability) == \
        ("conv", Gamma(4, 0.01), 0, 0.25)
    assert block().exit_probability is None


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_block_name_must_be_a_non_empty_string(name):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'name' parameter of Block must be a non-empty string. Got {name!r}.")):
        block(name=name)


@pytest.mark.parametrize("latency", [0.01, None, {"kind": "exponential", "mean": 0.01}])
def test_block_latency_must_be_a_service_law(latency):
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'latency' parameter of Block must be a service law from edgeperf.dists. "
            f"Got {latency!r}.")):
        block(latency=latency)


@pytest.mark.parametrize("size", [-1, 1.5, 2.0, True, False, "10", None])
def test_block_output_bytes_must_be_an_int_at_least_zero(size):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'output_bytes' parameter of Block must be an int >= 0. Got {size!r}.")):
        block(output_bytes=size)


def test_block_output_bytes_accepts_numpy_integers():
    assert block(output_bytes=np.int64(7)).output_bytes == 7


@pytest.mark.parametrize("p", [-0.1, 1.5, True, "0.5", *NOT_FINITE])
def test_block_exit_probability_must_be_a_probability(p):
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'exit_probability' parameter of Block must be a finite number >= 0 and <= 1. "
            f"Got {p!r}.")):
        block(exit_probability=p)


@pytest.mark.parametrize("p", [0.0, 1.0, 0.3])
def test_block_exit_probability_bounds_are_inclusive(p):
    assert block(exit_probability=p).exit_probability == p


# --------------------------------------------------------------------------- DNN


def test_dnn_turns_a_list_into_a_tuple_and_knows_its_names():
    blocks = [block("b0", exit_probability=0.2), block("b1")]
    dnn = DNN(blocks=blocks)  # type: ignore[arg-type]
    assert dnn.blocks == tuple(blocks)
    assert isinstance(dnn.blocks, tuple)
    assert dnn.names == ("b0", "b1")
    assert dnn.index("b1") == 1


@pytest.mark.parametrize("blocks", [(), [], None, "b0", (Deterministic(0.01),)])
def test_dnn_needs_a_non_empty_list_of_blocks(blocks):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'blocks' parameter of DNN must be a non-empty list of Block. Got {blocks!r}.")):
        DNN(blocks=blocks)


def test_dnn_rejects_a_list_mixing_blocks_and_other_things():
    blocks = (block("b0"), "b1")
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'blocks' parameter of DNN must be a non-empty list of Block. Got {blocks!r}.")):
        DNN(blocks=blocks)  # type: ignore[arg-type]


def test_dnn_rejects_duplicate_block_names_and_lists_them_sorted():
    blocks = (block("b1"), block("b0"), block("b1"), block("b0"), block("b2"))
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'blocks' parameter of DNN must be blocks with unique names. Got ['b0', 'b1'].")):
        DNN(blocks=blocks)


def test_dnn_rejects_an_exit_probability_on_the_last_block():
    blocks = (block("b0", exit_probability=0.3), block("last", exit_probability=0.5))
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'blocks' parameter of DNN must be a last block without 'exit_probability' "
            "(every job reaching it leaves at the final exit). Got 'last'.")):
        DNN(blocks=blocks)


def test_dnn_rejects_even_a_zero_exit_probability_on_the_last_block():
    with pytest.raises(InvalidParameterError, match=re.escape("Got 'only'.")):
        DNN(blocks=(block("only", exit_probability=0.0),))


def test_dnn_index_of_an_unknown_block_raises_value_error():
    with pytest.raises(ValueError):
        DNN(blocks=(block("b0"),)).index("nope")


# --------------------------------------------------------------------------- Device


def test_device_defaults():
    d = Device(name="pi", capacity=1)
    assert (d.speed, d.memory_bytes) == (1.0, None)


@pytest.mark.parametrize("capacity", [0, -3, 2.0, 1.5, True, False, "5", None])
def test_device_capacity_must_be_an_int_at_least_one(capacity):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'capacity' parameter of Device must be an int >= 1. Got {capacity!r}.")):
        device(capacity=capacity)


def test_device_capacity_message_of_the_brief():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'capacity' parameter of Device must be an int >= 1. Got 0.")):
        Device(name="pi", capacity=0)


@pytest.mark.parametrize("speed", [0, 0.0, -1.0, True, "fast", None, *NOT_FINITE])
def test_device_speed_must_be_finite_and_positive(speed):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'speed' parameter of Device must be a finite number > 0. Got {speed!r}.")):
        device(speed=speed)


@pytest.mark.parametrize("memory", [0, -1, 1.0e9, True])
def test_device_memory_bytes_must_be_an_int_at_least_one(memory):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'memory_bytes' parameter of Device must be an int >= 1. Got {memory!r}.")):
        device(memory_bytes=memory)


@pytest.mark.parametrize("name", ["", " \t", 7, None])
def test_device_name_must_be_a_non_empty_string(name):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'name' parameter of Device must be a non-empty string. Got {name!r}.")):
        device(name=name)


def test_device_accepts_numpy_numbers():
    d = device(capacity=np.int32(3), speed=np.float64(2.5), memory_bytes=np.int64(10))
    assert (d.capacity, d.speed, d.memory_bytes) == (3, 2.5, 10)


# --------------------------------------------------------------------------- Link


def test_link_name_and_defaults():
    lk = link()
    assert lk.name == "pi->server"
    assert lk.latency_s == 0.0


def test_link_transmission_time_is_bits_over_bandwidth():
    lk = link(bandwidth_bps=20_000_000)
    assert lk.transmission_time_s(65536) == 65536 * 8 / 20_000_000
    assert lk.transmission_time_s(0) == 0.0
    assert link(bandwidth_bps=8.0).transmission_time_s(3) == 3.0


@pytest.mark.parametrize("end", ["source", "target"])
@pytest.mark.parametrize("value", ["", "  ", 1, None])
def test_link_ends_must_be_non_empty_strings(end, value):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The {end!r} parameter of Link must be a non-empty string. Got {value!r}.")):
        link(**{end: value})


def test_a_link_joins_two_devices():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'target' parameter of Link must be a device other than its source 'pi'. "
            "Got 'pi'.")):
        link(target="pi")


@pytest.mark.parametrize("bandwidth", [0, -5.0, True, "1e6", *NOT_FINITE])
def test_link_bandwidth_must_be_finite_and_positive(bandwidth):
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'bandwidth_bps' parameter of Link must be a finite number > 0. "
            f"Got {bandwidth!r}.")):
        link(bandwidth_bps=bandwidth)


@pytest.mark.parametrize("capacity", [0, 1.0, True])
def test_link_capacity_must_be_an_int_at_least_one(capacity):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'capacity' parameter of Link must be an int >= 1. Got {capacity!r}.")):
        link(capacity=capacity)


@pytest.mark.parametrize("latency", [-0.001, False, *NOT_FINITE])
def test_link_latency_must_be_finite_and_non_negative(latency):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'latency_s' parameter of Link must be a finite number >= 0. Got {latency!r}.")):
        link(latency_s=latency)


def test_link_latency_zero_is_allowed():
    assert link(latency_s=0).latency_s == 0


# --------------------------------------------------------------------------- workload


def test_workload_exposes_the_arrival_rate():
    assert Workload(arrival=PoissonArrivals(rate=26.0)).arrival_rate == 26.0


@pytest.mark.parametrize("rate", [0, 0.0, -1.0, True, "26", None, *NOT_FINITE])
def test_poisson_rate_must_be_finite_and_positive(rate):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'rate' parameter of PoissonArrivals must be a finite number > 0. Got {rate!r}.")):
        PoissonArrivals(rate=rate)


@pytest.mark.parametrize("make, message", [
    (lambda: ErlangArrivals(rate=0.0, phases=2),
     "The 'rate' parameter of ErlangArrivals must be a finite number > 0. Got 0.0."),
    (lambda: ErlangArrivals(rate=2.0, phases=0),
     "The 'phases' parameter of ErlangArrivals must be an int >= 1. Got 0."),
    (lambda: ErlangArrivals(rate=2.0, phases=2.5),
     "The 'phases' parameter of ErlangArrivals must be an int >= 1. Got 2.5."),
])
def test_erlang_arrivals_need_a_rate_and_whole_phases(make, message):
    with pytest.raises(InvalidParameterError, match=exactly(message)):
        make()
    assert Workload(arrival=ErlangArrivals(rate=2.0, phases=3)).arrival_rate == 2.0


@pytest.mark.parametrize("make, message", [
    (lambda: MMPPArrivals(rates=None, switch_rates=(1.0, 1.0)),
     "The 'rates' parameter of MMPPArrivals must be two values, one per state. "
     "Got 'NoneType'."),
    (lambda: MMPPArrivals(rates=(1.0, 2.0), switch_rates=3.0),
     "The 'switch_rates' parameter of MMPPArrivals must be two values, one per state. "
     "Got 'float'."),
    (lambda: TraceArrivals(times="soon"),
     "The 'times' parameter of TraceArrivals must be at least two timestamps. Got 'soon'."),
    (lambda: TraceArrivals(times=(0.0, 1.0), source=3),
     "The 'source' parameter of TraceArrivals must be a non-empty string. Got 3."),
    (lambda: PiecewiseArrivals(rates=None, durations=(1.0,)),
     "The 'rates' parameter of PiecewiseArrivals must be a sequence of numbers. "
     "Got 'NoneType'."),
    (lambda: PiecewiseArrivals(rates=(1.0,), durations="1"),
     "The 'durations' parameter of PiecewiseArrivals must be a sequence of numbers. "
     "Got 'str'."),
])
def test_arrival_processes_need_sequences(make, message):
    with pytest.raises(InvalidParameterError, match=exactly(message)):
        make()


@pytest.mark.parametrize("arrival", [26.0, None, {"process": "poisson", "rate": 26.0}])
def test_workload_arrival_must_be_an_arrival_process(arrival):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'arrival' parameter of Workload must be a Poisson, Erlang, MMPP, trace or "
        f"piecewise arrival process. Got {arrival!r}.")):
        Workload(arrival=arrival)


# --------------------------------------------------------------------------- Placement

PLACEMENT_RULE = "a mapping from device name to a non-empty list of block names"


def test_placement_normalises_lists_to_tuples():
    p = Placement(assignment=[("pi", ["b0", "b1"]), ("server", ["b2"])])  # type: ignore[arg-type]
    assert p.assignment == (("pi", ("b0", "b1")), ("server", ("b2",)))


def test_placement_from_mapping_and_back():
    mapping = {"server": ["b2"], "pi": ["b0", "b1"]}
    p = Placement.from_mapping(mapping)
    assert p.assignment == (("server", ("b2",)), ("pi", ("b0", "b1")))
    assert p.as_dict() == mapping
    assert list(p.as_dict()) == ["server", "pi"]  # order kept


@pytest.mark.parametrize("assignment", [
    (),
    (("pi", ()),),
    (("pi", ("b0",)), ("server", [])),
    ((3, ("b0",)),),
    (("pi", ("b0", 1)),),
    (("pi",),),
    (("pi", ("b0",), "extra"),),
    5,
    None,
])
def test_placement_rejects_malformed_assignments(assignment):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'assignment' parameter of Placement must be {PLACEMENT_RULE}. "
            f"Got {assignment!r}.")):
        Placement(assignment=assignment)


def test_placement_from_mapping_rejects_an_empty_block_list():
    with pytest.raises(InvalidParameterError, match=re.escape(
            f"The 'assignment' parameter of Placement must be {PLACEMENT_RULE}. Got ")):
        Placement.from_mapping({"pi": []})


def test_placement_reads_a_mapping_as_a_mapping():
    p = Placement(assignment={"pi": ["b0", "b1"], "tx": ("b2",)})  # type: ignore[arg-type]
    assert p.assignment == (("pi", ("b0", "b1")), ("tx", ("b2",)))


@pytest.mark.parametrize("blocks", ["b0", "b0b1", {"b0"}, b"b0"])
def test_placement_rejects_a_block_list_that_is_not_a_list(blocks):
    assignment = (("pi", blocks),)
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'assignment' parameter of Placement must be {PLACEMENT_RULE}. "
            f"Got {assignment!r}.")):
        Placement(assignment=assignment)  # type: ignore[arg-type]


def test_placement_rejects_an_empty_mapping_and_a_string_block_list_in_a_mapping():
    for mapping in ({}, {"pi": "b0"}):
        with pytest.raises(InvalidParameterError, match=exactly(
                f"The 'assignment' parameter of Placement must be {PLACEMENT_RULE}. "
                f"Got {mapping!r}.")):
            Placement(assignment=mapping)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- frozen


@pytest.mark.parametrize("obj, field, value", [
    (block(), "name", "other"),
    (DNN(blocks=(block(),)), "blocks", ()),
    (device(), "capacity", 0),
    (link(), "bandwidth_bps", 1.0),
    (PoissonArrivals(rate=1.0), "rate", -1.0),
    (Workload(arrival=PoissonArrivals(rate=1.0)), "arrival", None),
    (Placement(assignment=(("pi", ("b0",)),)), "assignment", ()),
])
def test_objects_are_frozen(obj, field, value):
    before = getattr(obj, field)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, field, value)
    assert getattr(obj, field) == before


def test_objects_compare_and_hash_by_value():
    assert device() == device()
    assert hash(link()) == hash(link())
    assert block(latency=Exponential(0.01)) != block(latency=Exponential(0.02))
