"""The fast kernel: one chain of single-server FIFO loss stations, compiled.

A FIFO loss station needs only the departure times of the jobs still present:
a ring buffer of at most K of them. FIFO service followed by a constant delay
keeps the order of jobs along the chain, so the chain is simulated station by
station, each in one pass over the jobs that reach it: O(jobs x stations),
with no event list. Exits are fixed before a job starts (static
probabilities, thresholds on an exit table, or an assignment), which is what
lets the whole run be drawn up front; online policies need the event engine.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._network import Network
from ._plan import RunPlan
from ._record import HopCounters, RunRecord

__all__ = ["run_kernel", "kernel_supports"]


@njit(cache=True, nogil=True)
def _run_chain(arrival, exits, hop_of_exit, service, capacity, delay, measured,
               completion, lost_at, offered, accepted, sojourn, busy):  # pragma: no cover - compiled
    """``service`` is (hops, jobs); outputs are filled in place. The jobs reaching
    hop h + 1 are those hop h passed on, in the same order."""
    n = arrival.shape[0]
    hops = service.shape[0]
    ids = np.empty(0, np.int64)  # hop 0 takes every job: ids and times are implicit
    times = arrival
    active = n
    for h in range(hops):
        moves_on = h + 1 < hops
        next_ids = np.empty(active if moves_on else 0, np.int64)
        next_times = np.empty(active if moves_on else 0)
        k = capacity[h]
        ring = np.empty(k)  # departure times of the jobs present, oldest first
        head = 0
        count = 0
        last = -np.inf
        moving = 0
        for i in range(active):
            j = i if h == 0 else ids[i]
            t = times[i]
            while count > 0 and ring[head] <= t:  # departures up to t free their places
                head += 1
                if head == k:
                    head = 0
                count -= 1
            if measured[j]:
                offered[h] += 1
            if count == k:
                lost_at[j] = h
                continue
            s = service[h, j]
            last = max(t, last) + s
            tail = head + count
            if tail >= k:
                tail -= k
            ring[tail] = last
            count += 1
            if measured[j]:
                accepted[h] += 1
                sojourn[h] += last - t
                busy[h] += s
            if hop_of_exit[exits[j]] == h:
                completion[j] = last
            else:
                next_ids[moving] = j
                next_times[moving] = last + delay[h]
                moving += 1
        ids, times, active = next_ids, next_times, moving


def kernel_supports(network: Network) -> str | None:
    """None if the kernel can run ``network``, else why not."""
    if len(network.routes) != 1:
        return f"{len(network.routes)} chains share devices"
    route = network.routes[0]
    stations = [network.stations[h.station] for h in route.hops]
    if any(s.servers != 1 for s in stations):
        return "a device has several servers"
    if len({h.station for h in route.hops}) != len(route.hops):
        return "the chain visits a station twice"
    return None


def run_kernel(network: Network, plan: RunPlan, rng: np.random.Generator) -> RunRecord:
    """One run of a single chain; see :func:`kernel_supports` for what it needs."""
    route, jobs = network.routes[0], plan.routes[0]
    n, hops = len(jobs.arrival), len(route.hops)
    service = route.service_by_hop(rng, jobs.exit)
    capacity = np.array([network.stations[h.station].capacity for h in route.hops], np.int64)
    delay = np.array([h.delay_s for h in route.hops])
    measured = plan.measured(0)
    completion = np.full(n, np.nan)
    lost_at = np.full(n, -1, np.int64)
    c = HopCounters.zeros(hops)
    _run_chain(jobs.arrival, jobs.exit, route.hop_of_exit(), service, capacity, delay, measured,
               completion, lost_at, c.offered, c.accepted, c.sojourn, c.busy)
    correct = None if jobs.correct is None else jobs.correct[np.arange(n), jobs.exit]
    record = RunRecord(network=network, method="kernel", chain=np.zeros(n, np.int8),
                       arrival=jobs.arrival, exit=jobs.exit, completion=completion,
                       lost_at=lost_at, measured=measured, counters=[c],
                       t_start=plan.t_start, t_end=plan.t_end, correct=correct)
    record.check_conservation()  # the loop's counters against the jobs' outcomes
    return record
