"""System: the cross-object checks, fragments and lookups."""

from __future__ import annotations

import dataclasses
import re

import pytest

from edgeperf.dists import Deterministic, Exponential, Gamma
from edgeperf.exceptions import InvalidParameterError
from edgeperf.model import (DNN, Block, Device, Fragment, Link, Placement, PoissonArrivals,
                            System, Workload)


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def model(output_bytes: tuple[int, int, int] = (262144, 65536, 4000)) -> DNN:
    return DNN(blocks=(
        Block(name="b0", latency=Gamma(4, 0.010), output_bytes=output_bytes[0]),
        Block(name="b1", latency=Deterministic(0.020), output_bytes=output_bytes[1],
              exit_probability=0.3),
        Block(name="b2", latency=Exponential(0.030), output_bytes=output_bytes[2]),
    ))


PI = Device(name="pi", capacity=5, memory_bytes=512_000_000)
SERVER = Device(name="server", capacity=10, speed=4.0)
PI_SERVER = Link(source="pi", target="server", bandwidth_bps=20e6, capacity=10, latency_s=0.005)
SERVER_PI = Link(source="server", target="pi", bandwidth_bps=20e6, capacity=10)


def system(**overrides: object) -> System:
    kwargs: dict[str, object] = {
        "model": model(), "devices": (PI, SERVER), "links": (PI_SERVER,),
        "workload": Workload(arrival=PoissonArrivals(rate=26.0)),
        "placement": Placement.from_mapping({"pi": ["b0", "b1"], "server": ["b2"]})}
    kwargs.update(overrides)
    return System(**kwargs)  # type: ignore[arg-type]


def placement(mapping: dict[str, list[str]]) -> Placement:
    return Placement.from_mapping(mapping)


def raises_with_path(message: str, path: tuple[str, ...], **overrides: object) -> None:
    with pytest.raises(InvalidParameterError, match=exactly(message)) as info:
        system(**overrides)
    assert info.value.path == path  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- valid systems


def test_a_valid_system_exposes_its_parts():
    s = system()
    assert s.arrival_rate == 26.0
    assert s.device("server") is SERVER
    assert s.link_between("pi", "server") is PI_SERVER
    assert s.link_between("server", "pi") is None
    assert s.fragments == (Fragment("pi", 0, 1), Fragment("server", 2, 2))


def test_lists_become_tuples():
    s = system(devices=[PI, SERVER], links=[PI_SERVER])
    assert s.devices == (PI, SERVER)
    assert s.links == (PI_SERVER,)


def test_fragments_follow_model_order_not_placement_order():
    s = system(placement=placement({"server": ["b2"], "pi": ["b0", "b1"]}))
    assert s.fragments == (Fragment("pi", 0, 1), Fragment("server", 2, 2))


def test_fragments_of_a_three_way_split_that_goes_back_and_forth():
    cloud = Device(name="cloud", capacity=2)
    links = (PI_SERVER, Link(source="server", target="cloud", bandwidth_bps=1e6, capacity=3))
    s = system(devices=(PI, SERVER, cloud), links=links,
               placement=placement({"cloud": ["b2"], "pi": ["b0"], "server": ["b1"]}))
    assert s.fragments == (Fragment("pi", 0, 0), Fragment("server", 1, 1),
                           Fragment("cloud", 2, 2))


def test_one_device_needs_no_link():
    s = system(devices=(PI,), links=(), placement=placement({"pi": ["b0", "b1", "b2"]}))
    assert s.fragments == (Fragment("pi", 0, 2),)


def test_output_bytes_zero_is_fine_where_no_link_follows():
    s = system(model=model((262144, 65536, 0)))
    assert s.model.blocks[2].output_bytes == 0


def test_unused_devices_and_links_are_allowed():
    spare = Device(name="spare", capacity=1)
    s = system(devices=(PI, SERVER, spare), links=(PI_SERVER, SERVER_PI))
    assert s.fragments == (Fragment("pi", 0, 1), Fragment("server", 2, 2))


def test_system_is_frozen():
    s = system()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.links = ()  # type: ignore[misc]


def test_validate_can_be_called_again():
    s = system()
    assert s.validate() is None


# --------------------------------------------------------------------------- devices and links


def test_duplicate_device_names():
    raises_with_path(
        "The 'devices' parameter of System must be a non-empty list of devices with unique "
        "names. Got ['pi', 'server', 'pi'].", ("devices",),
        devices=(PI, SERVER, Device(name="pi", capacity=1)))


def test_no_devices():
    raises_with_path(
        "The 'devices' parameter of System must be a non-empty list of devices with unique "
        "names. Got [].", ("devices",), devices=())


@pytest.mark.parametrize("field, value, shown", [
    ("devices", None, "'NoneType'"), ("devices", "pi", "'str'"),
    ("devices", [PI, 1], "['Device', 1]"), ("links", None, "'NoneType'"), ("links", [1], "[1]"),
])
def test_parts_that_are_not_lists_of_their_kind(field, value, shown):
    kind = {"devices": "Device", "links": "Link"}[field]
    raises_with_path(f"The '{field}' parameter of System must be a list of {kind}. Got {shown}.",
                     (field,), **{field: value})


def test_chains_that_are_not_a_list_of_chains():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'chains' parameter of System must be a list of Chain. Got 'int'.")):
        System(devices=(PI,), chains=5)


def test_looking_up_an_unknown_chain_or_device_names_the_known_ones():
    s = system()
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'name' parameter of System.device must be one of ['pi', 'server']. Got 'gpu'.")):
        s.device("gpu")
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'name' parameter of System.chain must be one of ['main']. Got 'other'.")):
        s.with_placement(s.placement, chain="other")


def test_duplicate_links():
    raises_with_path(
        "The 'links' parameter of System must be at most one link per direction. "
        "Got ['pi->server', 'server->pi', 'pi->server'].", ("links",),
        links=(PI_SERVER, SERVER_PI, Link(source="pi", target="server", bandwidth_bps=1.0,
                                          capacity=1)))


def test_link_to_an_unknown_device():
    raises_with_path(
        "The 'links' parameter of System must be links whose target is a known device "
        "['pi', 'server']. Got 'cloud'.", ("links", 1, "target"),
        links=(PI_SERVER, Link(source="server", target="cloud", bandwidth_bps=1.0, capacity=1)))


def test_link_from_an_unknown_device():
    raises_with_path(
        "The 'links' parameter of System must be links whose source is a known device "
        "['pi', 'server']. Got 'edge'.", ("links", 0, "source"),
        links=(Link(source="edge", target="server", bandwidth_bps=1.0, capacity=1), PI_SERVER))


def test_missing_link_between_consecutive_fragments():
    raises_with_path(
        "The 'links' parameter of System must be a link between the devices of consecutive "
        "fragments. Got 'no link pi->server'.", ("links",), links=())


def test_link_in_the_wrong_direction_does_not_count():
    raises_with_path(
        "The 'links' parameter of System must be a link between the devices of consecutive "
        "fragments. Got 'no link pi->server'.", ("links",), links=(SERVER_PI,))


def test_output_bytes_zero_before_a_cut():
    raises_with_path(
        "The 'model' parameter of System must be output_bytes > 0 for a block followed by a "
        "link. Got 'b1: 0'.", ("model", "blocks", 1, "output_bytes"),
        model=model((262144, 0, 4000)))


# --------------------------------------------------------------------------- placement


def test_placement_on_an_unknown_device():
    raises_with_path(
        "The 'placement' parameter of System must be keys that name known devices "
        "['pi', 'server']. Got 'gpu'.", ("placement",),
        placement=placement({"pi": ["b0", "b1"], "gpu": ["b2"]}))


def test_placement_of_an_unknown_block():
    raises_with_path(
        "The 'placement' parameter of System must be lists of blocks of the model. Got 'b9'.",
        ("placement", "server"), placement=placement({"pi": ["b0", "b1"], "server": ["b9"]}))


def test_block_on_two_devices():
    raises_with_path(
        "The 'placement' parameter of System must be each block on one device "
        "(it is on 'pi' too). Got 'b1'.", ("placement", "server"),
        placement=placement({"pi": ["b0", "b1"], "server": ["b1", "b2"]}))


def test_block_twice_on_the_same_device():
    raises_with_path(
        "The 'placement' parameter of System must be each block on one device "
        "(it is on 'pi' too). Got 'b0'.", ("placement", "pi"),
        placement=placement({"pi": ["b0", "b0", "b1", "b2"]}), devices=(PI,), links=())


def test_block_missing_from_the_placement():
    raises_with_path(
        "The 'placement' parameter of System must be a device for every block of the model. "
        "Got ['b1'].", ("placement",), placement=placement({"pi": ["b0"], "server": ["b2"]}))


def test_non_contiguous_fragment():
    raises_with_path(
        "The 'placement' parameter of System must be a contiguous run of blocks in model order "
        "for each device. Got ['b0', 'b2'].", ("placement", "pi"),
        placement=placement({"pi": ["b0", "b2"], "server": ["b1"]}),
        links=(PI_SERVER, SERVER_PI))


def test_blocks_out_of_model_order_on_one_device():
    raises_with_path(
        "The 'placement' parameter of System must be a contiguous run of blocks in model order "
        "for each device. Got ['b1', 'b0'].", ("placement", "pi"),
        placement=placement({"pi": ["b1", "b0"], "server": ["b2"]}))


def test_unique_names_are_checked_before_the_placement():
    # both rules are broken; the device check comes first
    raises_with_path(
        "The 'devices' parameter of System must be a non-empty list of devices with unique "
        "names. Got ['pi', 'pi'].", ("devices",),
        devices=(PI, PI), placement=placement({"gpu": ["b0"]}))
