"""A two-tier tandem under changing conditions: the uplink's bandwidth, the
device's speed and the split point all vary with time.

A job of one chain is split at a cut c: blocks < c run on the device, blocks
>= c on the server, with the activation (the input for c = 0) crossing the
uplink in between. Three FIFO loss stations, as edgeperf models them: the
device (its capacity and ``servers``), the uplink (its capacity, one
transmitter) and the server; the link's propagation delay follows the
transmission and queues nothing. An arrival finding a station full (capacity
counts the jobs in service) is lost.

Decisions taken here, so that the numbers are comparable to the fixed-split
simulator:

- a job uses the cut in force when it **arrives** (a controller's schedule);
  its exit (the scenario's ``exit_probability`` per block) is drawn up front,
  and a job leaving at an exit before the cut never uses the uplink;
- transmission integrates the bytes over the piecewise bandwidth: a transfer
  started at 2 Mbit/s speeds up when the link reaches 30 Mbit/s mid-way. The
  device's compute integrates the same way over its speed factor (work drawn
  from the block laws on the device, divided by the factor in force);
- every job is followed to completion; statistics count jobs arriving after
  the warm-up share of ``duration_s`` and are computed as ``simulate`` does
  (throughput over the measured window, per-station busy and sojourn sums).

Replication r draws from the r-th child of ``SeedSequence(seed)``: the same
seed gives the same numbers.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import _validation as v
from ..dists import ServiceLaw
from ..model import ArrivalProcess, Metrics, StationMetrics, System
from ._arrivals import arrivals_until
from ._simulate import _combine, _replications

__all__ = ["Piecewise", "simulate_timevarying"]

_OWNER = "simulate_timevarying"
_DEVICE, _LINK, _SERVER = 0, 1, 2


def steps(owner: str, times_s: Sequence[float], values: Sequence[float], *,
          values_name: str, positive: bool = True) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Validated breakpoints (strictly increasing, starting at 0) and finite
    (positive unless told otherwise) values of a step function, as tuples."""
    arrays = []
    for name, given in (("times_s", times_s), (values_name, values)):
        try:
            arrays.append(np.asarray(given, dtype=float))
        except (TypeError, ValueError):
            raise v.fail(owner, name, "a list of numbers", given) from None
    times, vals = arrays
    if times.ndim != 1 or len(times) < 1 or not np.all(np.isfinite(times)) or times[0] != 0.0 \
            or np.any(np.diff(times) <= 0):
        raise v.fail(owner, "times_s", "strictly increasing finite times starting at 0",
                     times.tolist() if times.ndim == 1 else times_s)
    if vals.shape != times.shape or not np.all(np.isfinite(vals)) \
            or (positive and np.any(vals <= 0)):
        rule = f"{len(times)} finite numbers{' > 0' if positive else ''}, one per time"
        raise v.fail(owner, values_name, rule, vals.tolist() if vals.ndim == 1 else values)
    return tuple(times.tolist()), tuple(vals.tolist())


@dataclass(frozen=True, slots=True)
class Piecewise:
    """A step function of time: ``values[i]`` on ``[times_s[i], times_s[i+1])``,
    the last value for ever after (bandwidth, speed factor or cut)."""

    times_s: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        times, values = steps("Piecewise", self.times_s, self.values, values_name="values",
                              positive=False)
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "values", values)

    @classmethod
    def constant(cls, value: float) -> Piecewise:
        return cls((0.0,), (value,))

    def at(self, t: float) -> float:
        return self.values[max(bisect_right(self.times_s, t) - 1, 0)]

    def at_many(self, t: np.ndarray) -> np.ndarray:
        index = np.maximum(np.searchsorted(self.times_s, t, side="right") - 1, 0)
        return np.asarray(self.values)[index]

    def reach(self, t0: float, amount: float) -> float:
        """When the integral of this (positive) function from ``t0`` reaches
        ``amount``: the end of a transfer of ``amount`` bits started at ``t0``
        over a bandwidth, or of ``amount`` seconds of work over a speed factor."""
        i = max(bisect_right(self.times_s, t0) - 1, 0)
        t, last = t0, len(self.times_s) - 1
        while i < last:
            room = self.values[i] * (self.times_s[i + 1] - t)
            if amount <= room:
                break
            amount -= room
            t, i = self.times_s[i + 1], i + 1
        return t + amount / self.values[i]


@dataclass(frozen=True, slots=True)
class _Tandem:
    """What a run needs from the system, flattened."""

    arrival: ArrivalProcess
    device_laws: tuple[ServiceLaw, ...]
    server_laws: tuple[ServiceLaw, ...]
    exit_q: np.ndarray           # per block, 0 where it has no exit
    cut_bytes: np.ndarray        # bytes crossing cut c, c = 0..n-1
    names: tuple[str, str, str]  # device, link, server
    capacity: tuple[int, int, int]
    servers: tuple[int, int, int]
    delay_s: float               # the link's propagation delay
    bandwidth_bps: float         # the link's nominal bandwidth
    exit_names: tuple[str, ...]
    exit_of_block: np.ndarray    # exit index of a job whose last block is b (-1: none)


def _tandem(system: System, device: str, server: str) -> _Tandem:
    v.instance(_OWNER, "system", system, System, "a System with one chain")
    if len(system.chains) != 1:
        raise v.fail(_OWNER, "system", "a System with one chain",
                     f"{len(system.chains)} chains")
    names = [d.name for d in system.devices]
    for what, name in (("device", device), ("server", server)):
        if name not in names:
            raise v.fail(_OWNER, what, f"a device of the system {names}", name)
    link = system.link_between(device, server)
    if link is None or link.ideal:
        raise v.fail(_OWNER, "system", f"a link {device}->{server} with a bandwidth and capacity",
                     None if link is None else link.name)
    dev, srv = system.device(device), system.device(server)
    blocks = system.model.blocks
    exits = [b for b, block in enumerate(blocks) if block.exit_probability is not None]
    exit_of_block = np.full(len(blocks), -1)
    exit_of_block[exits + [len(blocks) - 1]] = np.arange(len(exits) + 1)
    out = np.array([b.output_bytes for b in blocks], dtype=float)
    return _Tandem(
        arrival=system.workload.arrival,
        device_laws=tuple(b.latency_on(dev) for b in blocks),
        server_laws=tuple(b.latency_on(srv) for b in blocks),
        exit_q=np.array([b.exit_probability or 0.0 for b in blocks]),
        cut_bytes=np.concatenate(([system.model.input_bytes], out[:-1])),
        names=(device, link.name, server), capacity=(dev.capacity, link.capacity, srv.capacity),
        servers=(dev.servers, 1, srv.servers), delay_s=link.latency_s,
        bandwidth_bps=float(link.bandwidth_bps),  # type: ignore[arg-type]
        exit_names=tuple(blocks[b].name for b in exits + [len(blocks) - 1]),
        exit_of_block=exit_of_block)


def _work(laws: tuple[ServiceLaw, ...], rng: np.random.Generator, n: int) -> np.ndarray:
    """Running sums of independent block draws: row j, column c = blocks < c."""
    draws = np.column_stack([law.sample(rng, n) for law in laws])
    return np.concatenate((np.zeros((n, 1)), np.cumsum(draws, axis=1)), axis=1)


@dataclass(slots=True)
class _Jobs:
    """One run's jobs: what each does at each station (NaN where it does not)."""

    arrival: np.ndarray
    last: np.ndarray      # last block it runs (its exit)
    cut: np.ndarray
    device_s: np.ndarray  # work on the device at speed factor 1
    remote: np.ndarray    # it runs blocks on the server (crosses the uplink)
    bits: np.ndarray
    server_s: np.ndarray
    reached: np.ndarray   # (3, n) time it reached each station
    start: np.ndarray
    end: np.ndarray
    lost_at: np.ndarray


def _draw(spec: _Tandem, rng: np.random.Generator, duration_s: float, cuts: Piecewise) -> _Jobs:
    """Everything random, up front: arrivals, exits, and each job's work at each
    station under the cut in force when it arrives."""
    arrival = arrivals_until(spec.arrival, rng, duration_s)
    n, blocks = len(arrival), len(spec.exit_q)
    leaves = rng.random((n, blocks)) < spec.exit_q
    leaves[:, -1] = True
    last = np.argmax(leaves, axis=1)
    cut = cuts.at_many(arrival).astype(np.int64)
    device, server = _work(spec.device_laws, rng, n), _work(spec.server_laws, rng, n)
    rows = np.arange(n)
    remote = cut <= last
    blank = np.full((3, n), np.nan)
    return _Jobs(arrival=arrival, last=last, cut=cut,
                 device_s=device[rows, np.minimum(cut, last + 1)], remote=remote,
                 bits=np.where(remote, 8.0 * spec.cut_bytes[np.minimum(cut, blocks - 1)], 0.0),
                 server_s=np.where(remote, server[rows, last + 1] - server[rows, cut], 0.0),
                 reached=blank, start=blank.copy(), end=blank.copy(), lost_at=np.full(n, -1))


def _serve(spec: _Tandem, jobs: _Jobs, bandwidth: Piecewise, speed: Piecewise) -> None:
    """The event loop: each station admits or loses an arrival, and FIFO makes its
    service start known at once (the earliest time one of its servers frees)."""
    present: list[list[float]] = [[], [], []]  # departure times of the jobs held
    free = [[0.0] * k for k in spec.servers]     # when each server frees
    heap = [(t, j, _DEVICE if c > 0 else _LINK) for j, (t, c) in
            enumerate(zip(jobs.arrival.tolist(), jobs.cut.tolist()))]
    heapq.heapify(heap)
    work = (jobs.device_s.tolist(), jobs.bits.tolist(), jobs.server_s.tolist())
    remote = jobs.remote.tolist()
    while heap:
        t, j, s = heapq.heappop(heap)
        jobs.reached[s, j] = t
        held = present[s]
        while held and held[0] <= t:  # a departure at t frees its place for this arrival
            heapq.heappop(held)
        if len(held) >= spec.capacity[s]:
            jobs.lost_at[j] = s
            continue
        start = max(t, free[s][0])
        if s == _DEVICE:
            end = speed.reach(start, work[s][j])
        elif s == _LINK:
            end = bandwidth.reach(start, work[s][j])
        else:
            end = start + work[s][j]
        heapq.heapreplace(free[s], end)
        heapq.heappush(held, end)
        jobs.start[s, j], jobs.end[s, j] = start, end
        if s == _DEVICE and remote[j]:
            heapq.heappush(heap, (end, j, _LINK))
        elif s == _LINK:
            heapq.heappush(heap, (end + spec.delay_s, j, _SERVER))


def _metrics(spec: _Tandem, jobs: _Jobs, t_start: float, t_end: float) -> Metrics:
    """One run's Metrics over the jobs arriving in [t_start, t_end]."""
    window = t_end - t_start
    measured = (jobs.arrival >= t_start) & (jobs.arrival <= t_end)
    done = measured & (jobs.lost_at < 0)
    finish = np.where(jobs.remote, jobs.end[_SERVER], jobs.end[_DEVICE])
    response = finish[done] - jobs.arrival[done]
    offered, completed = int(measured.sum()), int(done.sum())
    counts = np.bincount(spec.exit_of_block[jobs.last[done]], minlength=len(spec.exit_names))
    p50, p95, p99 = (np.quantile(response, [0.5, 0.95, 0.99]).tolist() if completed
                     else [None] * 3)
    return Metrics(
        kind="estimate", method="timevarying", arrival_rate=offered / window,
        throughput=completed / window, loss_probability=1.0 - completed / offered if offered
        else 0.0, mean_response_time=float(response.mean()) if completed else None,
        p50_response_time=p50, p95_response_time=p95, p99_response_time=p99,
        exit_distribution={e: float(k / completed) if completed else 0.0
                           for e, k in zip(spec.exit_names, counts)},
        stations=tuple(_station(spec, jobs, s, measured, window) for s in range(3)))


def _station(spec: _Tandem, jobs: _Jobs, s: int, measured: np.ndarray,
             window: float) -> StationMetrics:
    came = measured & ~np.isnan(jobs.reached[s])
    took = came & ~np.isnan(jobs.end[s])
    offered, accepted = int(came.sum()), int(took.sum())
    busy = float((jobs.end[s, took] - jobs.start[s, took]).sum())
    sojourn = float((jobs.end[s, took] - jobs.reached[s, took]).sum())
    return StationMetrics(
        name=spec.names[s], kind="estimate", method="timevarying",
        arrival_rate=offered / window, capacity=spec.capacity[s],
        loss_probability=1.0 - accepted / offered if offered else 0.0,
        throughput=accepted / window, utilization=busy / window / spec.servers[s],
        mean_number=sojourn / window,
        mean_response_time=sojourn / accepted if accepted else None,
        mean_waiting_time=(sojourn - busy) / accepted if accepted else None)


def _as_rate(name: str, value: Piecewise | float) -> Piecewise:
    """A positive step function (a constant is one step)."""
    if isinstance(value, Piecewise):
        if min(value.values) <= 0:
            raise v.fail(_OWNER, name, "a step function with values > 0", list(value.values))
        return value
    return Piecewise.constant(v.positive(_OWNER, name, value))


def _as_cuts(cuts: Piecewise | int, blocks: int) -> Piecewise:
    """Cuts as a step function of ints from 0 (upload the input) to ``blocks``
    (all on the device)."""
    if isinstance(cuts, Piecewise):
        values = np.asarray(cuts.values)
        if np.any(values != np.round(values)) or np.any(values < 0) or np.any(values > blocks):
            raise v.fail(_OWNER, "cuts", f"cut indices, ints in [0, {blocks}]", list(cuts.values))
        return cuts
    c = v.integer(_OWNER, "cuts", cuts, low=0)
    if c > blocks:
        raise v.fail(_OWNER, "cuts", f"an int in [0, {blocks}]", c)
    return Piecewise.constant(c)


def simulate_timevarying(system: System, *, device: str, server: str,
                         cuts: Piecewise | int, bandwidth_bps: Piecewise | float | None = None,
                         speed: Piecewise | float = 1.0, duration_s: float,
                         replications: int = 5, seed: int = 0,
                         warmup: float = 0.1) -> Metrics:
    """Metrics of ``system``'s chain split between ``device`` and ``server``,
    with 95% half-widths over ``replications``.

    ``cuts`` is one cut, or a step function of cuts over time (a controller's
    schedule: :attr:`edgeperf.placement.SplitSchedule.piecewise`).
    ``bandwidth_bps`` (default: the link's) and ``speed`` (the factor dividing
    the device's block latencies, e.g. from its cores) may vary too. The
    system's placement is not used: the cut decides. Stations are reported as
    device, link, server.
    """
    spec = _tandem(system, device, server)
    split = _as_cuts(cuts, len(spec.exit_q))
    bandwidth = _as_rate("bandwidth_bps",
                         spec.bandwidth_bps if bandwidth_bps is None else bandwidth_bps)
    factor = _as_rate("speed", speed)
    horizon = v.positive(_OWNER, "duration_s", duration_s)
    reps = v.integer(_OWNER, "replications", replications, low=1)
    v.integer(_OWNER, "seed", seed, low=0)
    share = v.real(_OWNER, "warmup", warmup, low=0.0, high=0.9)
    runs = []
    for _, child in _replications(seed, reps, False):
        rng = np.random.default_rng(child)
        jobs = _draw(spec, rng, horizon, split)
        _serve(spec, jobs, bandwidth, factor)
        runs.append(_metrics(spec, jobs, share * horizon, horizon))
    return _combine(runs)
