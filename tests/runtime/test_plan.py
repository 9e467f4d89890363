"""plan_deployment: fragments, ports, links and what the runtime refuses (no processes)."""

from __future__ import annotations

import json
import re
import struct

import pytest
import yaml

from edgeperf.exceptions import InvalidParameterError, UnsupportedModelError
from edgeperf.io import ScenarioError, load_scenario
from edgeperf.runtime import ExitPolicySpec, deployment_from_dict, load_deployment
from edgeperf.runtime._plan import model_structure, plan_deployment
from runtime_helpers import write_scenario

BLOCKS = ["stem", "s1b0", "s1b1", "s1b2", "s1b3", "s1b4", "s2b0", "s2b1", "s2b2", "s2b3",
          "s2b4", "s3b0", "s3b1", "s3b2", "s3b3", "s3b4"]
LINK = {"source": "a", "target": "b", "bandwidth_bps": 1e8, "capacity": 5, "latency_s": 0.001}


def _scenario(tmp_path, model, *, devices=None, links=None, source=None):
    devices = devices or [{"name": "a", "capacity": 4, "speed": 0.5},
                          {"name": "b", "capacity": 3, "speed": 0.25}]
    file = write_scenario(tmp_path, model, rate=10.0, devices=devices,
                          placement={"a": BLOCKS[:8], "b": BLOCKS[8:]},
                          links=[LINK] if links is None else links)
    if source is not None:
        data = yaml.safe_load(file.read_text())
        data["source"] = source
        file.write_text(yaml.safe_dump(data))
    return file


def test_one_worker_per_fragment_in_chain_order(tmp_path, tiny_model):
    file = _scenario(tmp_path, tiny_model)
    d = plan_deployment(load_scenario(file), tiny_model, scenario_path=file)
    a, b = d.workers
    assert (a.device, a.first, a.last, a.capacity, a.speed) == ("a", 0, 7, 4, 0.5)
    assert (b.device, b.first, b.last, b.capacity, b.speed) == ("b", 8, 15, 3, 0.25)
    assert a.next == b.bind and b.next is None
    assert (a.link.name, a.link.bandwidth_bps, a.link.capacity, a.link.latency_s) == \
        ("a->b", 1e8, 5, 0.001)
    ports = [int(x.rsplit(":", 1)[1]) for x in (a.bind, b.bind, d.collector)]
    assert len(set(ports)) == 3 and all(x.startswith("tcp://127.0.0.1:")
                                        for x in (a.bind, b.bind, d.collector))
    assert d.exit_policy.thresholds == (0.9,) * 11 and d.upload is None


def test_saved_deployment_reads_back(tmp_path, tiny_model):
    file = _scenario(tmp_path, tiny_model)
    d = plan_deployment(load_scenario(file), tiny_model, scenario_path=file,
                        thresholds=0.5, ports=[7001, 7002, 7003])
    assert load_deployment(d.save(tmp_path / "d.json")) == d
    assert d.collector == "tcp://127.0.0.1:7003" and d.exit_policy.thresholds == (0.5,) * 11
    with pytest.raises(InvalidParameterError, match="^The 'path' parameter of Deployment.save "
                                                    "must be a file path .* Got 3.$"):
        d.save(3)


def test_ideal_links_carry_no_stage_and_upload_is_planned(tmp_path, tiny_model):
    devices = [{"name": "cam", "capacity": 2}, {"name": "a", "capacity": 4, "speed": 0.5},
               {"name": "b", "capacity": 3, "speed": 0.25}]
    up = {"source": "cam", "target": "a", "bandwidth_bps": 1e7, "capacity": 8}
    file = _scenario(tmp_path, tiny_model, devices=devices, source="cam",
                     links=[up, {"source": "a", "target": "b"}])
    d = plan_deployment(load_scenario(file), tiny_model, scenario_path=file)
    assert d.workers[0].link is None
    assert (d.upload.name, d.upload.bandwidth_bps, d.upload.capacity) == ("cam->a", 1e7, 8)


def test_refuses_devices_faster_than_this_host(tmp_path, tiny_model):
    file = _scenario(tmp_path, tiny_model, devices=[{"name": "a", "capacity": 4, "speed": 2.0},
                                                    {"name": "b", "capacity": 3}])
    with pytest.raises(UnsupportedModelError, match="no faster than this host.*'a' has speed 2"):
        plan_deployment(load_scenario(file), tiny_model, scenario_path=file)


def test_refuses_several_servers(tmp_path, tiny_model):
    file = _scenario(tmp_path, tiny_model, devices=[{"name": "a", "capacity": 4, "servers": 2},
                                                    {"name": "b", "capacity": 3}])
    with pytest.raises(UnsupportedModelError, match="single-server worker.*'a' has 2 servers"):
        plan_deployment(load_scenario(file), tiny_model, scenario_path=file)


def test_refuses_an_online_policy_on_a_split_model(tmp_path, tiny_model):
    file = _scenario(tmp_path, tiny_model)
    with pytest.raises(UnsupportedModelError, match="whole model; the chain is split over 2"):
        plan_deployment(load_scenario(file), tiny_model, scenario_path=file,
                        thresholds=ExitPolicySpec(kind="online", policy="ucb"))


def test_threshold_count_and_ports_are_checked(tmp_path, tiny_model):
    file = _scenario(tmp_path, tiny_model)
    system = load_scenario(file)
    with pytest.raises(InvalidParameterError, match="one threshold per early exit \\(11\\)"):
        plan_deployment(system, tiny_model, scenario_path=file, thresholds=[0.5, 0.5])
    with pytest.raises(InvalidParameterError, match="3 distinct ports"):
        plan_deployment(system, tiny_model, scenario_path=file, ports=[7001, 7001, 7002])
    for ports in ([-1, 7001, 7002], ["a", "b", "c"], [True, 7001, 7002]):  # bound tcp://...:a
        with pytest.raises(InvalidParameterError, match=r"^The 'ports' parameter of "
                           r"plan_deployment must be 3 distinct ports from 1 to 65535 "):
            plan_deployment(system, tiny_model, scenario_path=file, ports=ports)
    with pytest.raises(InvalidParameterError, match=r"^The 'thresholds' parameter of "
                       r"ExitPolicySpec must be a finite number >= 0\. Got nan\.$"):
        plan_deployment(system, tiny_model, scenario_path=file, thresholds=[float("nan")] * 11)
    with pytest.raises(InvalidParameterError, match=r"^The 'host' parameter of plan_deployment "
                       r"must be a non-empty string\. Got None\.$"):
        plan_deployment(system, tiny_model, scenario_path=file, host=None)


def _fake_model(folder, names):
    folder.mkdir()
    meta = {"structure": json.dumps({"block_names": names, "exit_blocks": [len(names) - 1],
                                     "input_shape": [1, 32, 32]})}
    header = json.dumps({"__metadata__": meta}).encode()
    (folder / "weights.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    for name in ("exit_table.npz", "calibration.json"):
        (folder / name).write_bytes(b"")
    return folder


def test_refuses_what_is_not_a_system_or_a_path(tmp_path, tiny_model):
    file = _scenario(tmp_path, tiny_model)
    with pytest.raises(InvalidParameterError, match=r"^The 'system' parameter of plan_deployment "
                       r"must be a System\. Got 'PosixPath'\.$"):
        plan_deployment(file, tiny_model, scenario_path=file)
    with pytest.raises(InvalidParameterError, match=r"^The 'model_dir' parameter of "
                       r"plan_deployment must be a folder path \(str or os\.PathLike\)\. "
                       r"Got None\.$"):
        plan_deployment(load_scenario(file), None, scenario_path=file)
    with pytest.raises(InvalidParameterError, match=r"^The 'scenario_path' parameter of "
                       r"plan_deployment must be a file path \(str or os\.PathLike\)\. "
                       r"Got None\.$"):
        plan_deployment(load_scenario(file), tiny_model, scenario_path=None)
    with pytest.raises(InvalidParameterError, match=r"^The 'path' parameter of load_deployment "
                       r"must be a file path \(str or os\.PathLike\)\. Got None\.$"):
        load_deployment(None)


def test_refuses_a_model_whose_blocks_differ(tmp_path, tiny_model):
    file = _scenario(tmp_path, tiny_model)
    other = _fake_model(tmp_path / "other", ["x", "y"])
    assert model_structure(other)["block_names"] == ["x", "y"]
    with pytest.raises(InvalidParameterError, match="the scenario's blocks .*has \\['x', 'y'\\]"):
        plan_deployment(load_scenario(file), other, scenario_path=file)
    with pytest.raises(InvalidParameterError, match="missing: weights.safetensors"):
        plan_deployment(load_scenario(file), tmp_path, scenario_path=file)


def test_threads_for_every_worker_or_by_device(tmp_path, tiny_model):
    names = BLOCKS
    file = write_scenario(tmp_path, tiny_model, rate=5.0,
                          devices=[{"name": "a", "capacity": 4}, {"name": "b", "capacity": 4}],
                          placement={"a": names[:5], "b": names[5:]},
                          links=[{"from": "a", "to": "b", "bandwidth_bps": 1e8, "capacity": 4}])
    system = load_scenario(file)
    assert [w.threads for w in plan_deployment(system, tiny_model, scenario_path=file,
                                               threads=2).workers] == [2, 2]
    assert [w.threads for w in plan_deployment(system, tiny_model, scenario_path=file,
                                               threads={"b": 2}).workers] == [1, 2]


@pytest.mark.parametrize("data, why", [
    ({"format": "other"}, "not an edgeperf-deployment version 1 file"),
    ({"format": "edgeperf-deployment", "version": 1}, "missing 'workers'"),
])
def test_a_file_that_is_no_deployment_says_so(data, why):
    with pytest.raises(ScenarioError, match="^" + re.escape(
            f"d.json: is not a deployment as plan_deployment writes it ({why}).") + "$"):
        deployment_from_dict(data, "d.json")
