"""Service-time laws, each parameterised by its mean in seconds.

Every law offers ``mean``, ``scv`` (var / mean²), ``sample(rng, n)`` and
``arrival_pmf(arrival_rate, n)``: the probabilities a_0..a_{n-1} that j Poisson
arrivals of the given rate occur during one service time. The exact M/G/1/K
solver needs only that pmf, so every law gives it in closed form where one
exists (deterministic: Poisson; exponential: geometric; gamma: negative
binomial; empirical: average of Poissons; mixture: weighted sum; sum of
independent laws: convolution) and by bounded numerical integration otherwise
(lognormal).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import integrate, special

from . import _validation as v
from .exceptions import InvalidParameterError

__all__ = [
    "ServiceLaw",
    "Deterministic",
    "Exponential",
    "Gamma",
    "Lognormal",
    "Empirical",
    "Mixture",
    "Sum",
    "poisson_pmf",
]

#: Half-width of the standard-normal range integrated for the lognormal pmf;
#: the normal mass outside [-Z, Z] bounds the truncation error (< 1.6e-23).
_LOGNORMAL_Z = 10.0
#: Largest integration error accepted for the lognormal pmf, per entry.
LOGNORMAL_PMF_TOLERANCE = 1e-11


def poisson_pmf(mean_count: float | np.ndarray, n: int) -> np.ndarray:
    """P(j arrivals), j = 0..n-1, for Poisson counts with the given mean(s).

    ``mean_count`` may be an array of shape (m,); the result is then (m, n).
    Computed in log space so large means neither overflow nor underflow badly.
    """
    count = v.integer("poisson_pmf", "n", n, low=0)
    means = v.array("poisson_pmf", "mean_count", mean_count,
                    "a finite mean >= 0 or a 1-D array of them",
                    lambda x: x.ndim <= 1 and bool(np.all(np.isfinite(x) & (x >= 0))))
    return _poisson_pmf(means, count)


def _poisson_pmf(mean_count: float | np.ndarray, n: int) -> np.ndarray:
    """poisson_pmf without the checks: the service laws call it inside quadratures."""
    j = np.arange(n, dtype=float)
    x = np.asarray(mean_count, dtype=float)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):  # x = 0 gives log 0 and 0 * -inf
        log_pmf = j * np.log(x) - x - special.gammaln(j + 1.0)
    log_pmf = np.where(x == 0.0, np.where(j == 0.0, 0.0, -np.inf), log_pmf)
    return np.exp(log_pmf)


class ServiceLaw(ABC):
    """A non-negative random service time with finite mean > 0 and finite SCV."""

    __slots__ = ()

    @property
    @abstractmethod
    def mean(self) -> float:
        """Mean service time in seconds."""

    @property
    @abstractmethod
    def scv(self) -> float:
        """Squared coefficient of variation, var / mean²."""

    @property
    def variance(self) -> float:
        return self.scv * self.mean**2

    @property
    def second_moment(self) -> float:
        return self.mean**2 * (1.0 + self.scv)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n independent service times in seconds, drawn from ``rng``."""
        owner = type(self).__name__ + ".sample"
        if not isinstance(rng, np.random.Generator):
            raise v.fail(owner, "rng", "a numpy Generator (numpy.random.default_rng(seed))",
                         v.brief(rng))
        return self._sample(rng, v.integer(owner, "n", n, low=0))

    @abstractmethod
    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray: ...

    @abstractmethod
    def _pmf(self, arrival_rate: float, n: int) -> np.ndarray: ...

    @abstractmethod
    def scaled(self, factor: float) -> ServiceLaw:
        """The law of ``factor * S`` (a device of speed s uses factor 1/s)."""

    @abstractmethod
    def to_spec(self) -> dict:
        """The JSON/YAML spec that ``edgeperf.io.law_from_spec`` maps back to this law."""

    def arrival_pmf(self, arrival_rate: float, n: int) -> np.ndarray:
        """a_j = P(j Poisson arrivals during one service), j = 0..n-1."""
        owner = type(self).__name__ + ".arrival_pmf"
        rate = v.non_negative(owner, "arrival_rate", arrival_rate)
        count = v.integer(owner, "n", n, low=1)
        if rate == 0.0:  # no arrivals at all: the laws' formulas may divide by zero
            return _poisson_pmf(0.0, count)
        return self._pmf(rate, count)


def _check_scale(owner: str, factor: float) -> float:
    return v.positive(owner + ".scaled", "factor", factor)


@dataclass(frozen=True, slots=True)
class Deterministic(ServiceLaw):
    """A constant service time ``value`` (seconds)."""

    value: float

    def __post_init__(self) -> None:
        v.positive("Deterministic", "value", self.value)

    @property
    def mean(self) -> float:
        return float(self.value)

    @property
    def scv(self) -> float:
        return 0.0

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.value))

    def _pmf(self, arrival_rate: float, n: int) -> np.ndarray:
        return _poisson_pmf(arrival_rate * self.value, n)

    def scaled(self, factor: float) -> Deterministic:
        return Deterministic(self.value * _check_scale("Deterministic", factor))

    def to_spec(self) -> dict:
        return {"kind": "deterministic", "value": self.value}


@dataclass(frozen=True, slots=True)
class Exponential(ServiceLaw):
    """Exponential service time with the given mean (seconds)."""

    mean: float

    def __post_init__(self) -> None:
        v.positive("Exponential", "mean", self.mean)

    @property
    def scv(self) -> float:
        return 1.0

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)

    def _pmf(self, arrival_rate: float, n: int) -> np.ndarray:
        x = arrival_rate * self.mean
        # P(service ends before an arrival) and its complement, which 1 - p would round to
        # 0 at light load
        p, q = 1.0 / (1.0 + x), x / (1.0 + x)
        return p * q ** np.arange(n)

    def scaled(self, factor: float) -> Exponential:
        return Exponential(self.mean * _check_scale("Exponential", factor))

    def to_spec(self) -> dict:
        return {"kind": "exponential", "mean": self.mean}


@dataclass(frozen=True, slots=True)
class Gamma(ServiceLaw):
    """Gamma service time with ``shape`` k and ``mean``; SCV = 1/k (Erlang-k for integer k)."""

    shape: float
    mean: float

    def __post_init__(self) -> None:
        v.positive("Gamma", "shape", self.shape)
        v.positive("Gamma", "mean", self.mean)

    @property
    def scv(self) -> float:
        return 1.0 / self.shape

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.gamma(self.shape, self.mean / self.shape, n)

    def _pmf(self, arrival_rate: float, n: int) -> np.ndarray:
        # Poisson counts mixed over a gamma time are negative binomial.
        k = float(self.shape)
        x = arrival_rate * self.mean / k  # arrivals per unit of the gamma's scale
        j = np.arange(n, dtype=float)
        return np.exp(special.gammaln(j + k) - special.gammaln(k) - special.gammaln(j + 1.0)
                      - k * math.log1p(x) + j * (math.log(x) - math.log1p(x)))

    def scaled(self, factor: float) -> Gamma:
        return Gamma(self.shape, self.mean * _check_scale("Gamma", factor))

    def to_spec(self) -> dict:
        return {"kind": "gamma", "shape": self.shape, "mean": self.mean}


@dataclass(frozen=True, slots=True)
class Lognormal(ServiceLaw):
    """Lognormal service time with the given ``mean`` and ``scv``."""

    mean: float
    scv: float

    def __post_init__(self) -> None:
        v.positive("Lognormal", "mean", self.mean)
        v.positive("Lognormal", "scv", self.scv)

    @property
    def _log_params(self) -> tuple[float, float]:
        sigma2 = math.log1p(self.scv)
        return math.log(self.mean) - sigma2 / 2.0, math.sqrt(sigma2)

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        mu, sigma = self._log_params
        return rng.lognormal(mu, sigma, n)

    def _pmf(self, arrival_rate: float, n: int) -> np.ndarray:
        # a_j = E[Poisson_j(rate * S)], S = exp(mu + sigma Z): integrate over Z in
        # [-10, 10]; the normal mass outside bounds the truncation error.
        mu, sigma = self._log_params

        def integrand(z: float) -> np.ndarray:
            density = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
            return density * _poisson_pmf(arrival_rate * math.exp(mu + sigma * z), n)

        values, error = integrate.quad_vec(integrand, -_LOGNORMAL_Z, _LOGNORMAL_Z,
                                           epsabs=1e-13, epsrel=0.0, norm="max", limit=400)
        truncation = math.erfc(_LOGNORMAL_Z / math.sqrt(2.0))
        if error + truncation > LOGNORMAL_PMF_TOLERANCE:
            raise InvalidParameterError(
                f"Lognormal.arrival_pmf could not reach its error bound {LOGNORMAL_PMF_TOLERANCE:g} "
                f"for arrival_rate={arrival_rate!r}, mean={self.mean!r}, scv={self.scv!r}. "
                f"Got an error estimate of {error + truncation:.3g}.")
        return values

    def scaled(self, factor: float) -> Lognormal:
        return Lognormal(self.mean * _check_scale("Lognormal", factor), self.scv)

    def to_spec(self) -> dict:
        return {"kind": "lognormal", "mean": self.mean, "scv": self.scv}


@dataclass(frozen=True, slots=True)
class Empirical(ServiceLaw):
    """The law that picks one of the measured ``samples`` (seconds) uniformly."""

    samples: tuple[float, ...]
    _array: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        arr = np.asarray(self.samples, dtype=float) if _is_sequence(self.samples) else np.empty(0)
        rule = "a non-empty list of finite numbers >= 0 with a positive mean"
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0) \
                or arr.mean() <= 0:
            raise v.fail("Empirical", "samples", rule, self.samples)
        object.__setattr__(self, "samples", tuple(float(x) for x in arr))
        object.__setattr__(self, "_array", arr)

    @property
    def mean(self) -> float:
        return float(self._array.mean())

    @property
    def scv(self) -> float:
        return float(self._array.var() / self._array.mean() ** 2)

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self._array, size=n, replace=True)

    def _pmf(self, arrival_rate: float, n: int) -> np.ndarray:
        values, counts = np.unique(self._array, return_counts=True)
        pmf = _poisson_pmf(arrival_rate * values, n).reshape(len(values), n)
        return (counts / counts.sum()) @ pmf

    def scaled(self, factor: float) -> Empirical:
        return Empirical(tuple(self._array * _check_scale("Empirical", factor)))

    def to_spec(self) -> dict:
        return {"kind": "empirical", "samples": list(self.samples)}


def _is_sequence(value: object) -> bool:
    return isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes))


def _laws(owner: str, components: object) -> tuple[ServiceLaw, ...]:
    if not _is_sequence(components) or len(components) == 0 or \
            not all(isinstance(c, ServiceLaw) for c in components):  # type: ignore[arg-type]
        raise v.fail(owner, "components", "a non-empty list of service laws", components)
    return tuple(components)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Mixture(ServiceLaw):
    """With probability ``weights[i]`` the service time follows ``components[i]``."""

    components: tuple[ServiceLaw, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        laws = _laws("Mixture", self.components)
        w = v.weights("Mixture", "weights", self.weights, len(laws))
        object.__setattr__(self, "components", laws)
        object.__setattr__(self, "weights", tuple(float(x) for x in w))

    @property
    def mean(self) -> float:
        return float(sum(w * c.mean for w, c in zip(self.weights, self.components)))

    @property
    def scv(self) -> float:
        second = sum(w * c.second_moment for w, c in zip(self.weights, self.components))
        return max(second / self.mean**2 - 1.0, 0.0)  # rounding can dip below 0 for equal parts

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        which = rng.choice(len(self.components), size=n, p=self.weights)
        out = np.empty(n)
        for i, component in enumerate(self.components):
            mask = which == i
            out[mask] = component._sample(rng, int(mask.sum()))
        return out

    def _pmf(self, arrival_rate: float, n: int) -> np.ndarray:
        return sum(w * c._pmf(arrival_rate, n) for w, c in zip(self.weights, self.components)
                   if w > 0.0)

    def scaled(self, factor: float) -> Mixture:
        return Mixture(tuple(c.scaled(factor) for c in self.components), self.weights)

    def to_spec(self) -> dict:
        return {"kind": "mixture", "weights": list(self.weights),
                "components": [c.to_spec() for c in self.components]}


@dataclass(frozen=True, slots=True)
class Sum(ServiceLaw):
    """The sum of independent service times, e.g. the blocks of one fragment."""

    components: tuple[ServiceLaw, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "components", _laws("Sum", self.components))

    @property
    def mean(self) -> float:
        return float(sum(c.mean for c in self.components))

    @property
    def scv(self) -> float:
        return sum(c.variance for c in self.components) / self.mean**2

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return sum((c._sample(rng, n) for c in self.components), np.zeros(n))

    def _pmf(self, arrival_rate: float, n: int) -> np.ndarray:
        # Arrivals during independent consecutive intervals add: convolve the pmfs.
        out = self.components[0]._pmf(arrival_rate, n)
        for component in self.components[1:]:
            out = np.convolve(out, component._pmf(arrival_rate, n))[:n]
        return out

    def scaled(self, factor: float) -> Sum:
        return Sum(tuple(c.scaled(factor) for c in self.components))

    def to_spec(self) -> dict:
        return {"kind": "sum", "components": [c.to_spec() for c in self.components]}
