"""Parameter sweeps: runs on a dask cluster, failures, and the result table and plot."""

from __future__ import annotations

import csv
import math
import os
import re
import socket
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import cloudpickle
import pytest

from edgeperf._validation import usable_cores
from edgeperf.exceptions import EdgePerfError, InvalidParameterError
from edgeperf.io import ScenarioError, parse_scenario
from edgeperf.model import Metrics
from edgeperf.queueing import DecompositionEvaluator
from edgeperf.sim import simulate_chains
from edgeperf.sim._grid import SweepError, apply_point
from edgeperf.sim._sweep import LOCAL_CLUSTER, run_sweep
from edgeperf.sim._sweep_table import METRICS, check_outputs

# Workers are other processes: they get this module's evaluators by value, not by import.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

FAST = {"jobs": 2000, "replications": 2, "progress": False}


@pytest.fixture(scope="module")
def client():
    """One local cluster of two worker processes for the whole module (it takes seconds)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      **LOCAL_CLUSTER) as cluster, Client(cluster) as c:
        yield c


class NoCluster:
    """A client that fails the test if the sweep gets as far as running anything."""

    def map(self, *args, **kwargs):
        raise AssertionError("the sweep submitted work before rejecting its input")


def seeded(system, *, jobs, replications, seed) -> Metrics:
    """A cheap evaluator that shows which seed each point got."""
    return Metrics(kind="estimate", method="test", arrival_rate=system.arrival_rate,
                   throughput=float(seed), loss_probability=0.0, mean_response_time=1.0,
                   exit_distribution={}, stations=(), half_widths={"throughput": 0.5})


def raises_at_rate_20(system, *, jobs, replications, seed) -> Metrics:
    if system.arrival_rate == 20:
        raise RuntimeError("the simulation diverged")
    return seeded(system, jobs=jobs, replications=replications, seed=seed)


def refuses_at_rate_20(system, *, jobs, replications, seed, calls: Path) -> Metrics:
    with calls.open("a") as f:  # one line per call, from whichever worker makes it
        f.write(f"{system.arrival_rate}\n")
    if system.arrival_rate == 20:
        raise EdgePerfError("chain 'main': no job completed")
    return seeded(system, jobs=jobs, replications=replications, seed=seed)


def dies_at_rate_20(system, *, jobs, replications, seed) -> Metrics:
    if system.arrival_rate == 20:
        os._exit(1)  # the worker process dies, as on an out-of-memory kill
    return seeded(system, jobs=jobs, replications=replications, seed=seed)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- paths


def test_an_unknown_path_fails_before_anything_runs(pi_server):
    with pytest.raises(SweepError, match=r"Unknown --set path 'workload\.arival\.rate'"):
        run_sweep(pi_server, ["workload.arrival.rate=1,2", "workload.arival.rate=1"],
                  client=NoCluster(), progress=False)


def test_a_bad_value_names_the_point_before_anything_runs(pi_server):
    message = (r"^pi\.yaml at point 1 \(workload\.arrival\.rate=-1\): "
               r"workload\.arrival\.rate: .* must be a finite number > 0")
    with pytest.raises(ScenarioError, match=message):
        run_sweep(pi_server, ["workload.arrival.rate=5,-1"], client=NoCluster(), source="pi.yaml")


def test_run_sweep_checks_its_arguments(pi_server):
    with pytest.raises(InvalidParameterError, match=r"'jobs' parameter of run_sweep must be"):
        run_sweep(pi_server, ["workload.arrival.rate=1"], jobs=0, client=NoCluster())
    with pytest.raises(SweepError, match=r"Give --set specs with one base scenario"):
        run_sweep([pi_server], ["workload.arrival.rate=1"], client=NoCluster())
    with pytest.raises(SweepError, match=r"A sweep needs at least one scenario"):
        run_sweep([], client=NoCluster())
    with pytest.raises(InvalidParameterError, match=r"^The 'scenarios' parameter of run_sweep "
                       r"must be a scenario mapping, or a list of scenario mappings or Systems\. "
                       r"Got 'NoneType'\.$"):
        run_sweep(None, client=NoCluster())
    with pytest.raises(InvalidParameterError, match=r"^The 'client' parameter of run_sweep must "
                       r"be an open dask Client\. Got 'NoCluster'\.$"):
        run_sweep(pi_server, ["workload.arrival.rate=1"], client=NoCluster())
    for count in (0, usable_cores() + 1):  # refused before a local cluster starts
        with pytest.raises(InvalidParameterError, match=r"^The 'n_workers' parameter of "
                           r"run_sweep must be an int from 1 to \d+, the cores this machine lets "
                           rf"it use\. Got {count}\.$"):
            run_sweep(pi_server, ["workload.arrival.rate=1"], n_workers=count)


# --------------------------------------------------------------------------- running


def test_each_point_gets_seed_plus_its_index_and_rows_keep_point_order(pi_server, client):
    result = run_sweep(pi_server, ["workload.arrival.rate=5:30:5"], evaluate=seeded, seed=100,
                       client=client, **FAST)
    assert result.params == ("workload.arrival.rate",) and result.n_points == 6
    assert [r["workload.arrival.rate"] for r in result.rows] == [5, 10, 15, 20, 25, 30]
    assert [r["throughput"] for r in result.rows] == [100.0 + i for i in range(6)]
    assert {r["throughput_ci"] for r in result.rows} == {0.5}
    assert {r["chain"] for r in result.rows} == {"main"} and not result.failed


def test_results_do_not_depend_on_the_number_of_workers(pi_server, client):
    from distributed import Client, LocalCluster

    sets = ["workload.arrival.rate=20,40", "devices[0].capacity=2,5"]
    two = run_sweep(pi_server, sets, seed=7, client=client, **FAST)
    with LocalCluster(n_workers=1, processes=False, **LOCAL_CLUSTER) as cluster, \
            Client(cluster) as one_client:
        one = run_sweep(pi_server, sets, seed=7, client=one_client, **FAST)
    assert one.rows == two.rows and len(two.rows) == 4
    # and each row is the simulator's own answer for that point and seed
    system = parse_scenario(apply_point(pi_server, {"workload.arrival.rate": 40,
                                                    "devices[0].capacity": 2}))
    direct = simulate_chains(system, jobs=2000, replications=2, seed=7 + 2, warmup=0.1)["main"]
    row = two.rows[2]
    assert row["loss_probability"] == direct.loss_probability
    assert row["loss_probability_ci"] == direct.half_widths["loss_probability"]
    assert all(math.isfinite(row[m]) for m in METRICS if m != "accuracy")


def test_a_sweep_over_several_chains_has_a_row_per_chain(two_chains, client):
    result = run_sweep(two_chains, ["chains[1].workload.arrival.rate=5,10"], client=client, **FAST)
    assert [(r["chains[1].workload.arrival.rate"], r["chain"]) for r in result.rows] == [
        (5, "camera"), (5, "audio"), (10, "camera"), (10, "audio")]


def test_a_list_of_scenarios_is_swept_by_position(pi_server, client):
    system = parse_scenario(pi_server)
    other = apply_point(pi_server, {"devices[0].capacity": 2})
    result = run_sweep([system, other], evaluate=DecompositionEvaluator(), client=client,
                       progress=False)
    assert result.params == ("scenario",)
    assert [r["scenario"] for r in result.rows] == [0, 1]
    analytic = DecompositionEvaluator().evaluate(system)
    assert result.rows[0]["loss_probability"] == analytic.loss_probability
    assert result.rows[0]["loss_probability_ci"] is None  # analytic: no confidence interval


def test_a_point_that_raises_is_reported_and_the_others_finish(pi_server, client):
    result = run_sweep(pi_server, ["workload.arrival.rate=10,20,30"], evaluate=raises_at_rate_20,
                       client=client, **FAST)
    assert [(f.index, f.label) for f in result.failed] == [(1, "workload.arrival.rate=20")]
    assert result.failed[0].error == "RuntimeError: the simulation diverged"
    ok, bad = result.rows[0], result.rows[1]
    assert ok["error"] == "" and ok["throughput"] == 0.0 and result.rows[2]["throughput"] == 2.0
    assert bad["error"] == "RuntimeError: the simulation diverged"
    assert all(bad[m] is None for m in METRICS)


def test_a_refused_point_is_reported_once_and_not_retried(pi_server, client, tmp_path):
    # the evaluator's own error is a reason, which the point's seed would give again:
    # retrying it (as a crash is) would only triple its cost and its log lines
    calls = tmp_path / "calls.txt"
    result = run_sweep(pi_server, ["workload.arrival.rate=10,20,30"],
                       evaluate=partial(refuses_at_rate_20, calls=calls), client=client, **FAST)
    assert [(f.index, f.error) for f in result.failed] == \
        [(1, "EdgePerfError: chain 'main': no job completed")]
    assert sorted(calls.read_text().split()) == ["10.0", "20.0", "30.0"]
    assert [r["throughput"] for r in result.rows] == [0.0, None, 2.0]


def test_an_unsupported_point_is_reported_with_the_evaluators_message(pi_server, client):
    data = apply_point(pi_server, {})
    data["devices"][0]["servers"] = 1
    result = run_sweep(data, ["devices[0].servers=1,2"], evaluate=DecompositionEvaluator(),
                       client=client, progress=False)
    assert [f.index for f in result.failed] == [1]
    assert result.failed[0].error.startswith("UnsupportedModelError: DecompositionEvaluator "
                                             "supports single-server devices only")


def test_a_sweep_that_loses_workers_finishes_or_names_the_point_that_killed_them(pi_server,
                                                                                 tmp_path):
    import dask
    from distributed import Client, LocalCluster

    marker = tmp_path / "died-once"

    def dies_once_at_rate_20(system, **kwargs):
        if system.arrival_rate == 20 and not marker.exists():
            marker.touch()
            os._exit(1)
        return seeded(system, **kwargs)

    # a task is given up after killing two workers (default: four); each worker holds only
    # the task it runs, so a death cannot be blamed on a bystander
    config = {"distributed.scheduler.allowed-failures": 1,
              "distributed.scheduler.worker-saturation": 1.0}
    with dask.config.set(config), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         **LOCAL_CLUSTER) as cluster, \
            Client(cluster) as c:
        survived = run_sweep(pi_server, ["workload.arrival.rate=10,20,30"],
                             evaluate=dies_once_at_rate_20, client=c, **FAST)
        killed = run_sweep(pi_server, ["workload.arrival.rate=10,20,30"],
                           evaluate=dies_at_rate_20, client=c, **FAST)
    assert marker.exists() and not survived.failed
    assert [r["throughput"] for r in survived.rows] == [0.0, 1.0, 2.0]
    # the point that kills every worker it meets fails; a bystander that shared its
    # worker's death can fail too (dask cannot always tell them apart), and then it is
    # named as well: whatever failed is listed, whatever did not is right
    failed = [f.index for f in killed.failed]
    assert 1 in failed and all(f.error.startswith("KilledWorker: ") for f in killed.failed)
    expected = [0.0, 1.0, 2.0]
    assert [r["throughput"] for r in killed.rows] == \
        [None if i in failed else x for i, x in enumerate(expected)]


def test_a_scheduler_that_does_not_answer_gets_one_line_quickly(pi_server):
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(SweepError, match=rf"^The dask scheduler at '{address}' does not answer: "
                                         r"Timed out trying to connect"):
        run_sweep(pi_server, ["workload.arrival.rate=10"], scheduler=address, timeout=1)
    assert time.perf_counter() - start < 5
    with pytest.raises(SweepError, match=r"^The scheduler address 'localhost' is malformed: "):
        run_sweep(pi_server, ["workload.arrival.rate=10"], scheduler="localhost")


@pytest.mark.parametrize("option, message", [
    ({"evaluate": 3}, r"'evaluate' parameter of run_sweep must be a function evaluate\(system, "
                      r"jobs=, replications=, seed=\) or an evaluator with evaluate\(system\)\. "
                      r"Got 3\."),
    ({"scheduler": 8786}, r"'scheduler' parameter of run_sweep must be None or a scheduler "
                          r"address \(tcp://HOST:PORT\)\. Got 8786\."),
])
def test_what_cannot_run_is_refused_before_a_cluster_starts(pi_server, option, message):
    # an evaluate that is no function failed on the workers, point by point
    with pytest.raises(InvalidParameterError, match="^The " + message + "$"):
        run_sweep(pi_server, ["workload.arrival.rate=10"], **option)


@pytest.mark.parametrize("address", ["localhost", "tcp://host:notaport", "tcp://:8786x"])
def test_a_malformed_address_is_refused_before_a_client_exists(pi_server, monkeypatch, address):
    """A Client that fails half-way through construction blocks for 20 s and prints a
    traceback when it is collected; the address is checked before one is made."""
    import distributed

    def no_client(*args, **kwargs):
        raise AssertionError("a Client was made for a malformed address")

    monkeypatch.setattr(distributed, "Client", no_client)
    with pytest.raises(SweepError, match=rf"^The scheduler address '{re.escape(address)}' is "
                                         "malformed: "):
        run_sweep(pi_server, ["workload.arrival.rate=10"], scheduler=address)


def test_a_running_scheduler_is_used_by_address(pi_server, client):
    result = run_sweep(pi_server, ["workload.arrival.rate=10,20"], evaluate=seeded,
                       scheduler=client.scheduler.address, **FAST)
    assert [r["throughput"] for r in result.rows] == [0.0, 1.0]


# --------------------------------------------------------------------------- outputs


@pytest.fixture(scope="module")
def result(pi_server, client):
    """A small sweep with a failed point and two lines per panel."""
    return run_sweep(pi_server, ["workload.arrival.rate=10,20,30", "devices[0].capacity=2,5"],
                     evaluate=raises_at_rate_20, client=client, **FAST)


def test_csv_is_written_and_reads_back(result, tmp_path):
    path = result.to_csv(tmp_path / "out" / "sweep.csv")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == result.columns
    assert result.columns[:4] == ["point", "workload.arrival.rate", "devices[0].capacity", "chain"]
    assert len(rows) == len(result.rows) == 6
    for got, want in zip(rows, result.rows):
        for column, value in want.items():
            if isinstance(value, float):
                assert float(got[column]) == value
            else:
                assert got[column] == ("" if value is None else str(value))
    assert [p.name for p in path.parent.iterdir()] == ["sweep.csv"]  # no temporary left behind


def test_parquet_needs_pyarrow_or_round_trips(result, tmp_path):
    path = tmp_path / "sweep.parquet"
    try:
        import pyarrow.parquet as pq
    except ImportError:
        with pytest.raises(SweepError, match=r"as Parquet needs pyarrow, which is not installed: "
                                             r"run `pip install pyarrow`"):
            result.write(path)
        assert not path.exists()
        return
    result.write(path)
    assert pq.read_table(path).to_pylist() == list(result.rows)


def test_plot_file_is_created(result, tmp_path):
    path = result.plot(tmp_path / "sweep.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_plot_of_categories_and_of_nothing(result, tmp_path):
    named = [dict(r, **{"workload.arrival.rate": f"r{r['workload.arrival.rate']}"})
             for r in result.rows]
    assert replace(result, rows=tuple(named)).plot(tmp_path / "named.svg").stat().st_size > 0
    failed = [dict(r, **dict.fromkeys(METRICS)) for r in result.rows]
    assert replace(result, rows=tuple(failed)).plot(tmp_path / "none.png").stat().st_size > 0


def test_outputs_with_unknown_suffixes_are_refused_before_running():
    with pytest.raises(SweepError, match=r"The results table 'out\.xlsx' must end in \.csv or "
                                         r"\.parquet\. Got '\.xlsx'\."):
        check_outputs("out.xlsx")
    with pytest.raises(SweepError, match=r"The plot 'plot\.docx' must end in one of .*\.png"):
        check_outputs(plot="plot.docx")


def test_outputs_that_cannot_be_written_are_refused_before_running(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(SweepError, match=r"^The results table '.*/file/new/out\.csv' must be a "
                                         r"file whose folder exists or can be made\.$"):
        check_outputs(tmp_path / "file" / "new" / "out.csv")
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(SweepError, match=r"^The plot '.*/taken\.png' must be a file whose "
                                         r"folder exists or can be made\.$"):
        check_outputs(plot=tmp_path / "taken.png")
    check_outputs(tmp_path / "new" / "out.csv", tmp_path / "new" / "out.png")  # made on writing
