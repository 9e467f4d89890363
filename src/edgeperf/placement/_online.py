"""Online re-splitting: re-decide where a two-tier chain is cut as the uplink's
bandwidth and the device's cores change, with hysteresis so that noise around
a break-even point does not make the split flap, and measure in the
time-varying simulator what that saves over a fixed split.

Conditions are (bandwidth, cores) over time, both step functions. The device's
speed depends on its cores non-linearly (Amdahl's law), so losing one of two
cores to another tenant does not halve it.
"""

from __future__ import annotations

import csv
import heapq
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.optimize import minimize_scalar

from .. import _validation as v
from ..exceptions import InfeasibleError, InvalidParameterError
from ..model import Metrics, System
from ..sim._timevarying import Piecewise, simulate_timevarying, steps
from ._costs import Costs

__all__ = ["BandwidthTrace", "CoresTrace", "CoreScaling", "SplitSchedule", "ReSplitter",
           "ResplitComparison", "compare_resplitting"]


def _value_at(times_s: Sequence[float], values: Sequence[float], t: float) -> float:
    """A step function's value at ``t`` (the first value before 0)."""
    return values[max(bisect_right(times_s, t) - 1, 0)]


def _time_average(times_s: Sequence[float], values: Sequence[float], until_s: float) -> float:
    """Mean over [0, until_s] of a step function."""
    edges = np.minimum(np.append(times_s, until_s), until_s)
    return float(np.dot(np.diff(edges), values) / until_s)


@dataclass(frozen=True, slots=True)
class BandwidthTrace:
    """Uplink bandwidth over time: ``bandwidth_bps[i]`` from ``times_s[i]`` on."""

    times_s: tuple[float, ...]
    bandwidth_bps: tuple[float, ...]

    def __post_init__(self) -> None:
        times, values = steps("BandwidthTrace", self.times_s, self.bandwidth_bps,
                              values_name="bandwidth_bps")
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "bandwidth_bps", values)

    def at(self, t: float) -> float:
        return _value_at(self.times_s, self.bandwidth_bps, t)

    @property
    def piecewise(self) -> Piecewise:
        return Piecewise(self.times_s, self.bandwidth_bps)

    def mean_bps(self, until_s: float) -> float:
        """Time-average bandwidth over [0, until_s]."""
        return _time_average(self.times_s, self.bandwidth_bps,
                             v.positive("BandwidthTrace.mean_bps", "until_s", until_s))

    @classmethod
    def wifi(cls, duration_s: float, *, seed: int,
             levels_bps: Sequence[float] = (2e6, 8e6, 30e6),
             mean_hold_s: float = 30.0) -> BandwidthTrace:
        """A Markov-modulated Wi-Fi uplink: it holds a level for an exponential
        time (mean ``mean_hold_s``), then jumps to another level chosen
        uniformly, as when a user walks between rooms; the first level is
        uniform (the chain's stationary law)."""
        owner = "BandwidthTrace.wifi"
        horizon = v.positive(owner, "duration_s", duration_s)
        hold = v.positive(owner, "mean_hold_s", mean_hold_s)
        given = v.listed(owner, "levels_bps", levels_bps, "at least two levels")
        if len(given) < 2:
            raise v.fail(owner, "levels_bps", "at least two levels", given)
        _, levels = steps(owner, np.arange(len(given), dtype=float), given,
                          values_name="levels_bps")
        rng = np.random.default_rng(v.integer(owner, "seed", seed, low=0))
        times, state = [0.0], [int(rng.integers(len(levels)))]
        while (t := times[-1] + rng.exponential(hold)) < horizon:
            jump = int(rng.integers(1, len(levels)))  # any other level
            times.append(t)
            state.append((state[-1] + jump) % len(levels))
        return cls(tuple(times), tuple(levels[s] for s in state))

    @classmethod
    def from_csv(cls, path: str | Path) -> BandwidthTrace:
        """Read a CSV with a header ``time_s,bandwidth_bps`` and one row per step."""
        owner = "BandwidthTrace.from_csv"
        path = v.path(owner, "path", path)
        rule = "a CSV with a header time_s,bandwidth_bps and numeric rows"
        readable = rule.replace("a CSV", "a readable CSV", 1)
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if not {"time_s", "bandwidth_bps"} <= set(reader.fieldnames or ()):
                    raise v.fail(owner, "path", rule, f"{path}: columns {reader.fieldnames}")
                rows = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise v.fail(owner, "path", f"{readable} ({err})", str(path)) from None
        try:
            times = tuple(float(r["time_s"]) for r in rows)
            values = tuple(float(r["bandwidth_bps"]) for r in rows)
        except (TypeError, ValueError) as err:
            raise v.fail(owner, "path", rule, f"{path}: {err}") from None
        try:
            return cls(times, values)
        except InvalidParameterError as err:
            raise InvalidParameterError(f"{path}: {err}") from None


@dataclass(frozen=True, slots=True)
class CoresTrace:
    """Cores the device gives this chain over time (other tenants take the rest)."""

    times_s: tuple[float, ...]
    cores: tuple[int, ...]

    def __post_init__(self) -> None:
        times, values = steps("CoresTrace", self.times_s, self.cores, values_name="cores")
        if any(c != round(c) for c in values):
            raise v.fail("CoresTrace", "cores", "ints >= 1", list(self.cores))
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "cores", tuple(int(c) for c in values))

    def at(self, t: float) -> int:
        return int(_value_at(self.times_s, self.cores, t))


@dataclass(frozen=True, slots=True)
class CoreScaling:
    """Amdahl's law: with ``c`` cores a job runs ``speed(c) = 1 / ((1 - p) + p / c)``
    times faster than on one, ``p`` being the parallel fraction of its work.
    The device's profiled latencies were taken with ``reference_cores``."""

    parallel_fraction: float
    reference_cores: int = 1

    def __post_init__(self) -> None:
        v.probability("CoreScaling", "parallel_fraction", self.parallel_fraction)
        v.integer("CoreScaling", "reference_cores", self.reference_cores, low=1)

    def speed(self, cores: float | np.ndarray) -> float | np.ndarray:
        rule = "a number of cores >= 1, or an array of them"
        try:
            c = np.asarray(cores, dtype=float)
        except (TypeError, ValueError):
            raise v.fail("CoreScaling.speed", "cores", rule, v.brief(cores)) from None
        if not np.all(c >= 1.0) or not np.all(np.isfinite(c)):  # NaN fails the first
            raise v.fail("CoreScaling.speed", "cores", rule, v.shown(cores))
        p = self.parallel_fraction
        return 1.0 / ((1.0 - p) + p / c)

    def factor(self, cores: int) -> float:
        """The factor dividing the profiled latencies with ``cores`` cores."""
        v.integer("CoreScaling.factor", "cores", cores, low=1)
        return float(self.speed(cores) / self.speed(self.reference_cores))

    @classmethod
    def fit(cls, cores: Sequence[int], speeds: Sequence[float], *,
            reference_cores: int = 1) -> CoreScaling:
        """Least-squares ``p`` from speeds measured at several core counts,
        relative to one core: ``latency(1 core) / latency(c cores)``, e.g. from
        profiles taken with 1 and 2 torch threads."""
        c = np.asarray(cores, dtype=float)
        s = np.asarray(speeds, dtype=float)
        if c.ndim != 1 or len(np.unique(c)) < 2 or np.any(c < 1) or np.any(c != np.round(c)):
            raise v.fail("CoreScaling.fit", "cores", "ints >= 1, at least two distinct",
                         list(cores))
        if s.shape != c.shape or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise v.fail("CoreScaling.fit", "speeds", f"{len(c)} finite numbers > 0",
                         list(speeds))
        best = minimize_scalar(lambda p: float(np.sum((s - 1.0 / (1.0 - p + p / c)) ** 2)),
                               bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-10})
        return cls(float(best.x), reference_cores)


@dataclass(frozen=True, slots=True)
class SplitSchedule:
    """Cuts over time: ``cuts[i]`` from ``times_s[i]`` on, ``latency_s[i]`` its
    predicted latency when chosen. Cut c runs blocks < c on the device."""

    times_s: tuple[float, ...]
    cuts: tuple[int, ...]
    latency_s: tuple[float, ...]

    @property
    def switches(self) -> int:
        return len(self.cuts) - 1

    def cut_at(self, t: float) -> int:
        return int(_value_at(self.times_s, self.cuts, t))

    @property
    def piecewise(self) -> Piecewise:
        return Piecewise(self.times_s, self.cuts)


def _positions(owner: str, costs: Costs, device: int, server: int) -> tuple[int, int]:
    n = costs.n_devices
    d = v.integer(owner, "device", device, low=0)
    s = v.integer(owner, "server", server, low=0)
    if d >= n or s >= n or d == s:
        raise v.fail(owner, "server", f"a device index in [0, {n - 1}] other than the device's",
                     (d, s))
    link = costs.link(d, s)
    if link is None or link.ideal:
        raise v.fail(owner, "costs", f"costs with a link {costs.devices[d].name}->"
                     f"{costs.devices[s].name} that has a bandwidth", None if link is None
                     else link.name)
    return d, s


@dataclass(frozen=True, slots=True, eq=False)
class ReSplitter:
    """A two-tier split controller: ``device`` and ``server`` index ``costs.devices``.

    Cut c (0..n) runs blocks < c on the device (whose requests arrive there)
    and the rest on the server: c = 0 uploads the input, c = n keeps all on the
    device. Its predicted latency is :meth:`Costs.latency_s` of that placement
    with the device's compute divided by its core-dependent speed factor and
    the uplink at the current bandwidth. On a change of conditions it moves to
    the best cut only when that is more than ``hysteresis`` (a fraction) faster
    than the current one, which it has held at least ``min_dwell_s``.

    The prediction has no queueing in it (as :meth:`Costs.latency_s`): a cut
    that overloads the uplink looks slow, not lossy. The time-varying
    simulator (:func:`compare_resplitting`) measures what it misses.
    """

    costs: Costs
    device: int
    server: int
    scaling: CoreScaling | None = None
    hysteresis: float = 0.1
    min_dwell_s: float = 10.0
    _parts: tuple[np.ndarray, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.costs, Costs):
            raise v.fail("ReSplitter", "costs", "a Costs", self.costs)
        d, s = _positions("ReSplitter", self.costs, self.device, self.server)
        if self.scaling is not None and not isinstance(self.scaling, CoreScaling):
            raise v.fail("ReSplitter", "scaling", "a CoreScaling or None", self.scaling)
        v.real("ReSplitter", "hysteresis", self.hysteresis, low=0.0, high=1.0)
        v.non_negative("ReSplitter", "min_dwell_s", self.min_dwell_s)
        c = self.costs.with_source(d)
        allowed = np.array([c.violation(self.assignment(k)) is None
                            for k in range(c.n_blocks + 1)])
        if not allowed.any():
            raise InfeasibleError("No cut between the device and the server is valid: "
                                  f"{c.violation(self.assignment(c.n_blocks))}.")
        device = np.concatenate(([0.0], np.cumsum(c.reach * c.compute_s[:, d])))
        server = np.concatenate((np.cumsum((c.reach * c.compute_s[:, s])[::-1])[::-1], [0.0]))
        sizes = np.array([c.cut_bytes(k) for k in range(c.n_blocks)] + [0], dtype=float)
        reach = np.append(c.reach, 0.0)  # cut n crosses nothing
        delay = c.link(d, s).latency_s  # type: ignore[union-attr]  # _positions checked it
        object.__setattr__(self, "_parts", (device, server, 8.0 * reach * sizes, reach * delay,
                                            allowed))

    def assignment(self, cut: int) -> np.ndarray:
        """Device index per block for ``cut``."""
        n = self.costs.n_blocks
        if not v.is_int(cut) or not 0 <= cut <= n:
            raise v.fail("ReSplitter.assignment", "cut", f"an int from 0 to {n} (blocks on the "
                         "device)", cut)
        return np.where(np.arange(n) < cut, self.device, self.server)

    def speed_factor(self, cores: int | None) -> float:
        """What divides the device's profiled latencies with ``cores`` (None: as profiled)."""
        if cores is not None:
            v.integer("ReSplitter.speed_factor", "cores", cores, low=1)
        return 1.0 if cores is None or self.scaling is None else self.scaling.factor(cores)

    def latencies_s(self, bandwidth_bps: float, cores: int | None = None, *,
                    factor: float | None = None) -> np.ndarray:
        """Predicted latency of every cut 0..n (inf where a cut is not valid):
        reach-weighted compute plus transfer. ``cores`` (None: the reference)
        or ``factor`` directly set the device's speed factor."""
        device, server, bits, delay, allowed = self._parts
        v.positive("ReSplitter.latencies_s", "bandwidth_bps", bandwidth_bps)
        scale = self.speed_factor(cores) if factor is None else \
            v.positive("ReSplitter.latencies_s", "factor", factor)
        total = device / scale + server + bits / bandwidth_bps + delay
        return np.where(allowed, total, np.inf)

    def best_cut(self, bandwidth_bps: float, cores: int | None = None) -> int:
        return int(np.argmin(self.latencies_s(bandwidth_bps, cores)))

    def decisions(self, bandwidth: BandwidthTrace, cores: CoresTrace | None = None, *,
                  until_s: float = np.inf) -> SplitSchedule:
        """The schedule of cuts the controller takes over ``[0, until_s)``: it starts
        at the best cut, re-decides at every change of conditions and when a
        dwell that blocked a switch ends."""
        owner = "ReSplitter.decisions"
        v.instance(owner, "bandwidth", bandwidth, BandwidthTrace, "a BandwidthTrace")
        if cores is not None:
            v.instance(owner, "cores", cores, CoresTrace, "None or a CoresTrace")
        if not v.is_real(until_s) or not until_s > 0:  # inf allowed, NaN not
            raise v.fail(owner, "until_s", "a time > 0 (inf: every change)", until_s)

        def latencies(t: float) -> np.ndarray:
            return self.latencies_s(bandwidth.at(t), None if cores is None else cores.at(t))

        lat = latencies(0.0)
        cut, since = int(np.argmin(lat)), 0.0
        times, cuts, predicted = [0.0], [cut], [float(lat[cut])]
        events = sorted(set(bandwidth.times_s[1:]) | set(() if cores is None
                                                         else cores.times_s[1:]))
        if self.min_dwell_s > 0:
            heapq.heappush(events, self.min_dwell_s)
        while events and (t := heapq.heappop(events)) < until_s:
            lat = latencies(t)
            best = int(np.argmin(lat))
            if lat[best] >= (1.0 - self.hysteresis) * lat[cut] or t - since < self.min_dwell_s:
                continue  # a blocked switch is retried when the dwell ends (queued below)
            cut, since = best, t
            times.append(t)
            cuts.append(cut)
            predicted.append(float(lat[cut]))
            if self.min_dwell_s > 0:
                heapq.heappush(events, t + self.min_dwell_s)
        return SplitSchedule(tuple(times), tuple(cuts), tuple(predicted))


FixedRule = Literal["mean", "initial", "hindsight"]


@dataclass(frozen=True, slots=True)
class ResplitComparison:
    """Simulated metrics (95% half-widths in ``half_widths``) of each strategy:
    ``fixed``, ``resplit`` and, when asked, ``oracle`` (no hysteresis, no dwell),
    with the schedule of cuts each followed."""

    metrics: dict[str, Metrics]
    schedules: dict[str, SplitSchedule]

    def rows(self) -> list[dict[str, object]]:
        """One row per strategy: switches, and each metric with its half-width."""
        names = ("loss_probability", "throughput", "mean_response_time", "p95_response_time")
        return [{"strategy": k, "switches": self.schedules[k].switches,
                 **{n: getattr(m, n) for n in names},
                 **{f"{n}_hw": m.half_widths.get(n) for n in names}}
                for k, m in self.metrics.items()]


def _fixed(splitter: ReSplitter, bandwidth: BandwidthTrace, speed: Piecewise, rule: str,
           until_s: float) -> int:
    """The fixed cut: best at the mean or initial conditions, or the best in
    hindsight (least time-averaged predicted latency over the trace)."""
    if rule == "initial":
        return int(np.argmin(splitter.latencies_s(bandwidth.at(0.0), factor=speed.at(0.0))))
    if rule == "mean":
        factor = _time_average(speed.times_s, speed.values, until_s)
        return int(np.argmin(splitter.latencies_s(bandwidth.mean_bps(until_s), factor=factor)))
    times = sorted(t for t in set(bandwidth.times_s) | set(speed.times_s) if t < until_s)
    edges = np.minimum(np.append(times, until_s), until_s)
    curves = np.array([splitter.latencies_s(bandwidth.at(t), factor=speed.at(t)) for t in times])
    return int(np.argmin(np.diff(edges) @ curves))


def compare_resplitting(system: System | Costs, bandwidth: BandwidthTrace, *,
                        device: int | str, server: int | str, cores: CoresTrace | None = None,
                        scaling: CoreScaling | None = None, hysteresis: float = 0.1,
                        min_dwell_s: float = 10.0, fixed: FixedRule = "mean",
                        oracle: bool = True, duration_s: float, seed: int = 0,
                        replications: int = 5, warmup: float = 0.1) -> ResplitComparison:
    """Simulate the fixed split (chosen by ``fixed``), the re-splitting
    controller and (``oracle``) the controller without hysteresis or dwell, on
    the same trace, seeds and jobs (common random numbers), so that what
    re-splitting saves is measured with confidence intervals."""
    costs = system if isinstance(system, Costs) else Costs.of(system)
    names = [d.name for d in costs.devices]
    device, server = (names.index(x) if isinstance(x, str) and x in names else x
                      for x in (device, server))  # names or indices into costs.devices
    if fixed not in ("mean", "initial", "hindsight"):
        raise v.fail("compare_resplitting", "fixed", "one of 'mean', 'initial', 'hindsight'",
                     fixed)
    v.instance("compare_resplitting", "bandwidth", bandwidth, BandwidthTrace, "a BandwidthTrace")
    if cores is not None:
        v.instance("compare_resplitting", "cores", cores, CoresTrace, "None or a CoresTrace")
    horizon = v.positive("compare_resplitting", "duration_s", duration_s)
    controller = ReSplitter(costs, device, server, scaling=scaling, hysteresis=hysteresis,
                            min_dwell_s=min_dwell_s)
    speed = Piecewise.constant(1.0) if cores is None else \
        Piecewise(cores.times_s, tuple(controller.speed_factor(c) for c in cores.cores))
    cut = _fixed(controller, bandwidth, speed, fixed, horizon)
    first = controller.latencies_s(bandwidth.at(0.0), factor=speed.at(0.0))[cut]
    schedules = {"fixed": SplitSchedule((0.0,), (cut,), (float(first),)),
                 "resplit": controller.decisions(bandwidth, cores, until_s=horizon)}
    if oracle:
        eager = ReSplitter(costs, device, server, scaling=scaling, hysteresis=0.0, min_dwell_s=0.0)
        schedules["oracle"] = eager.decisions(bandwidth, cores, until_s=horizon)
    metrics = {k: simulate_timevarying(
        costs.system, device=names[device], server=names[server], cuts=s.piecewise,
        bandwidth_bps=bandwidth.piecewise, speed=speed, duration_s=horizon,
        replications=replications, seed=seed, warmup=warmup) for k, s in schedules.items()}
    return ResplitComparison(metrics, schedules)
