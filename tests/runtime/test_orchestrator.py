"""Real workers on loopback: conservation under overload, and a worker killed mid-run.

Timings on a shared 2-core host are noisy, so these check the books (every
request ends in exactly one record, drops where they must be), never speeds.
"""

from __future__ import annotations

import pytest

from edgeperf.io import load_scenario
from edgeperf.runtime._orchestrator import run_deployment
from edgeperf.runtime._plan import plan_deployment
from runtime_helpers import workers_left, write_scenario

BLOCKS = ["stem", "s1b0", "s1b1", "s1b2", "s1b3", "s1b4", "s2b0", "s2b1", "s2b2", "s2b3",
          "s2b4", "s3b0", "s3b1", "s3b2", "s3b3", "s3b4"]


@pytest.fixture
def overloaded(tmp_path, tiny_model):
    """Two devices; b (speed 0.02, K = 3: about 10 jobs/s) is the bottleneck at 40 jobs/s,
    so it holds K jobs most of the time."""
    file = write_scenario(
        tmp_path, tiny_model, rate=40.0,
        devices=[{"name": "a", "capacity": 4, "speed": 1.0},
                 {"name": "b", "capacity": 3, "speed": 0.02}],
        placement={"a": BLOCKS[:8], "b": BLOCKS[8:]},
        links=[{"source": "a", "target": "b", "bandwidth_bps": 1e9, "capacity": 10}])
    return plan_deployment(load_scenario(file), tiny_model, scenario_path=file)


def _no_children() -> None:
    assert workers_left() == []


def _conserved(result) -> None:
    counts = result.counts
    assert counts["offered"] == result.load.sent > 0
    assert counts["offered"] == counts["completed"] + counts["dropped"]
    assert sum(n for reasons in result.drops.values() for n in reasons.values()) == \
        counts["dropped"]


def test_overload_conserves_requests_and_drops_at_the_bottleneck(overloaded):
    result = run_deployment(overloaded, duration_s=3.0, seed=1)
    _no_children()
    _conserved(result)
    assert result.counts["completed"] > 0
    assert result.drops["b"]["queue full"] > 0
    assert result.metrics.station("b").loss_probability > 0.3
    assert 0 < result.metrics.loss_probability < 1
    assert result.failures == () and result.malformed == 0


def test_a_killed_worker_is_restarted_and_its_jobs_end_as_worker_failed(overloaded):
    result = run_deployment(overloaded, duration_s=6.0, seed=2, faults=[(1.5, "b")])
    _no_children()
    _conserved(result)
    assert [f.station for f in result.failures] == ["b"]
    assert "exited" in result.failures[0].why
    assert result.drops["b"].get("worker failed", 0) >= 1
    # the restarted worker's books start at zero: CPU time in them means it served again
    assert result.work["b"]["cpu_s"] > 0


def test_an_external_worker_is_watched_not_started(overloaded):
    """b runs already (here in a thread; on another host in real use): the run
    starts only a, uses b, and leaves b running."""
    import threading

    from edgeperf.runtime._worker import Worker

    stop = threading.Event()
    worker = Worker(overloaded, "b")
    thread = threading.Thread(target=worker.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        result = run_deployment(overloaded, duration_s=2.0, seed=3, external={"b"})
        assert thread.is_alive()  # the run did not stop it
    finally:
        stop.set()
        thread.join(10)
    _no_children()
    _conserved(result)
    assert result.counts["completed"] > 0 and result.failures == ()
    assert result.work["b"]["cpu_s"] > 0
