"""The reference simulator against exact results, within 95% confidence intervals."""

import re

import pytest

from edgeperf.dists import Deterministic, Exponential, Gamma, Lognormal
from edgeperf.exceptions import InvalidParameterError
from edgeperf.queueing import Station, StationExit, ekg1k, loss_chain, mg1k
from edgeperf.sim import replicate_chain, simulate_chain, simulate_station


def inside(estimate: float, half: float, exact: float) -> bool:
    return abs(estimate - exact) <= half


@pytest.mark.parametrize("law, rate, k", [(Gamma(4, 0.03), 30.0, 3), (Exponential(0.05), 25.0, 4),
                                          (Lognormal(0.02, 3.0), 60.0, 6)], ids=["E4", "M", "LN"])
def test_single_station_matches_exact_mg1k(law, rate, k):
    sim = replicate_chain(rate, [Station(name="s", capacity=k, service=law)], replications=10,
                          n_jobs=40_000, seed=11)
    exact = mg1k(rate, law, k)
    hw = sim.half_widths
    assert inside(sim.loss_probability, hw["loss_probability"], exact.loss_probability)
    assert inside(sim.mean_response_time, hw["mean_response_time"], exact.mean_response_time)
    assert inside(sim.throughput, hw["throughput"], exact.throughput)


@pytest.mark.parametrize("law, rate, k, phases", [(Deterministic(0.1), 9.5, 2, 4),
                                                  (Gamma(2, 0.1), 12.0, 3, 3),
                                                  (Lognormal(0.05, 2.0), 18.0, 4, 8)],
                         ids=["E4/D", "E3/E2", "E8/LN"])
def test_erlang_arrivals_match_exact_ekg1k(law, rate, k, phases):
    sim = simulate_station(rate, law, k, phases=phases, replications=10, jobs=40_000, seed=11)
    exact, row, hw = ekg1k(rate, phases, law, k), sim.stations[0], sim.half_widths
    for field in ("loss_probability", "mean_response_time", "throughput"):
        assert inside(getattr(row, field), hw[f"{field}[station]"], getattr(exact, field)), field


def test_reference_simulator_takes_erlang_arrivals():
    law = Gamma(2, 0.1)
    stations = [Station(name="s", capacity=3, service=law)]
    sim = replicate_chain(12.0, stations, replications=10, n_jobs=40_000, seed=3,
                          arrival_phases=3)
    exact = ekg1k(12.0, 3, law, 3)
    hw = sim.half_widths
    assert inside(sim.loss_probability, hw["loss_probability"], exact.loss_probability)
    assert inside(sim.mean_response_time, hw["mean_response_time"], exact.mean_response_time)


def test_jackson_tandem_with_exit_matches_closed_form():
    rate, q = 4.0, 0.25
    stations = [Station(name="a", capacity=60, service=Exponential(0.1),
                        exits=(StationExit(name="early", probability=q, service=Exponential(0.1)),)),
                Station(name="b", capacity=60, service=Exponential(0.2))]
    sim = replicate_chain(rate, stations, replications=10, n_jobs=40_000, seed=5)
    exact = loss_chain(rate, stations)
    assert inside(sim.mean_response_time, sim.half_widths["mean_response_time"],
                  exact.mean_response_time)


def test_conservation_and_exit_shares():
    stations = [Station(name="a", capacity=2, service=Exponential(0.1),
                        exits=(StationExit(name="early", probability=0.4, service=Exponential(0.1)),)),
                Station(name="b", capacity=1, service=Exponential(0.2))]
    run = simulate_chain(9.0, stations, n_jobs=20_000, seed=2)
    a, b = run.stations
    # Rates are counts of the same measured jobs over the same window, so these are
    # identities: accepted at a = left early + passed to b; accepted at b = final.
    early, final = (run.throughput * run.exit_distribution[e] for e in ("early", "final"))
    assert a.throughput == pytest.approx(early + b.arrival_rate, rel=1e-12)
    assert b.throughput == pytest.approx(final, rel=1e-12)
    # offered at a (measured jobs) = completed + lost anywhere
    lost = a.arrival_rate * a.loss_probability + b.arrival_rate * b.loss_probability
    assert a.arrival_rate == pytest.approx(run.throughput + lost, rel=1e-12)
    assert 0 < run.loss_probability < 1


def test_same_seed_same_result():
    stations = [Station(name="a", capacity=2, service=Gamma(2, 0.1))]
    assert simulate_chain(9.0, stations, n_jobs=5000, seed=4) == \
        simulate_chain(9.0, stations, n_jobs=5000, seed=4)


@pytest.mark.parametrize("call, message", [
    (lambda s: simulate_chain(9.0, [], n_jobs=100),  # returned a loss of 1 with no station
     "The 'stations' parameter of simulate_chain must be a non-empty list of Station. Got []."),
    (lambda s: simulate_chain(9.0, [1], n_jobs=100),
     "The 'stations' parameter of simulate_chain must be a non-empty list of Station. Got [1]."),
    (lambda s: simulate_chain(9.0, s, n_jobs=100, seed=None),  # a fresh seed every time
     "The 'seed' parameter of simulate_chain must be an int from 0 to 2**64 - 1. Got None."),
    (lambda s: simulate_chain(9.0, s, n_jobs=100, final_exit=""),
     "The 'final_exit' parameter of simulate_chain must be a non-empty string. Got ''."),
    (lambda s: replicate_chain(9.0, s, n_jobs=100, seed="a"),
     "The 'seed' parameter of replicate_chain must be an int from 0 to 2**64 - 1. Got 'a'."),
    (lambda s: simulate_station(9.0, Gamma(2, 0.1), 3, jobs=1000, name=None),
     "The 'name' parameter of simulate_station must be a non-empty string. Got None."),
])
def test_bad_arguments_get_one_clear_message(call, message):
    stations = [Station(name="a", capacity=2, service=Gamma(2, 0.1))]
    with pytest.raises(InvalidParameterError, match="^" + re.escape(message) + "$"):
        call(stations)
