"""Early-exit schedulers behind one interface.

Offline policies take an :class:`ExitProblem` (exit table, model, device, load,
loss target) and return a decision: thresholds (``ThresholdDecision``) or exit
probabilities (``ProbabilityDecision``). ``predict`` gives its metrics under
the exact M/G/1/K, and ``simulate_decision`` simulates it. Online policies
implement ``decide(state)`` / ``observe(outcome)`` and run in the simulator's
event engine.
"""

from ._problem import (Decision, ExitProblem, ProbabilityDecision, ThresholdDecision, predict,
                       simulate_decision)
from ._registry import OFFLINE, ONLINE, POLICIES, online_policy, problem_of, solve
from ._static import static, static_tuned

__all__ = ["ExitProblem", "ThresholdDecision", "ProbabilityDecision", "Decision", "predict",
           "simulate_decision", "static", "static_tuned", "solve", "online_policy", "problem_of",
           "POLICIES", "OFFLINE", "ONLINE"]
