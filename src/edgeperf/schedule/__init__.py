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
from ._bayes import BayesLookup, BayesLookupPolicy, bayes
from ._knapsack import KnapsackPolicy
from ._lp import QueueingLPPolicy, queueing_lp
from ._registry import OFFLINE, ONLINE, POLICIES, online_policy, problem_of, solve
from ._static import static, static_tuned
from ._ucb import QueueAwareUCB, ThresholdUCB, adaee_reward

__all__ = ["ExitProblem", "ThresholdDecision", "ProbabilityDecision", "Decision", "predict",
           "simulate_decision", "static", "static_tuned", "queueing_lp", "QueueingLPPolicy",
           "bayes", "BayesLookup", "BayesLookupPolicy", "KnapsackPolicy", "ThresholdUCB",
           "QueueAwareUCB", "adaee_reward", "solve", "online_policy", "problem_of", "POLICIES",
           "OFFLINE", "ONLINE"]
