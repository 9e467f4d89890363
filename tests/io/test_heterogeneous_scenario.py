"""Scenario fields for placement: per-device latencies and profiles, parameter and
input bytes, the source device, and a CEED profile folder as the model."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from edgeperf.dists import Deterministic, Gamma, Lognormal, Sum
from edgeperf.io import ScenarioError, load_scenario, parse_scenario
from edgeperf.profiling import BlockProfile, HeadProfile, LatencyStats, Profile

CEED = Path(__file__).parents[2] / ".." / "shared" / "data" / "ceed"


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def _stats(law) -> LatencyStats:
    return LatencyStats(n=50, mean=law.mean, var=law.variance, p50=law.mean, p95=law.mean * 1.5,
                        p99=law.mean * 2, law=law)


def profile(scale: float = 1.0) -> Profile:
    return Profile(name="toy", source="measured", input_shape=(3, 8, 8), num_classes=10,
                   blocks=(BlockProfile(name="b0", latency=_stats(Gamma(4.0, 0.010 * scale)),
                                        output_bytes=2048, param_bytes=300,
                                        exit=HeadProfile(latency=_stats(Deterministic(0.001)),
                                                         param_bytes=40)),
                           BlockProfile(name="b1", latency=_stats(Lognormal(0.02 * scale, 0.5)),
                                        output_bytes=40, param_bytes=500,
                                        exit=HeadProfile(latency=_stats(Deterministic(0.002))))))


def scenario(model: dict, **top: object) -> dict:
    data = {"workload": {"arrival": {"process": "poisson", "rate": 10.0}}, "model": model,
            "devices": [{"name": "pi", "capacity": 5}, {"name": "server", "capacity": 10,
                                                         "speed": 4.0}],
            "links": [{"from": "pi", "to": "server", "bandwidth_bps": 1e7, "capacity": 4}],
            "placement": {"pi": ["b0"], "server": ["b1"]}}
    data.update(top)
    return data


INLINE = {"blocks": [
    {"name": "b0", "latency": {"kind": "exponential", "mean": 0.01}, "output_bytes": 100,
     "param_bytes": 7, "device_latency": {"server": {"kind": "deterministic", "value": 0.001}}},
    {"name": "b1", "latency": {"kind": "exponential", "mean": 0.02}, "output_bytes": 10}],
    "input_bytes": 3000}


def test_inline_blocks_carry_device_latencies_param_and_input_bytes():
    system = parse_scenario(scenario(INLINE, source="pi"), "s.yaml")
    b0 = system.model.blocks[0]
    assert b0.device_latency == {"server": Deterministic(0.001)}
    assert b0.param_bytes == 7 and system.model.input_bytes == 3000
    assert system.source == "pi"


def test_device_profiles_give_measured_latencies(tmp_path):
    profile().save(tmp_path / "pi.json")
    profile(scale=0.1).save(tmp_path / "server.json")
    model = {"profile": "pi.json", "device_profiles": {"server": "server.json"}}
    system = load_scenario(_write(tmp_path, scenario(model)))
    b0, b1 = system.model.blocks
    assert b0.device_latency["server"] == Sum((Gamma(4.0, 0.001), Deterministic(0.001)))
    assert b0.param_bytes == 340 and b1.param_bytes == 500
    assert system.model.input_bytes == 4 * 3 * 8 * 8


def test_device_profiles_must_profile_the_same_blocks(tmp_path):
    profile().save(tmp_path / "pi.json")
    other = dataclasses.replace(profile(), blocks=profile().blocks[:1])
    other.save(tmp_path / "server.json")
    model = {"profile": "pi.json", "device_profiles": {"server": "server.json"}}
    with pytest.raises(ScenarioError, match=exactly(
            f"{tmp_path / 's.yaml'}: model.device_profiles: The 'device_profiles' parameter of "
            "Profile.to_dnn must be profiles of the same blocks and exits as 'toy'. "
            "Got 'server'.")):
        load_scenario(_write(tmp_path, scenario(model)))


def test_a_bad_device_latency_names_its_path():
    data = scenario({"blocks": [dict(INLINE["blocks"][0], device_latency={
        "server": {"kind": "gamma", "shape": 2}}), INLINE["blocks"][1]]})
    with pytest.raises(ScenarioError, match=r"^s.yaml: model.blocks\[0\].device_latency.server"
                                            r".mean: is required but missing.$"):
        parse_scenario(data, "s.yaml")


@pytest.mark.parametrize("model, field, message", [
    (dict(INLINE, device_profiles={"server": "x.json"}), "device_profiles",
     "is only allowed with 'profile' (inline blocks give 'exit: {probability: ...}' and "
     "'device_latency')."),
    ({"profile": "pi.json", "input_bytes": 5}, "input_bytes",
     "is only allowed with 'blocks' (a profile gives its input shape)."),
])
def test_fields_of_the_other_model_form(tmp_path, model, field, message):
    profile().save(tmp_path / "pi.json")
    with pytest.raises(ScenarioError, match=exactly(f"s.yaml: model.{field}: {message}")):
        parse_scenario(scenario(model), "s.yaml", base=tmp_path)


def test_source_beside_chains_is_refused():
    data = scenario(INLINE)
    chain = {"name": "c", "workload": data.pop("workload"), "model": data.pop("model"),
             "placement": data.pop("placement"), "source": "pi"}
    assert parse_scenario(dict(data, chains=[chain]), "s.yaml").chains[0].source == "pi"
    with pytest.raises(ScenarioError, match=exactly(
            "s.yaml: source: is not allowed beside 'chains' (each chain has its own)")):
        parse_scenario(dict(data, chains=[chain], source="pi"), "s.yaml")


@pytest.mark.skipif(not (CEED / "system_profile.json").is_file(),
                    reason="the CEED profile (../shared/data/ceed) is not here")
def test_a_ceed_folder_is_a_profile():
    from edgeperf.profiling import import_ceed

    blocks = import_ceed(CEED).names
    data = scenario({"profile": str(CEED.resolve())},
                    placement={"pi": list(blocks[:3]), "server": list(blocks[3:])})
    built = parse_scenario(data, "s.yaml")
    assert built.model.names == blocks and built.model.input_bytes == 4 * 3 * 32 * 32


def _write(folder: Path, data: dict) -> Path:
    file = folder / "s.yaml"
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    return file
