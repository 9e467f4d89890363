"""Exact M/G/1/K against closed forms and limits; MacGregor Smith; invariants; errors."""

import math
import re
import time

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeperf.dists import Deterministic, Exponential, Gamma, Lognormal, Mixture
from edgeperf.exceptions import InvalidParameterError
from edgeperf.queueing import departure_distribution, mg1k, mgs_loss


def mm1k_loss(rho: float, k: int) -> float:
    return 1.0 / (k + 1) if rho == 1.0 else (1 - rho) * rho**k / (1 - rho ** (k + 1))


@pytest.mark.parametrize("rate", [0.3, 0.8, 1.0, 1.5, 4.0])
@pytest.mark.parametrize("k", [1, 2, 5, 30, 100])
def test_mm1k_closed_form_to_1e12(rate, k):
    r = mg1k(rate, Exponential(1.0), k)
    assert r.kind == "exact"
    assert abs(r.loss_probability - mm1k_loss(rate, k)) < 1e-12
    rho = rate
    p = np.array([rho**j for j in range(k + 1)])
    np.testing.assert_allclose(r.queue_length_distribution, p / p.sum(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("rate", [1e-20, 1e-9, 1e-3])
@pytest.mark.parametrize("k", [1, 2, 3, 10])
def test_mm1k_light_load_keeps_every_digit(rate, k):
    # At light load the loss (~rho^K) and the waiting are far below 1e-16: they
    # must come out to full relative precision, not rounded to 0.
    r = mg1k(rate, Exponential(1.0), k)
    weights = rate ** np.arange(k + 1)
    assert r.loss_probability == pytest.approx(weights[-1] / weights.sum(), rel=1e-12, abs=0.0)
    np.testing.assert_allclose(r.queue_length_distribution, weights / weights.sum(), rtol=1e-12)
    waiting = (np.arange(k) @ weights[1:]) / weights.sum()
    assert r.mean_waiting_time * r.throughput == pytest.approx(waiting, rel=1e-12, abs=0.0)
    assert r.utilization == pytest.approx(weights[1:].sum() / weights.sum(), rel=1e-14, abs=0.0)


def mp_arrival_pmf(law, rate: mpmath.mpf, n: int) -> list:
    """a_0..a_{n-1} in mpmath for deterministic and gamma service (exponential: shape 1)."""
    if isinstance(law, Deterministic):
        x = rate * mpmath.mpf(law.value)
        return [mpmath.exp(-x) * x**j / mpmath.factorial(j) for j in range(n)]
    k = mpmath.mpf(1) if isinstance(law, Exponential) else mpmath.mpf(law.shape)
    x = rate * mpmath.mpf(law.mean) / k
    return [mpmath.gamma(j + k) / (mpmath.gamma(k) * mpmath.factorial(j))
            * (1 + x) ** -k * (x / (1 + x)) ** j for j in range(n)]


def mp_mg1k(rate: float, law, k: int) -> tuple[float, float, float]:
    """Loss, response and waiting time of the exact chain, solved in 60 digits."""
    with mpmath.workdps(60):
        lam = mpmath.mpf(rate)
        a = mp_arrival_pmf(law, lam, k + 300)
        rho = lam * mpmath.mpf(law.mean)
        # 60 digits resolve 1 - P(A <= j) down to 1e-30; below that the series converges fast
        tail = []
        for j in range(k):
            head = 1 - mpmath.fsum(a[: j + 1])
            tail.append(head if head > mpmath.mpf("1e-30") else mpmath.fsum(a[j + 1:]))
        pi = [mpmath.mpf(1)]
        for j in range(1, k):
            pi.append((pi[0] * tail[j - 1] + mpmath.fsum(pi[i] * tail[j - i] for i in range(1, j)))
                      / a[0])
        total = mpmath.fsum(pi)
        norm = pi[0] / total + rho
        p = [x / total / norm for x in pi] + [1 - 1 / norm]
        throughput = lam * (1 - p[-1])
        number = mpmath.fsum(j * x for j, x in enumerate(p))
        waiting = mpmath.fsum((j - 1) * x for j, x in enumerate(p) if j > 0)
        return float(p[-1]), float(number / throughput), float(waiting / throughput)


@pytest.mark.parametrize("law", [Deterministic(1.0), Exponential(1.0), Gamma(3.0, 1.0),
                                 Gamma(0.5, 1.0), Gamma(0.2, 1.0)],
                         ids=["D", "M", "E3", "G0.5", "G0.2"])
@pytest.mark.parametrize("rate", [1e-20, 1e-6, 0.1, 0.3, 1.0, 5.0])
@pytest.mark.parametrize("k", [1, 2, 5, 20, 40])
def test_exact_against_a_60_digit_solution(law, rate, k):
    # Every result to its relative precision, from the load of an idle server to
    # overload, but for a loss that needs the mass of arrival counts beyond the
    # computed terms: 1 - sum(a) resolves that mass to a few ulps, hence ~1e-14 rho.
    # Losses below 1e-50 are past what 60 digits resolve.
    loss, response, waiting = mp_mg1k(rate, law, k)
    r = mg1k(rate, law, k)
    if loss > 1e-50:
        assert r.loss_probability == pytest.approx(loss, rel=1e-11, abs=1e-14 * rate * law.mean)
    assert r.mean_response_time == pytest.approx(response, rel=1e-12, abs=0.0)
    assert r.mean_waiting_time == pytest.approx(waiting, rel=1e-12, abs=0.0)


def test_a_small_loss_at_a_large_capacity_keeps_its_digits():
    # benchmarks/mg1k.py's Erlang-4 case: a loss of 6e-9, where 1 - 1/(pi_0 + rho) kept
    # only the first five digits
    loss = mp_mg1k(0.9, Gamma(4, 1.0), 100)[0]
    r = mg1k(0.9, Gamma(4, 1.0), 100)
    assert r.loss_probability == pytest.approx(loss, rel=1e-12, abs=0.0)


@pytest.mark.parametrize("law", [Deterministic(0.5), Gamma(3, 0.5), Lognormal(0.5, 3.0),
                                 Mixture((Exponential(0.25), Deterministic(1.0)), (2 / 3, 1 / 3))],
                         ids=["D", "E3", "LN", "mix"])
@pytest.mark.parametrize("rho", [1e-20, 1e-12])
def test_light_load_tends_to_an_idle_server(law, rho):
    # As rho -> 0 an arrival finds the server idle, and it waits only for a job that
    # arrived just before it: W = lambda E[S²] / 2 (1 + O(rho)) (Pollaczek-Khinchine).
    rate = rho / law.mean
    r = mg1k(rate, law, 4)
    waiting = rate * law.second_moment / 2
    assert r.mean_waiting_time == pytest.approx(waiting, rel=10 * rho + 1e-12, abs=0.0)
    assert r.mean_response_time == pytest.approx(law.mean + waiting, rel=1e-13, abs=0.0)
    assert r.utilization == pytest.approx(rho, rel=1e-14, abs=0.0)
    assert 0.0 < r.loss_probability < rho**3  # a loss needs K = 4 jobs present: O(rho^4)


@pytest.mark.parametrize("law", [Deterministic(0.5), Gamma(3, 0.5), Lognormal(0.5, 3.0)],
                         ids=["D", "E3", "LN"])
def test_capacity_one_is_insensitive(law):
    # M/G/1/1 (Erlang loss with one server): loss = rho / (1 + rho) whatever the law.
    for rate in (1.7, 1e-20):
        rho = rate * law.mean
        assert mg1k(rate, law, 1).loss_probability == pytest.approx(rho / (1 + rho), rel=1e-14,
                                                                        abs=0.0)


@pytest.mark.parametrize("rho", [0.2, 1.0, 3.0])
def test_md12_closed_form(rho):
    # K = 2: pi_0 = a_0 = exp(-rho) for deterministic service, loss = 1 - 1/(pi_0 + rho).
    r = mg1k(rho, Deterministic(1.0), 2)
    assert r.loss_probability == pytest.approx(1 - 1 / (math.exp(-rho) + rho), abs=1e-14)


@pytest.mark.parametrize("law", [Deterministic(1.0), Gamma(4, 1.0), Exponential(1.0),
                                 Mixture((Exponential(0.5), Deterministic(2.0)), (2 / 3, 1 / 3))],
                         ids=["D", "E4", "M", "mix"])
def test_large_k_tends_to_pollaczek_khinchine(law):
    # For rho < 1 and K large the M/G/1/K is the M/G/1: L = rho + rho² (1 + SCV) / (2 (1 - rho)).
    rate = 0.5 / law.mean
    r = mg1k(rate, law, 300)
    rho = 0.5
    expected = rho + rho**2 * (1 + law.scv) / (2 * (1 - rho))
    assert r.mean_number == pytest.approx(expected, rel=1e-9)
    assert r.loss_probability < 1e-14


@pytest.mark.parametrize("law", [Deterministic(1.0), Gamma(2.5, 1.0), Exponential(1.0)],
                         ids=["D", "G2.5", "M"])
def test_overload_loss_tends_to_one_minus_one_over_rho(law):
    r = mg1k(2.0, law, 200)
    assert r.loss_probability == pytest.approx(0.5, abs=1e-12)
    assert r.utilization == pytest.approx(1.0, abs=1e-12)


def test_extreme_overload_stays_finite():
    r = mg1k(600.0, Deterministic(1.0), 80)  # a_0 = exp(-600): rescaling keeps the chain finite
    assert r.loss_probability == pytest.approx(1 - 1 / 600, rel=1e-12)


def test_response_time_and_little():
    r = mg1k(25.0, Gamma(4, 0.03), 8)
    assert r.mean_response_time == pytest.approx(r.mean_number / r.throughput, rel=1e-14)
    assert r.mean_waiting_time == pytest.approx(r.mean_response_time - 0.03, rel=1e-14)


def test_mgs_is_exact_for_exponential_and_continuous_at_rho_one():
    for rho in (0.4, 1.0, 2.5):
        for k in (1, 4, 20):
            assert mgs_loss(rho, 1.0, k) == pytest.approx(mm1k_loss(rho, k), abs=1e-13)
    for scv in (0.0, 0.25, 3.0):
        at_one = mgs_loss(1.0, scv, 6)
        assert mgs_loss(1.0 + 1e-7, scv, 6) == pytest.approx(at_one, abs=1e-6)
        assert mgs_loss(1.0 - 1e-7, scv, 6) == pytest.approx(at_one, abs=1e-6)


def test_mgs_method_gives_loss_and_what_follows_only():
    r = mg1k(30.0, Gamma(4, 0.03), 5, method="mgs")
    assert r.kind == "approximate" and r.method == "mgs"
    assert r.throughput == pytest.approx(30.0 * (1 - r.loss_probability), rel=1e-14)
    assert r.mean_number is None and r.mean_response_time is None
    exact = mg1k(30.0, Gamma(4, 0.03), 5).loss_probability
    assert 0 < abs(r.loss_probability - exact) < 0.01  # an approximation, close but not equal


def test_one_solve_with_24_component_mixture_is_well_under_a_millisecond():
    law = Mixture(tuple(Gamma(2 + i % 3, 0.01 * (i + 1)) for i in range(24)), (1 / 24,) * 24)
    mg1k(5.0, law, 100)
    times = []
    for _ in range(50):
        t = time.perf_counter()
        mg1k(5.0, law, 100)
        times.append(time.perf_counter() - t)
    assert np.median(times) < 1e-3


laws = st.one_of(
    st.builds(Deterministic, st.floats(0.01, 2.0)),
    st.builds(Exponential, st.floats(0.01, 2.0)),
    st.builds(Gamma, st.floats(0.2, 20.0), st.floats(0.01, 2.0)),
    st.builds(lambda a, b, w: Mixture((Exponential(a), Deterministic(b)), (w, 1 - w)),
              st.floats(0.01, 2.0), st.floats(0.01, 2.0), st.floats(0.0, 1.0)),
)


@settings(max_examples=150, deadline=None)
@given(law=laws, rate=st.floats(0.01, 10.0), k=st.integers(1, 40))
def test_invariants(law, rate, k):
    r = mg1k(rate, law, k)
    s = mg1k(rate, law, k + 1)
    assert 0.0 <= r.loss_probability <= 1.0
    assert s.loss_probability <= r.loss_probability + 1e-12  # non-increasing in K
    assert r.throughput == pytest.approx(rate * (1 - r.loss_probability), rel=1e-12)
    assert r.utilization == pytest.approx(r.throughput * law.mean, rel=1e-9, abs=1e-12)
    assert sum(r.queue_length_distribution) == pytest.approx(1.0, abs=1e-12)
    assert min(r.queue_length_distribution) >= 0.0


@pytest.mark.parametrize("call, match", [
    (lambda: mg1k(1.0, Exponential(1.0), 0), "The 'capacity' parameter of mg1k must be an int >= 1. Got 0."),
    (lambda: mg1k(1.0, Exponential(1.0), 2.0), "The 'capacity' parameter of mg1k must be an int >= 1. Got 2.0."),
    (lambda: mg1k(-1.0, Exponential(1.0), 3), "The 'arrival_rate' parameter of mg1k must be a finite number > 0. Got -1.0."),
    (lambda: mg1k(1.0, 0.5, 3), "The 'service' parameter of mg1k must be a service law from edgeperf.dists. Got 0.5."),
    (lambda: mg1k(1.0, Exponential(1.0), 3, method="magic"), "The 'method' parameter of mg1k must be one of 'exact', 'mgs'. Got 'magic'."),
    (lambda: mg1k(1e4, Deterministic(1.0), 3), "The 'arrival_rate' parameter of mg1k must leave a positive chance of no arrival"),
    (lambda: mgs_loss(None, 1.0, 3), "The 'rho' parameter of mgs_loss must be a finite number > 0. Got None."),
    (lambda: mgs_loss(0.5, -1.0, 3), "The 'scv' parameter of mgs_loss must be a finite number >= 0. Got -1.0."),
    (lambda: mgs_loss(0.5, 1.0, 0), "The 'capacity' parameter of mgs_loss must be an int >= 1. Got 0."),
    (lambda: departure_distribution([0.5, 0.5], None), "The 'capacity' parameter of departure_distribution must be an int >= 1. Got None."),
    (lambda: departure_distribution(None, 3), "The 'a' parameter of departure_distribution must be a 1-D array of at least 2 probabilities (P(j arrivals during a service), j = 0, 1, ...). Got None."),
    (lambda: departure_distribution([0.5], 3), "The 'a' parameter of departure_distribution must be a 1-D array of at least 2 probabilities (P(j arrivals during a service), j = 0, 1, ...). Got [0.5]."),
    (lambda: departure_distribution([0.5, 1.5, 0.1, 0.1, 0.1, 0.1, 0.1], 3), "The 'a' parameter of departure_distribution must be a 1-D array of at least 2 probabilities (P(j arrivals during a service), j = 0, 1, ...). Got '7 items'."),
])
def test_errors(call, match):
    with pytest.raises(InvalidParameterError, match=re.escape(match)):
        call()
