"""An emulated network link: a bounded FIFO, a transmitter, a delay line.

The FIFO holds ``capacity`` messages, the one being transmitted included
(the capacity K of a station); each message occupies the transmitter for
``bytes * 8 / bandwidth_bps`` seconds (both frames counted), then waits
``latency_s`` in a delay line that queues nothing and releases it to
``send``. The transmitter keeps a virtual clock (each transmission starts
when the previous one ends, or when the message arrives if later), so sleep
overshoot never accumulates over a burst: N back-to-back messages leave
N transmission times after the first arrives, plus one timer overshoot.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

from ._deployment import LinkStage

__all__ = ["EmulatedLink", "frames_bytes"]

Frames = list[bytes]


def frames_bytes(frames: Frames) -> int:
    """The bytes a message puts on the wire (its frames' lengths)."""
    return sum(len(f) for f in frames)


class EmulatedLink:
    """``stage`` emulated between ``offer`` and ``send``; call ``start`` then ``close``.

    ``send`` is called from the link's delay thread, in offer order; it
    should hand the frames over (e.g. to a queue), not block for long.
    """

    def __init__(self, stage: LinkStage, send: Callable[[Frames], None]) -> None:
        self.stage = stage
        self._send = send
        self._fifo: deque[Frames] = deque()
        self._busy = False  # a message is in transmission (it still counts in the FIFO)
        self._delay: list[tuple[float, int, Frames]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self.offered = self.dropped = self.sent = 0
        self._threads = [threading.Thread(target=self._transmit, name=f"link-{stage.name}-tx",
                                          daemon=True),
                         threading.Thread(target=self._release, name=f"link-{stage.name}-delay",
                                          daemon=True)]

    def start(self) -> EmulatedLink:
        for t in self._threads:
            t.start()
        return self

    @property
    def occupancy(self) -> int:
        """Messages held by the FIFO, the one in transmission included."""
        with self._cond:
            return len(self._fifo) + self._busy

    def offer(self, frames: Frames) -> bool:
        """Queue a message; False (and nothing queued) when the FIFO is full."""
        with self._cond:
            self.offered += 1
            if self._stop or len(self._fifo) + self._busy >= self.stage.capacity:
                self.dropped += 1
                return False
            self._fifo.append(frames)
            self._cond.notify_all()
            return True

    def close(self, timeout: float = 2.0) -> None:
        """Stop both threads; messages still queued or delayed are discarded."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout)

    def _transmit(self) -> None:
        free_at = 0.0  # when the transmitter finishes its current message (virtual clock)
        while True:
            with self._cond:
                while not self._fifo and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                frames = self._fifo[0]
                self._busy = True
                self._fifo.popleft()
            free_at = max(time.perf_counter(), free_at) + \
                frames_bytes(frames) * 8 / self.stage.bandwidth_bps
            if not self._sleep_until(free_at):
                return
            with self._cond:
                self._busy = False
                heapq.heappush(self._delay, (free_at + self.stage.latency_s, next(self._seq),
                                             frames))
                self._cond.notify_all()

    def _release(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._delay or
                                          self._delay[0][0] > time.perf_counter()):
                    wait = self._delay[0][0] - time.perf_counter() if self._delay else None
                    self._cond.wait(wait)
                if self._stop:
                    return
                _, _, frames = heapq.heappop(self._delay)
                self.sent += 1
            self._send(frames)

    def _sleep_until(self, deadline: float) -> bool:
        """Sleep until ``deadline`` (perf_counter); False when closed meanwhile."""
        with self._cond:
            while not self._stop:
                left = deadline - time.perf_counter()
                if left <= 0:
                    return True
                self._cond.wait(left)
            return False
