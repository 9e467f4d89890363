"""The problem every early-exit scheduler solves, and the decisions they return.

One device (a single-server FIFO station of capacity K, the job in service
included) runs an early-exit model for Poisson arrivals at rate λ. A job
leaving at exit e needs the blocks up to that exit, and the heads of every
exit it reaches, since each head decides whether the job leaves there. This is
the time the simulator charges, and the one every policy here uses. Single-exit
policies could skip the earlier heads. The model does not, which makes it
slightly pessimistic for them. So:

- a job leaving at exit e takes ``exit_laws[e]``: the sum of its blocks' laws
  (heads included), divided by the device's ``speed``;
- exits taken with shares ``p`` make the service law the mixture of the
  ``exit_laws`` with weights ``p``;
- the loss of that mixture at rate λ with capacity K is the exact M/G/1/K
  loss. A decision meets the target L* when that loss is at most L*.

A decision is either thresholds (the exits then follow from each job's input,
through the exit table) or exit probabilities (a single-exit policy). Both can
be predicted analytically and simulated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from .. import _validation as v
from ..dists import Mixture, ServiceLaw, Sum
from ..exceptions import InfeasibleError
from ..model import (DNN, Device, ExitTable, Metrics, Placement, PoissonArrivals, System,
                     Workload)
from ..queueing import mg1k

__all__ = ["ExitProblem", "ThresholdDecision", "ProbabilityDecision", "Decision", "predict",
           "simulate_decision"]


class _Memo(ServiceLaw):
    """A law that remembers its arrival pmfs: a policy search evaluates the
    mixture of the same exit laws at one rate thousands of times, and the pmf
    of a mixture is the mixture of the pmfs, so each exit's is computed once."""

    __slots__ = ("law", "_pmfs")

    def __init__(self, law: ServiceLaw) -> None:
        self.law = law
        self._pmfs: dict[tuple[float, int], np.ndarray] = {}

    @property
    def mean(self) -> float:
        return self.law.mean

    @property
    def scv(self) -> float:
        return self.law.scv

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.law._sample(rng, n)

    def _pmf(self, arrival_rate: float, n: int) -> np.ndarray:
        key = (arrival_rate, n)
        if key not in self._pmfs:
            self._pmfs[key] = self.law._pmf(arrival_rate, n)
        return self._pmfs[key]

    def scaled(self, factor: float) -> ServiceLaw:
        return _Memo(self.law.scaled(factor))

    def to_spec(self) -> dict:
        return self.law.to_spec()


@dataclass(frozen=True, kw_only=True, eq=False)
class ExitProblem:
    """An early-exit model on one device under Poisson load, with a loss target.

    ``model`` marks its exits with ``exit_probability`` (their values are not
    used), in the order of the exit table's columns; the last block is the
    final exit.
    """

    table: ExitTable
    model: DNN
    capacity: int
    arrival_rate: float
    loss_target: float
    speed: float = 1.0

    def __post_init__(self) -> None:
        owner = "ExitProblem"
        v.instance(owner, "table", self.table, ExitTable, "an ExitTable")
        v.instance(owner, "model", self.model, DNN, "a DNN")
        if len(self.exit_blocks) != self.table.n_exits:
            raise v.fail(owner, "table", f"{len(self.exit_blocks)} exit columns, one per exit "
                         "of the model", self.table.n_exits)
        v.integer(owner, "capacity", self.capacity, low=1)
        v.positive(owner, "arrival_rate", self.arrival_rate)
        v.real(owner, "loss_target", self.loss_target, low=0.0, high=1.0, low_open=True)
        v.positive(owner, "speed", self.speed)

    @property
    def exit_blocks(self) -> tuple[int, ...]:
        blocks = self.model.blocks
        return tuple(i for i, b in enumerate(blocks) if b.exit_probability is not None) + \
            (len(blocks) - 1,)

    @property
    def exit_names(self) -> tuple[str, ...]:
        return tuple(self.model.blocks[i].name for i in self.exit_blocks)

    @cached_property
    def exit_laws(self) -> tuple[ServiceLaw, ...]:
        """Service time of a job leaving at each exit, on this device."""
        blocks = self.model.blocks
        laws = []
        for last in self.exit_blocks:
            parts = [b.latency for b in blocks[:last + 1]]
            law = parts[0] if len(parts) == 1 else Sum(tuple(parts))
            laws.append(_Memo(law.scaled(1.0 / self.speed)))
        return tuple(laws)

    @cached_property
    def exit_means(self) -> np.ndarray:
        return np.array([law.mean for law in self.exit_laws])

    @cached_property
    def exit_second_moments(self) -> np.ndarray:
        return np.array([law.second_moment for law in self.exit_laws])

    def with_rate(self, arrival_rate: float) -> ExitProblem:
        """The same problem at another arrival rate (laws are shared, not recomputed)."""
        return self._variant(arrival_rate=arrival_rate)

    def with_target(self, loss_target: float) -> ExitProblem:
        """The same problem with another loss target (laws and their pmfs shared)."""
        return self._variant(loss_target=loss_target)

    def _variant(self, **changes: float) -> ExitProblem:
        other = replace(self, **changes)
        for name in ("exit_laws", "exit_means", "exit_second_moments"):
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    def service_law(self, shares: np.ndarray) -> ServiceLaw:
        """The mixture of the exit laws with weights ``shares``."""
        p = np.asarray(shares, dtype=float)
        used = np.flatnonzero(p > 0)
        if len(used) == 1:
            return self.exit_laws[used[0]]
        return Mixture(tuple(self.exit_laws[e] for e in used), tuple(p[used] / p[used].sum()))

    def loss(self, shares: np.ndarray) -> float:
        """Exact M/G/1/K loss when jobs leave at the exits with ``shares``."""
        shares = v.weights("ExitProblem.loss", "shares", shares, self.table.n_exits)
        return mg1k(self.arrival_rate, self.service_law(shares), self.capacity).loss_probability

    def lowest_loss(self) -> float:
        """The least loss any policy can reach: every job at the fastest exit."""
        shares = np.zeros(self.table.n_exits)
        shares[int(np.argmin(self.exit_means))] = 1.0
        return self.loss(shares)

    def infeasible(self, owner: str) -> InfeasibleError:
        """The error when no decision meets the target."""
        return InfeasibleError(
            f"{owner}: no policy meets the loss target {self.loss_target:g} at arrival rate "
            f"{self.arrival_rate:g}/s with capacity {self.capacity}: the lowest achievable loss "
            f"is {self.lowest_loss():.6g} (every job at the fastest exit).")

    def system(self) -> System:
        """The problem as a one-device System, for the simulator."""
        device = Device(name="device", capacity=self.capacity, speed=self.speed)
        return System(model=self.model, devices=(device,),
                      workload=Workload(arrival=PoissonArrivals(rate=self.arrival_rate)),
                      placement=Placement.from_mapping({"device": list(self.model.names)}))


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdDecision:
    """One confidence threshold per early exit: a job leaves at the first exit
    whose confidence reaches it."""

    policy: str
    thresholds: tuple[float, ...]
    solve_time_s: float = 0.0

    def shares_and_accuracy(self, problem: ExitProblem) -> tuple[np.ndarray, float]:
        shares, accuracy = problem.table.evaluate(np.asarray(self.thresholds))
        return shares[0], float(accuracy[0])

    def exit_policy(self, problem: ExitProblem):  # noqa: ANN201 - a sim exit policy
        from ..sim import ThresholdExits
        return ThresholdExits(problem.table, self.thresholds)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbabilityDecision:
    """A single-exit policy: each job is given exit e with ``probabilities[e]``."""

    policy: str
    probabilities: tuple[float, ...]
    solve_time_s: float = 0.0

    def shares_and_accuracy(self, problem: ExitProblem) -> tuple[np.ndarray, float]:
        p = v.weights("ProbabilityDecision", "probabilities", self.probabilities,
                      problem.table.n_exits)
        return p, float(p @ problem.table.accuracy_by_exit)

    def exit_policy(self, problem: ExitProblem):  # noqa: ANN201 - a sim exit policy
        from ..sim import ExitShares
        return ExitShares(self.probabilities, problem.table)


Decision = ThresholdDecision | ProbabilityDecision


def _check(owner: str, problem: object, decision: object) -> None:
    v.instance(owner, "problem", problem, ExitProblem, "an ExitProblem")
    v.instance(owner, "decision", decision, (ThresholdDecision, ProbabilityDecision),
               "a ThresholdDecision or a ProbabilityDecision")


def predict(problem: ExitProblem, decision: Decision) -> Metrics:
    """The decision's metrics under the model: exact M/G/1/K and the exit table."""
    _check("predict", problem, decision)
    shares, accuracy = decision.shares_and_accuracy(problem)
    station = mg1k(problem.arrival_rate, problem.service_law(shares), problem.capacity,
                   name="device")
    return Metrics(kind="exact", method=f"{decision.policy}/mg1k",
                   arrival_rate=problem.arrival_rate, throughput=station.throughput,
                   loss_probability=station.loss_probability,
                   mean_response_time=station.mean_response_time,
                   exit_distribution=dict(zip(problem.exit_names, map(float, shares))),
                   accuracy=accuracy, stations=(station,))


def simulate_decision(problem: ExitProblem, decision: Decision, *, jobs: int = 200_000,
                      replications: int = 10, seed: int = 0) -> Metrics:
    """The decision simulated on the problem's device, with 95% half-widths."""
    from ..sim import simulate

    _check("simulate_decision", problem, decision)
    return simulate(problem.system(), exits=decision.exit_policy(problem), jobs=jobs,
                    replications=replications, seed=seed)
