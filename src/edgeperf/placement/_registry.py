"""Every placement method behind one call, by name."""

from __future__ import annotations

from typing import Any

from .. import _validation as v
from ..model import System
from ._decision import PlacementDecision

__all__ = ["METHODS", "place"]

#: method name -> the options it takes (besides ``chain``)
METHODS: dict[str, frozenset[str]] = {
    "neurosurgeon": frozenset({"device", "server", "objective", "power"}),
    "scission": frozenset({"tiers", "objective", "power"}),
    "mincut": frozenset({"device", "server"}),
    "ilp": frozenset({"objective", "weight", "max_utilisation", "time_limit_s"}),
    "surrogate": frozenset({"model", "objective", "time_budget_s", "seed", "confirm", "jobs",
                            "replications", "loss_tolerance"}),
    "simulation": frozenset({"objective", "time_budget_s", "seed", "scoring_jobs", "confirm",
                             "jobs", "replications", "loss_tolerance"}),
    "loss-aware": frozenset({"loss_target", "options", "exhaustive_limit", "loss_tolerance",
                             "confirm", "jobs", "replications", "seed", "progress"}),
}


def place(system: System, method: str, *, chain: str | None = None,
          **options: Any) -> PlacementDecision:
    """The placement ``method`` chooses for ``chain`` (default: the only one).
    Options that are None are left at the method's default."""
    if not isinstance(method, str) or method not in METHODS:
        raise v.fail("place", "method", f"one of {list(METHODS)}", method)
    given = {k: x for k, x in options.items() if x is not None}
    for name in given:
        if name not in METHODS[method]:
            raise v.fail("place", name, f"an option {method} takes "
                         f"({', '.join(sorted(METHODS[method]))})", given[name])
    return _function(method)(system, chain=chain, **given)


def _function(method: str):  # noqa: ANN202 - a placement function
    if method == "neurosurgeon":
        from ._split import neurosurgeon
        return neurosurgeon
    if method == "scission":
        from ._split import scission
        return scission
    if method == "mincut":
        from ._mincut import mincut
        return mincut
    if method == "ilp":
        from ._ilp import ilp
        return ilp
    if method == "surrogate":
        from ._surrogate_search import surrogate_search
        return surrogate_search
    if method == "simulation":
        from ._surrogate_search import simulation_search
        return simulation_search
    from ._loss_aware import loss_aware
    return loss_aware
