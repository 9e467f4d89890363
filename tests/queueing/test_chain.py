"""Loss chains by decomposition: exact cases, conservation, scenario mapping, errors."""

import re
from dataclasses import replace
from pathlib import Path

import pytest

from edgeperf.dists import Deterministic, Exponential, Gamma, Mixture, Sum
from edgeperf.exceptions import InvalidParameterError
from edgeperf.io import load_scenario
from edgeperf.model import ErlangArrivals, Workload
from edgeperf.queueing import (DecompositionEvaluator, Station, StationExit, ekg1k, loss_chain,
                               mg1k, stations_by_chain, stations_of)

SCENARIOS = Path(__file__).parents[2] / "examples" / "scenarios"
EXAMPLE = SCENARIOS / "pi_server.yaml"
METHODS = ["poisson", "two-moment"]


def test_single_station_is_the_exact_mg1k():
    law = Gamma(4, 0.03)
    chain = loss_chain(30.0, [Station(name="pi", capacity=5, service=law)])
    single = mg1k(30.0, law, 5)
    assert chain.kind == "exact"
    assert chain.loss_probability == pytest.approx(single.loss_probability, abs=1e-15)
    assert chain.mean_response_time == pytest.approx(single.mean_response_time, rel=1e-14)
    assert chain.exit_distribution == {"final": 1.0}


@pytest.mark.parametrize("method", METHODS)
def test_jackson_tandem_with_exit_is_exact(method):
    # Exponential stations with room to spare: Burke's theorem makes every input
    # Poisson (random exits thin Poisson into Poisson), so the decomposition is
    # exact and the mean response is the sum of M/M/1 sojourns.
    rate, q = 4.0, 0.25
    stations = [
        Station(name="a", capacity=120, service=Exponential(0.1),
                exits=(StationExit(name="early", probability=q, service=Exponential(0.1)),)),
        Station(name="b", capacity=120, service=Exponential(0.2)),
    ]
    m = loss_chain(rate, stations, method=method)
    sojourn_a, sojourn_b = 1 / (10 - rate), 1 / (5 - rate * (1 - q))
    expected = q * sojourn_a + (1 - q) * (sojourn_a + sojourn_b)
    assert m.loss_probability == pytest.approx(0.0, abs=1e-14)
    assert m.mean_response_time == pytest.approx(expected, rel=1e-12)
    assert m.exit_distribution == pytest.approx({"early": q, "final": 1 - q}, abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_conservation(method):
    system = load_scenario(EXAMPLE)
    m = DecompositionEvaluator(method).evaluate(system)
    stations = stations_of(system)
    lost = sum(s.arrival_rate * s.loss_probability for s in m.stations)
    assert m.throughput + lost == pytest.approx(system.arrival_rate, rel=1e-12)
    for s in m.stations:
        assert s.throughput == pytest.approx(s.arrival_rate * (1 - s.loss_probability), rel=1e-12)
    for up, down, station in zip(m.stations, m.stations[1:], stations):
        assert down.arrival_rate == pytest.approx(up.throughput * station.pass_probability,
                                                  rel=1e-12)
    assert sum(m.exit_distribution.values()) == pytest.approx(1.0, abs=1e-12)
    assert m.loss_probability == pytest.approx(1 - m.throughput / system.arrival_rate, abs=1e-15)


def test_two_moment_solves_a_smooth_input_as_erlang_arrivals():
    # a deterministic device's departures have SCV 1 - rho² (QNA, Poisson input):
    # the server after it is an E_k/G/1/K, k = 1 / (1 - rho²), linear in k
    # between the integers around it
    server = Gamma(2, 0.08)
    stations = [Station(name="device", capacity=3, service=Deterministic(0.1)),
                Station(name="server", capacity=2, service=server)]
    first, second = loss_chain(9.0, stations, method="two-moment").stations
    phases = 1.0 / (1.0 - first.utilization**2)
    low, share = int(phases), phases - int(phases)
    assert 0.0 < share < 1.0
    below, above = (ekg1k(first.throughput, k, server, 2) for k in (low, low + 1))
    for field in ("loss_probability", "mean_waiting_time", "utilization"):
        expected = (1 - share) * getattr(below, field) + share * getattr(above, field)
        assert getattr(second, field) == pytest.approx(expected, rel=1e-12), field
    assert (second.kind, second.method) == ("approximate", f"erlang-{phases:.3g}")
    assert sum(second.queue_length_distribution) == pytest.approx(1.0, abs=1e-12)
    poisson = loss_chain(9.0, stations).stations[1]
    assert second.loss_probability < poisson.loss_probability  # smoother input, fewer refused


def test_two_moment_smooth_input_limits():
    # below SCV 1/32 the input is taken as E_32; a buffer beyond MAX_STATES / 2
    # (the chain would be too large) keeps the matched M/G/1/K
    device = Station(name="device", capacity=50, service=Deterministic(0.1))
    rate = 9.95  # the device is busy 99% of the time: its departures are nearly even
    near_even = loss_chain(rate, [device, Station(name="s", capacity=4, service=Gamma(2, 0.05))],
                           method="two-moment").stations
    assert near_even[1].method == "erlang-32"
    huge = loss_chain(rate, [device, Station(name="s", capacity=3000, service=Gamma(2, 0.05))],
                      method="two-moment").stations[1]
    assert (huge.kind, huge.method) == ("approximate", "exact")
    # mgs gives no waiting time, so it keeps the matched law too
    mgs = loss_chain(rate, [device, Station(name="s", capacity=4, service=Gamma(2, 0.05))],
                     method="two-moment", station_method="mgs").stations[1]
    assert mgs.method == "mgs"


def test_erlang_arrivals_solve_the_first_station_exactly():
    law = Gamma(4, 0.03)
    one = loss_chain(26.0, [Station(name="pi", capacity=5, service=law)], arrival_phases=8)
    assert one.kind == "exact"
    assert one.stations[0] == ekg1k(26.0, 8, law, 5, name="pi")
    assert one.loss_probability == pytest.approx(one.stations[0].loss_probability, rel=1e-12)

    system = load_scenario(EXAMPLE)
    erlang = replace(system, chains=(replace(system.chains[0], workload=Workload(
        arrival=ErlangArrivals(rate=26.0, phases=8))),))
    stations = stations_of(erlang)
    poisson, two = (DecompositionEvaluator(m).evaluate(erlang) for m in METHODS)
    first = ekg1k(26.0, 8, stations[0].law, stations[0].capacity, name="pi")
    assert poisson.stations[0] == two.stations[0] == first
    # downstream, the Poisson method takes the input as Poisson; the two-moment one
    # carries the SCV 1/8 on through the Pi's departures (smoother than Poisson)
    assert poisson.stations[1].method == "exact"
    assert two.stations[1].method.startswith("erlang-")
    assert loss_chain(26.0, stations, arrival_phases=8).loss_probability == \
        poisson.loss_probability


def test_stations_of_example():
    pi, link, server = stations_of(load_scenario(EXAMPLE))
    assert [pi.name, link.name, server.name] == ["pi", "pi->server", "server"]
    assert [pi.capacity, link.capacity, server.capacity] == [5, 10, 10]
    assert pi.service.mean == pytest.approx(0.030, rel=1e-12)  # b0 + b1 at speed 1
    assert [(e.name, e.probability) for e in pi.exits] == [("b1", 0.3)]
    assert link.service == Deterministic(65536 * 8 / 20e6) and link.delay_s == 0.005
    assert server.service.mean == pytest.approx(0.030 / 4, rel=1e-12)  # speed 4


@pytest.mark.parametrize("scenario", ["pi_server.yaml", "shared_edge.yaml"])
def test_stations_by_chain_are_stations_of_each_chain(scenario):
    system = load_scenario(SCENARIOS / scenario)
    routes = stations_by_chain(system)
    assert list(routes) == [c.name for c in system.chains]
    for chain in system.chains:
        assert routes[chain.name] == stations_of(system, chain.name)
        for station in routes[chain.name]:  # built unchecked, equal to a checked one
            assert station == Station(name=station.name, capacity=station.capacity,
                                      service=station.service, exits=station.exits,
                                      delay_s=station.delay_s)


def test_exits_inside_a_fragment_compound():
    # Two exits on one device: 0.5 leave at x1, then 0.5 of the rest at x2.
    laws = [Deterministic(0.01), Deterministic(0.02), Deterministic(0.03)]
    station = Station(name="d", capacity=3, service=Sum(tuple(laws)), exits=(
        StationExit(name="x1", probability=0.5, service=laws[0]),
        StationExit(name="x2", probability=0.25, service=Sum(tuple(laws[:2])))))
    assert station.pass_probability == 0.25
    law = station.law
    assert isinstance(law, Mixture) and law.mean == pytest.approx(0.5 * 0.01 + 0.25 * 0.03 + 0.25 * 0.06)


def test_mgs_station_method_has_no_response_time():
    m = DecompositionEvaluator("poisson", "mgs").evaluate(load_scenario(EXAMPLE))
    assert m.kind == "approximate" and m.mean_response_time is None
    assert 0 < m.loss_probability < 1


def test_idle_station_after_certain_exit():
    stations = [Station(name="a", capacity=2, service=Exponential(0.1),
                        exits=(StationExit(name="all", probability=1.0, service=Exponential(0.1)),)),
                Station(name="b", capacity=2, service=Exponential(0.1))]
    m = loss_chain(3.0, stations)
    assert m.stations[1].arrival_rate == 0.0 and m.stations[1].utilization == 0.0
    assert m.exit_distribution["all"] == pytest.approx(1.0)


@pytest.mark.parametrize("call, match", [
    (lambda: loss_chain(1.0, []), "The 'stations' parameter of loss_chain must be a non-empty list of Station. Got []."),
    (lambda: loss_chain(0.0, [Station(name="a", capacity=1, service=Exponential(1.0))]),
     "The 'arrival_rate' parameter of loss_chain must be a finite number > 0. Got 0.0."),
    (lambda: loss_chain(1.0, [Station(name="a", capacity=1, service=Exponential(1.0))], method="x"),
     "The 'method' parameter of loss_chain must be one of 'poisson', 'two-moment'. Got 'x'."),
    (lambda: loss_chain(1.0, [Station(name="a", capacity=1, service=Exponential(1.0))], station_method="x"),
     "The 'station_method' parameter of loss_chain must be one of 'exact', 'mgs'. Got 'x'."),
    (lambda: loss_chain(1.0, [Station(name="a", capacity=1, service=Exponential(1.0))],
                        arrival_phases=0),
     "The 'arrival_phases' parameter of loss_chain must be an int >= 1. Got 0."),
    (lambda: Station(name="a", capacity=0, service=Exponential(1.0)),
     "The 'capacity' parameter of Station must be an int >= 1. Got 0."),
    (lambda: Station(name="a", capacity=1, service=Exponential(1.0), exits=(
        StationExit(name="x", probability=0.7, service=Exponential(1.0)),
        StationExit(name="y", probability=0.7, service=Exponential(1.0)))),
     "The 'exits' parameter of Station must be exit probabilities summing to at most 1. Got 1.4"),
    (lambda: StationExit(name="x", probability=1.5, service=Exponential(1.0)),
     "The 'probability' parameter of StationExit must be a finite number >= 0 and <= 1. Got 1.5."),
    (lambda: Station(name="a", capacity=1, service=Exponential(1.0), delay_s=-1.0),
     "The 'delay_s' parameter of Station must be a finite number >= 0. Got -1.0."),
    (lambda: DecompositionEvaluator(method="x"),
     "The 'method' parameter of DecompositionEvaluator must be one of 'poisson', "
     "'two-moment'. Got 'x'."),
    (lambda: DecompositionEvaluator(station_method="x"),
     "The 'station_method' parameter of DecompositionEvaluator must be one of 'exact', "
     "'mgs'. Got 'x'."),
    (lambda: DecompositionEvaluator(matched_laws="no"),
     "The 'matched_laws' parameter of DecompositionEvaluator must be True or False. Got 'str'."),
    (lambda: stations_of(None), "The 'system' parameter of stations_of must be a System. Got None."),
    (lambda: stations_by_chain({}), "The 'system' parameter of stations_by_chain must be a System. Got 'dict'."),
])
def test_errors(call, match):
    with pytest.raises(InvalidParameterError, match=re.escape(match)):
        call()
