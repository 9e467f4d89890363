"""The orchestrator: start the workers, replay the workload, watch, drain, stop.

One worker process per WorkerSpec (``python -m edgeperf.runtime._worker``),
started last first so that each downstream bind exists early; the load
starts once every worker has sent a heartbeat. A worker that exits or falls
silent is recorded and restarted with the same spec; the jobs it held end as
``worker failed`` when the books close. Whatever happens (errors, Ctrl-C),
every process started here is stopped before :func:`run_deployment` returns.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import _validation as v
from ..exceptions import EdgePerfError
from ..model import Metrics
from ._collector import Collector, Ledger, Window
from ._deployment import Deployment, WorkerSpec
from ._loadgen import LoadGenerator, LoadReport, schedule, test_inputs

__all__ = ["run_deployment", "RunResult", "Failure", "WorkerStartError"]

_TICK_S = 0.05


class WorkerStartError(EdgePerfError, RuntimeError):
    """A worker did not come up: it exited, or sent no heartbeat in time."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A worker found dead or silent ``t_s`` seconds after the load started."""

    t_s: float
    station: str
    why: str


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class RunResult:
    """A run's measured metrics and its books: counts (offered, completed,
    dropped), drops by station and reason, failures, the load's lateness."""

    metrics: Metrics
    counts: dict[str, int]
    drops: dict[str, dict[str, int]]
    failures: tuple[Failure, ...]
    load: LoadReport
    duration_s: float
    warmup_s: float
    malformed: int
    duplicates: int
    exit_names: tuple[str, ...] = field(default=())
    #: per device, CPU seconds of its jobs and the profile's seconds for them
    work: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics.to_dict(), "counts": dict(self.counts),
                "drops": self.drops, "failures": [asdict(f) for f in self.failures],
                "load": asdict(self.load), "duration_s": self.duration_s,
                "warmup_s": self.warmup_s, "malformed": self.malformed,
                "duplicates": self.duplicates, "work": self.work}


class _Workers:
    """The worker processes: start, watch, restart, stop. stderr goes to a file
    per process, whose tail explains a worker that would not start."""

    def __init__(self, deployment: Deployment, file: Path, folder: Path, ledger: Ledger,
                 external: Collection[str] = ()) -> None:
        self.deployment, self.file, self.folder, self.ledger = deployment, file, folder, ledger
        self.procs: dict[str, subprocess.Popen] = {}
        self.started: dict[str, float] = {}
        self.logs: dict[str, Path] = {}
        self.starts = 0
        #: workers started by someone else (on other hosts): watched, never started or killed
        self.external = frozenset(external)
        self.lost: set[str] = set()

    def start(self, spec: WorkerSpec) -> None:
        if spec.device in self.external:
            self.started[spec.device] = 0.0  # any heartbeat shows it is up
            return
        self.starts += 1
        log = self.folder / f"{spec.device}.{self.starts}.log"
        self.logs[spec.device] = log
        with open(log, "wb") as err:
            self.procs[spec.device] = subprocess.Popen(
                [sys.executable, "-m", "edgeperf.runtime._worker", "--deployment",
                 str(self.file), "--device", spec.device],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                env=_worker_env(spec))
        self.started[spec.device] = time.time()

    def up(self, device: str) -> bool:
        """A heartbeat arrived since this device's process was started."""
        return self.ledger.last_heartbeat(device) >= self.started[device]

    def tail(self, device: str, lines: int = 5) -> str:
        try:
            text = self.logs[device].read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def await_up(self, devices: Sequence[str], timeout_s: float) -> None:
        deadline = time.time() + timeout_s
        while not all(self.up(d) for d in devices):
            for d in devices:
                code = self.procs[d].poll() if d in self.procs else None
                if code is not None:
                    raise WorkerStartError(f"Worker {d!r} exited with status {code} before its "
                                           f"first heartbeat: {self.tail(d) or 'no output'}")
            if time.time() > deadline:
                late = [d for d in devices if not self.up(d)]
                raise WorkerStartError(f"Worker {late[0]!r} sent no heartbeat within "
                                       f"{timeout_s:g} s: {self.tail(late[0]) or 'no output'}")
            time.sleep(_TICK_S)

    def kill(self, device: str) -> None:
        proc = self.procs.get(device)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def health(self, silence_s: float, startup_s: float) -> list[tuple[str, str]]:
        """(device, why) of every worker dead, or silent for longer than allowed."""
        bad = []
        now = time.time()
        for device, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                bad.append((device, f"exited with status {code}"))
            elif self.up(device) and now - self.ledger.last_heartbeat(device) > silence_s:
                bad.append((device, f"silent for more than {silence_s:g} s"))
            elif not self.up(device) and now - self.started[device] > startup_s:
                bad.append((device, f"no heartbeat within {startup_s:g} s of a restart"))
        for device in self.external - self.lost:
            if now - self.ledger.last_heartbeat(device) > silence_s:
                self.lost.add(device)  # reported once; it may come back by itself
                bad.append((device, f"silent for more than {silence_s:g} s (external)"))
        return bad

    def stop_all(self) -> None:
        """SIGTERM, a grace period, then SIGKILL; every process is reaped."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.time() + 3.0
        for proc in self.procs.values():
            try:
                proc.wait(max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _worker_env(spec: WorkerSpec) -> dict[str, str]:
    """The environment of a worker: OpenMP and MKL limited to its threads, since
    torch.set_num_threads in the main thread does not reach the compute thread,
    whose default pool (every core, busy-waiting) starves the other workers."""
    threads = str(spec.threads)
    return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


@dataclass(slots=True)
class _Watch:
    """Mutable state of the run loop."""

    start: float
    faults: list[tuple[float, str]]
    failures: list[Failure] = field(default_factory=list)


def _check(workers: _Workers, watch: _Watch, silence_s: float, startup_s: float) -> None:
    """Inject due faults, then record and restart every failed worker."""
    now = time.time() - watch.start
    while watch.faults and watch.faults[0][0] <= now:
        workers.kill(watch.faults.pop(0)[1])
    for device, why in workers.health(silence_s, startup_s):
        watch.failures.append(Failure(round(time.time() - watch.start, 3), device, why))
        if device not in workers.external:  # someone else runs an external worker
            workers.kill(device)
            workers.start(workers.deployment.worker(device))


def _progress(enabled: bool) -> tuple[Callable[[dict], None] | None, Callable[[], None]]:
    """An update function for a live line on stderr (rich), and its closer."""
    if not enabled:
        return None, (lambda: None)
    from rich.console import Console
    from rich.live import Live

    live = Live(console=Console(stderr=True), refresh_per_second=4, transient=True)
    live.start()

    def show(s: dict) -> None:
        acc = "—" if s["accuracy"] is None else f"{s['accuracy']:.3f}"
        p95 = "—" if s["p95_s"] is None else f"{s['p95_s'] * 1e3:.1f} ms"
        live.update(f"[{s['t']:5.1f} s] offered {s['offered']}  completed {s['completed']}  "
                    f"dropped {s['dropped']}  accuracy {acc}  p95 {p95}  "
                    f"restarts {s['restarts']}")
    return show, live.stop


def run_deployment(deployment: Deployment, *, duration_s: float, seed: int = 0,
                   warmup: float = 0.1, progress: bool = False,
                   faults: Sequence[tuple[float, str]] = (), startup_timeout_s: float = 60.0,
                   drain_timeout_s: float = 10.0, silence_s: float | None = None,
                   external: Collection[str] = ()) -> RunResult:
    """Run ``deployment`` for ``duration_s`` seconds of load and measure it.

    Workers of the devices in ``external`` are already running (started with
    ``edgeperf worker --deployment FILE --device NAME`` on their hosts, from
    the same deployment): they are waited for and watched, never started,
    killed or restarted.

    ``warmup`` is the share of the load's duration left out of the metrics;
    ``faults`` kill a worker (SIGKILL) ``t_s`` seconds into the load, as
    ``(t_s, device)``; a worker is declared silent after ``silence_s``
    without a heartbeat (default: 10 heartbeat periods, at least 2 s).
    """
    v.positive("run_deployment", "duration_s", duration_s)
    share = v.real("run_deployment", "warmup", warmup, low=0.0, high=0.9)
    devices = [w.device for w in deployment.workers]
    for _, device in faults:
        deployment.worker(device)
        if device in external:
            raise v.fail("run_deployment", "faults", "faults on workers this run starts",
                         device)
    for device in external:
        deployment.worker(device)
    silence = silence_s if silence_s is not None else max(2.0, 10 * deployment.heartbeat_s)
    from ..io import load_scenario

    chain = load_scenario(deployment.scenario).chain(deployment.chain)
    inputs = test_inputs(deployment.model_dir)
    times, rows = schedule(chain.workload.arrival, duration_s, seed, len(inputs.labels))
    ledger = Ledger()
    with tempfile.TemporaryDirectory(prefix="edgeperf-run-") as tmp:
        file = deployment.save(Path(tmp) / "deployment.json")
        collector = Collector(deployment.collector, ledger,
                              max_bytes=deployment.max_message_bytes).start()
        workers = _Workers(deployment, file, Path(tmp), ledger, external)
        stop = threading.Event()
        try:
            for spec in reversed(deployment.workers):
                workers.start(spec)
            workers.await_up(devices, startup_timeout_s)
            generator = LoadGenerator(deployment, inputs, times, rows, ledger)
            watch = _Watch(start=time.time() + 0.1, faults=sorted(faults))
            report = _drive(generator, workers, watch, stop, progress, silence,
                            startup_timeout_s, drain_timeout_s)
        finally:
            stop.set()
            workers.stop_all()
            collector.close()
    names, capacities = zip(*_stations(deployment))
    counts = ledger.finish(generator.offered, [f.station for f in watch.failures], names)
    exits = _exit_names(chain)
    window = Window(start=watch.start + share * duration_s, end=watch.start + duration_s,
                    stations=names, capacities=capacities, exit_names=exits)
    return RunResult(metrics=ledger.metrics(generator.offered, window), counts=counts,
                     drops=ledger.drops_by(), failures=tuple(watch.failures), load=report,
                     duration_s=duration_s, warmup_s=share * duration_s,
                     malformed=ledger.malformed, duplicates=ledger.duplicates, exit_names=exits,
                     work=dict(ledger.work))


def _stations(deployment: Deployment) -> list[tuple[str, int]]:
    """(name, capacity) of the stations in chain order: the upload link, then
    each worker and the link stage in front of its next hop."""
    up = deployment.upload
    out = [(up.name, up.capacity)] if up is not None else []
    for w in deployment.workers:
        out.append((w.device, w.capacity))
        if w.link is not None:
            out.append((w.link.name, w.link.capacity))
    return out


def _exit_names(chain: Any) -> tuple[str, ...]:
    blocks = chain.model.blocks
    return tuple(b.name for b in blocks if b.exit_probability is not None) + (blocks[-1].name,)


def _drive(generator: LoadGenerator, workers: _Workers, watch: _Watch, stop: threading.Event,
           progress: bool, silence_s: float, startup_s: float, drain_s: float) -> LoadReport:
    """Run the load in a thread while watching the workers; then drain."""
    box: dict[str, Any] = {}

    def load() -> None:
        try:
            box["report"] = generator.run(stop, watch.start)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=load, name="loadgen", daemon=True)
    show, close = _progress(progress)
    thread.start()
    try:
        while thread.is_alive():
            _check(workers, watch, silence_s, startup_s)
            _show(show, generator, watch)
            thread.join(_TICK_S)
        if "error" in box:
            raise box["error"]
        _drain(generator, workers, watch, silence_s, startup_s, drain_s, show)
    finally:
        stop.set()
        thread.join(5.0)
        close()
    return box["report"]


def _drain(generator: LoadGenerator, workers: _Workers, watch: _Watch, silence_s: float,
           startup_s: float, timeout_s: float, show: Callable[[dict], None] | None) -> None:
    """Wait until every request has a record, or records stop coming for a
    while (jobs held by a failed worker never will), or ``timeout_s``."""
    ledger = generator.ledger
    quiet_s = max(1.0, 5 * workers.deployment.heartbeat_s)
    deadline = time.time() + timeout_s
    seen, since = ledger.changes, time.time()
    while time.time() < deadline and ledger.open_count(generator.offered):
        _check(workers, watch, silence_s, startup_s)
        _show(show, generator, watch)
        if ledger.changes != seen:
            seen, since = ledger.changes, time.time()
        elif time.time() - since > quiet_s:
            return
        time.sleep(_TICK_S)


def _show(show: Callable[[dict], None] | None, generator: LoadGenerator, watch: _Watch) -> None:
    if show is not None:
        show({"t": time.time() - watch.start, "offered": len(generator.offered),
              "restarts": len(watch.failures), **generator.ledger.snapshot()})
