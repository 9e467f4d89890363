"""Every policy by name, and the problem a one-device scenario poses.

Offline policies (``static``, ``static_tuned``, ``queueing_lp``, ``bayes``)
return a decision; online ones (``knapsack``, ``ucb``) are objects that decide
per job inside the simulator's event engine.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from .. import _validation as v
from ..exceptions import UnsupportedModelError
from ..model import ExitTable, PoissonArrivals, System
from ._problem import Decision, ExitProblem

__all__ = ["OFFLINE", "ONLINE", "POLICIES", "solve", "online_policy", "problem_of"]

OFFLINE = ("static", "static_tuned", "queueing_lp", "bayes")
#: online policies; the lookups re-decide as their own rate estimate moves
ONLINE = ("knapsack", "ucb", "lp_lookup", "bayes_lookup")
POLICIES = OFFLINE + ONLINE


def _offline(name: str) -> Callable[..., Decision]:
    if name == "static":
        from ._static import static
        return static
    if name == "static_tuned":
        from ._static import static_tuned
        return static_tuned
    if name == "queueing_lp":
        from ._lp import queueing_lp
        return queueing_lp
    from ._bayes import bayes
    return bayes


def solve(problem: ExitProblem, name: str, **options: object) -> Decision:
    """The decision of offline policy ``name`` for ``problem``."""
    if name not in OFFLINE:
        raise v.fail("solve", "name", f"one of the offline policies {list(OFFLINE)}", name)
    policy = _offline(name)
    _check_options("solve", name, _after_first(policy), options)
    return policy(problem, **options)


def online_policy(problem: ExitProblem, name: str, **options: object):  # noqa: ANN201
    """A fresh online policy object (``decide``/``observe``) for ``problem``."""
    if name not in ONLINE:
        raise v.fail("online_policy", "name", f"one of the online policies {list(ONLINE)}",
                     name)
    if name == "bayes_lookup":
        from ._bayes import BayesLookupPolicy  # _bayes_lookup hands all but lookup on to it
        policy, takes = _bayes_lookup, {"lookup"} | _after_first(BayesLookupPolicy) - {"table"}
    else:
        policy = _online(name)
        takes = _after_first(policy)
    _check_options("online_policy", name, takes, options)
    return policy(problem, **options)


def _online(name: str) -> Callable[..., object]:
    if name == "knapsack":
        from ._knapsack import KnapsackPolicy
        return KnapsackPolicy
    if name == "ucb":
        from ._ucb import ThresholdUCB
        return ThresholdUCB
    from ._lp import QueueingLPPolicy
    return QueueingLPPolicy


def _after_first(function: Callable[..., object]) -> set[str]:
    """The parameters of ``function`` after its first (the problem, or a lookup)."""
    return set(list(inspect.signature(function).parameters)[1:])


def _check_options(owner: str, name: str, takes: set[str], options: dict[str, object]) -> None:
    """One clear message for an option the policy does not take (Python's own
    TypeError names neither the policy nor what it takes)."""
    for option, value in options.items():
        if option not in takes:
            raise v.fail(owner, option, f"an option {name} takes ({', '.join(sorted(takes))})",
                         v.brief(value))


def _bayes_lookup(problem: ExitProblem, *, lookup: object = None,
                  **options: object):  # noqa: ANN202 - a BayesLookupPolicy
    """A BayesLookupPolicy over a saved lookup (building one takes minutes of
    optimisation: ``BayesLookup.build(...).save(path)``, or the schedulers
    benchmark's files)."""
    from ._bayes import BayesLookup, BayesLookupPolicy

    if not isinstance(lookup, (str, os.PathLike)):
        raise v.fail("online_policy", "lookup", "the path of a saved BayesLookup (JSON) for "
                     "'bayes_lookup'", lookup)
    return BayesLookupPolicy(BayesLookup.load(lookup), problem.table, **options)


def problem_of(system: System, table: ExitTable, loss_target: float) -> ExitProblem:
    """The exit problem of a scenario: one chain on one device, Poisson arrivals."""
    v.instance("problem_of", "system", system, System, "a System")
    v.instance("problem_of", "table", table, ExitTable, "an ExitTable")
    if len(system.chains) != 1 or len(system.placement.assignment) != 1:
        raise UnsupportedModelError("The schedulers decide for one chain on one device; the "
                                    f"scenario places its model on "
                                    f"{[d for d, _ in system.placement.assignment]}.")
    if not isinstance(system.workload.arrival, PoissonArrivals):
        raise UnsupportedModelError("The schedulers' model takes Poisson arrivals; got "
                                    f"{type(system.workload.arrival).__name__}.")
    device = system.device(system.placement.assignment[0][0])
    return ExitProblem(table=table, model=system.model, capacity=device.capacity,
                       speed=device.speed, arrival_rate=system.arrival_rate,
                       loss_target=loss_target)
