"""`edgeperf schedule` on a one-device scenario and a synthetic exit table."""

from __future__ import annotations

import json

import pytest
import yaml

from cli_helpers import assert_one_error_line, run
from exit_problems import synthetic_table

BLOCKS = [{"name": "b0", "latency": {"kind": "gamma", "shape": 4, "mean": 0.002},
           "output_bytes": 1000, "exit": {"probability": 0.0}},
          {"name": "b1", "latency": {"kind": "deterministic", "value": 0.0015},
           "output_bytes": 1000, "exit": {"probability": 0.0}},
          {"name": "b2", "latency": {"kind": "gamma", "shape": 9, "mean": 0.0015},
           "output_bytes": 1000, "exit": {"probability": 0.0}},
          {"name": "b3", "latency": {"kind": "gamma", "shape": 4, "mean": 0.002},
           "output_bytes": 1000}]


@pytest.fixture
def files(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump({
        "workload": {"arrival": {"process": "poisson", "rate": 200.0}},
        "model": {"blocks": BLOCKS}, "devices": [{"name": "pi", "capacity": 8}],
        "placement": {"pi": ["b0", "b1", "b2", "b3"]}}))
    table = tmp_path / "t.npz"
    synthetic_table().save(table)
    return scenario, table


def test_schedule_json_has_decision_prediction_and_simulation(capsys, files):
    scenario, table = files
    code, out, err = run(capsys, "schedule", str(scenario), "--exit-table", str(table),
                         "--policy", "static_tuned", "--simulate", "--jobs", "20000", "--json")
    assert code == 0 and err == ""
    result = json.loads(out)
    assert len(result["decision"]["thresholds"]) == 3
    predicted, simulated = result["predicted"], result["simulated"]
    assert predicted["loss_probability"] <= 0.01
    assert abs(simulated["loss_probability"] - predicted["loss_probability"]) <= \
        simulated["half_widths"]["loss_probability"]


def test_schedule_prints_tables(capsys, files):
    scenario, table = files
    code, out, _ = run(capsys, "schedule", str(scenario), "--exit-table", str(table),
                       "--policy", "static")
    assert code == 0 and "threshold" in out and "loss probability" in out
    assert "static: threshold per exit (found in " in out  # one line, not wrapped to the table


@pytest.mark.parametrize("extra, pattern", [
    (["--policy", "greedy"], r"The 'policy' parameter of schedule must be one of .* Got 'greedy'\."),
    (["--policy", "bayes_lookup"], r"The 'policy' parameter of schedule must be one of "
                                   r"\[.*'lp_lookup'\] \(bayes_lookup runs from a saved lookup: "
                                   r"edgeperf run --policy bayes_lookup --lookup FILE\)\. "
                                   r"Got 'bayes_lookup'\."),
    (["--loss-target", "0"], r"The 'loss_target' parameter of ExitProblem must be a finite number "
                             r"> 0 and <= 1\. Got 0\.0\."),
    (["--policy", "static_tuned", "--loss-target", "1e-9"],
     r"static_tuned: no policy meets the loss target 1e-09 .* the lowest achievable loss is .*"),
])
def test_bad_input_is_one_line(capsys, files, extra, pattern):
    scenario, table = files
    assert_one_error_line(*run(capsys, "schedule", str(scenario), "--exit-table", str(table),
                               *extra), pattern)
