"""``edgeperf run``: a short real run printed next to its twin; bad input is one line."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_one_error_line, run
from runtime_helpers import workers_left, write_scenario

BLOCKS = ["stem", "s1b0", "s1b1", "s1b2", "s1b3", "s1b4", "s2b0", "s2b1", "s2b2", "s2b3",
          "s2b4", "s3b0", "s3b1", "s3b2", "s3b3", "s3b4"]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, tiny_model):
    """One device holding the whole tiny model, lightly loaded."""
    folder = tmp_path_factory.mktemp("cli-run")
    return write_scenario(folder, tiny_model, rate=20.0,
                          devices=[{"name": "edge", "capacity": 5, "speed": 0.5}],
                          placement={"edge": BLOCKS})


def test_run_prints_measured_analytic_and_simulated(capsys, scenario, tmp_path):
    out_file = tmp_path / "twin.json"
    code, out, err = run(capsys, "run", str(scenario), "--duration", "3", "--jobs", "2000",
                         "--threshold", "0.5", "--json", "--out", str(out_file))
    assert code == 0, err
    report = json.loads(out)
    assert json.loads(out_file.read_text()) == report
    for source in ("measured", "analytic", "simulated"):
        assert {"loss_probability", "throughput", "mean_response_time", "p95_response_time",
                "accuracy"} <= set(report[source])
    counts = report["run"]["counts"]
    assert counts["offered"] == counts["completed"] + counts["dropped"] > 0
    assert set(report["relative_error"]) == {"analytic", "simulated"}
    assert report["exit_policy"]["thresholds"] == [0.5] * 11
    assert workers_left() == []


def test_run_table_and_a_saved_deployment_run_again(capsys, scenario, tmp_path):
    saved = tmp_path / "deployment.json"
    code, out, err = run(capsys, "run", str(scenario), "--duration", "1", "--jobs", "1000",
                         "--save-deployment", str(saved))
    assert code == 0, err
    assert "measured" in out and "analytic" in out and "simulated" in out
    code, out, err = run(capsys, "run", str(scenario), "--duration", "1", "--jobs", "1000",
                         "--deployment", str(saved), "--json")
    assert code == 0, err
    assert json.loads(out)["run"]["counts"]["offered"] > 0


def test_which_addresses_are_local():
    from edgeperf._cmd_runtime import _local

    assert _local("tcp://127.0.0.1:5555") and _local("tcp://localhost:1")
    assert not _local("tcp://192.168.1.20:5555") and not _local("tcp://pi.lan:5555")


def test_bad_scenario_is_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices: [\n")
    assert_one_error_line(*run(capsys, "run", str(bad), "--duration", "1"),
                          ".*bad.yaml: is not valid YAML or JSON.*")


def test_bad_options_are_one_line(capsys, scenario):
    assert_one_error_line(*run(capsys, "run", str(scenario), "--duration", "0"),
                          "The 'duration' parameter of run must be a finite number > 0.*")
    assert_one_error_line(*run(capsys, "run", str(scenario), "--policy", "nope"),
                          "The 'policy' parameter of run must be one of the online .*nope.*")
    assert_one_error_line(*run(capsys, "run", str(scenario), "--model", str(scenario.parent)),
                          ".*a trained model folder holding .*missing.*")
    assert_one_error_line(*run(capsys, "run", str(scenario), "--loss-target", "-1"),
                          "The 'loss_target' parameter of run must be .* Got -1.0.")
    for policy in ((), ("--policy", "knapsack")):
        assert_one_error_line(*run(capsys, "run", str(scenario), *policy, "--lookup",
                                   str(scenario)),
                              "The 'lookup' parameter of run must be given only with --policy "
                              "bayes_lookup.*")
    assert_one_error_line(*run(capsys, "run", str(scenario), "--threads", "100000"),
                          "The 'threads' parameter of run must be an int from 1 to .*, the "
                          "cores this machine lets it use. Got 100000.")
    for option in ("--out", "--save-deployment"):  # checked before any worker starts
        assert_one_error_line(
            *run(capsys, "run", str(scenario), option, str(scenario.parent / "no" / "x.json")),
            f"The '{option}' parameter of run must be a file in an existing folder.*")
        assert_one_error_line(*run(capsys, "run", str(scenario), option, str(scenario.parent)),
                              f"The '{option}' parameter of run must be a file, not a folder.*")
