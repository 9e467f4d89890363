"""Per-device block latencies, parameter bytes, input bytes and the source device."""

from __future__ import annotations

import re

import pytest

from edgeperf.dists import Deterministic, Exponential
from edgeperf.exceptions import InvalidParameterError
from edgeperf.model import (DNN, Block, Device, Link, Placement, PoissonArrivals, System,
                            Workload)
from edgeperf.queueing import stations_of
from edgeperf.sim._network import network_of

PI = Device(name="pi", capacity=5, speed=0.5)
SERVER = Device(name="server", capacity=10, speed=4.0)
UPLINK = Link(source="pi", target="server", bandwidth_bps=8e6, capacity=4, latency_s=0.002)


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def model(input_bytes: int = 10_000) -> DNN:
    return DNN(blocks=(
        Block(name="b0", latency=Exponential(0.010), output_bytes=4000,
              device_latency={"server": Deterministic(0.001)}, param_bytes=100),
        Block(name="b1", latency=Exponential(0.020), output_bytes=10),
    ), input_bytes=input_bytes)


def system(placement: dict[str, list[str]], source: str | None = "pi", **kw: object) -> System:
    return System(model=kw.pop("dnn", model()), devices=(PI, SERVER), links=(UPLINK,),
                  workload=Workload(arrival=PoissonArrivals(rate=5.0)),
                  placement=Placement.from_mapping(placement), source=source)


def test_a_measured_latency_replaces_the_speed_scaling_on_its_device_only():
    block = model().blocks[0]
    assert block.latency_on(SERVER) == Deterministic(0.001)
    assert block.latency_on(PI) == Exponential(0.020)  # 0.010 / speed 0.5


def test_blocks_with_device_latencies_stay_hashable():
    assert hash(model().blocks[0]) == hash(model().blocks[0])


def test_stations_use_the_measured_latency():
    s = system({"server": ["b0", "b1"]})
    upload, server = stations_of(s)
    assert upload.name == "pi->server"
    assert upload.service == Deterministic(10_000 * 8 / 8e6)
    assert server.service.mean == pytest.approx(0.001 + 0.020 / 4.0)


def test_the_simulator_uploads_the_input_before_the_first_fragment():
    route = network_of(system({"server": ["b0", "b1"]})).routes[0]
    assert [h.first for h in route.hops] == [0, 0]
    assert route.hops[0].latencies == (Deterministic(0.01),)
    assert route.hops[0].delay_s == 0.002


def test_no_upload_when_the_first_fragment_runs_on_the_source():
    s = system({"pi": ["b0"], "server": ["b1"]})
    assert s.chains[0].upload is None
    assert [st.name for st in stations_of(s)] == ["pi", "pi->server", "server"]


def test_an_ideal_upload_is_a_delay_on_the_first_station():
    link = Link(source="pi", target="server", latency_s=0.004)
    s = System(model=model(), devices=(PI, SERVER), links=(link,),
               workload=Workload(arrival=PoissonArrivals(rate=5.0)),
               placement=Placement.from_mapping({"server": ["b0", "b1"]}), source="pi")
    (server,) = stations_of(s)
    assert server.delay_s == 0.004
    assert network_of(s).routes[0].hops[0].delay_s == 0.004


def test_with_placement_keeps_or_sets_the_source():
    s = system({"pi": ["b0"], "server": ["b1"]})
    moved = s.with_placement(Placement.from_mapping({"server": ["b0", "b1"]}))
    assert moved.source == "pi" and moved.chains[0].upload == ("pi", "server")
    unsourced = system({"pi": ["b0", "b1"]}, source=None)
    assert unsourced.with_placement(unsourced.placement, source="pi").source == "pi"


@pytest.mark.parametrize("kwargs, message", [
    ({"device_latency": {"pi": 0.1}}, "The 'device_latency' parameter of Block must be a "
     "mapping from device name to a service law. Got {'pi': 0.1}."),
    ({"param_bytes": -1}, "The 'param_bytes' parameter of Block must be an int >= 0. Got -1."),
])
def test_bad_block_fields(kwargs, message):
    with pytest.raises(InvalidParameterError, match=exactly(message)):
        Block(name="b", latency=Exponential(1.0), output_bytes=1, **kwargs)


def test_bad_input_bytes():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'input_bytes' parameter of DNN must be an int >= 0. Got -5.")):
        model(input_bytes=-5)


def test_an_unknown_source():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'source' parameter of System must be a known device. Got 'phone'.")) as info:
        system({"pi": ["b0", "b1"]}, source="phone")
    assert info.value.path == ("source",)  # type: ignore[attr-defined]


def test_an_upload_needs_a_link():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'links' parameter of System must be a link from the source to the first "
            "fragment's device. Got 'no link server->pi'.")):
        System(model=model(), devices=(PI, SERVER), links=(UPLINK,),
               workload=Workload(arrival=PoissonArrivals(rate=5.0)),
               placement=Placement.from_mapping({"pi": ["b0", "b1"]}), source="server")


def test_an_upload_needs_input_bytes():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'model' parameter of System must be input_bytes > 0 when inputs are "
            "uploaded over a link. Got 0.")):
        system({"server": ["b0", "b1"]}, dnn=model(input_bytes=0))
