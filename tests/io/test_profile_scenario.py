"""Scenario files whose model is a profile file: ``model: {profile: PATH, exits: {...}}``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from edgeperf.dists import Deterministic, Gamma, Lognormal, Sum
from edgeperf.io import ScenarioError, load_scenario, parse_scenario
from edgeperf.profiling import BlockProfile, HeadProfile, LatencyStats, Profile, import_ceed
from edgeperf.queueing import DecompositionEvaluator, stations_of

CEED = Path(__file__).parents[2] / ".." / "shared" / "data" / "ceed"


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def _stats(law) -> LatencyStats:
    return LatencyStats(n=50, mean=law.mean, var=law.variance, p50=law.mean, p95=law.mean * 1.5,
                        p99=law.mean * 2, law=law)


def toy_profile() -> Profile:
    """Three blocks; an exit after b0 and the final one after b2."""
    return Profile(name="toy", source="measured on testhost", input_shape=(3, 32, 32),
                   num_classes=10, host={"node": "testhost"}, blocks=(
                       BlockProfile(name="b0", latency=_stats(Gamma(4.0, 0.010)),
                                    output_bytes=262144, flops=10, param_bytes=20,
                                    exit=HeadProfile(latency=_stats(Deterministic(0.001)))),
                       BlockProfile(name="b1", latency=_stats(Lognormal(0.020, 0.5)),
                                    output_bytes=65536),
                       BlockProfile(name="b2", latency=_stats(Deterministic(0.030)),
                                    output_bytes=4000,
                                    exit=HeadProfile(latency=_stats(Deterministic(0.002)))),
                   ))


def scenario(model: dict) -> dict:
    return {"workload": {"arrival": {"process": "poisson", "rate": 20.0}},
            "model": model,
            "devices": [{"name": "pi", "capacity": 5}, {"name": "server", "capacity": 10,
                                                         "speed": 4.0}],
            "links": [{"from": "pi", "to": "server", "bandwidth_bps": 2e8, "capacity": 10}],
            "placement": {"pi": ["b0"], "server": ["b1", "b2"]}}


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "profiles").mkdir()
    toy_profile().save(tmp_path / "profiles" / "toy.json")
    return tmp_path


def _write(folder: Path, data: dict, name: str = "s.yaml") -> Path:
    file = folder / name
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    return file


# --------------------------------------------------------------------------- good files


def test_a_scenario_builds_its_dnn_from_a_profile_relative_to_the_file(folder):
    file = _write(folder, scenario({"profile": "profiles/toy.json", "exits": {"b0": 0.25}}))
    system = load_scenario(file)
    assert system.model == toy_profile().to_dnn({"b0": 0.25})
    b0, b1, b2 = system.model.blocks
    assert b0.latency == Sum((Gamma(4.0, 0.010), Deterministic(0.001)))
    assert b0.exit_probability == 0.25 and b1.exit_probability is None
    assert b2.latency == Sum((Deterministic(0.030), Deterministic(0.002)))


def test_devices_scale_the_profiled_latencies_by_their_speed(folder):
    system = load_scenario(_write(folder, scenario({"profile": "profiles/toy.json"})))
    pi, link, server = stations_of(system)
    assert pi.service.mean == pytest.approx(0.011)
    assert server.service.mean == pytest.approx((0.020 + 0.032) / 4.0)
    assert link.service == Deterministic(262144 * 8 / 2e8)


def test_exits_are_optional_and_default_to_zero(folder):
    system = load_scenario(_write(folder, scenario({"profile": "profiles/toy.json"})))
    assert [b.exit_probability for b in system.model.blocks] == [0.0, None, None]


def test_parse_scenario_resolves_the_profile_against_base(folder):
    data = scenario({"profile": "profiles/toy.json", "exits": {"b0": 1}})
    assert parse_scenario(data, "s.yaml", base=folder).model == toy_profile().to_dnn({"b0": 1.0})
    absolute = scenario({"profile": str(folder / "profiles" / "toy.json")})
    assert parse_scenario(absolute).model == toy_profile().to_dnn()


def test_the_decomposition_evaluator_runs_on_a_profiled_scenario(folder):
    system = load_scenario(_write(folder, scenario({"profile": "profiles/toy.json",
                                                    "exits": {"b0": 0.4}})))
    metrics = DecompositionEvaluator().evaluate(system)
    assert 0.0 <= metrics.loss_probability < 0.05
    assert metrics.exit_distribution["b0"] == pytest.approx(0.4, rel=0.01)


def test_each_chain_may_use_a_profile(folder):
    data = scenario({"profile": "profiles/toy.json"})
    chain = {k: data.pop(k) for k in ("workload", "model", "placement")}
    data["chains"] = [chain | {"name": "a"},
                      chain | {"name": "b", "model": {"profile": "profiles/toy.json",
                                                      "exits": {"b0": 0.5}}}]
    system = load_scenario(_write(folder, data))
    assert [c.model for c in system.chains] == [toy_profile().to_dnn(),
                                                toy_profile().to_dnn({"b0": 0.5})]


@pytest.mark.skipif(not (CEED / "system_profile.json").is_file(),
                    reason="the CEED profile (../shared/data/ceed) is not here")
def test_a_scenario_on_the_imported_ceed_profile_evaluates(tmp_path):
    profile = import_ceed(CEED)
    profile.save(tmp_path / "ceed_pi.json")
    names = list(profile.names)
    data = {"workload": {"arrival": {"process": "poisson", "rate": 0.9}},
            "model": {"profile": "ceed_pi.json",
                      "exits": {"ResidualBottleneck_2": 0.3, "ResidualBottleneck_8": 0.3}},
            "devices": [{"name": "pi", "capacity": 4}, {"name": "server", "capacity": 10,
                                                         "speed": 8.0}],
            "links": [{"from": "pi", "to": "server", "bandwidth_bps": 2e7, "capacity": 10}],
            "placement": {"pi": names[:6], "server": names[6:]}}
    system = load_scenario(_write(tmp_path, data, "ceed_pi.yaml"))
    assert len(system.model.blocks) == 20
    metrics = DecompositionEvaluator().evaluate(system)
    assert metrics.exit_distribution["ResidualBottleneck_2"] == pytest.approx(0.3, rel=0.01)
    assert metrics.exit_distribution["ResidualBottleneck_8"] == pytest.approx(0.21, rel=0.01)
    assert 0.0 <= metrics.loss_probability < 0.01
    assert metrics.throughput == pytest.approx(0.9 * (1 - metrics.loss_probability))


# --------------------------------------------------------------------------- errors


def test_a_missing_profile_file_names_the_field(folder):
    file = _write(folder, scenario({"profile": "profiles/none.json"}))
    with pytest.raises(ScenarioError, match=exactly(
            f"{file}: model.profile: {folder / 'profiles' / 'none.json'}: cannot be read: "
            "No such file or directory.")):
        load_scenario(file)


def test_a_bad_profile_file_names_both_fields(folder):
    data = json.loads(toy_profile().to_json())
    data["blocks"][1]["latency"]["mean"] = -1
    bad = folder / "profiles" / "bad.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    file = _write(folder, scenario({"profile": "profiles/bad.json"}))
    with pytest.raises(ScenarioError, match=exactly(
            f"{file}: model.profile: {bad}: blocks[1].latency.mean: The 'mean' parameter of "
            "LatencyStats must be a finite number > 0. Got -1.0.")):
        load_scenario(file)


def test_a_profile_that_is_not_json(folder):
    (folder / "profiles" / "bad.json").write_text("blocks: []", encoding="utf-8")
    with pytest.raises(ScenarioError, match="^" + re.escape(
            f"s.yaml: model.profile: {folder / 'profiles' / 'bad.json'}: is not valid JSON: ")):
        parse_scenario(scenario({"profile": "profiles/bad.json"}), "s.yaml", base=folder)


@pytest.mark.parametrize("exits, got", [({"nope": 0.1}, "['nope']"), ({"b1": 0.1}, "['b1']"),
                                        ({"b2": 0.1}, "['b2']")])
def test_unknown_exit_blocks_name_the_field(folder, exits, got):
    with pytest.raises(ScenarioError, match=exactly(
            "s.yaml: model.exits: The 'exit_probabilities' parameter of Profile.to_dnn must be "
            "keyed by exit blocks among ['b0'] (the last block's exit takes every job reaching "
            f"it). Got {got}.")):
        parse_scenario(scenario({"profile": "profiles/toy.json", "exits": exits}), "s.yaml",
                       base=folder)


def test_a_probability_out_of_range_names_the_field(folder):
    with pytest.raises(ScenarioError, match=exactly(
            "s.yaml: model.exits: The 'exit_probability' parameter of Block must be a finite "
            "number >= 0 and <= 1. Got 1.5.")):
        parse_scenario(scenario({"profile": "profiles/toy.json", "exits": {"b0": 1.5}}),
                       "s.yaml", base=folder)


def test_a_probability_that_is_not_a_number(folder):
    with pytest.raises(ScenarioError, match=exactly(
            "s.yaml: model.exits.b0: Input should be a valid number. Got 'half'.")):
        parse_scenario(scenario({"profile": "profiles/toy.json", "exits": {"b0": "half"}}),
                       "s.yaml", base=folder)


@pytest.mark.parametrize("model", [
    {},
    {"profile": "profiles/toy.json",
     "blocks": [{"name": "b0", "latency": {"kind": "deterministic", "value": 1},
                 "output_bytes": 1}]},
])
def test_exactly_one_of_blocks_or_profile(folder, model):
    with pytest.raises(ScenarioError, match=exactly(
            "s.yaml: model: give exactly one of 'blocks' or 'profile'")):
        parse_scenario(scenario(model), "s.yaml", base=folder)


def test_exits_need_a_profile():
    model = {"blocks": [{"name": "b0", "latency": {"kind": "deterministic", "value": 1},
                         "output_bytes": 1}], "exits": {"b0": 0.5}}
    with pytest.raises(ScenarioError, match=exactly(
            "s.yaml: model.exits: is only allowed with 'profile' (inline blocks give "
            "'exit: {probability: ...}' and 'device_latency').")):
        parse_scenario(scenario(model), "s.yaml")


def test_a_placement_must_use_the_profiles_block_names(folder):
    data = scenario({"profile": "profiles/toy.json"})
    data["placement"] = {"pi": ["b0"], "server": ["b1", "b9"]}
    with pytest.raises(ScenarioError, match="^" + re.escape("s.yaml: placement")):
        parse_scenario(data, "s.yaml", base=folder)
