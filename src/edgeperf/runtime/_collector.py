"""The collector: one record per request, from the messages every process sends.

:class:`Ledger` keeps the books (no sockets, so tests feed it messages
directly); :class:`Collector` is the PULL socket and the thread that feeds
it. Every offered request ends in exactly one final record, completed or
dropped; :meth:`Ledger.finish` turns the ones still open at the end of a run
into drops and checks offered = completed + dropped.

Confidence half-widths come from batch means: the measured window (after the
warm-up) is cut into ``batches`` equal spans by arrival time; each span's
jobs give one value of every metric, and the 95% half-width is
``t(0.975, B-1) * sd / sqrt(B)`` over the spans that have a value. Spans of
a few seconds are nearly independent when response times are far shorter.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import EdgePerfError
from ..model import Metrics, StationMetrics

__all__ = ["Ledger", "Collector", "AccountingError", "Completed", "Dropped", "Window"]

Id = int | str


class AccountingError(EdgePerfError, RuntimeError):
    """A run broke offered = completed + dropped: a bug, never a user error."""


@dataclass(frozen=True, slots=True)
class Completed:
    t_arrival: float
    t_done: float
    exit: int
    correct: bool
    station: str


@dataclass(frozen=True, slots=True)
class Dropped:
    t: float
    station: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """What :meth:`Ledger.metrics` measures: jobs arriving in [start, end] (wall
    clock), stations in chain order, exit names by exit index."""

    start: float
    end: float
    stations: tuple[str, ...]
    capacities: tuple[int, ...]
    exit_names: tuple[str, ...]
    batches: int = 10


class Ledger:
    """Thread-safe books of one run: final records, accepts and heartbeats."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.final: dict[Id, Completed | Dropped] = {}
        self.accepted: dict[Id, tuple[float, str]] = {}   # latest accept per id
        self.reached: dict[Id, set[str]] = {}              # stations that saw each id
        self.heartbeats: dict[str, tuple[float, dict[str, int]]] = {}
        #: per station, the workers' CPU seconds and their profile's seconds
        self.work: dict[str, dict[str, float]] = {}
        self.malformed = 0
        self.duplicates = 0
        self.changes = 0  # bumped on every record but heartbeats: the drain watches it

    # ------------------------------------------------------------------ feeding

    def feed(self, kind: str, header: Mapping[str, Any]) -> None:
        """Book one decoded message (a header of the wire format)."""
        with self._lock:
            if kind == "heartbeat":
                self.heartbeats[header["station"]] = (time.time(), dict(header["counters"]))
                if isinstance(header.get("work"), dict):
                    self.work[header["station"]] = dict(header["work"])
                return
            self.changes += 1
            if kind == "accept":
                self._accept(header["id"], float(header["t"]), header["station"])
            elif kind == "result":
                self._final(header["id"], Completed(
                    float(header["t_arrival"]), float(header["t_done"]), int(header["exit"]),
                    header["predicted"] == header["label"], header["station"]))
            elif kind == "drop":
                self._drop(header)

    def count_malformed(self) -> None:
        with self._lock:
            self.malformed += 1

    def _accept(self, rid: Id, t: float, station: str) -> None:
        self.reached.setdefault(rid, set()).add(station)
        if rid not in self.accepted or self.accepted[rid][0] <= t:
            self.accepted[rid] = (t, station)

    def _drop(self, header: Mapping[str, Any]) -> None:
        if header["id"] is None:  # a malformed message whose id could not be read
            self.malformed += 1
            return
        self._final(header["id"], Dropped(float(header["t"]), header["station"],
                                          header["reason"]))

    def _final(self, rid: Id, record: Completed | Dropped) -> None:
        if rid in self.final:
            self.duplicates += 1
            return
        self.final[rid] = record
        self.reached.setdefault(rid, set()).add(record.station)

    # ------------------------------------------------------------------ views

    def snapshot(self) -> dict[str, Any]:
        """Counts so far, for live progress: completed, dropped, accuracy, p95."""
        with self._lock:
            done = [r for r in self.final.values() if isinstance(r, Completed)]
            dropped = len(self.final) - len(done)
            times = [r.t_done - r.t_arrival for r in done[-2000:]]
            return {"completed": len(done), "dropped": dropped,
                    "accuracy": sum(r.correct for r in done) / len(done) if done else None,
                    "p95_s": float(np.percentile(times, 95)) if times else None}

    def last_heartbeat(self, station: str) -> float:
        """When the latest heartbeat of ``station`` arrived (wall clock; -inf: never)."""
        with self._lock:
            seen = self.heartbeats.get(station)
        return -math.inf if seen is None else seen[0]

    def open_count(self, offered: Mapping[Id, float]) -> int:
        """Offered requests without a final record yet."""
        with self._lock:
            return sum(rid not in self.final for rid in list(offered))

    # ------------------------------------------------------------------ closing

    def finish(self, offered: Mapping[Id, float], failed_stations: Sequence[str],
               stations: Sequence[str]) -> dict[str, int]:
        """Close the books, then check conservation. An offered id without a final
        record becomes a drop: ``worker failed`` at the first station that failed
        during the run at or after the last one that accepted it (it was held
        there, or in transit to it), ``lost`` at that last station otherwise;
        ``stations`` are in chain order, the first one taking ids nobody accepted."""
        failed = [s for s in stations if s in set(failed_stations)]
        with self._lock:
            now = time.time()
            for rid in offered:
                if rid not in self.final:
                    seen = self.accepted.get(rid)
                    at = stations.index(seen[1]) if seen and seen[1] in stations else 0
                    culprit = next((s for s in failed if stations.index(s) >= at), None)
                    self._final(rid, Dropped(now, culprit or stations[at],
                                             "worker failed" if culprit else "lost"))
            return self._conservation(offered)

    def _conservation(self, offered: Mapping[Id, float]) -> dict[str, int]:
        unknown = [rid for rid in self.final if rid not in offered]
        completed = sum(isinstance(r, Completed) for rid, r in self.final.items()
                        if rid in offered)
        dropped = sum(isinstance(r, Dropped) for rid, r in self.final.items() if rid in offered)
        if unknown or completed + dropped != len(offered):
            raise AccountingError(
                f"Conservation broken: offered {len(offered)} != completed {completed} + "
                f"dropped {dropped}; {len(unknown)} records name ids never offered "
                f"(e.g. {unknown[:3]}).")
        return {"offered": len(offered), "completed": completed, "dropped": dropped}

    def drops_by(self) -> dict[str, dict[str, int]]:
        """Dropped requests by station, then by reason."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for r in self.final.values():
                if isinstance(r, Dropped):
                    out.setdefault(r.station, {}).setdefault(r.reason, 0)
                    out[r.station][r.reason] += 1
        return out

    # ------------------------------------------------------------------ metrics

    def metrics(self, offered: Mapping[Id, float], window: Window) -> Metrics:
        """Metrics (kind "estimate", method "runtime") of the jobs offered in the
        window, with batch-means half-widths (see the module docstring)."""
        from scipy import stats

        with self._lock:
            ids = [rid for rid, t in offered.items() if window.start <= t <= window.end]
            records = [(offered[rid], self.final.get(rid)) for rid in ids]
            reached = [self.reached.get(rid, set()) for rid in ids]
        span = window.end - window.start
        whole = _summary(records, span, window.exit_names)
        b = window.batches
        which = [min(b - 1, int((t - window.start) / span * b)) for t, _ in records]
        parts = [_summary([r for r, k in zip(records, which) if k == i], span / b,
                          window.exit_names) for i in range(b)]
        t = float(stats.t.ppf(0.975, window.batches - 1)) if window.batches > 1 else math.nan
        half = {key: hw for key in whole if (hw := _half([p.get(key) for p in parts], t))
                is not None}
        return Metrics(
            kind="estimate", method="runtime", arrival_rate=len(records) / span,
            throughput=whole["throughput"], loss_probability=whole["loss_probability"],
            mean_response_time=whole["mean_response_time"],
            p50_response_time=whole["p50_response_time"],
            p95_response_time=whole["p95_response_time"],
            p99_response_time=whole["p99_response_time"], accuracy=whole["accuracy"],
            exit_distribution={e: whole[f"exit_distribution[{e}]"] for e in window.exit_names},
            stations=_stations(records, reached, window, span), half_widths=half)


def _summary(records: list[tuple[float, Completed | Dropped | None]], span: float,
             exit_names: tuple[str, ...]) -> dict[str, float | None]:
    """Every end-to-end metric of some jobs; None where it has no value."""
    done = [r for _, r in records if isinstance(r, Completed)]
    times = np.array([r.t_done - r.t_arrival for r in done])
    p50, p95, p99 = (np.percentile(times, [50, 95, 99]).tolist() if len(done)
                     else (None, None, None))
    out: dict[str, float | None] = {
        "throughput": len(done) / span,
        "loss_probability": 1.0 - len(done) / len(records) if records else None,
        "mean_response_time": float(times.mean()) if len(done) else None,
        "p50_response_time": p50, "p95_response_time": p95, "p99_response_time": p99,
        "accuracy": sum(r.correct for r in done) / len(done) if done else None}
    counts = np.bincount([r.exit for r in done], minlength=len(exit_names))
    for e, name in enumerate(exit_names):
        out[f"exit_distribution[{name}]"] = float(counts[e] / len(done)) if done else 0.0
    return out


def _half(values: list[float | None], t: float) -> float | None:
    x = np.array([v for v in values if v is not None], dtype=float)
    if len(x) < 2 or not math.isfinite(t):
        return None
    return float(t * x.std(ddof=1) / math.sqrt(len(x)))


def _stations(records: list, reached: list[set[str]], window: Window,
              span: float) -> tuple[StationMetrics, ...]:
    """Per station: offered = jobs that reached it or a later one; lost = dropped
    there; throughput = the rate of jobs it accepted. Utilisation and sojourn
    are not measured by the runtime (NaN / None)."""
    order = {name: i for i, name in enumerate(window.stations)}
    furthest = [max((order.get(s, -1) for s in seen), default=-1) for seen in reached]
    rows = []
    for i, (name, k) in enumerate(zip(window.stations, window.capacities)):
        offered = sum(f >= i for f in furthest)
        drops = [r for _, r in records if isinstance(r, Dropped) and r.station == name]
        refused = sum(r.reason != "worker failed" for r in drops)
        rows.append(StationMetrics(
            name=name, kind="estimate", method="runtime", arrival_rate=offered / span,
            capacity=k, loss_probability=len(drops) / offered if offered else 0.0,
            throughput=(offered - refused) / span, utilization=math.nan))
    return tuple(rows)


class Collector:
    """The PULL socket at ``address`` and a thread booking every message into
    ``ledger``; malformed messages are counted, never fatal."""

    def __init__(self, address: str, ledger: Ledger, *, max_bytes: int) -> None:
        self.address, self.ledger, self.max_bytes = address, ledger, max_bytes
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="collector", daemon=True)

    def start(self) -> Collector:
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            raise self._error
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _serve(self) -> None:
        import zmq

        from ._wire import MalformedMessage, decode

        context = zmq.Context.instance()
        sock = context.socket(zmq.PULL)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(self.address)
        except zmq.ZMQError as err:
            self._error = EdgePerfError(f"The collector cannot bind {self.address}: {err}.")
            sock.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                if not sock.poll(100):
                    continue
                frames = sock.recv_multipart()
                try:
                    message = decode(frames, max_bytes=self.max_bytes)
                except MalformedMessage:
                    self.ledger.count_malformed()
                    continue
                self.ledger.feed(message.kind, message.header)
        finally:
            sock.close()
