"""The collector's books and metrics on synthetic message streams (no worker processes)."""

from __future__ import annotations

import time

import pytest

from edgeperf.runtime._collector import AccountingError, Collector, Ledger, Window
from edgeperf.runtime._plan import free_ports
from edgeperf.runtime._wire import encode

T0 = 1000.0
EXITS = ("e0", "final")


def _result(rid, t_arrival, response, exit_, right, station="b"):
    return {"id": rid, "t_arrival": t_arrival, "t_done": t_arrival + response, "exit": exit_,
            "predicted": 1 if right else 2, "label": 1, "station": station}


def _books():
    """20 jobs over 10 s: even ids complete (half right, exits alternate), ids 1, 3, 5
    are dropped at b, 7 and 9 are held by b when it fails, 11.. are never accepted
    (on their way when b fails)."""
    ledger, offered = Ledger(), {}
    for i in range(20):
        t = T0 + 0.5 * i
        offered[i] = t
        if i % 2 == 0 or i < 11:
            ledger.feed("accept", {"id": i, "t": t, "station": "a"})
        if i % 2 == 0:
            ledger.feed("accept", {"id": i, "t": t + 0.01, "station": "b"})
            ledger.feed("result", _result(i, t, 0.1 + 0.01 * i, (i // 2) % 2, i % 4 == 0))
        elif i in (1, 3, 5):
            ledger.feed("drop", {"id": i, "t": t, "station": "b", "reason": "queue full"})
        elif i in (7, 9):
            ledger.feed("accept", {"id": i, "t": t + 0.01, "station": "b"})
    return ledger, offered


def test_finish_closes_every_open_request_and_checks_conservation():
    ledger, offered = _books()
    counts = ledger.finish(offered, ["b"], ("a", "b"))
    assert counts == {"offered": 20, "completed": 10, "dropped": 10}
    drops = ledger.drops_by()
    assert drops["b"] == {"queue full": 3, "worker failed": 7}  # 11, 13, ..: on their way to b


def test_a_request_never_accepted_is_lost_at_the_first_station():
    ledger = Ledger()
    assert ledger.finish({"x": T0}, [], ("up", "a")) == \
        {"offered": 1, "completed": 0, "dropped": 1}
    assert ledger.drops_by() == {"up": {"lost": 1}}


def test_a_request_in_transit_to_a_failed_worker_ends_as_worker_failed():
    ledger = Ledger()
    ledger.feed("accept", {"id": 1, "t": T0, "station": "a"})
    ledger.finish({1: T0, 2: T0}, ["b"], ("a", "a->b", "b"))
    assert ledger.drops_by() == {"b": {"worker failed": 2}}


def test_records_of_requests_never_offered_break_conservation():
    ledger, offered = _books()
    ledger.feed("result", _result(99, T0, 0.1, 0, True))
    with pytest.raises(AccountingError, match="Conservation broken.*1 records name ids never"):
        ledger.finish(offered, ["b"], ("a", "b"))


def test_duplicates_and_unreadable_drops_are_counted_not_booked():
    ledger = Ledger()
    ledger.feed("result", _result(1, T0, 0.1, 0, True))
    ledger.feed("drop", {"id": 1, "t": T0, "station": "b", "reason": "queue full"})
    ledger.feed("drop", {"id": None, "t": T0, "station": "b", "reason": "malformed"})
    assert (ledger.duplicates, ledger.malformed) == (1, 1)
    assert ledger.finish({1: T0}, [], ("a",))["completed"] == 1


def test_metrics_of_the_measured_window():
    ledger, offered = _books()
    ledger.finish(offered, ["b"], ("a", "b"))
    window = Window(start=T0, end=T0 + 10.0, stations=("a", "b"), capacities=(4, 3),
                    exit_names=EXITS, batches=5)
    m = ledger.metrics(offered, window)
    assert (m.kind, m.method) == ("estimate", "runtime")
    assert m.arrival_rate == pytest.approx(2.0) and m.throughput == pytest.approx(1.0)
    assert m.loss_probability == pytest.approx(0.5)
    assert m.accuracy == pytest.approx(0.5)
    assert m.exit_distribution == {"e0": 0.5, "final": 0.5}
    assert m.mean_response_time == pytest.approx(0.1 + 0.01 * 9)
    assert m.p50_response_time <= m.p95_response_time <= m.p99_response_time
    a, b = m.stations
    assert (a.name, a.arrival_rate, a.loss_probability) == ("a", 2.0, 0.0)
    assert (b.name, b.arrival_rate, b.loss_probability) == ("b", 2.0, 0.5)
    assert b.throughput == pytest.approx(17 / 10)  # offered less the 3 it refused
    assert {"throughput", "loss_probability", "accuracy", "mean_response_time"} <= \
        set(m.half_widths)
    assert all(hw >= 0 for hw in m.half_widths.values())


def test_warmup_window_leaves_early_jobs_out():
    ledger, offered = _books()
    ledger.finish(offered, ["b"], ("a", "b"))
    window = Window(start=T0 + 5.0, end=T0 + 10.0, stations=("a", "b"), capacities=(4, 3),
                    exit_names=EXITS)
    m = ledger.metrics(offered, window)
    assert m.arrival_rate == pytest.approx(10 / 5.0)  # ids 10..19
    assert m.loss_probability == pytest.approx(0.5)


def test_collector_socket_books_messages_and_counts_malformed_ones():
    import zmq

    address = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    ledger = Ledger()
    collector = Collector(address, ledger, max_bytes=2**20).start()
    sock = zmq.Context.instance().socket(zmq.PUSH)
    try:
        sock.connect(address)
        sock.send_multipart([b"not json", b""])
        sock.send_multipart(encode({"kind": "heartbeat", "t": T0, "station": "a",
                                    "counters": {"received": 1}}))
        sock.send_multipart(encode({"kind": "result", **_result(7, T0, 0.2, 1, True)}))
        deadline = time.time() + 5
        while (ledger.malformed < 1 or 7 not in ledger.final) and time.time() < deadline:
            time.sleep(0.01)
    finally:
        sock.close(linger=0)
        collector.close()
    assert ledger.malformed == 1 and ledger.final[7].correct
    assert ledger.last_heartbeat("a") > 0 and ledger.heartbeats["a"][1] == {"received": 1}
