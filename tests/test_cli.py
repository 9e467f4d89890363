"""The edgeperf command, run in-process through edgeperf.cli.main and once as a subprocess."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli_helpers import assert_one_error_line, run
from edgeperf import cli
from edgeperf.dists import Gamma
from edgeperf.io import load_scenario
from edgeperf.queueing import DecompositionEvaluator, ekg1k, mg1k

REPO = Path(__file__).parents[1]
EXAMPLE = REPO / "examples" / "scenarios" / "pi_server.yaml"
GAMMA = '{"kind":"gamma","shape":4,"mean":0.03}'
QUEUE = ["queue", "--arrival-rate", "30", "--capacity", "5", "--service", GAMMA]


def error(message: str) -> str:
    return re.escape(message)


# --------------------------------------------------------------------------- queue


def test_queue_json_equals_the_library_result(capsys):
    code, out, err = run(capsys, *QUEUE, "--json")
    assert (code, err) == (0, "")
    assert len(out.strip().splitlines()) == 1
    got = json.loads(out)
    expected = mg1k(30.0, Gamma(4.0, 0.03), 5, "exact").to_dict()
    assert {"loss_probability", "throughput", "mean_response_time", "utilization"} <= set(got)
    assert got == expected
    assert (got["kind"], got["method"]) == ("exact", "exact")


def test_queue_json_with_mgs(capsys):
    code, out, err = run(capsys, *QUEUE, "--method", "mgs", "--json")
    assert (code, err) == (0, "")
    got = json.loads(out)
    expected = mg1k(30.0, Gamma(4.0, 0.03), 5, "mgs").to_dict()
    assert got == expected
    assert {"loss_probability", "throughput", "mean_response_time", "utilization"} <= set(got)
    assert got["mean_response_time"] is None  # mgs cannot give it
    assert got["loss_probability"] != mg1k(30.0, Gamma(4.0, 0.03), 5).loss_probability


def test_queue_table_shows_the_loss_and_the_macgregor_smith_comparison(capsys):
    code, out, err = run(capsys, *QUEUE)
    assert (code, err) == (0, "")
    assert "loss probability" in out
    assert "MacGregor Smith" in out
    exact = mg1k(30.0, Gamma(4.0, 0.03), 5).loss_probability
    assert f"{exact:.6g}" in out


def test_queue_table_with_mgs_has_no_comparison(capsys):
    code, out, err = run(capsys, *QUEUE, "--method", "mgs")
    assert (code, err) == (0, "")
    assert "loss probability" in out
    assert "MacGregor Smith" not in out
    assert "(approximate, mgs)" in out


def test_queue_with_erlang_arrivals(capsys):
    code, out, err = run(capsys, *QUEUE, "--phases", "4", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == ekg1k(30.0, 4, Gamma(4.0, 0.03), 5).to_dict()
    code, out, err = run(capsys, *QUEUE, "--phases", "4")
    assert (code, err) == (0, "")
    assert "E_4/G/1/K station (exact, erlang-4)" in out
    assert "MacGregor Smith" not in out  # its approximation is for Poisson arrivals


# --------------------------------------------------------------------------- analyze


#: The decomposition `analyze` uses without --method, as its signature declares it.
DEFAULT_METHOD = inspect.signature(cli.analyze).parameters["method"].default.value


@pytest.mark.parametrize("argv, method, station_method", [
    ((), DEFAULT_METHOD, "exact"),
    (("--method", "poisson"), "poisson", "exact"),
    (("--method", "two-moment"), "two-moment", "exact"),
    (("--method", "two-moment", "--station-method", "mgs"), "two-moment", "mgs"),
])
def test_analyze_json_equals_the_library_result(capsys, argv, method, station_method):
    code, out, err = run(capsys, "analyze", str(EXAMPLE), *argv, "--json")
    assert (code, err) == (0, "")
    got = json.loads(out)
    expected = DecompositionEvaluator(method, station_method).evaluate(
        load_scenario(EXAMPLE)).to_dict()
    assert got == expected
    assert {"loss_probability", "throughput", "mean_response_time", "utilization",
            "exit_distribution"} <= set(got)
    assert set(got["utilization"]) == {"pi", "pi->server", "server"}
    assert set(got["exit_distribution"]) == {"b1", "b2"}


def test_analyze_methods_differ(capsys):
    _, two_moment, _ = run(capsys, "analyze", str(EXAMPLE), "--method", "two-moment", "--json")
    _, poisson, _ = run(capsys, "analyze", str(EXAMPLE), "--method", "poisson", "--json")
    assert json.loads(two_moment)["method"] == "two-moment/exact"
    assert json.loads(poisson)["method"] == "poisson/exact"
    assert json.loads(two_moment)["mean_response_time"] != \
        json.loads(poisson)["mean_response_time"]


def test_analyze_table(capsys):
    code, out, err = run(capsys, "analyze", str(EXAMPLE), "--method", "poisson")
    assert (code, err) == (0, "")
    for text in ("loss probability", "pi->server", "server", "share leaving at exit b1",
                 "poisson/exact"):
        assert text in out


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("argv, pattern", [
    (["queue", "--arrival-rate", "30", "--capacity", "0", "--service", GAMMA],
     error("The 'capacity' parameter of mg1k must be an int >= 1. Got 0.")),
    (["queue", "--arrival-rate", "-1", "--capacity", "5", "--service", GAMMA],
     error("The 'arrival_rate' parameter of mg1k must be a finite number > 0. Got -1.0.")),
    (["queue", "--arrival-rate", "nan", "--capacity", "5", "--service", GAMMA],
     error("The 'arrival_rate' parameter of mg1k must be a finite number > 0. Got nan.")),
    (["queue", "--arrival-rate", "30", "--capacity", "5", "--service", "{bad"],
     error("--service: is not valid JSON: Expecting property name enclosed in double quotes "
           "at column 2. Got '{bad'.")),
    (["queue", "--arrival-rate", "30", "--capacity", "5", "--service",
      '{"kind":"weibull","mean":1}'],
     error("--service: (top level): Input tag 'weibull' found using 'kind' does not match any "
           "of the expected tags: 'deterministic', 'exponential', 'gamma', 'lognormal', "
           "'empirical', 'mixture', 'sum'. Got {'kind': 'weibull', 'mean': 1}.")),
    (["queue", "--arrival-rate", "30", "--capacity", "5", "--service",
      '{"kind":"exponential","mean":-2}'],
     error("--service: mean: The 'mean' parameter of Exponential must be a finite "
           "number > 0. Got -2.0.")),
    (["queue", "--capacity", "5", "--service", GAMMA],
     error("Missing option '--arrival-rate'.")),
    (["queue", "--arrival-rate", "abc", "--capacity", "5", "--service", GAMMA],
     error("Invalid value for '--arrival-rate'") + ".*"),
    ([*QUEUE, "--phases", "4", "--method", "mgs"],
     error("The 'method' parameter of queue must be exact or simulate with --phases above 1 "
           "(mgs is for Poisson arrivals). Got 'mgs'.")),
    ([*QUEUE, "--phases", "0"], error("The 'phases' parameter of ekg1k must be an int >= 1. "
                                      "Got 0.")),
    ([*QUEUE, "--method", "foo"],
     error("Invalid value for '--method'") + ".*'foo'.*'exact', 'mgs'.*"),
    (["analyze", str(EXAMPLE), "--method", "foo"],
     error("Invalid value for '--method'") + ".*'foo'.*'poisson', 'two-moment'.*"),
    (["analyze"], error("Missing argument ") + r"'(SCENARIO|scenario)'\."),
    (["bogus"], error("No such command 'bogus'.")),
])
def test_user_errors_exit_2_with_one_line(capsys, argv, pattern):
    assert_one_error_line(*run(capsys, *argv), pattern)


def test_missing_scenario_file(capsys, tmp_path):
    file = tmp_path / "nowhere.yaml"
    assert_one_error_line(*run(capsys, "analyze", str(file)),
                          error(f"{file}: cannot be read: No such file or directory."))


def test_invalid_scenario_file(capsys, tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["devices"][1]["capacity"] = 0
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert_one_error_line(
        *run(capsys, "analyze", str(file), "--json"),
        error(f"{file}: devices[1]") + r"(\.capacity)?" + re.escape(
            ": The 'capacity' parameter of Device must be an int >= 1. Got 0."))


def test_scenario_file_with_yaml_syntax_error(capsys, tmp_path):
    file = tmp_path / "broken.yaml"
    file.write_text("workload: 1\n  model: 2\n", encoding="utf-8")
    assert_one_error_line(
        *run(capsys, "analyze", str(file)),
        error(f"{file}: is not valid YAML or JSON at line 2: mapping values are not allowed "
              "here."))


def test_scenario_file_that_is_not_text(capsys, tmp_path):
    file = tmp_path / "binary.yaml"
    file.write_bytes(b"\xff\xfe\x00 not text")
    assert_one_error_line(*run(capsys, "analyze", str(file)), error(f"{file}: ") + ".*")


# --------------------------------------------------------------------------- help


@pytest.mark.parametrize("argv, expected", [
    (["--help"], ["queue", "analyze"]),
    (["queue", "--help"], ["--arrival-rate", "--capacity", "--service", "--method", "--json"]),
    (["analyze", "--help"], ["scenario", "--method", "--station-method", "--json"]),
])
def test_help_exits_0(capsys, argv, expected):
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    for word in expected:
        assert word in out or word.upper() in out


def test_bare_command_shows_help_and_exits_2(capsys):
    code, out, err = run(capsys)
    assert code == 2
    assert "queue" in out + err and "analyze" in out + err
    assert "Traceback" not in out + err


# --------------------------------------------------------------------------- subprocess


def test_module_run_as_a_program_reports_errors_without_traceback(tmp_path):
    file = tmp_path / "nowhere.yaml"
    done = subprocess.run([sys.executable, "-m", "edgeperf.cli", "analyze", str(file)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr == f"edgeperf: error: {file}: cannot be read: No such file or directory.\n"


def test_module_run_as_a_program_prints_json():
    done = subprocess.run([sys.executable, "-m", "edgeperf.cli", *QUEUE, "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == mg1k(30.0, Gamma(4.0, 0.03), 5).to_dict()


def test_running_out_of_memory_is_one_line(capsys, monkeypatch):
    """numpy raises MemoryError for an array larger than the machine holds (a huge
    --jobs or capacity): one line, exit 2, not a traceback."""
    import edgeperf.queueing

    class Greedy:
        def __init__(self, *args, **kwargs):
            pass

        def evaluate(self, system):
            raise MemoryError("Unable to allocate 7.45 GiB for an array")

    monkeypatch.setattr(edgeperf.queueing, "DecompositionEvaluator", Greedy)
    scenario = Path(__file__).parents[1] / "examples" / "scenarios" / "pi_server.yaml"
    assert_one_error_line(*run(capsys, "analyze", str(scenario)),
                          re.escape("out of memory (Unable to allocate 7.45 GiB for an array); "
                                    "ask for less: fewer jobs or samples, smaller capacities."))
