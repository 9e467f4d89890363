"""Feed-forward chains of finite-capacity stations, analysed by decomposition.

Each station (a device fragment or a link) is a single-server FIFO queue with
capacity K; a job arriving at a full station is lost; after a station a job may
leave at an early exit. The decomposition solves each station as an M/G/1/K
fed by the thinned output of the station before it:

- ``method="poisson"``: the input of every station after the first is taken
  to be Poisson (the chain's own arrivals are Poisson, or Erlang-k);
- ``method="two-moment"``: the input's SCV is carried forward (QNA-style
  departure and splitting formulas). A station fed by input smoother than
  Poisson (c_a² < 1) is solved as an E_k/G/1/K with its own service law,
  k = 1/c_a² phases (interpolated between the integers around it); one fed
  by burstier input as the M/G/1/K whose service law has the same mean and the
  SCV c_s² + c_a² - 1, the variability that gives the same Kingman waiting time.

Both are approximations for more than one station. The two-moment method is
the better on most chains measured but not on all, and the placement searches
were measured with the Poisson one, which stays the default (see
docs/background/design.md). docs/background/chain.md gives the
errors measured against simulation (``benchmarks/chain_decomposition.py``)
and against the exact CTMC of small tandems (``tests/queueing/test_oracle.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from .. import _validation as v
from ..dists import Deterministic, Gamma, Mixture, ServiceLaw, Sum
from ..exceptions import UnsupportedModelError
from ..model import (Chain, Device, ErlangArrivals, Link, Metrics, PoissonArrivals, StationMetrics,
                     System)
from ._ekg1k import MAX_STATES, ekg1k
from ._mg1k import Method as StationMethod
from ._mg1k import mg1k

__all__ = ["StationExit", "Station", "loss_chain", "stations_of", "stations_by_chain",
           "DecompositionEvaluator"]

ChainMethod = Literal["poisson", "two-moment"]
#: Smallest effective SCV the two-moment method solves with: below it the
#: matched law is taken as deterministic (the smoothest M/G/1/K can be).
_SCV_FLOOR = 1e-3
#: Most arrival phases for a smooth input: an input SCV below 1/32 is solved as E_32.
_MAX_PHASES = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class StationExit:
    """An early exit inside a station: accepted jobs leave here with ``probability``,
    having used ``service`` (the blocks up to the exit)."""

    name: str
    probability: float
    service: ServiceLaw

    def __post_init__(self) -> None:
        v.name_string("StationExit", "name", self.name)
        v.probability("StationExit", "probability", self.probability)
        if not isinstance(self.service, ServiceLaw):
            raise v.fail("StationExit", "service", "a service law", self.service)


@dataclass(frozen=True, slots=True, kw_only=True)
class Station:
    """One station of a chain. ``service`` is the service of a job that passes
    through (on the last station: that completes at the final exit);
    ``delay_s`` a propagation delay after it that queues nothing."""

    name: str
    capacity: int
    service: ServiceLaw
    exits: tuple[StationExit, ...] = ()
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        v.name_string("Station", "name", self.name)
        v.integer("Station", "capacity", self.capacity, low=1)
        if not isinstance(self.service, ServiceLaw):
            raise v.fail("Station", "service", "a service law", self.service)
        object.__setattr__(self, "exits", tuple(self.exits))
        total = sum(e.probability for e in self.exits)
        if total > 1.0 + 1e-12:
            raise v.fail("Station", "exits", "exit probabilities summing to at most 1", total)
        v.non_negative("Station", "delay_s", self.delay_s)

    @classmethod
    def trusted(cls, *, name: str, capacity: int, service: ServiceLaw,
                exits: tuple[StationExit, ...], delay_s: float) -> Station:
        """A station whose fields are known to be valid, built without the checks."""
        station = object.__new__(cls)
        for field, value in (("name", name), ("capacity", capacity), ("service", service),
                             ("exits", exits), ("delay_s", delay_s)):
            object.__setattr__(station, field, value)
        return station

    @property
    def pass_probability(self) -> float:
        if not self.exits:
            return 1.0
        return max(1.0 - sum(e.probability for e in self.exits), 0.0)

    @property
    def outcomes(self) -> tuple[tuple[ServiceLaw, ...], tuple[float, ...]]:
        """The service laws of an accepted job, by exit then passing on, and their probabilities."""
        laws = tuple(e.service for e in self.exits) + (self.service,)
        return laws, tuple(e.probability for e in self.exits) + (self.pass_probability,)

    @property
    def law(self) -> ServiceLaw:
        """The service law of an arbitrary accepted job."""
        return Mixture(*self.outcomes) if self.exits else self.service


def stations_of(system: System, chain: str | None = None) -> tuple[Station, ...]:
    """The stations a job of ``chain`` (default: the only one) traverses: each
    fragment, then the link to the next one. An ideal link is no station: its
    delay is added to the fragment before it."""
    v.instance("stations_of", "system", system, System, "a System")
    route = system.chain(chain) if chain is not None else system.chains[0]
    if chain is None and len(system.chains) > 1:
        raise v.fail("stations_of", "chain", f"one of {[c.name for c in system.chains]} "
                     "for a system with several chains", None)
    return _route(system, route, *_lookups(system))


def stations_by_chain(system: System) -> dict[str, tuple[Station, ...]]:
    """:func:`stations_of` for every chain of ``system``, by chain name, looking
    its devices and links up once (what the surrogate's encoder walks)."""
    v.instance("stations_by_chain", "system", system, System, "a System")
    lookups = _lookups(system)
    return {c.name: _route(system, c, *lookups) for c in system.chains}


def _lookups(system: System) -> tuple[dict[str, Device], dict[tuple[str, str], Link]]:
    return ({d.name: d for d in system.devices},
            {(link.source, link.target): link for link in system.links})


def _route(system: System, route: Chain, devices: dict[str, Device],
           links: dict[tuple[str, str], Link]) -> tuple[Station, ...]:
    """The stations of ``route``. They are built from a validated System, whose
    rules imply the Station's, so they skip its checks (the encoder builds
    thousands per batch)."""
    blocks = route.model.blocks
    out: list[Station] = []
    upload = links.get(route.upload) if route.upload is not None else None
    if upload is not None and not upload.ideal:  # inputs cross a link before the first fragment
        out.append(_link_station(upload, route.model.input_bytes))
    fragments = route.fragments
    for n, fragment in enumerate(fragments):
        device = devices[fragment.device]
        latencies: list[ServiceLaw] = []
        exits: list[StationExit] = []
        reach = 1.0  # P(an accepted job reaches the current block)
        for i in range(fragment.first, fragment.last + 1):
            latencies.append(blocks[i].latency_on(device))
            q = blocks[i].exit_probability
            if q is not None:  # an exit after this block
                exits.append(StationExit(name=blocks[i].name, probability=reach * q,
                                         service=_sum(latencies)))
                reach *= 1.0 - q
        link = None
        if n + 1 < len(fragments):
            link = links[fragment.device, fragments[n + 1].device]  # System.validate: it exists
        out.append(Station.trusted(
            name=device.name, capacity=device.capacity, service=_sum(latencies),
            exits=tuple(exits), delay_s=link.latency_s if link is not None and link.ideal else 0.0))
        if link is not None and not link.ideal:
            out.append(_link_station(link, blocks[fragment.last].output_bytes))
    if upload is not None and upload.ideal:  # a pure delay: where it is added does not matter
        out[0] = replace(out[0], delay_s=out[0].delay_s + upload.latency_s)
    return tuple(out)


def _link_station(link: Link, size_bytes: int) -> Station:
    """A non-ideal link carrying ``size_bytes`` per job."""
    return Station.trusted(name=link.name, capacity=link.capacity,  # type: ignore[arg-type]
                           service=Deterministic(link.transmission_time_s(size_bytes)),
                           exits=(), delay_s=link.latency_s)


def _sum(laws: list[ServiceLaw]) -> ServiceLaw:
    return laws[0] if len(laws) == 1 else Sum(tuple(laws))


def _matched_law(mean: float, scv: float) -> ServiceLaw:
    """A law with the given mean and SCV: gamma, or deterministic below the floor."""
    return Deterministic(mean) if scv < _SCV_FLOOR else Gamma(1.0 / scv, mean)


def _matched(station: Station) -> Station:
    """The station with each law replaced by its two-moment match."""
    def match(law: ServiceLaw) -> ServiceLaw:
        return _matched_law(law.mean, law.scv)
    return replace(station, service=match(station.service),
                   exits=tuple(replace(e, service=match(e.service)) for e in station.exits))


def _idle(station: Station) -> StationMetrics:
    return StationMetrics(name=station.name, kind="exact", method="idle", arrival_rate=0.0,
                          capacity=station.capacity, loss_probability=0.0, throughput=0.0,
                          utilization=0.0, mean_number=0.0,
                          mean_response_time=station.law.mean, mean_waiting_time=0.0)


def _solve(rate: float, scv_in: float, station: Station, station_method: StationMethod
           ) -> StationMetrics:
    """One station offered ``rate`` with input SCV ``scv_in`` (1: Poisson)."""
    law, capacity = station.law, station.capacity
    most = min(_MAX_PHASES, MAX_STATES // capacity)  # buffers over MAX_STATES / 2: M/G/1/K
    if scv_in < 1.0 and station_method == "exact" and most >= 2:
        return _erlang_input(rate, 1.0 / scv_in, most, law, capacity, station.name)
    if scv_in == 1.0:
        return mg1k(rate, law, capacity, station_method, name=station.name)
    # the matched law stands in for the input's variability: an approximation
    matched = _matched_law(law.mean, law.scv + scv_in - 1.0)
    return replace(mg1k(rate, matched, capacity, station_method, name=station.name),
                   kind="approximate")


def _erlang_input(rate: float, phases: float, most: int, law: ServiceLaw, capacity: int,
                  name: str) -> StationMetrics:
    """E_k/G/1/K with k = ``phases``: exact at an integer k up to ``most``; beyond it
    E_most; between integers, linear in k, so the metrics move continuously with
    the input's SCV."""
    nearest = round(phases)
    k = min(nearest if abs(phases - nearest) < 1e-9 else phases, most)
    low = int(k)
    share = k - low
    below = ekg1k(rate, low, law, capacity, name=name)
    if share == 0.0 and k == phases:
        return below
    above = below if share == 0.0 else ekg1k(rate, low + 1, law, capacity, name=name)

    def mix(a: float, b: float) -> float:
        return float((1.0 - share) * a + share * b)

    return replace(
        below, kind="approximate", method=f"erlang-{k:.3g}",
        loss_probability=mix(below.loss_probability, above.loss_probability),
        throughput=mix(below.throughput, above.throughput),
        utilization=mix(below.utilization, above.utilization),
        mean_number=mix(below.mean_number, above.mean_number),
        mean_response_time=mix(below.mean_response_time, above.mean_response_time),
        mean_waiting_time=mix(below.mean_waiting_time, above.mean_waiting_time),
        queue_length_distribution=tuple(
            mix(a, b) for a, b in zip(below.queue_length_distribution,
                                      above.queue_length_distribution)))


def _check_methods(owner: str, method: object, station_method: object) -> None:
    if method not in ("poisson", "two-moment"):
        raise v.fail(owner, "method", "one of 'poisson', 'two-moment'", method)
    if station_method not in ("exact", "mgs"):
        raise v.fail(owner, "station_method", "one of 'exact', 'mgs'", station_method)


def loss_chain(arrival_rate: float, stations: tuple[Station, ...] | list[Station], *,
               final_exit: str = "final", method: ChainMethod = "poisson",
               station_method: StationMethod = "exact", arrival_phases: int = 1) -> Metrics:
    """Per-station and end-to-end metrics of a loss chain fed by Poisson arrivals,
    or by Erlang-k renewal arrivals with ``arrival_phases`` = k > 1 (the first
    station then solved as an E_k/G/1/K).

    ``final_exit`` names where jobs that pass the last station complete.
    """
    rate = v.positive("loss_chain", "arrival_rate", arrival_rate)
    phases = v.integer("loss_chain", "arrival_phases", arrival_phases, low=1)
    chain = tuple(stations)
    if not chain or not all(isinstance(s, Station) for s in chain):
        raise v.fail("loss_chain", "stations", "a non-empty list of Station", stations)
    _check_methods("loss_chain", method, station_method)

    results: list[StationMetrics] = []
    exit_rates: dict[str, float] = {}
    exit_times: dict[str, float | None] = {}  # mean response of jobs leaving at each exit
    upstream: float | None = 0.0  # mean time spent in the stations already passed
    offered, scv_in = rate, 1.0 / phases
    for n, station in enumerate(chain):
        law = station.law
        if offered <= 0.0:
            m = _idle(station)
        else:
            # the Poisson method takes each input after the first as Poisson
            m = _solve(offered, scv_in if method == "two-moment" or n == 0 else 1.0, station,
                       station_method)
        results.append(m)
        wait = m.mean_waiting_time if station_method == "exact" else None
        leaving = list(station.exits)
        if n == len(chain) - 1:
            leaving.append(StationExit(name=final_exit, probability=station.pass_probability,
                                       service=station.service))
        for e in leaving:
            exit_rates[e.name] = exit_rates.get(e.name, 0.0) + m.throughput * e.probability
            exit_times[e.name] = None if upstream is None or wait is None else \
                upstream + wait + e.service.mean
        upstream = None if upstream is None or wait is None else \
            upstream + wait + station.service.mean + station.delay_s
        # QNA: departures mix input and service variability by utilisation; an exit
        # keeps each departure with probability q, which pulls the SCV towards 1.
        rho = m.utilization
        scv_out = rho**2 * law.scv + (1.0 - rho**2) * scv_in
        q = station.pass_probability
        offered, scv_in = m.throughput * q, q * scv_out + 1.0 - q

    completed = sum(exit_rates.values())
    times = [(exit_rates[e], t) for e, t in exit_times.items()]
    response = None if any(t is None for _, t in times) or completed == 0.0 else \
        sum(r * t for r, t in times) / completed  # type: ignore[operator]
    exact = len(chain) == 1 and results[0].kind == "exact"
    return Metrics(
        kind="exact" if exact else "approximate",
        method=f"{method}/{station_method}" if len(chain) > 1 else station_method,
        arrival_rate=rate, throughput=completed, loss_probability=1.0 - completed / rate,
        mean_response_time=response,
        exit_distribution={e: (r / completed if completed else 0.0) for e, r in exit_rates.items()},
        stations=tuple(results))


class DecompositionEvaluator:
    """The analytic evaluator: ``evaluate(system) -> Metrics`` by decomposition.

    With ``matched_laws``, every service law is first replaced by the gamma (or
    deterministic) law of the same mean and SCV: their arrival pmfs are closed
    forms, where sums of lognormals (profiled blocks) need numerical
    integration, so a placement search scores a chain far faster; on the
    testbed scenario the losses agree to 1e-4 relative (tested).
    """

    def __init__(self, method: ChainMethod = "poisson", station_method: StationMethod = "exact",
                 *, matched_laws: bool = False):
        _check_methods("DecompositionEvaluator", method, station_method)
        v.instance("DecompositionEvaluator", "matched_laws", matched_laws, bool, "True or False")
        self.method = method
        self.station_method = station_method
        self.matched_laws = matched_laws

    def supports(self, system: System) -> None:
        if len(system.chains) != 1:
            raise UnsupportedModelError(
                "DecompositionEvaluator supports a single chain only; simulate several chains "
                f"sharing devices with edgeperf.sim. Got {len(system.chains)} chains.")
        if not isinstance(system.workload.arrival, (PoissonArrivals, ErlangArrivals)):
            raise UnsupportedModelError(
                "DecompositionEvaluator supports Poisson and Erlang arrivals only. "
                f"Got {type(system.workload.arrival).__name__}.")
        multi = [d.name for d in system.devices if d.servers > 1]
        if multi:
            raise UnsupportedModelError(
                f"DecompositionEvaluator supports single-server devices only. Got servers > 1 on {multi}.")

    def evaluate(self, system: System) -> Metrics:
        self.supports(system)
        stations = stations_of(system)
        if self.matched_laws:
            stations = tuple(_matched(s) for s in stations)
        return loss_chain(system.arrival_rate, stations,
                          final_exit=system.model.blocks[-1].name, method=self.method,
                          station_method=self.station_method,
                          arrival_phases=getattr(system.workload.arrival, "phases", 1))
