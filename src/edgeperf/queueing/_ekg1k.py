"""The E_k/G/1/K station: Erlang-k renewal arrivals, general service, capacity K.

An Erlang-k input (inter-arrival SCV 1/k) is smoother than Poisson: it is how
the two-moment chain decomposition solves a station fed by a smooth device,
where an M/G/1/K cannot be smoother than M/D/1/K. Arrivals are the k-th, 2k-th,
... events of a Poisson process of rate k*lambda (the arrival phases), so the
number of phases completed during one service has the law the service law
already gives for Poisson arrivals: ``arrival_pmf(k * lambda)``. The Markov
chain embedded at departure epochs has the states (n left behind, phase j);
it is solved exactly, and the time-average law follows from the time each
departure interval spends at each level. With k = 1 it is the M/G/1/K.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validation as v
from ..dists import ServiceLaw
from ..model.metrics import StationMetrics

__all__ = ["ekg1k", "MAX_STATES"]

_OWNER = "ekg1k"
#: Largest phases x capacity: the chain is solved as one dense linear system.
MAX_STATES = 4096
#: Phase counts are summed until the mass beyond them is below this.
_RESIDUAL = 1e-14
_MAX_TERMS = 1 << 20


def ekg1k(arrival_rate: float, phases: int, service: ServiceLaw, capacity: int, *,
          name: str = "station") -> StationMetrics:
    """Performance of an E_k/G/1/K station: renewal arrivals at ``arrival_rate``
    whose gaps are Erlang with ``phases`` = k phases (SCV 1/k), FIFO, capacity K
    counting the job in service; an arrival that finds K jobs is lost.

    Every field is exact up to rounding: the phase counts are cut where the
    mass beyond is below 1e-14, and the chain is one dense linear solve, so
    small losses and probabilities are accurate to about 1e-12 in absolute,
    not relative, terms (the M/G/1/K keeps their relative precision). A
    heavy-tailed law at a high phase rate needs many terms: a lognormal of SCV 2
    at 32 phases takes seconds. Unlike the M/G/1/K, arrivals do not see time
    averages: the loss is the share of arrivals refused, not
    ``queue_length_distribution[K]``.
    """
    rate = v.positive(_OWNER, "arrival_rate", arrival_rate)
    k = v.integer(_OWNER, "phases", phases, low=1)
    cap = v.integer(_OWNER, "capacity", capacity, low=1)
    v.instance(_OWNER, "service", service, ServiceLaw, "a service law from edgeperf.dists")
    if k * cap > MAX_STATES:
        raise v.fail(_OWNER, "phases", f"at most {MAX_STATES} // capacity ({MAX_STATES // cap}) "
                     f"for capacity {cap}: the chain has phases x capacity states", k)
    mu = k * rate  # rate of the arrival phases
    pmf, tail = _phase_counts(service, mu, k * cap)  # N: phases completed in a service

    # start phase j of a service, and arrivals a during it: A >= a iff N >= a*k - j
    starts = np.arange(k)
    most = len(tail) // k + 2  # beyond it, P(A >= a) = 0
    index = np.arange(most)[None, :] * k - starts[:, None]  # [j, a] -> a*k - j
    at_least = np.where(index <= 0, 1.0, tail[np.clip(index, 0, len(tail) - 1)])
    at_least[index >= len(tail)] = 0.0
    # time (x mu) the service spends with a = 0..cap arrivals so far, and P(A = a, end phase p)
    level_time, joint = _within_service(pmf, tail, k, cap)

    pi = _embedded(joint, k, cap)
    busy = np.zeros(cap + 1)
    refused = 0.0
    idle_phases = 0.0  # phases waited for while idle, per departure
    for n in range(cap):
        first = max(n, 1)  # jobs when the next service starts
        room = cap - first
        for j in range(k):
            weight = pi[n * k + j]
            if weight == 0.0:
                continue
            start = j if n else 0  # an idle server waits for an arrival: phase 0
            # E[(A - room)^+] = sum of P(A >= a) for a > room
            refused += weight * float(at_least[start, room + 1:].sum())
            t = level_time[start]
            busy[first:cap] += weight * t[:room]
            busy[cap] += weight * t[room:].sum()
            if n == 0:
                idle_phases += weight * (k - j)  # until the arrival's last phase ends
    idle = idle_phases / mu
    levels = busy / mu
    cycle = idle + levels.sum()  # mean time between departures
    p = levels / cycle
    p[0] += idle / cycle
    loss = refused / (1.0 + refused)  # one accepted job per departure
    throughput = rate * (1.0 - loss)
    mean_number = float(np.arange(cap + 1) @ p)
    waiting_number = float(np.arange(cap) @ p[1:])
    return StationMetrics(
        name=name, kind="exact", method=f"erlang-{k}", arrival_rate=rate, capacity=cap,
        loss_probability=loss, throughput=throughput, utilization=float(1.0 - p[0]),
        mean_number=mean_number, mean_response_time=mean_number / throughput,
        mean_waiting_time=waiting_number / throughput,
        queue_length_distribution=tuple(float(x) for x in p))


def _phase_counts(service: ServiceLaw, mu: float, least: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """P(N = m), m = 0..L-1, and P(N >= m), m = 0..L, N being the Poisson(mu)
    events during one service, with L >= least and the mass beyond L below
    _RESIDUAL (the tails summed from the far end, not subtracted from 1)."""
    n = max(least + 16, 64)
    while True:
        pmf = service.arrival_pmf(mu, n)
        if 1.0 - math.fsum(pmf) < _RESIDUAL or n >= _MAX_TERMS:
            return pmf, np.append(np.cumsum(pmf[::-1])[::-1], 0.0)
        n = min(2 * n, _MAX_TERMS)


def _within_service(pmf: np.ndarray, tail: np.ndarray, k: int, cap: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """For each start phase j: the time (in units of 1/mu) the service spends with
    a = 0..cap arrivals so far (a = cap: cap or more), and the joint law of the
    arrivals (cap or more lumped) and the phase the service ends in.

    The service spends tail[m + 1] / mu with exactly m phases completed; phase
    count m from start j means (j + m) // k arrivals, ending in phase (j + m) % k.
    """
    size = len(pmf) + k
    rows = -(-size // k)
    time = np.zeros((k, cap + 1))
    joint = np.zeros((k, cap + 1, k))
    for j in range(k):
        spent = np.zeros(rows * k)
        spent[j:j + len(pmf)] = tail[1:]
        law = np.zeros(rows * k)
        law[j:j + len(pmf)] = pmf
        spent, law = spent.reshape(rows, k), law.reshape(rows, k)  # [arrivals, phase]
        per = spent.sum(1)
        time[j, :min(cap, rows)] = per[:cap]
        time[j, cap] = per[cap:].sum()
        joint[j, :min(cap, rows)] = law[:cap]
        joint[j, cap] = law[cap:].sum(0)
    return time, joint


def _embedded(joint: np.ndarray, k: int, cap: int) -> np.ndarray:
    """Stationary law of (n left behind by a departure, arrival phase), n = 0..K-1,
    flattened as n * k + j."""
    size = cap * k
    step = np.zeros((size, size))
    for n in range(cap):
        first = max(n, 1)
        room = cap - first
        for j in range(k):
            start = j if n else 0
            law = joint[start]  # [arrivals, end phase]
            accepted = np.vstack([law[:room], law[room:].sum(0, keepdims=True)])  # 0..room
            step[n * k + j, (first - 1) * k:(first + room) * k] = accepted.ravel()
    # pi (step - I) = 0 with sum(pi) = 1: one balance equation replaced by the sum
    system = step.T - np.eye(size)
    system[-1] = 1.0
    rhs = np.zeros(size)
    rhs[-1] = 1.0
    pi = np.linalg.solve(system, rhs)
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()
