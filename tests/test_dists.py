"""Service-time laws: moments, sampling, and the arrival pmf each law gives in closed form."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from edgeperf.dists import (LOGNORMAL_PMF_TOLERANCE, Deterministic, Empirical, Exponential, Gamma,
                            Lognormal, Mixture, Sum, poisson_pmf)
from edgeperf.exceptions import InvalidParameterError

LAWS = [
    Deterministic(0.02),
    Exponential(0.03),
    Gamma(4, 0.03),
    Gamma(2.5, 0.01),
    Lognormal(0.03, 0.5),
    Empirical((0.01, 0.02, 0.02, 0.05)),
    Mixture((Exponential(0.01), Deterministic(0.05)), (0.3, 0.7)),
    Sum((Gamma(4, 0.01), Deterministic(0.02))),
]
IDS = [type(law).__name__ for law in LAWS]


def test_known_moments():
    assert Deterministic(0.02).scv == 0.0
    assert Exponential(0.03).scv == 1.0
    assert Gamma(4, 0.03).scv == 0.25
    assert Lognormal(0.03, 2.0).scv == 2.0
    assert Empirical((1.0, 3.0)).scv == pytest.approx(0.25, abs=1e-15)  # var 1, mean 2
    mix = Mixture((Deterministic(1.0), Deterministic(3.0)), (0.5, 0.5))
    assert (mix.mean, mix.scv) == (2.0, pytest.approx(0.25, abs=1e-15))
    total = Sum((Exponential(1.0), Deterministic(1.0)))
    assert (total.mean, total.scv) == (2.0, 0.25)


@pytest.mark.parametrize("law", LAWS, ids=IDS)
def test_pmf_mass_and_factorial_moments(law):
    # sum a_j = 1, E[A] = rate E[S], E[A(A-1)] = rate² E[S²]: exact identities
    rate, n = 40.0, 400
    a = law.arrival_pmf(rate, n)
    j = np.arange(n)
    assert a.shape == (n,) and np.all(a >= 0)
    assert a.sum() == pytest.approx(1.0, abs=1e-10)
    assert j @ a == pytest.approx(rate * law.mean, rel=1e-9)
    assert (j * (j - 1)) @ a == pytest.approx(rate**2 * law.second_moment, rel=1e-8)


@pytest.mark.parametrize("law", LAWS, ids=IDS)
def test_pmf_at_zero_rate_is_no_arrival(law):
    np.testing.assert_array_equal(law.arrival_pmf(0.0, 4), [1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("law", LAWS, ids=IDS)
def test_sample_mean_within_confidence_interval(law):
    x = law.sample(np.random.default_rng(7), 200_000)
    assert x.shape == (200_000,) and np.all(x >= 0)
    if law.variance == 0:
        assert np.all(x == law.mean)
        return
    half = 3.29 * math.sqrt(law.variance / len(x))  # 99.9% normal interval
    assert abs(x.mean() - law.mean) <= half


@pytest.mark.parametrize("law", LAWS, ids=IDS)
def test_sample_of_none_is_empty(law):
    assert law.sample(np.random.default_rng(0), 0).shape == (0,)


def test_same_seed_same_samples():
    law = LAWS[6]
    a = law.sample(np.random.default_rng(3), 10)
    b = law.sample(np.random.default_rng(3), 10)
    np.testing.assert_array_equal(a, b)


def test_gamma_pmf_is_negative_binomial():
    law = Gamma(2.5, 0.04)
    rate = 30.0
    p = 2.5 / (2.5 + rate * 0.04)
    expected = stats.nbinom.pmf(np.arange(30), 2.5, p)
    np.testing.assert_allclose(law.arrival_pmf(rate, 30), expected, rtol=1e-12, atol=1e-300)


def test_deterministic_pmf_is_poisson():
    np.testing.assert_allclose(Deterministic(0.1).arrival_pmf(25.0, 40),
                               stats.poisson.pmf(np.arange(40), 2.5), rtol=1e-12)


def test_exponential_pmf_is_geometric():
    a = Exponential(0.5).arrival_pmf(2.0, 10)  # p = 1/(1 + 1) = 1/2
    np.testing.assert_allclose(a, 0.5 ** np.arange(1, 11), rtol=1e-14)


def test_exponential_pmf_keeps_its_tail_at_light_load():
    # q = x / (1 + x) with x = 1e-20: as 1 - p it would round to 0
    a = Exponential(1.0).arrival_pmf(1e-20, 3)
    np.testing.assert_allclose(a, [1.0, 1e-20, 1e-40], rtol=1e-14)


@pytest.mark.parametrize("scv", [0.05, 1.0, 4.0])
def test_lognormal_pmf_error_is_within_its_bound(scv):
    # Compare each entry with an independent high-precision quadrature in t.
    law, rate = Lognormal(0.05, scv), 20.0
    a = law.arrival_pmf(rate, 12)
    mu, sigma = law._log_params
    for j in (0, 1, 5, 11):
        def f(t, j=j):
            return stats.poisson.pmf(j, rate * t) * stats.lognorm.pdf(t, sigma, scale=math.exp(mu))
        ref, err = integrate.quad(f, 0, np.inf, epsabs=1e-14, epsrel=1e-12, limit=500)
        assert abs(a[j] - ref) <= LOGNORMAL_PMF_TOLERANCE + err


def test_empirical_pmf_averages_poissons():
    law = Empirical((0.1, 0.3))
    expected = 0.5 * (stats.poisson.pmf(np.arange(5), 1.0) + stats.poisson.pmf(np.arange(5), 3.0))
    np.testing.assert_allclose(law.arrival_pmf(10.0, 5), expected, rtol=1e-12)


def test_sum_pmf_is_convolution():
    # Two deterministic halves make one deterministic whole.
    np.testing.assert_allclose(Sum((Deterministic(0.05), Deterministic(0.05))).arrival_pmf(20, 15),
                               Deterministic(0.1).arrival_pmf(20, 15), rtol=1e-12)


def test_erlang_sum_equals_gamma():
    parts = Sum((Exponential(0.01),) * 4)
    np.testing.assert_allclose(parts.arrival_pmf(50, 30), Gamma(4, 0.04).arrival_pmf(50, 30),
                               rtol=1e-12)


def test_poisson_pmf_vectorised_and_stable():
    out = poisson_pmf(np.array([0.0, 1.0, 1e4]), 3)
    assert out.shape == (3, 3)
    np.testing.assert_array_equal(out[0], [1.0, 0.0, 0.0])
    assert np.all(np.isfinite(out)) and out[2].max() == 0.0  # underflows to 0, never NaN


@pytest.mark.parametrize("law", LAWS, ids=IDS)
def test_scaled_divides_by_speed(law):
    fast = law.scaled(0.25)
    assert fast.mean == pytest.approx(law.mean * 0.25, rel=1e-12)
    assert fast.scv == pytest.approx(law.scv, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("make, match", [
    (lambda: Deterministic(0), "The 'value' parameter of Deterministic must be a finite number > 0. Got 0."),
    (lambda: Exponential(-1.0), "The 'mean' parameter of Exponential must be a finite number > 0. Got -1.0."),
    (lambda: Gamma(0, 1.0), "The 'shape' parameter of Gamma must be a finite number > 0. Got 0."),
    (lambda: Gamma(2, float("nan")), "The 'mean' parameter of Gamma must be a finite number > 0. Got nan."),
    (lambda: Lognormal(1.0, 0), "The 'scv' parameter of Lognormal must be a finite number > 0. Got 0."),
    (lambda: Lognormal(True, 1.0), "The 'mean' parameter of Lognormal must be a finite number > 0. Got True."),
    (lambda: Empirical(()), "The 'samples' parameter of Empirical must be a non-empty list"),
    (lambda: Empirical((1.0, -1.0)), "The 'samples' parameter of Empirical must be a non-empty list"),
    (lambda: Mixture((), ()), "The 'components' parameter of Mixture must be a non-empty list of service laws"),
    (lambda: Mixture((Exponential(1.0),), (0.5,)), r"The 'weights' parameter of Mixture must be 1 non-negative finite numbers summing to 1. Got \[0.5\]."),
    (lambda: Mixture((Exponential(1.0), Exponential(2.0)), (1.2, -0.2)), "The 'weights' parameter of Mixture"),
    (lambda: Sum((1.0,)), "The 'components' parameter of Sum must be a non-empty list of service laws"),
    (lambda: Exponential(1.0).arrival_pmf(-1.0, 3), "The 'arrival_rate' parameter of Exponential.arrival_pmf must be a finite number >= 0. Got -1.0."),
    (lambda: Exponential(1.0).arrival_pmf(1.0, 0), "The 'n' parameter of Exponential.arrival_pmf must be an int >= 1. Got 0."),
    (lambda: Gamma(2, 1.0).sample(np.random.default_rng(0), -1),
     "The 'n' parameter of Gamma.sample must be an int >= 0. Got -1."),
    (lambda: Mixture((Exponential(1.0),), (1.0,)).sample(np.random.default_rng(0), 2.5),
     "The 'n' parameter of Mixture.sample must be an int >= 0. Got 2.5."),
    (lambda: Deterministic(1.0).sample(0, 3), "The 'rng' parameter of Deterministic.sample must "
     "be a numpy Generator (numpy.random.default_rng(seed)). Got 0."),
    (lambda: Exponential(1.0).scaled(0), "The 'factor' parameter of Exponential.scaled must be a finite number > 0. Got 0."),
    (lambda: poisson_pmf(None, 3), "The 'mean_count' parameter of poisson_pmf must be a finite mean >= 0 or a 1-D array of them. Got None."),
    (lambda: poisson_pmf([1.0, -1.0], 3), r"The 'mean_count' parameter of poisson_pmf must be a finite mean >= 0 or a 1-D array of them. Got \[1.0, -1.0\]."),
    (lambda: poisson_pmf([[1.0]], 3), r"The 'mean_count' parameter of poisson_pmf must be a finite mean >= 0 or a 1-D array of them. Got \[\[1.0\]\]."),
    (lambda: poisson_pmf(1.0, None), "The 'n' parameter of poisson_pmf must be an int >= 0. Got None."),
])
def test_errors(make, match):
    with pytest.raises(InvalidParameterError, match=match if "\\" in match else _escape(match)):
        make()


def _escape(text: str) -> str:
    import re
    return re.escape(text)
