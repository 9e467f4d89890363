"""The load generator: the chain's workload replayed with real inputs.

Arrival times come from the same generators as the simulator
(``edgeperf.sim._arrivals``), seeded; job i carries row ``rows[i]`` of the
model's held-out test split (the exit table's rows, in order), cycled through
a seeded permutation. Each job is sent when due; a job the sender reaches
late (the host was busy) goes at once, and the lateness is reported. With an
upload link the inputs first cross an emulated link here (``_link``), whose
drops are booked as ``queue full`` at the link's station.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _validation as v
from ..model import ArrivalProcess
from ._collector import Ledger
from ._deployment import Deployment

__all__ = ["Inputs", "LoadReport", "LoadGenerator", "test_inputs", "schedule"]


@dataclass(frozen=True, slots=True, eq=False)
class Inputs:
    """The test split: ``images[N, C, H, W]`` float32 and ``labels[N]``."""

    images: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadReport:
    """What was sent, and how late: lateness is send time minus due time (s)."""

    sent: int
    upload_dropped: int
    late_mean_s: float
    late_p99_s: float
    late_max_s: float


def test_inputs(model_dir: str | Path) -> Inputs:
    """The held-out split the model's exit table was built from (digits, the
    training seed from calibration.json, the network's input shape)."""
    from ..earlyexit import digits_splits
    from ..model import ExitTable
    from ._plan import model_structure

    folder = Path(model_dir)
    channels, size, _ = model_structure(folder)["input_shape"]
    summary = json.loads((folder / "calibration.json").read_text(encoding="utf-8"))
    seed = int(summary.get("training", {}).get("seed", 0))
    test = digits_splits(size=size, channels=channels, seed=seed).test
    images, labels = (t.numpy() for t in test.tensors)
    rows = ExitTable.load(folder / "exit_table.npz").n_samples
    if rows != len(labels):
        raise v.fail("test_inputs", "model_dir", f"a model whose exit table has one row per "
                     f"digits test sample ({len(labels)})", f"{rows} rows in {folder}")
    return Inputs(images=np.ascontiguousarray(images, np.float32), labels=labels.astype(int))


def schedule(process: ArrivalProcess, duration_s: float, seed: int,
             n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times in [0, duration_s) and each job's test row (a seeded
    permutation of the rows, cycled)."""
    from ..sim._arrivals import arrivals_until

    v.positive("schedule", "duration_s", duration_s)
    v.integer("schedule", "seed", seed, low=0)
    rng = np.random.default_rng(seed)
    times = arrivals_until(process, rng, duration_s)
    order = rng.permutation(n_rows)
    return times, order[np.arange(len(times)) % n_rows]


class LoadGenerator:
    """Sends ``times``/``rows`` to the deployment's first hop; ``offered`` maps
    each sent id to its ``t_arrival`` (wall clock), filled as jobs go."""

    def __init__(self, deployment: Deployment, inputs: Inputs, times: np.ndarray,
                 rows: np.ndarray, ledger: Ledger) -> None:
        self.deployment, self.inputs, self.ledger = deployment, inputs, ledger
        self.times, self.rows = times, rows
        self.offered: dict[int, float] = {}
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()

    def run(self, stop: threading.Event, start: float) -> LoadReport:
        """Replay the schedule from wall-clock ``start`` (``time.time()``) until
        it ends or ``stop`` is set; blocks."""
        sender = threading.Thread(target=self._send_all, name="loadgen-send", daemon=True)
        sender.start()
        link = self._link()
        late: list[float] = []
        try:
            for i, (due, row) in enumerate(zip(self.times, self.rows)):
                wait = start + float(due) - time.time()
                if wait > 0 and stop.wait(wait):
                    break
                if stop.is_set():
                    break
                now = time.time()
                late.append(max(0.0, -wait))
                self._offer(i, now, int(row), link)
        finally:
            if link is not None:
                time.sleep(self._link_flush_s())
                link.close()
            self._outbox.put(None)
            sender.join(5.0)
        lateness = np.array(late or [0.0])
        return LoadReport(sent=len(self.offered), upload_dropped=link.dropped if link else 0,
                          late_mean_s=float(lateness.mean()),
                          late_p99_s=float(np.percentile(lateness, 99)),
                          late_max_s=float(lateness.max()))

    def _offer(self, i: int, now: float, row: int, link: object) -> None:
        from ._wire import tensor_frames

        header = {"kind": "job", "id": i, "t_arrival": now, "row": row,
                  "label": int(self.inputs.labels[row]), "exit": None}
        frames = tensor_frames(header, self.inputs.images[row][None])
        self.offered[i] = now
        if link is None:
            self._outbox.put(frames)
            return
        stage = self.deployment.upload
        if link.offer(frames):  # type: ignore[attr-defined]
            self.ledger.feed("accept", {"id": i, "t": now, "station": stage.name})
        else:
            self.ledger.feed("drop", {"id": i, "t": now, "station": stage.name,
                                      "reason": "queue full"})

    def _link(self):  # noqa: ANN202 - an EmulatedLink or None
        if self.deployment.upload is None:
            return None
        from ._link import EmulatedLink

        return EmulatedLink(self.deployment.upload, self._outbox.put).start()

    def _link_flush_s(self) -> float:
        """Time for a full upload queue to drain: what it still holds is delivered."""
        stage = self.deployment.upload
        item = self.inputs.images[0].nbytes + 256
        return stage.capacity * item * 8 / stage.bandwidth_bps + stage.latency_s + 0.05

    def _send_all(self) -> None:
        """The one thread that owns the PUSH socket to the first worker."""
        import zmq

        sock = zmq.Context.instance().socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 2000)
        sock.setsockopt(zmq.SNDHWM, 0)  # never block the replay: the worker's queue drops
        sock.connect(self.deployment.workers[0].bind)
        try:
            while (frames := self._outbox.get()) is not None:
                sock.send_multipart(frames, copy=False)
        finally:
            sock.close()
