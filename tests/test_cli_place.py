"""`edgeperf place`: the decision, its prediction, and a scenario the other commands read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import assert_one_error_line, run

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


def test_the_table_names_devices_and_blocks(capsys):
    code, stdout, _ = run(capsys, "place", PI_SERVER, "--method", "ilp", "--objective",
                          "bottleneck")
    assert code == 0
    assert "ilp: minimises bottleneck" in stdout and "predicted: loss" in stdout


@pytest.mark.parametrize("extra, pattern", [
    (["--method", "magic"], r"The 'method' parameter of place must be one of \[.*\]\. "
                            r"Got 'magic'\."),
    (["--method", "mincut", "--objective", "energy"],
     r"The 'objective' parameter of place must be an option mincut takes \(device, "
     r"server\)\. Got 'energy'\."),
    (["--method", "neurosurgeon", "--objective", "energy", "--power", "1,x"],
     r"The 'power' parameter of place must be 'compute_w,transmit_w' or "
     r"'compute_w,transmit_w,idle_w'\. Got '1,x'\."),
    (["--method", "loss-aware", "--loss-target", "1e-12", "--confirm", "0"],
     r"No placement of chain 'main' meets the loss target 1e-12: .*"),
])
def test_bad_input_is_one_line(capsys, extra, pattern):
    assert_one_error_line(*run(capsys, "place", PI_SERVER, *extra), pattern)
