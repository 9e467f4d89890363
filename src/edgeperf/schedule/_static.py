"""Baselines: one threshold for every exit, fixed (``static``) or tuned to the
load (``static_tuned``): the bar the smarter policies must clear."""

from __future__ import annotations

import time

import numpy as np

from .. import _validation as v
from ._problem import ExitProblem, ThresholdDecision

__all__ = ["static", "static_tuned", "GRID"]

#: Thresholds static_tuned tries: 0 (everything leaves at the first exit) to
#: above 1 (everything reaches the final exit).
GRID = np.append(np.linspace(0.0, 1.0, 201), 1.01)


def static(problem: ExitProblem, threshold: float = 0.9) -> ThresholdDecision:
    """The same threshold at every early exit, whatever the load."""
    v.instance("static", "problem", problem, ExitProblem, "an ExitProblem")
    t = v.real("static", "threshold", threshold, low=0.0)
    return ThresholdDecision(policy="static", thresholds=(t,) * (problem.table.n_exits - 1))


def static_tuned(problem: ExitProblem, grid: np.ndarray = GRID) -> ThresholdDecision:
    """The most accurate single threshold whose exact M/G/1/K loss meets the target.

    Raises InfeasibleError (with the lowest achievable loss) when none does.
    """
    v.instance("static_tuned", "problem", problem, ExitProblem, "an ExitProblem")
    start = time.perf_counter()
    thresholds = v.array("static_tuned", "grid", grid, "a non-empty 1-D array of thresholds >= 0",
                         lambda x: x.ndim == 1 and x.size > 0 and bool(np.all(x >= 0)))
    matrix = np.repeat(thresholds[:, None], problem.table.n_exits - 1, axis=1)
    shares, accuracy = problem.table.evaluate(matrix)
    # most accurate first: the first that meets the target is the answer
    fits = (i for i in np.argsort(-accuracy, kind="stable")
            if problem.loss(shares[i]) <= problem.loss_target)
    best = next(fits, None)
    if best is None:
        raise problem.infeasible("static_tuned")
    best = float(thresholds[best])
    return ThresholdDecision(policy="static_tuned", thresholds=(best,) * (problem.table.n_exits - 1),
                             solve_time_s=time.perf_counter() - start)
