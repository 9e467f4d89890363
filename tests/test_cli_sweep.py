"""``edgeperf sweep``, run in-process through edgeperf.cli.main."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from cli_helpers import assert_one_error_line, run

EXAMPLE = Path(__file__).parents[1] / "examples" / "scenarios" / "pi_server.yaml"
FAST = ["--jobs", "2000", "--replications", "2"]


def test_a_sweep_writes_its_table_and_plot(capsys, tmp_path):
    """End to end, on the local cluster the command starts and stops itself."""
    out = tmp_path / "rates.csv"
    code, stdout, err = run(capsys, "sweep", str(EXAMPLE), "--set",
                            "workload.arrival.rate=10:20:10", *FAST, "--seed", "3",
                            "--out", str(out))
    assert code == 0, err
    assert stdout == f"2 points, 2 rows: wrote {out} and {out.with_suffix('.png')}\n"
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["workload.arrival.rate"] for r in rows] == ["10", "20"]
    assert all(r["error"] == "" and 0 <= float(r["loss_probability"]) <= 1 for r in rows)
    assert float(rows[1]["throughput"]) > float(rows[0]["throughput"])
    assert out.with_suffix(".png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def scheduler():
    """An in-process cluster: its workers see this test's monkeypatches."""
    from distributed import LocalCluster

    from edgeperf.sim._sweep import LOCAL_CLUSTER

    with LocalCluster(n_workers=1, processes=False, **LOCAL_CLUSTER) as cluster:
        yield cluster.scheduler_address


def test_failed_points_are_listed_and_exit_1(capsys, tmp_path, monkeypatch, scheduler):
    from edgeperf.sim import _simulate

    real = _simulate.simulate_chains

    def diverges_at_20(system, **kwargs):
        if system.arrival_rate == 20:
            raise FloatingPointError("the queue overflowed")
        return real(system, **kwargs)

    monkeypatch.setattr(_simulate, "simulate_chains", diverges_at_20)
    out, plot = tmp_path / "r.csv", tmp_path / "plots" / "r.svg"
    code, stdout, err = run(capsys, "sweep", str(EXAMPLE), "--set", "workload.arrival.rate=10,20",
                            *FAST, "--scheduler", scheduler, "--out", str(out), "--plot", str(plot))
    assert code == 1
    assert stdout.startswith("2 points, 2 rows: wrote")
    assert err.endswith("edgeperf: 1 of 2 points failed:\n"
                        "  point 1 (workload.arrival.rate=20): FloatingPointError: "
                        "the queue overflowed\n")
    assert out.exists() and plot.exists()


@pytest.mark.parametrize(("args", "pattern"), [
    (["--set", "workload.arival.rate=1,2"],
     re.escape("Unknown --set path 'workload.arival.rate': workload has no key 'arival'; "
               "its keys are: arrival.")),
    (["--set", "workload.arrival.rate=1:20:0"],
     re.escape("--set workload.arrival.rate: the step of range '1:20:0' must be > 0. Got 0.")),
    (["--set", "workload.arrival.rate=5", "--set", "devices[0].capacity=0,2"],
     re.escape(f"{EXAMPLE} at point 0 (workload.arrival.rate=5, devices[0].capacity=0): ")
     + r"devices\[0\]\.capacity: .*"),
    (["--set", "workload.arrival.rate=5", "--out", "r.xlsx"],
     re.escape("The results table 'r.xlsx' must end in .csv or .parquet. Got '.xlsx'.")),
    (["--set", "workload.arrival.rate=5", "--out", ""],
     re.escape("The results table '.' must end in .csv or .parquet. Got 'no suffix'.")),
    (["--set", "workload.arrival.rate=5", "--out", f"{EXAMPLE}/r.csv"],
     re.escape(f"The results table '{EXAMPLE}/r.csv' must be a file whose folder exists or "
               "can be made.")),
    (["--set", "workload.arrival.rate=5", "--scheduler", "nowhere"],
     re.escape("The scheduler address 'nowhere' is malformed: ") + ".*"),
    ([], re.escape("Missing option '--set'.")),
])
def test_bad_input_gets_one_line_and_exit_2(capsys, args, pattern):
    code, out, err = run(capsys, "sweep", str(EXAMPLE), *args)
    assert_one_error_line(code, out, err, pattern)


def test_a_missing_scenario_file_gets_one_line(capsys, tmp_path):
    missing = tmp_path / "none.yaml"
    code, out, err = run(capsys, "sweep", str(missing), "--set", "workload.arrival.rate=5")
    assert_one_error_line(code, out, err, re.escape(f"{missing}: cannot be read: ") + ".*")


def test_parquet_without_pyarrow_is_refused_before_running(capsys, tmp_path):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pyarrow is installed: Parquet output is tested in tests/sim/test_sweep.py")
    # a scheduler that is never contacted: the output is checked first
    code, out, err = run(capsys, "sweep", str(EXAMPLE), "--set", "workload.arrival.rate=5",
                         "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "r.parquet"))
    assert_one_error_line(code, out, err, r".*as Parquet needs pyarrow, which is not installed: "
                                          r"run `pip install pyarrow`, or write CSV .*")
