"""The M/G/1/K station: exact solution and MacGregor Smith's approximation.

Capacity K counts the job in service. The exact method solves the Markov chain
embedded at departure epochs (states 0..K-1 left behind), then converts it to
the time-average distribution p_0..p_K; PASTA makes p_K the loss probability.
It holds for any load, overload included, because the chain is finite.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .. import _validation as v
from ..dists import ServiceLaw
from ..exceptions import InvalidParameterError
from ..model.metrics import StationMetrics

__all__ = ["mg1k", "departure_distribution", "mgs_loss"]

Method = Literal["exact", "mgs"]
_OWNER = "mg1k"
#: Arrival-count terms beyond the K - 1 the chain needs, to start with: at light
#: load they make the mass beyond them negligible, so every tail is a sum of known
#: terms. For a small loss, slowly decaying counts get twice as many, and again,
#: up to _MAX_TERMS.
_EXTRA_TERMS = 16
_MAX_TERMS = 4096
#: From this loss on, 1 - 1/(pi_0 + rho) loses at most 3 of its 16 digits and needs
#: no sum of tails beyond the chain's own.
_SUBTRACT_FROM = 1e-3
_EPS = float(np.finfo(float).eps)


def departure_distribution(a: np.ndarray, capacity: int) -> np.ndarray:
    """Stationary law of the number left behind by a departure, states 0..K-1.

    ``a[j]`` = P(j arrivals during a service), j = 0..K-2 at least; a few more
    terms make the smallest tails P(A > j) accurate to their last digits. Uses the
    balance across each cut {0..j-1} | {j..K-1}: the only way down is a departure
    from j with no arrival, so
        pi_j a_0 = pi_0 P(A >= j) + sum_{i=1}^{j-1} pi_i P(A >= j-i+1).
    Every term is non-negative, so the recursion is free of cancellation.
    """
    k = v.integer("departure_distribution", "capacity", capacity, low=1)
    size = max(k - 1, 1)
    a = v.array("departure_distribution", "a", a, f"a 1-D array of at least {size} "
                "probabilities (P(j arrivals during a service), j = 0, 1, ...)",
                lambda x: x.ndim == 1 and len(x) >= size and bool(np.all((x >= 0) & (x <= 1))))
    return _departures(a, _tails(a), k)


def _departures(a: np.ndarray, tail: np.ndarray, capacity: int) -> np.ndarray:
    """departure_distribution, given the tails tail[j] = P(A > j)."""
    if capacity == 1:
        return np.ones(1)
    a0 = a[0]
    if not a0 > 0.0:
        raise InvalidParameterError(
            "The 'arrival_rate' parameter of mg1k must leave a positive chance of no arrival "
            f"during a service (the exact chain needs it). Got P(no arrival) = {a0!r}.")
    pi = np.empty(capacity)
    pi[0] = 1.0
    for j in range(1, capacity):
        # pi_0 P(A >= j) + sum_{i=1}^{j-1} pi_i P(A >= j-i+1)
        inflow = pi[0] * tail[j - 1] + pi[1:j] @ tail[j - 1:0:-1]
        pi[j] = inflow / a0
        if pi[j] > 1e250:  # deep overload: rescale to stay finite
            pi[: j + 1] /= pi[j]
    return pi / pi.sum()


def _tails(a: np.ndarray) -> np.ndarray:
    """P(A > j) for j = 0..len(a)-1, without computing 1 - P(A <= j).

    At light load P(A > j) is far below 1e-16, and 1 - cumsum(a) rounds it to
    0. Summing the known terms from the far end keeps it; the mass beyond them,
    which only a subtraction gives, is kept where it exceeds that subtraction's
    rounding error.
    """
    beyond = 1.0 - math.fsum(a)
    if beyond < len(a) * _EPS:
        beyond = 0.0
    tail = np.full(len(a), beyond)
    tail[:-1] += np.cumsum(a[:0:-1])[::-1]
    return tail


def _solve(service: ServiceLaw, rate: float, capacity: int, rho: float
           ) -> tuple[np.ndarray, float]:
    """The departure law and the loss probability.

    A loss of _SUBTRACT_FROM or more keeps its digits as 1 - 1/(pi_0 + rho). A
    smaller one is the arrivals refused per departure over pi_0 + rho, summed from
    as many terms of the arrival pmf as it takes for the mass beyond them to be
    either kept (large enough for 1 - sum(a) to resolve it) or negligible."""
    n = capacity - 1 + _EXTRA_TERMS
    while True:
        a = service.arrival_pmf(rate, n)
        tail = _tails(a)
        pi = _departures(a, tail, capacity)
        norm = pi[0] + rho
        subtracted = 1.0 - 1.0 / norm
        if subtracted >= _SUBTRACT_FROM:
            return pi, subtracted
        refused = _refused_per_departure(pi, tail, rho)
        if tail[-1] > 0.0 or n >= _MAX_TERMS or _negligible_beyond(a, pi, refused):
            return pi, refused / norm
        n = min(2 * n, _MAX_TERMS)


def _negligible_beyond(a: np.ndarray, pi: np.ndarray, refused: float) -> bool:
    """Whether the terms beyond ``a`` change the departure law ``pi`` and the refused
    count by less than a rounding error, judged from the last terms' decay
    a[j + 1] / a[j] = q."""
    last, before = a[-1], a[-2]
    if last == 0.0:
        return True
    q = last / before if before > 0.0 else 1.0
    if q >= 1.0:  # not decaying yet
        return False
    beyond = last * q / (1.0 - q)  # P(A >= L) for L = len(a), if the decay goes on
    # every tail misses it, so the recursion's inflow pi_j a_0 misses at most
    # beyond * (pi_0 + ... + pi_{j-1}); each E[(A - m)^+] at most (L + 1/(1 - q)) beyond
    return bool(np.all(beyond * np.cumsum(pi[:-1]) <= _EPS * a[0] * pi[1:])) and \
        beyond * (len(a) + 1.0 / (1.0 - q)) <= _EPS * refused


def _refused_per_departure(pi: np.ndarray, tail: np.ndarray, rho: float) -> float:
    """Mean number of arrivals refused between two departures, as a sum of
    non-negative terms (1 - 1/(pi_0 + rho) cancels at light load).

    The service after a departure that leaves n jobs starts with max(n, 1) of
    them, so it refuses (A - m)^+ arrivals, m = K - max(n, 1), whose mean is
    E[(A - m)^+] = sum_{j >= m} P(A > j).
    """
    k = len(pi)
    # E[(A - L)^+] beyond the L known tails, again kept only above its rounding error
    beyond = rho - math.fsum(tail)
    if beyond < len(tail) * _EPS * rho:
        beyond = 0.0
    excess = np.cumsum(tail[::-1])[::-1] + beyond  # E[(A - m)^+], m = 0..L-1
    # n = 0 and n = 1 both give m = K - 1; n = 2..K-1 give m = K-2..1
    return float(pi[0] * excess[k - 1] + pi[1:] @ excess[k - 1:0:-1])


def mgs_loss(rho: float, scv: float, capacity: int) -> float:
    """J. MacGregor Smith's two-moment approximation of the M/G/1/K loss.

    With s = sqrt(SCV) (so s² = SCV),
        p_K = rho^((sqrt(rho) s² - sqrt(rho) + 2K) / (2 + sqrt(rho) s² - sqrt(rho))) (rho - 1)
              / (rho^(2 (1 + sqrt(rho) s² - sqrt(rho) + K) / (2 + sqrt(rho) s² - sqrt(rho))) - 1)
    It is exact for exponential service (SCV = 1). At rho = 1 it takes its limit 1/b,
    b being the second exponent.
    """
    return _mgs_loss(v.positive("mgs_loss", "rho", rho), v.non_negative("mgs_loss", "scv", scv),
                     v.integer("mgs_loss", "capacity", capacity, low=1))


def _mgs_loss(rho: float, scv: float, capacity: int) -> float:
    """mgs_loss without the checks, for callers that made them."""
    r = math.sqrt(rho)
    shift = r * scv - r
    first = (shift + 2.0 * capacity) / (2.0 + shift)
    second = 2.0 * (1.0 + shift + capacity) / (2.0 + shift)
    if abs(rho - 1.0) < 1e-9:
        return 1.0 / second
    # rho^b - 1 in a form that stays accurate near rho = 1
    return rho**first * (rho - 1.0) / math.expm1(second * math.log(rho))


def mg1k(arrival_rate: float, service: ServiceLaw, capacity: int,
         method: Method = "exact", *, name: str = "station") -> StationMetrics:
    """Performance of an M/G/1/K station with the given service law.

    ``method="exact"`` gives every field; no small one is formed by subtracting
    from 1, so a loss or a waiting time far below 1e-16 keeps its relative precision;
    ``method="mgs"`` gives MacGregor
    Smith's approximate loss and what follows from it (throughput,
    utilisation), and ``None`` for what it cannot give.
    """
    rate = v.positive(_OWNER, "arrival_rate", arrival_rate)
    k = v.integer(_OWNER, "capacity", capacity, low=1)
    v.instance(_OWNER, "service", service, ServiceLaw, "a service law from edgeperf.dists")
    rho = rate * service.mean
    if method == "mgs":
        loss = _mgs_loss(rho, service.scv, k)
        return StationMetrics(name=name, kind="approximate", method="mgs", arrival_rate=rate,
                              capacity=k, loss_probability=loss, throughput=rate * (1.0 - loss),
                              utilization=rho * (1.0 - loss))
    if method != "exact":
        raise v.fail(_OWNER, "method", "one of 'exact', 'mgs'", method)
    # Time-average law: p_j = pi_j / (pi_0 + rho) for j < K, and p_K = 1 - 1/(pi_0 + rho):
    # of the pi_0 + rho arrivals per departure (pi_0 in an idle period, rho in service)
    # all but one, the job that departs next, are refused.
    pi, loss = _solve(service, rate, k, rho)
    norm = pi[0] + rho
    p = np.append(pi / norm, loss)
    throughput = rate * (1.0 - loss)
    mean_number = float(np.arange(k + 1) @ p)
    waiting_number = float(np.arange(k) @ p[1:])  # jobs waiting, not in service
    # Little's law over accepted jobs; the waiting time from the jobs waiting, not as
    # response - mean, which cancels at light load
    return StationMetrics(
        name=name, kind="exact", method="exact", arrival_rate=rate, capacity=k,
        loss_probability=loss, throughput=throughput, utilization=rho / norm,
        mean_number=mean_number, mean_response_time=mean_number / throughput,
        mean_waiting_time=waiting_number / throughput,
        queue_length_distribution=tuple(float(x) for x in p))
