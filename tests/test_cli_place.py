"""`edgeperf place`: the decision, its prediction, and a scenario the other commands read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from cli_helpers import assert_one_error_line, run
from edgeperf.io import load_scenario
from exit_problems import synthetic_table

REPO = Path(__file__).parents[1]
PI_SERVER = str(REPO / "examples" / "scenarios" / "pi_server.yaml")


@pytest.mark.parametrize("method", ["neurosurgeon", "scission", "mincut", "ilp", "loss-aware"])
def test_every_method_writes_a_scenario_that_analyze_reads(capsys, tmp_path, method):
    out = tmp_path / "placed.yaml"
    code, stdout, err = run(capsys, "place", PI_SERVER, "--method", method, "--out", str(out),
                            "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert set(result) >= {"method", "placement", "objective", "value", "latency_s",
                           "solve_time_s", "predicted", "out"}
    assert result["predicted"]["loss_probability"] >= 0.0
    code, stdout, err = run(capsys, "analyze", str(out), "--json")
    assert code == 0, err
    assert json.loads(stdout)["loss_probability"] == pytest.approx(
        result["predicted"]["loss_probability"])


@pytest.mark.parametrize("power", ["10,1,0.5", "10,1"])
def test_the_energy_objective_takes_the_power_model(capsys, power):
    from edgeperf.placement import PowerModel, place

    code, stdout, err = run(capsys, "place", PI_SERVER, "--method", "neurosurgeon",
                            "--objective", "energy", "--power", power, "--json")
    assert code == 0, err
    result = json.loads(stdout)
    watts = dict(zip(("compute_w", "transmit_w", "idle_w"), map(float, power.split(","))))
    expected = place(load_scenario(PI_SERVER), "neurosurgeon", objective="energy",
                     power=PowerModel(**watts))
    assert result["objective"] == "energy"
    assert result["value"] == pytest.approx(expected.value)
    assert result["placement"] == expected.to_dict()["placement"]


def test_the_table_names_devices_and_blocks(capsys):
    code, stdout, _ = run(capsys, "place", PI_SERVER, "--method", "ilp", "--objective",
                          "bottleneck")
    assert code == 0
    assert "ilp: minimises bottleneck" in stdout and "predicted: loss" in stdout


def test_loss_aware_chooses_the_exit_policy_from_a_table(capsys, tmp_path):
    table = tmp_path / "t.npz"
    synthetic_table().save(table)
    blocks = [{"name": f"b{i}", "latency": {"kind": "gamma", "shape": 4, "mean": 0.002},
               "output_bytes": 1000, **({"exit": {"probability": 0.0}} if i < 3 else {})}
              for i in range(4)]
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump({
        "workload": {"arrival": {"process": "poisson", "rate": 200.0}}, "model": {"blocks": blocks},
        "devices": [{"name": "pi", "capacity": 8}, {"name": "edge", "capacity": 8}],
        "links": [{"from": "pi", "to": "edge", "bandwidth_bps": 1e8, "capacity": 8}],
        "placement": {"pi": ["b0", "b1", "b2", "b3"]}}))
    code, stdout, err = run(capsys, "place", str(scenario), "--method", "loss-aware",
                            "--exit-table", str(table), "--loss-target", "0.01",
                            "--confirm", "0", "--json")
    assert code == 0, err
    result = json.loads(stdout)
    option = result["details"]["exit_option"]
    assert result["objective"] == "accuracy" and result["value"] == option["accuracy"]
    assert result["predicted"]["loss_probability"] <= 0.01
    assert 0.5 <= float(option["label"].split(",")[0]) <= 1.0


@pytest.mark.parametrize("extra, pattern", [
    (["--method", "magic"], r"The 'method' parameter of place must be one of \[.*\]\. "
                            r"Got 'magic'\."),
    (["--method", "mincut", "--objective", "energy"],
     r"The 'objective' parameter of place must be an option mincut takes \(device, "
     r"server\)\. Got 'energy'\."),
    (["--method", "neurosurgeon", "--objective", "energy", "--power", "1,x"],
     r"The 'power' parameter of place must be 'compute_w,transmit_w' or "
     r"'compute_w,transmit_w,idle_w'\. Got '1,x'\."),
    (["--method", "surrogate", "--out", "no/such/placed.yaml"],  # checked before the search
     r"The '--out' parameter of place must be a file in an existing folder\. "
     r"Got 'no/such/placed\.yaml'\."),
    (["--method", "loss-aware", "--loss-target", "1e-12", "--confirm", "0"],
     r"No placement of chain 'main' meets the loss target 1e-12: .*"),
])
def test_bad_input_is_one_line(capsys, extra, pattern):
    assert_one_error_line(*run(capsys, "place", PI_SERVER, *extra), pattern)


def test_the_surrogate_places_several_chains(capsys, tmp_path):
    cameras = str(REPO / "examples" / "scenarios" / "two_cameras.yaml")
    out = tmp_path / "placed.yaml"
    code, stdout, err = run(capsys, "place", cameras, "--method", "surrogate",
                            "--time-budget-s", "1", "--confirm", "0", "--out", str(out),
                            "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["method"] == "surrogate" and len(result["details"]["placements"]) == 2
    placed = load_scenario(out)  # every chain as the search placed it, not only the first
    assert {c.name: c.placement.as_dict() for c in placed.chains} == \
        result["details"]["placements"]
    code, _, err = run(capsys, "simulate", str(out), "--jobs", "2000", "--replications", "2")
    assert code == 0, err


def test_a_placement_beyond_the_twins_training_data_says_so(capsys):
    """The model trained on ChainNet's regime alone never saw an exit, a link
    station or variable service; two_cameras has all three."""
    cameras = str(REPO / "examples" / "scenarios" / "two_cameras.yaml")
    chainnet = str(REPO / "models" / "surrogate" / "chainnet.safetensors")
    options = ["--method", "surrogate", "--time-budget-s", "0.5", "--confirm", "0"]
    code, stdout, err = run(capsys, "place", cameras, *options, "--model", chainnet, "--json")
    assert code == 0, err
    found = {gap.split(":")[0]: gap for gap in json.loads(stdout)["details"]["outside_training"]}
    # whatever the placement: every block's service varies, and each chain has an exit
    assert found["service SCV of a hop"].endswith("(trained on 0 only)")
    assert found["exit probability of a hop"].endswith("(trained on 0 only)")
    code, stdout, err = run(capsys, "place", cameras, *options, "--model", chainnet)
    assert code == 0 and "note: this placement lies outside the twin's training data" in stdout
    # the model trained on ours too knows all three, and cameras that upload to a server
    code, stdout, err = run(capsys, "place", cameras, *options, "--json")
    assert code == 0, err
    assert json.loads(stdout)["details"]["outside_training"] == []


def test_bursts_and_cores_are_placed_by_simulation_not_by_the_twin(capsys):
    shared = str(REPO / "examples" / "scenarios" / "shared_edge.yaml")  # MMPP, 2 servers
    assert_one_error_line(*run(capsys, "place", shared, "--method", "surrogate"), re.escape(
        "edgeperf.surrogate supports Poisson arrivals only, the only kind in its training "
        "data; simulate this system with edgeperf.sim or place it with method 'simulation'. "
        "Got MMPPArrivals on chain 'camera'."))
    code, stdout, err = run(capsys, "place", shared, "--method", "simulation",
                            "--time-budget-s", "1", "--confirm", "0", "--scoring-jobs", "500")
    assert code == 0, err
    assert "simulation: minimises worst_loss" in stdout and "chain sensor" in stdout
    assert stdout.count("simulation estimate: loss") == 2
    assert "no analytic prediction" not in stdout  # the estimates stand in for it
    assert "latency without queueing" in stdout and "s (chain camera)" in stdout
    assert_one_error_line(*run(capsys, "place", shared, "--method", "simulation",
                               "--scoring-jobs", "0"),
                          r"The 'scoring_jobs' parameter of simulation_search must be an int "
                          r">= 1\. Got 0\.")
