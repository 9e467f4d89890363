"""A worker: one device's fragment behind a bounded queue (docs/background/runtime.md).

Four threads, each owning at most one ZeroMQ socket: the receiver (the PULL
socket; checks, admits up to K jobs, queued or in service, drops the rest),
the compute thread (runs the fragment stretched to the device's speed and
applies the exit policy), the outbox (the PUSH socket to the collector:
accepts, drops, results, heartbeats) and the sender (the PUSH socket to the
next hop, fed directly or by the emulated link). Nothing a peer sends can
crash it: a bad message is counted as ``malformed`` and reported.

Online exit policies (``exit_policy.kind == "online"``) run in the worker
that holds the whole model (a one-worker deployment), because ``observe``
needs every job's outcome: the problem is built once at start from the
model folder (exit table, profile) and the scenario's arrival rate; the
policy's own rate estimate comes from the ``recent_arrivals`` this worker
records.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _validation as v
from ..exceptions import EdgePerfError, UnsupportedModelError
from ..sim._policy import JobOutcome, JobState
from ._deployment import Deployment, ExitPolicySpec, WorkerSpec, load_deployment
from ._fragment import ExitOutput, Fragment
from ._link import EmulatedLink
from ._wire import COUNTERS, MalformedMessage, Message, decode, encode, tensor_frames

__all__ = ["run_worker", "Worker", "main", "WORKER_COUNTERS"]

#: Heartbeat counters: the wire's six, plus jobs a full link dropped and jobs
#: the fragment failed on. accepted = completed + forwarded + link_dropped +
#: failed + jobs still inside; received = accepted + dropped + malformed.
WORKER_COUNTERS = (*COUNTERS, "link_dropped", "failed")
_POLL_MS = 50
_RECENT = 64


@dataclass(slots=True)
class _Job:
    message: Message
    t_received: float
    number: int  # JobState.job / JobOutcome.job for the online policy


class _Counters:
    """Thread-safe counts, snapshotted into heartbeats."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = dict.fromkeys(WORKER_COUNTERS, 0)

    def add(self, name: str) -> None:
        with self._lock:
            self._n[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._n)


class _Work:
    """CPU seconds the jobs took here, beside what the profile says for the
    blocks they ran: their ratio tells the twin how much dearer this
    fragment runs than its profile (heartbeats carry both)."""

    def __init__(self, block_s: list[float]) -> None:
        self._lock = threading.Lock()
        self._block_s = block_s
        self.cpu_s = self.profile_s = 0.0

    def add(self, cpu_s: float, first: int, last: int) -> None:
        with self._lock:
            self.cpu_s += cpu_s
            self.profile_s += sum(self._block_s[first:last + 1])

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {"cpu_s": self.cpu_s, "profile_s": self.profile_s}


class Worker:
    """The worker of ``device``: loads its fragment (and online policy) at
    construction, so a bad deployment fails before any socket opens."""

    def __init__(self, deployment: Deployment, device: str, *, bind: str | None = None) -> None:
        self.deployment = deployment
        self.spec: WorkerSpec = deployment.worker(device)
        self.station = device
        self.bind = bind or self.spec.bind
        self.fragment = Fragment.load(deployment.model_dir, self.spec.first, self.spec.last,
                                      threads=self.spec.threads)
        if self.spec.next is None and not self.fragment.is_last:
            raise v.fail("WorkerSpec", "next", "an address for a fragment that is not the last",
                         None)
        self.thresholds = _thresholds(deployment.exit_policy, self.fragment.n_exits)
        self.work = _Work(_profile_block_s(deployment.model_dir))
        self.policy, self.table = _online_policy(deployment, self.spec, self.fragment)
        self.counters = _Counters()
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._in_service = 0
        self._recent: deque[float] = deque(maxlen=_RECENT)
        self._numbers = itertools.count()
        self._policy_lock = threading.Lock()
        self._outbox: queue.Queue[list[bytes]] = queue.Queue()
        self._forward: queue.Queue[list[bytes]] = queue.Queue()
        self._link: EmulatedLink | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------ lifecycle

    def serve(self, stop: threading.Event | None = None) -> dict[str, int]:
        """Serve until ``stop`` is set; return the final counters."""
        import zmq

        self._stop = stop or self._stop
        ctx = zmq.Context()
        sockets: list[Any] = []
        auth = threads = None
        try:
            pull = _socket(ctx, zmq.PULL, sockets)
            pull.maxmsgsize = self.deployment.max_message_bytes
            if self.spec.curve_server_key is not None:
                from ._curve import curve_server
                auth = curve_server(ctx, pull, self.spec.curve_server_key, self.spec.curve_clients)
            pull.bind(self.bind)
            out = _socket(ctx, zmq.PUSH, sockets, connect=self.deployment.collector)
            threads = [self._thread(self._pump, out, self._outbox, True)]
            if self.spec.next is not None:
                nxt = _socket(ctx, zmq.PUSH, sockets, connect=self.spec.next)
                threads.append(self._thread(self._pump, nxt, self._forward, False))
                if self.spec.link is not None:  # before any job can reach _pass_on
                    self._link = EmulatedLink(self.spec.link, self._forward.put).start()
            threads += [self._thread(self._receive, pull), self._thread(self._compute)]
            while not self._stop.wait(0.1):
                pass
        finally:
            self._stop.set()
            for t in threads or ():
                t.join(5.0)
            if self._link is not None:
                self._link.close()
            for s in sockets:
                s.close(linger=0)
            if auth is not None:
                auth.stop()
            ctx.term()
        return self.counters.snapshot()

    def _thread(self, target: Any, *args: Any) -> threading.Thread:
        t = threading.Thread(target=target, args=args, name=f"{self.station}-{target.__name__}",
                             daemon=True)
        t.start()
        return t

    # ------------------------------------------------------------- receiver

    def _receive(self, pull: Any) -> None:
        while not self._stop.is_set():
            if pull.poll(_POLL_MS):
                self._on_frames(pull.recv_multipart(), time.time())

    def _on_frames(self, frames: list[bytes], now: float) -> None:
        self.counters.add("received")
        try:
            message = decode(frames, max_bytes=self.deployment.max_message_bytes)
            self._check_job(message)
        except MalformedMessage as err:
            self.counters.add("malformed")
            if err.request_id is not None:
                self._report_drop(err.request_id, "malformed")
            return
        self._admit(message, now)

    def _check_job(self, message: Message) -> None:
        """What decode cannot know: this fragment's input shape, the model's exits."""
        h, rid = message.header, message.id
        if message.kind != "job":
            raise MalformedMessage(f"a worker takes jobs, not {message.kind!r}", rid)
        shape = tuple(h["shape"])
        if shape not in (self.fragment.input_shape, self.fragment.input_shape[1:]):
            raise MalformedMessage(f"job shape {list(shape)}, expected "
                                   f"{list(self.fragment.input_shape)}", rid)
        if h["exit"] is not None and h["exit"] >= self.fragment.n_exits:
            raise MalformedMessage(f"job exit {h['exit']} of a model with "
                                   f"{self.fragment.n_exits} exits", rid)
        if self.table is not None and h["row"] >= self.table.n_samples:
            raise MalformedMessage(f"job row {h['row']} beyond the exit table's "
                                   f"{self.table.n_samples} rows", rid)

    def _admit(self, message: Message, now: float) -> None:
        with self._cond:
            self._recent.append(now)
            number = next(self._numbers)
            full = len(self._jobs) + self._in_service >= self.spec.capacity
            if not full:
                self._jobs.append(_Job(message, now, number))
                self.counters.add("accepted")  # and posted before the compute thread can finish
                self._post({"kind": "accept", "id": message.id, "t": now,
                            "station": self.station})
                self._cond.notify()
        if full:
            self.counters.add("dropped")
            self._report_drop(message.id, "queue full")
            self._observe(number, None, None, lost=True)

    # -------------------------------------------------------------- compute

    def _compute(self) -> None:
        import torch

        torch.set_num_threads(self.spec.threads)  # thread settings are per thread in OpenMP
        while True:
            with self._cond:
                while not self._jobs and not self._stop.is_set():
                    self._cond.wait(0.1)
                if self._stop.is_set():
                    return
                job = self._jobs.popleft()
                self._in_service = 1
                waiting, recent = len(self._jobs), tuple(self._recent)
            try:
                self._serve_job(job, waiting, recent)
            except Exception:  # noqa: BLE001 - a job may fail, the worker may not
                self.counters.add("failed")
                self._report_drop(job.message.id, "worker failed")
            finally:
                with self._cond:
                    self._in_service = 0

    def _serve_job(self, job: _Job, waiting: int, recent: tuple[float, ...]) -> None:
        header = job.message.header
        exit_ = header["exit"]
        if self.policy is not None and exit_ is None:
            exit_ = self._decide(job, waiting, recent)
        start, cpu = time.perf_counter(), time.thread_time()
        activation, outputs = self.fragment.run(job.message.tensor(),
                                                lambda out: self._leaves(out, exit_))
        cpu = time.thread_time() - cpu
        left = activation is None  # at the last exit it reached
        ran = self.fragment.net.exit_blocks[outputs[-1].exit] if left else self.spec.last
        self.work.add(cpu, self.spec.first, ran)
        self._stretch(time.perf_counter() - start, cpu)
        if activation is None:  # it left at the last exit it reached
            self._complete(job, outputs[-1])
        else:
            self._pass_on({**header, "exit": exit_}, activation)

    def _leaves(self, out: ExitOutput, exit_: int | None) -> bool:
        """The exit policy at a hosted exit: the decided exit, else the threshold."""
        if out.exit == self.fragment.n_exits - 1:
            return True
        if exit_ is not None:
            return out.exit >= exit_
        return bool(self.thresholds) and out.confidence >= self.thresholds[out.exit]

    def _stretch(self, wall_s: float, cpu_s: float) -> None:
        """Hold the job until this device (``speed`` <= 1) would have finished:
        the work done, divided by the speed. With one torch thread the work is
        this thread's CPU time, which leaves out the time other workers on this
        host took the core (real devices do not share it); with several, the
        CPU time misses the helper threads, so the wall time stands in."""
        if self.spec.speed >= 1.0:
            return
        work = cpu_s if self.spec.threads == 1 else wall_s
        self._stop.wait(max(0.0, work / self.spec.speed - wall_s))

    def _complete(self, job: _Job, out: ExitOutput) -> None:
        h, now = job.message.header, time.time()
        self.counters.add("completed")
        self._post({"kind": "result", "id": h["id"], "t_arrival": h["t_arrival"], "t_done": now,
                    "exit": out.exit, "predicted": out.predicted, "label": h["label"],
                    "station": self.station})
        self._observe(job.number, out.exit, now - h["t_arrival"],
                      correct=out.predicted == h["label"])

    def _pass_on(self, header: dict[str, Any], activation: Any) -> None:
        frames = tensor_frames(header, activation)
        if self._link is None:
            self._forward.put(frames)
        elif not self._link.offer(frames):
            self.counters.add("link_dropped")
            self._report_drop(header["id"], "queue full", self._link.stage.name)
            return
        self.counters.add("forwarded")

    # --------------------------------------------------------- online policy

    def _decide(self, job: _Job, waiting: int, recent: tuple[float, ...]) -> int:
        row = job.message.header["row"]
        state = JobState(time=time.time(), chain=self.deployment.chain, job=job.number,
                         station=self.station, jobs_present=waiting + 1, waiting=waiting,
                         recent_arrivals=recent, queue_lengths={self.station: waiting + 1},
                         n_exits=self.fragment.n_exits, confidence=self.table.confidence[row])
        with self._policy_lock:
            return min(int(self.policy.decide(state)), self.fragment.n_exits - 1)

    def _observe(self, number: int, exit_: int | None, response_s: float | None, *,
                 lost: bool = False, correct: bool | None = None) -> None:
        if self.policy is None:
            return
        outcome = JobOutcome(time=time.time(), chain=self.deployment.chain, job=number,
                             exit=exit_, completed=not lost, response_time=response_s,
                             correct=correct, lost_at=self.station if lost else None)
        with self._policy_lock:
            self.policy.observe(outcome)

    # --------------------------------------------------------------- outbox

    def _post(self, header: dict[str, Any]) -> None:
        self._outbox.put(encode(header))

    def _report_drop(self, rid: int | str | None, reason: str, station: str | None = None) -> None:
        self._post({"kind": "drop", "id": rid, "t": time.time(),
                    "station": station or self.station, "reason": reason})

    def _heartbeat(self) -> list[bytes]:
        return encode({"kind": "heartbeat", "t": time.time(), "station": self.station,
                       "counters": self.counters.snapshot(), "work": self.work.snapshot()})

    def _pump(self, sock: Any, box: queue.Queue[list[bytes]], beats: bool) -> None:
        """Send what ``box`` holds (and heartbeats, if ``beats``); after stop,
        flush what is left and, with ``beats``, a last heartbeat."""
        period = self.deployment.heartbeat_s
        due = time.monotonic()
        while True:
            if beats and time.monotonic() >= due:
                _send(sock, self._heartbeat(), self._stop)
                due = time.monotonic() + period
            # the heartbeat pump wakes when a beat is due; a plain pump just polls for stop
            wait = min(0.05, max(0.0, due - time.monotonic())) if beats else 0.05
            try:
                _send(sock, box.get(timeout=wait), self._stop)
            except queue.Empty:
                if self._stop.is_set():
                    break
        if beats:
            _send(sock, self._heartbeat(), self._stop)


# ----------------------------------------------------------------- helpers

def _profile_block_s(model_dir: str) -> list[float]:
    """Each block's mean latency (with its exit head) in the model's profile."""
    from ..profiling import load_profile

    return [b.law.mean for b in load_profile(Path(model_dir) / "profile.json").blocks]


def _socket(ctx: Any, kind: int, owned: list[Any], connect: str | None = None) -> Any:
    sock = ctx.socket(kind)
    owned.append(sock)
    sock.linger = 0
    if connect is not None:
        sock.connect(connect)
    return sock


def _send(sock: Any, frames: list[bytes], stop: threading.Event) -> bool:
    """Send without blocking forever: wait for room, give up once stopped."""
    import zmq

    while not sock.poll(_POLL_MS, zmq.POLLOUT):
        if stop.is_set():
            return False
    try:
        sock.send_multipart(frames, flags=zmq.NOBLOCK)
    except zmq.Again:
        return False
    return True


def _thresholds(policy: ExitPolicySpec, n_exits: int) -> tuple[float, ...]:
    """One threshold per non-final exit; none: only jobs' own ``exit`` fields
    (or the final exit) decide."""
    if policy.kind != "thresholds" or not policy.thresholds:
        return ()
    if len(policy.thresholds) != n_exits - 1:
        raise v.fail("ExitPolicySpec", "thresholds",
                     f"{n_exits - 1} numbers (one per exit but the last) or none",
                     list(policy.thresholds))
    return policy.thresholds


def _online_policy(deployment: Deployment, spec: WorkerSpec,
                   fragment: Fragment) -> tuple[Any, Any]:
    """(policy, exit table) of an online exit policy; (None, None) otherwise."""
    ep = deployment.exit_policy
    if ep.kind != "online":
        return None, None
    if len(deployment.workers) != 1 or spec.first != 0 or not fragment.is_last:
        raise UnsupportedModelError(
            f"The online exit policy {ep.policy!r} runs in a worker that holds the whole model "
            f"(it must observe every job's outcome); the deployment splits it over "
            f"{[w.device for w in deployment.workers]}. Use thresholds or one worker.")
    from ..io import load_scenario
    from ..model import ExitTable
    from ..profiling import load_profile
    from ..schedule import ExitProblem, online_policy

    folder = Path(deployment.model_dir)
    table = ExitTable.load(folder / "exit_table.npz")
    system = load_scenario(deployment.scenario)
    rates = {c.name: c.arrival_rate for c in system.chains}
    problem = ExitProblem(table=table, model=load_profile(folder / "profile.json").to_dnn(),
                          capacity=spec.capacity, speed=spec.speed, loss_target=ep.loss_target,
                          arrival_rate=rates.get(deployment.chain, system.chains[0].arrival_rate))
    return online_policy(problem, ep.policy, **ep.options), table


@contextlib.contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (only the main thread can take signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


# -------------------------------------------------------------------- entry

def run_worker(deployment: Deployment, device: str, *, bind: str | None = None,
               stop: threading.Event | None = None) -> dict[str, int]:
    """Run ``device``'s worker until ``stop`` is set (or SIGTERM/SIGINT in the
    main thread); return its final counters."""
    stop = stop or threading.Event()
    worker = Worker(deployment, device, bind=bind)
    with _signals(stop):
        return worker.serve(stop)


def main(argv: list[str] | None = None) -> int:
    """``python -m edgeperf.runtime._worker --deployment FILE --device NAME [--bind ADDR]``."""
    import zmq

    parser = argparse.ArgumentParser(prog="python -m edgeperf.runtime._worker",
                                     description="Run one device's worker of a deployment.")
    parser.add_argument("--deployment", required=True, help="the deployment JSON file")
    parser.add_argument("--device", required=True, help="the device whose fragment to run")
    parser.add_argument("--bind", default=None, help="address to bind (default: the file's)")
    args = parser.parse_args(argv)
    try:
        run_worker(load_deployment(args.deployment), args.device, bind=args.bind)
    except (EdgePerfError, OSError, zmq.ZMQError) as err:
        print(f"edgeperf worker: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
