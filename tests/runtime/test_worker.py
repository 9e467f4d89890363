"""Workers on loopback: results, bounded queues, bad input, slow links, CURVE.

Every worker runs in a thread with a stop event (one test starts a real
``python -m edgeperf.runtime._worker`` subprocess and terminates it); every
wait has an explicit timeout, and each test checks that no worker thread
outlives it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import zmq

from edgeperf.earlyexit import load_trained
from edgeperf.exceptions import InvalidParameterError, UnsupportedModelError
from edgeperf.runtime import Deployment, ExitPolicySpec, LinkStage, WorkerSpec
from edgeperf.runtime._curve import curve_client, load_keypair, make_keypair
from edgeperf.runtime._link import EmulatedLink
from edgeperf.runtime._wire import decode, tensor_frames
from edgeperf.runtime._worker import Worker, main
from runtime_helpers import write_scenario

TIMEOUT_S = 10.0
NEVER = 2.0  # a threshold no calibrated confidence reaches: every job takes the final exit


# ------------------------------------------------------------------ helpers

def free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class Collector:
    """The test's end of the workers' outbox: decoded messages by kind."""

    def __init__(self, ctx: zmq.Context) -> None:
        self.sock = ctx.socket(zmq.PULL)
        self.sock.linger = 0
        self.address = f"tcp://127.0.0.1:{self.sock.bind_to_random_port('tcp://127.0.0.1')}"
        self.messages: list = []

    def of(self, kind: str, station: str | None = None) -> list:
        return [m for m in self.messages if m.kind == kind and
                (station is None or m.header["station"] == station)]

    def counters(self, station: str) -> dict:
        beats = self.of("heartbeat", station)
        return beats[-1].header["counters"] if beats else {}

    def wait(self, predicate, timeout: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; got {[m.header for m in self.messages][-8:]}"
            if self.sock.poll(int(min(left, 0.1) * 1000)):
                self.messages.append(decode(self.sock.recv_multipart(), max_bytes=2**20))


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def collector(ctx):
    return Collector(ctx)


@pytest.fixture(scope="module")
def net(tiny_model):
    return load_trained(tiny_model)


def deployment(model, collector, *workers, policy=None, scenario="unused.yaml") -> Deployment:
    return Deployment(scenario=str(scenario), model_dir=str(model), chain="c",
                      collector=collector.address, workers=workers, heartbeat_s=0.05,
                      exit_policy=policy or ExitPolicySpec(thresholds=(NEVER,) * 11))


def whole(device="d0", **changes) -> WorkerSpec:
    return WorkerSpec(**{"device": device, "bind": free_address(), "first": 0, "last": 15,
                         "capacity": 8, **changes})


@contextmanager
def running(dep: Deployment, *devices: str):
    """Workers of ``devices`` serving in threads; stopped and joined on exit."""
    stop, workers = threading.Event(), [Worker(dep, d) for d in devices]
    threads = [threading.Thread(target=w.serve, args=(stop,)) for w in workers]
    for t in threads:
        t.start()
    try:
        yield workers
    finally:
        stop.set()
        for t in threads:
            t.join(TIMEOUT_S)
        names = {t.name for t in threading.enumerate()}
        assert not any(t.is_alive() for t in threads)
        assert not [n for n in names if n.startswith(devices) or n.startswith("link-")]


def pusher(ctx, address, keys=None):
    sock = ctx.socket(zmq.PUSH)
    sock.linger = 0
    if keys is not None:
        curve_client(sock, *keys)
    sock.connect(address)
    return sock


def sample(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal((1, 1, 32, 32)).astype(np.float32)


def job_frames(i: int, x: np.ndarray | None = None, **changes):
    header = {"kind": "job", "id": i, "t_arrival": time.time(), "row": i, "label": i % 10,
              "exit": None, **changes}
    return tensor_frames(header, sample(i) if x is None else x)


# -------------------------------------------------------------------- tests

def test_a_subprocess_worker_predicts_what_the_net_predicts(tiny_model, net, ctx, collector,
                                                            tmp_path):
    thresholds = (0.3,) * 11
    dep = deployment(tiny_model, collector, whole(),
                     policy=ExitPolicySpec(thresholds=thresholds))
    path = dep.save(tmp_path / "deployment.json")
    proc = subprocess.Popen([sys.executable, "-m", "edgeperf.runtime._worker", "--deployment",
                             str(path), "--device", "d0"], stderr=subprocess.PIPE, text=True)
    try:
        client = pusher(ctx, dep.workers[0].bind)
        for i in range(6):
            client.send_multipart(job_frames(i))
        collector.wait(lambda: len(collector.of("result")) == 6, timeout=30.0)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, err
    temps = [e["temperature"] for e in net.summary["exits"]]
    with torch.inference_mode():
        predicted, exits = net.net.eval().infer(torch.tensor(np.concatenate(
            [sample(i) for i in range(6)])), thresholds, measure=net.summary["measure"],
            temperatures=temps)
    results = sorted(collector.of("result"), key=lambda m: m.id)
    assert [m.header["predicted"] for m in results] == predicted.tolist()
    assert [m.header["exit"] for m in results] == exits.tolist()
    assert all(m.header["label"] == m.id % 10 and m.header["station"] == "d0" for m in results)
    assert {m.id for m in collector.of("accept")} == set(range(6))


def test_a_burst_beyond_capacity_is_dropped_and_counters_add_up(tiny_model, ctx, collector):
    dep = deployment(tiny_model, collector, whole(capacity=2, speed=0.01))
    with running(dep, "d0"):
        client = pusher(ctx, dep.workers[0].bind)
        for i in range(10):
            client.send_multipart(job_frames(i))
        collector.wait(lambda: collector.counters("d0").get("completed") == 2)
    counters = collector.counters("d0")
    assert counters["received"] == 10 and counters["accepted"] == 2
    assert counters["received"] == counters["accepted"] + counters["dropped"] + \
        counters["malformed"]
    drops = collector.of("drop")
    assert len(drops) == 8 and {m.header["reason"] for m in drops} == {"queue full"}
    assert {m.id for m in collector.of("result")} == {m.id for m in collector.of("accept")}


def test_malformed_messages_are_counted_and_the_worker_keeps_serving(tiny_model, ctx,
                                                                     collector):
    dep = deployment(tiny_model, collector, whole())
    with running(dep, "d0"):
        client = pusher(ctx, dep.workers[0].bind)
        good = job_frames(1)
        client.send_multipart([b"{not json", b""])
        client.send_multipart([good[0], good[1][:-4]])         # payload 4 bytes short
        client.send_multipart([good[0], good[1], b"extra"])    # three frames
        client.send_multipart(job_frames(2, np.zeros((1, 3, 32, 32), np.float32)))  # shape
        client.send_multipart(good)
        collector.wait(lambda: collector.counters("d0").get("completed") == 1)
    counters = collector.counters("d0")
    assert (counters["received"], counters["malformed"], counters["accepted"]) == (5, 4, 1)
    drops = {m.id: m.header["reason"] for m in collector.of("drop")}
    assert drops == {1: "malformed", 2: "malformed"}
    assert [m.id for m in collector.of("result")] == [1]


def test_a_slow_link_delays_forwarding_and_drops_when_full(tiny_model, net, collector, ctx):
    split = net.net.exit_blocks[1]
    activation_bytes = 4 * int(np.prod(net.net.block_output_shapes[split]))
    tx_s = 0.3
    second = whole("d1", first=split + 1)
    link = LinkStage(name="wifi", bandwidth_bps=activation_bytes * 8 / tx_s, capacity=1,
                     latency_s=0.05)
    first = whole("d0", last=split, next=second.bind, link=link)
    dep = deployment(tiny_model, collector, first, second)
    with running(dep, "d0", "d1"):
        client = pusher(ctx, first.bind)
        client.send_multipart(job_frames(0))
        collector.wait(lambda: collector.of("result"))
        result = collector.of("result")[0].header
        for i in range(1, 4):  # the link holds one message: those behind it are dropped
            client.send_multipart(job_frames(i))
        collector.wait(lambda: collector.counters("d0").get("forwarded", 0) +
                       collector.counters("d0").get("link_dropped", 0) == 4)
        collector.wait(lambda: collector.counters("d1").get("completed") ==
                       collector.counters("d0")["forwarded"])
    assert tx_s + 0.05 <= result["t_done"] - result["t_arrival"] < tx_s + 0.05 + 1.0, result
    assert result["station"] == "d1"
    # 1 and 2 are computed within milliseconds of each other, far less than tx_s
    # apart; allow 3 to find the link free again on a machine busy enough to
    # take tx_s for two tiny fragments
    assert collector.counters("d0")["link_dropped"] in (1, 2)
    drops = collector.of("drop")
    assert {(m.header["station"], m.header["reason"]) for m in drops} == {("wifi", "queue full")}
    assert len(drops) == collector.counters("d0")["link_dropped"]


def test_curve_admits_only_authorised_clients(tiny_model, ctx, collector, tmp_path):
    _, server_secret = make_keypair(tmp_path / "server", "d0")
    allowed_public, allowed_secret = make_keypair(tmp_path / "clients", "orchestrator")
    _, stranger_secret = make_keypair(tmp_path / "strangers", "stranger")
    spec = whole(curve_server_key=str(server_secret), curve_clients=str(tmp_path / "clients"))
    server_public, _ = load_keypair(server_secret)
    dep = deployment(tiny_model, collector, spec)
    with running(dep, "d0"):
        plain = pusher(ctx, spec.bind)  # no CURVE at all
        stranger = pusher(ctx, spec.bind, (server_public, *load_keypair(stranger_secret)))
        plain.send_multipart(job_frames(1))
        stranger.send_multipart(job_frames(2))  # a key not in the folder
        collector.wait(lambda: len(collector.of("heartbeat")) >= 10)  # 0.5 s of silence
        assert collector.counters("d0")["received"] == 0
        allowed = pusher(ctx, spec.bind, (server_public, *load_keypair(allowed_secret)))
        allowed.send_multipart(job_frames(3))
        collector.wait(lambda: collector.counters("d0").get("completed") == 1)
    assert [m.id for m in collector.of("result")] == [3]
    assert collector.counters("d0")["received"] == 1
    assert load_keypair(allowed_public.with_suffix(".key_secret"))[0] == \
        load_keypair(allowed_secret)[0]


def test_a_key_path_that_is_not_a_path_is_named():
    with pytest.raises(InvalidParameterError, match=r"^The 'path' parameter of load_keypair must "
                       r"be a file path \(str or os\.PathLike\)\. Got None\.$"):
        load_keypair(None)


def _bayes_lookup(model_dir, folder):
    """A small saved BayesLookup for the tiny model (few trials: seconds)."""
    from edgeperf.model import ExitTable
    from edgeperf.profiling import load_profile
    from edgeperf.schedule import BayesLookup, ExitProblem

    problem = ExitProblem(table=ExitTable.load(model_dir / "exit_table.npz"),
                          model=load_profile(model_dir / "profile.json").to_dnn(),
                          capacity=8, arrival_rate=50.0, loss_target=0.05)
    lookup = BayesLookup.build(problem, [25.0, 50.0, 100.0], trials=8, seed=0, progress=False)
    return lookup.save(folder / "lookup.json")


@pytest.mark.parametrize("name", ["knapsack", "ucb", "lp_lookup", "bayes_lookup"])
def test_an_online_policy_decides_exits_on_a_one_worker_deployment(tiny_model, net, ctx,
                                                                   collector, tmp_path, name):
    names = list(net.net.block_names)
    scenario = write_scenario(tmp_path, tiny_model, rate=50.0, placement={"d0": names},
                              devices=[{"name": "d0", "capacity": 8, "speed": 1.0}])
    options = {"lookup": str(_bayes_lookup(tiny_model, tmp_path))} \
        if name == "bayes_lookup" else {}
    policy = ExitPolicySpec(kind="online", policy=name, loss_target=0.05, options=options)
    dep = deployment(tiny_model, collector, whole(), policy=policy, scenario=scenario)
    with running(dep, "d0") as (worker,):
        client = pusher(ctx, dep.workers[0].bind)
        for i in range(5):
            client.send_multipart(job_frames(i))
        collector.wait(lambda: len(collector.of("result")) == 5)
    assert worker.policy is not None
    if name == "knapsack":
        assert len(worker.policy.decision_times_s) == 5
    split = deployment(tiny_model, collector, whole(last=4, next="tcp://127.0.0.1:1"),
                       whole("d1", first=5), policy=policy, scenario=scenario)
    with pytest.raises(UnsupportedModelError, match="holds the whole model"):
        Worker(split, "d0")


def test_the_entry_point_reports_one_line_and_exits_2(tmp_path, capsys):
    assert main(["--deployment", str(tmp_path / "missing.json"), "--device", "d0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgeperf worker: ") and err.count("\n") == 1


# ---------------------------------------------------------------- the link alone

# Timer tolerance: the transmitter sleeps on a condition variable against a
# virtual clock, so lateness never accumulates; each release is at most one
# wake-up late (well under 1 ms on Linux, up to ~20 ms for thread scheduling
# on a busy 2-core CI machine) and never early (perf_counter is ns-resolved).
LATE_S = 0.03


def test_a_link_releases_each_message_after_its_transmission_and_latency():
    size, n, tx_s, latency_s = 1000, 5, 0.08, 0.05
    arrivals, done = [], threading.Event()

    def send(frames):
        arrivals.append((time.perf_counter(), frames[1]))
        if len(arrivals) == n:
            done.set()

    link = EmulatedLink(LinkStage(name="l", bandwidth_bps=size * 8 / tx_s, capacity=n,
                                  latency_s=latency_s), send).start()
    try:
        start = time.perf_counter()
        assert all(link.offer([b"h" * 10, bytes([i]) * (size - 10)]) for i in range(n))
        assert done.wait(TIMEOUT_S)
    finally:
        link.close()
    assert [payload[0] for _, payload in arrivals] == list(range(n))  # in order
    for i, (t, _) in enumerate(arrivals):
        due = (i + 1) * tx_s + latency_s
        assert due - 1e-3 <= t - start <= due + LATE_S, (i, t - start, due)


def test_a_full_link_refuses_messages_beyond_its_capacity():
    sent = []
    link = EmulatedLink(LinkStage(name="l", bandwidth_bps=8000.0, capacity=3),
                        sent.append).start()
    try:
        accepted = [link.offer([b"x" * 100, b""]) for _ in range(5)]
        assert accepted == [True, True, True, False, False]
        assert link.occupancy == 3 and (link.offered, link.dropped) == (5, 2)
        time.sleep(0.1 + LATE_S)  # one transmission (100 bytes at 8 kbit/s) frees one place
        assert link.offer([b"y", b""])
    finally:
        link.close()
    assert not any(t.name.startswith("link-l") and t.is_alive() for t in threading.enumerate())
