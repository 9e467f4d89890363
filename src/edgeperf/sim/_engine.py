"""The event engine: any network of FIFO loss stations, online policies included.

Stations have ``servers`` identical servers, serve all chains FIFO and hold at
most ``capacity`` jobs (those in service included); an arrival finding them
full is lost. Events are ordered by (time, departures before arrivals, job):
a job arriving exactly when another leaves finds the freed place, as in the
reference simulator, and ties never depend on the order events were created,
so a seed gives the same run bit for bit.

A job's exit is the plan's, or, on a route with an online policy, the one
decided when it starts its first service (-1 in the record for a job lost
before that). The policy sees the state then: jobs present and waiting at the
station, the times of its last 64 arrivals (lost ones included), every
station's count and the job's confidence row.

Two loops share that definition:

- without online policies every service time is drawn up front, and FIFO makes
  a job's service start known when it arrives (the Kiefer-Wolfowitz recursion:
  the earliest time a server frees), so each hop costs one heap event, the
  arrival; a station keeps only the departure times of the jobs it holds;
- with policies a job's service depends on the exit decided when it starts
  its first service, so the classic loop with arrival and departure events and
  explicit queues runs instead.

Both write per hop departure times into plain lists; the counters and the
per job record are computed from them with numpy afterwards. Pure Python
heapq: events are small tuples, everything per event is a list lookup.
"""

from __future__ import annotations

import heapq
import math
import numbers
from collections import deque
from collections.abc import Mapping

import numpy as np

from .. import _validation as v
from ._network import Network
from ._plan import RunPlan
from ._policy import JobOutcome, JobState, OnlinePolicy
from ._record import HopCounters, RunRecord

__all__ = ["run_events"]

_OWNER = "run_events"
_DEPART, _ARRIVE = 0, 1
_RECENT = 64  # arrival times a policy sees per station


class _Jobs:
    """One route's jobs during a run, as Python lists the loops index cheaply.

    ``service[h][j]`` and ``depart[h][j]`` per hop; ``exit_hop[j]``, ``lost[j]``
    (-1 while not lost). A policy route draws every block up front (``cum[h]``:
    running sums over the hop's blocks) and fills ``service`` when it decides.
    """

    def __init__(self, network: Network, plan: RunPlan, r: int, rng: np.random.Generator,
                 online: bool) -> None:
        route, jobs = network.routes[r], plan.routes[r]
        self.route = route
        self.n = n = len(jobs.arrival)
        hops = len(route.hops)
        self.arrival = jobs.arrival.tolist()
        self.correct = jobs.correct
        self.lost = [-1] * n
        self.depart = [[np.nan] * n for _ in range(hops)]
        self.hop_of_exit = route.hop_of_exit()
        if online:
            self.exit = np.full(n, -1, np.int64)
            self.exit_hop = [-1] * n
            self.cum = []
            for hop in route.hops:
                blocks = np.column_stack([law.sample(rng, n) for law in hop.latencies])
                self.cum.append(np.cumsum(np.column_stack([np.zeros(n), blocks]), axis=1))
            # blocks of hop h run by a job leaving at exit e (a link hop: 1 or 0)
            self.blocks_run = [[min(max(b - hop.first + 1, 0), len(hop.latencies))
                                for hop in route.hops] for b in route.exit_blocks]
            self.service = [[0.0] * n for _ in range(hops)]
            self.drawn = None
        else:
            self.exit = np.asarray(jobs.exit)
            self.exit_hop = self.hop_of_exit[self.exit].tolist()
            self.drawn = route.service_by_hop(rng, self.exit)  # (hops, jobs)
            self.service = self.drawn.tolist()

    def decide_exit(self, j: int, e: int) -> None:
        """Fix job j's exit and, from it, its service at every hop."""
        self.exit[j] = e
        self.exit_hop[j] = int(self.hop_of_exit[e])
        for h, count in enumerate(self.blocks_run[e]):
            self.service[h][j] = float(self.cum[h][j, count])


def run_events(network: Network, plan: RunPlan, rng: np.random.Generator, *,
               policies: Mapping[int, OnlinePolicy] | None = None,
               confidences: Mapping[int, np.ndarray] | None = None) -> RunRecord:
    """Simulate ``plan`` on ``network``.

    ``policies`` maps a route index to an online policy that decides the exit
    of each of that route's jobs when it starts its first service (the plan's
    exits of that route are then ignored); ``confidences`` maps a route index
    to its jobs' confidence rows (jobs, exits), shown to the policy.
    """
    policies = dict(policies or {})
    confidences = dict(confidences or {})
    _check(network, plan, policies, confidences)
    routes = [_Jobs(network, plan, r, rng, r in policies) for r in range(len(network.routes))]
    slots = _slots(network, routes)
    if policies:
        _policy_loop(network, routes, slots, policies, confidences)
    else:
        _fast_loop(network, routes, slots)
    return _record(network, plan, routes)


def _route_index(r: object, count: int) -> bool:
    return isinstance(r, numbers.Integral) and not isinstance(r, bool) and 0 <= r < count


def _check(network: Network, plan: RunPlan, policies: dict, confidences: dict) -> None:
    count = len(network.routes)
    if len(plan.routes) != count:
        raise v.fail(_OWNER, "plan", f"one route plan per route ({count})", len(plan.routes))
    for r, policy in policies.items():
        if not _route_index(r, count) or not isinstance(policy, OnlinePolicy):
            raise v.fail(_OWNER, "policies", f"a mapping from route index in [0, {count}) to "
                         "an object with decide(state) and observe(outcome)", {r: policy})
    for r, rows in confidences.items():
        if not _route_index(r, count) or \
                np.shape(rows) != (len(plan.routes[r].arrival), network.routes[r].n_exits):
            raise v.fail(_OWNER, "confidences", "a mapping from route index to confidence rows "
                         "(jobs, exits) of that route", {r: np.shape(rows)})


def _slots(network: Network, routes: list[_Jobs]) -> list[tuple]:
    """One tuple per (route, hop), numbered route by route: what an event at that
    hop needs. Slot q + 1 is the next hop of the same route."""
    out = []
    for r, jobs in enumerate(routes):
        for h, hop in enumerate(jobs.route.hops):
            out.append((hop.station, h, hop.delay_s, jobs.service[h], jobs.depart[h],
                        jobs.lost, jobs.exit_hop, r))
    return out


def _firsts(routes: list[_Jobs]) -> tuple[list[int], list[int]]:
    """Per route: the slot of its first hop and the global id of its first job."""
    slot, job, first_slot, first_job = 0, 0, [], []
    for jobs in routes:
        first_slot.append(slot)
        first_job.append(job)
        slot += len(jobs.route.hops)
        job += jobs.n
    return first_slot, first_job


def _fast_loop(network: Network, routes: list[_Jobs], slots: list[tuple]) -> None:
    """Arrival events only: (time, job id, slot, job index in its route).

    Each route keeps one pending external arrival in the heap; the job id (route
    by route, then arrival order) breaks ties between equal times.
    """
    stations = network.stations
    cap = [s.capacity for s in stations]
    single = [s.servers == 1 for s in stations]
    # jobs present: departure times (non-decreasing at one server, else a heap)
    present: list = [deque() if s.servers == 1 else [] for s in stations]
    last = [-math.inf] * len(stations)  # one server: when it frees
    free = [[-math.inf] * s.servers for s in stations]  # several: when each frees (a heap)
    arrivals = [jobs.arrival for jobs in routes]
    counts = [jobs.n for jobs in routes]
    first_slot, first_job = _firsts(routes)
    heap = [(arrivals[r][0], first_job[r], first_slot[r], 0) for r in range(len(routes))
            if counts[r]]
    heapq.heapify(heap)
    push, pop, replace = heapq.heappush, heapq.heappop, heapq.heapreplace

    while heap:
        t, g, q, j = heap[0]
        s, h, delay, service, depart, lost, exit_hop, r = slots[q]
        if h == 0 and j + 1 < counts[r]:  # an external arrival: the route's next one
            replace(heap, (arrivals[r][j + 1], g + 1, q, j + 1))
        else:
            pop(heap)
        held = present[s]
        if single[s]:
            while held and held[0] <= t:  # departures up to t free their places
                held.popleft()
            if len(held) >= cap[s]:
                lost[j] = h
                continue
            d = last[s]
            if d < t:
                d = t
            d += service[j]
            last[s] = d
            held.append(d)
        else:
            while held and held[0] <= t:
                pop(held)
            if len(held) >= cap[s]:
                lost[j] = h
                continue
            servers = free[s]
            d = servers[0]  # FIFO: the job takes the server that frees first
            if d < t:
                d = t
            d += service[j]
            replace(servers, d)
            push(held, d)
        depart[j] = d
        if exit_hop[j] != h:
            push(heap, (d + delay, g, q + 1, j))


def _policy_loop(network: Network, routes: list[_Jobs], slots: list[tuple],
                 policies: dict[int, OnlinePolicy], confidences: dict[int, np.ndarray]) -> None:
    """Arrival and departure events: (time, kind, job id, slot, job index).

    Departures sort before arrivals at equal times; a job's exit is decided
    when it starts service at its first hop.
    """
    stations = network.stations
    names = [s.name for s in stations]
    cap = [s.capacity for s in stations]
    servers = [s.servers for s in stations]
    number = [0] * len(stations)  # jobs present
    busy = [0] * len(stations)
    queue: list[deque] = [deque() for _ in stations]
    recent = [deque(maxlen=_RECENT) for _ in stations]
    first_slot, first_job = _firsts(routes)
    heap = [(jobs.arrival[0], _ARRIVE, first_job[r], first_slot[r], 0)
            for r, jobs in enumerate(routes) if jobs.n]
    heapq.heapify(heap)
    push, pop = heapq.heappush, heapq.heappop

    def start(t: float, s: int, g: int, q: int, j: int) -> None:
        """Job j begins service at slot q's station at time t."""
        _, h, _, service, depart, _, _, r = slots[q]
        policy = policies.get(r) if h == 0 else None
        if policy is not None:
            jobs = routes[r]
            rows = confidences.get(r)
            state = JobState(
                time=t, chain=jobs.route.chain, job=j, station=names[s],
                jobs_present=number[s], waiting=len(queue[s]),
                recent_arrivals=tuple(recent[s]),
                queue_lengths=dict(zip(names, number)), n_exits=jobs.route.n_exits,
                confidence=None if rows is None else rows[j])
            jobs.decide_exit(j, _exit_index(policy, policy.decide(state), jobs.route.n_exits))
        depart[j] = d = t + service[j]
        push(heap, (d, _DEPART, g, q, j))

    while heap:
        t, kind, g, q, j = pop(heap)
        s, h, delay, _, _, lost, exit_hop, r = slots[q]
        if kind == _DEPART:
            number[s] -= 1
            if queue[s]:
                start(t, s, *queue[s].popleft())
            else:
                busy[s] -= 1
            if exit_hop[j] == h:
                _observe(policies.get(r), routes[r], j, t, None)
            else:
                push(heap, (t + delay, _ARRIVE, g, q + 1, j))
            continue
        if h == 0 and j + 1 < routes[r].n:  # the route's next external arrival
            push(heap, (routes[r].arrival[j + 1], _ARRIVE, g + 1, q, j + 1))
        recent[s].append(t)
        if number[s] >= cap[s]:
            lost[j] = h
            _observe(policies.get(r), routes[r], j, t, names[s])
            continue
        number[s] += 1
        if busy[s] < servers[s]:
            busy[s] += 1
            start(t, s, g, q, j)
        else:
            queue[s].append((g, q, j))


def _exit_index(policy: OnlinePolicy, value: object, n_exits: int) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) \
            and 0 <= value < n_exits:
        return int(value)
    raise v.fail(type(policy).__name__, "decide", f"an exit index in [0, {n_exits})", value,
                 what="result")


def _observe(policy: OnlinePolicy | None, jobs: _Jobs, j: int, t: float,
             lost_at: str | None) -> None:
    """Tell the route's policy, if any, what became of job j at time t."""
    if policy is None:
        return
    e = int(jobs.exit[j])
    done = lost_at is None
    table = jobs.correct
    policy.observe(JobOutcome(
        time=t, chain=jobs.route.chain, job=j, exit=e if e >= 0 else None, completed=done,
        response_time=t - jobs.arrival[j] if done else None,
        correct=bool(table[j, e]) if done and table is not None else None, lost_at=lost_at))


def _record(network: Network, plan: RunPlan, routes: list[_Jobs]) -> RunRecord:
    """The run's record. Its counters are computed from the per-job outcomes, so
    conservation holds by construction here (the kernel's, counted in its loop,
    are checked against the outcomes)."""
    parts = [_route_record(network, plan, r, jobs) for r, jobs in enumerate(routes)]
    counters = [p.pop("counters") for p in parts]
    tables = [p.pop("correct") for p in parts]
    joined = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    record = RunRecord(
        network=network, method="event", counters=counters, t_start=plan.t_start,
        t_end=plan.t_end, correct=None if any(c is None for c in tables) else np.concatenate(tables),
        **joined)
    return record


def _route_record(network: Network, plan: RunPlan, r: int, jobs: _Jobs) -> dict:
    """One route's rows of the record and its counters over measured jobs."""
    route, n = jobs.route, jobs.n
    # one hop at a time: numpy converts flat lists of floats much faster
    depart = [np.array(x, dtype=float) for x in jobs.depart]
    service = jobs.drawn if jobs.drawn is not None else \
        [np.array(x, dtype=float) for x in jobs.service]
    lost = np.array(jobs.lost, dtype=np.int64)
    exit_hop = np.array(jobs.exit_hop, dtype=np.int64)
    arrival = plan.routes[r].arrival
    measured = plan.measured(r)
    counters = HopCounters.zeros(len(route.hops))
    reach, at = measured, arrival
    for h, hop in enumerate(route.hops):
        accepted = reach & (lost != h)
        counters.offered[h] = reach.sum()
        counters.accepted[h] = accepted.sum()
        counters.sojourn[h] = (depart[h][accepted] - at[accepted]).sum()
        counters.busy[h] = service[h][accepted].sum()
        reach = accepted & (exit_hop > h)
        at = depart[h] + hop.delay_s
    done = lost < 0
    completion = np.full(n, np.nan)
    for h in range(len(route.hops)):
        leave = done & (exit_hop == h)
        completion[leave] = depart[h][leave]
    table = plan.routes[r].correct
    exits = np.asarray(jobs.exit, dtype=np.int64)
    correct = None if table is None else \
        np.where(exits >= 0, table[np.arange(n), np.maximum(exits, 0)], False)
    return {"chain": np.full(n, r, np.int64), "arrival": arrival, "exit": exits,
            "completion": completion, "lost_at": lost, "measured": measured,
            "counters": counters, "correct": correct}
