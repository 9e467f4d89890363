"""`edgeperf simulate` and `edgeperf queue --method simulate`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cli_helpers import run
from edgeperf.dists import Gamma
from edgeperf.queueing import ekg1k, mg1k

REPO = Path(__file__).parents[1]
EXAMPLE = REPO / "examples" / "scenarios" / "pi_server.yaml"
SHARED = REPO / "examples" / "scenarios" / "shared_edge.yaml"
GAMMA = '{"kind":"gamma","shape":4,"mean":0.03}'


def test_simulate_json_has_the_analyze_keys_and_a_half_width_for_each(capsys):
    code, out, _ = run(capsys, "analyze", str(EXAMPLE), "--json")
    analytic = json.loads(out)
    code, out, err = run(capsys, "simulate", str(EXAMPLE), "--jobs", "20000", "--json")
    assert code == 0 and err == ""
    simulated = json.loads(out)
    assert set(analytic) <= set(simulated)
    for key in ("loss_probability", "throughput", "mean_response_time", "p95_response_time"):
        assert simulated[f"{key}_ci"] > 0
    assert set(simulated["exit_distribution_ci"]) == set(analytic["exit_distribution"])
    station = simulated["stations"][0]
    assert station["loss_probability_ci"] > 0 and station["name"] == "pi"
    assert simulated["kind"] == "estimate"


def test_simulate_is_reproducible_for_a_seed(capsys):
    args = ("simulate", str(EXAMPLE), "--jobs", "5000", "--replications", "2", "--seed", "9",
            "--json")
    first = run(capsys, *args)[1]
    assert run(capsys, *args)[1] == first


def test_simulate_several_chains_reports_each(capsys):
    code, out, _ = run(capsys, "simulate", str(SHARED), "--jobs", "20000", "--replications", "2",
                       "--json")
    assert code == 0
    chains = json.loads(out)["chains"]
    assert set(chains) == {"camera", "sensor"}
    assert chains["camera"]["exit_distribution"]["mid"] > 0
    assert "event" in chains["camera"]["method"]


def test_simulate_writes_a_trace(capsys, tmp_path):
    trace = tmp_path / "jobs.csv"
    code, out, _ = run(capsys, "simulate", str(EXAMPLE), "--jobs", "1000", "--replications", "1",
                       "--trace", str(trace))
    assert code == 0 and f"trace written to {trace}" in out.replace("\n", "")
    with trace.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1000
    assert [int(row["job"]) for row in rows] == list(range(1000))
    arrivals = [float(row["arrival_s"]) for row in rows]  # plain numbers, not reprs
    assert arrivals == sorted(arrivals) and arrivals[0] >= 0.0
    for row, arrival in zip(rows, arrivals):
        assert bool(row["lost_at"]) != bool(row["completion_s"])  # lost or completed
        if row["completion_s"]:
            assert float(row["completion_s"]) > arrival and row["exit"]


def test_queue_simulate_agrees_with_exact(capsys):
    code, out, _ = run(capsys, "queue", "--arrival-rate", "30", "--capacity", "5", "--service",
                       GAMMA, "--method", "simulate", "--jobs", "50000", "--replications", "10",
                       "--json")
    assert code == 0
    sim = json.loads(out)
    exact = mg1k(30.0, Gamma(4, 0.03), 5)
    for key in ("loss_probability", "throughput", "mean_response_time"):
        assert abs(sim[key] - getattr(exact, key)) <= sim[f"{key}_ci"], key


def test_queue_simulate_with_erlang_arrivals_agrees_with_exact(capsys):
    code, out, _ = run(capsys, "queue", "--arrival-rate", "30", "--capacity", "3", "--service",
                       GAMMA, "--phases", "4", "--method", "simulate", "--jobs", "50000",
                       "--replications", "10", "--json")
    assert code == 0
    sim = json.loads(out)
    exact = ekg1k(30.0, 4, Gamma(4, 0.03), 3)
    for key in ("loss_probability", "throughput", "mean_response_time"):
        assert abs(sim[key] - getattr(exact, key)) <= sim[f"{key}_ci"], key


@pytest.mark.parametrize("argv, message", [
    (["simulate", str(EXAMPLE), "--jobs", "0"],
     "edgeperf: error: The 'jobs' parameter of simulate must be an int >= 100. Got 0.\n"),
    (["simulate", str(EXAMPLE), "--engine", "kernel", "--jobs", "1000"], None),
    (["queue", "--arrival-rate", "-1", "--capacity", "5", "--service", GAMMA, "--method",
      "simulate"], "edgeperf: error: The 'rate' parameter of PoissonArrivals must be a finite "
                   "number > 0. Got -1.0.\n"),
    (["simulate", str(SHARED), "--engine", "kernel", "--jobs", "1000"],
     "edgeperf: error: The kernel cannot simulate this system: 2 chains share devices; use "
     "engine='event' (or 'auto').\n"),
    (["simulate", str(EXAMPLE), "--jobs", "1000", "--trace", str(REPO)],
     f"edgeperf: error: The 'trace' parameter of simulate must be a file, not a folder. "
     f"Got {str(REPO)!r}.\n"),
    (["simulate", str(EXAMPLE), "--jobs", "1000", "--trace", "nowhere/jobs.csv"],
     "edgeperf: error: The 'trace' parameter of simulate must be a file in an existing folder. "
     "Got 'nowhere/jobs.csv'.\n"),
])
def test_bad_simulation_input_is_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    if message is None:  # a valid call, for contrast
        assert code == 0 and err == ""
        return
    assert code == 2 and out == "" and err == message
