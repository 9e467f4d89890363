"""The E_k/G/1/K station: the M/G/1/K at k = 1, an exact CTMC for Erlang service,
the D/D/1 limit, errors."""

import re

import numpy as np
import pytest

from edgeperf.dists import Deterministic, Exponential, Gamma, Lognormal
from edgeperf.exceptions import InvalidParameterError
from edgeperf.queueing import ekg1k, mg1k

LAWS = [Exponential(0.1), Deterministic(0.1), Gamma(0.5, 0.1), Lognormal(0.1, 0.5)]


@pytest.mark.parametrize("law", LAWS, ids=lambda law: type(law).__name__)
@pytest.mark.parametrize("rate,capacity", [(5.0, 3), (9.0, 5), (15.0, 4), (2.0, 1), (40.0, 6)])
def test_one_phase_is_the_mg1k(law, rate, capacity):
    exact, erlang = mg1k(rate, law, capacity), ekg1k(rate, 1, law, capacity)
    assert erlang.loss_probability == pytest.approx(exact.loss_probability, rel=1e-9, abs=1e-13)
    for field in ("throughput", "utilization", "mean_number", "mean_response_time",
                  "mean_waiting_time"):
        assert getattr(erlang, field) == pytest.approx(getattr(exact, field), rel=1e-9), field
    np.testing.assert_allclose(erlang.queue_length_distribution,
                               exact.queue_length_distribution, rtol=0, atol=1e-12)


def _ctmc(rate: float, phases: int, mean: float, stages: int, capacity: int):
    """E_k/E_r/1/K solved as a continuous-time Markov chain on (jobs, arrival phase,
    service stage): loss, time-average law of the jobs."""
    def index(n, a, s):
        return (n * phases + a) * stages + s
    size = (capacity + 1) * phases * stages
    q = np.zeros((size, size))
    for n in range(capacity + 1):
        for a in range(phases):
            for s in range(stages):
                here = index(n, a, s)
                if a + 1 < phases:
                    q[here, index(n, a + 1, s)] += phases * rate
                elif n < capacity:  # an arrival; an idle server starts at stage 0
                    q[here, index(n + 1, 0, s if n else 0)] += phases * rate
                else:  # refused
                    q[here, index(n, 0, s)] += phases * rate
                if n and s + 1 < stages:
                    q[here, index(n, a, s + 1)] += stages / mean
                elif n:
                    q[here, index(n - 1, a, 0)] += stages / mean
    np.fill_diagonal(q, -q.sum(1))
    system = q.T.copy()
    system[-1] = 1.0
    p = np.linalg.solve(system, np.eye(size)[-1]).reshape(capacity + 1, phases, stages)
    refused = p[capacity, phases - 1].sum() * phases  # arrival rate from the last phase, full
    return refused, p.sum((1, 2))


@pytest.mark.parametrize("phases,stages,rate,capacity", [
    (2, 1, 8.0, 3), (3, 2, 9.0, 4), (4, 4, 12.0, 2), (6, 3, 7.0, 5), (3, 5, 20.0, 3),
    (5, 2, 10.0, 1)])
def test_erlang_service_against_the_exact_ctmc(phases, stages, rate, capacity):
    mean = 0.1
    loss, law = _ctmc(rate, phases, mean, stages, capacity)
    m = ekg1k(rate, phases, Gamma(stages, mean), capacity)
    assert m.loss_probability == pytest.approx(loss, rel=1e-9)
    np.testing.assert_allclose(m.queue_length_distribution, law, rtol=1e-9, atol=1e-13)
    number = float(np.arange(capacity + 1) @ law)
    assert m.mean_number == pytest.approx(number, rel=1e-9)
    assert m.mean_response_time == pytest.approx(number / (rate * (1 - loss)), rel=1e-9)
    assert m.mean_waiting_time == pytest.approx(m.mean_response_time - mean, rel=1e-9)
    assert m.utilization == pytest.approx(rate * (1 - loss) * mean, rel=1e-9)


def test_smoother_arrivals_lose_less_and_tend_to_dd1():
    # deterministic service at load 0.9: as the gaps tend to constants, no job
    # ever waits and none is lost (D/D/1)
    runs = [ekg1k(9.0, k, Deterministic(0.1), 3) for k in (1, 2, 4, 8, 32, 128)]
    for field in ("loss_probability", "mean_waiting_time"):
        values = [getattr(m, field) for m in runs]
        assert all(a > b for a, b in zip(values, values[1:])), field
    assert runs[-1].loss_probability < 1e-30
    assert runs[-1].mean_waiting_time < 0.01 * 0.1  # gaps' SD 0.1/sqrt(128) s


def test_arrivals_do_not_see_time_averages():
    # E_4/D/1/2 near load 1: the buffer is full often, but an arrival rarely finds it so
    m = ekg1k(9.5, 4, Deterministic(0.1), 2)
    assert m.loss_probability < 0.5 * m.queue_length_distribution[-1]


@pytest.mark.parametrize("call,match", [
    (lambda: ekg1k(0.0, 2, Exponential(1.0), 3),
     "The 'arrival_rate' parameter of ekg1k must be a finite number > 0. Got 0.0."),
    (lambda: ekg1k(1.0, 0, Exponential(1.0), 3),
     "The 'phases' parameter of ekg1k must be an int >= 1. Got 0."),
    (lambda: ekg1k(1.0, 2.0, Exponential(1.0), 3),
     "The 'phases' parameter of ekg1k must be an int >= 1. Got 2.0."),
    (lambda: ekg1k(1.0, 2, Exponential(1.0), 0),
     "The 'capacity' parameter of ekg1k must be an int >= 1. Got 0."),
    (lambda: ekg1k(1.0, 2, 0.1, 3),
     "The 'service' parameter of ekg1k must be a service law from edgeperf.dists. "
     "Got 0.1."),
    (lambda: ekg1k(1.0, 100, Exponential(1.0), 50),
     "The 'phases' parameter of ekg1k must be at most 4096 // capacity (81) for capacity 50: "
     "the chain has phases x capacity states. Got 100."),
])
def test_errors(call, match):
    with pytest.raises(InvalidParameterError, match=re.escape(match)):
        call()
