"""A small synthetic early-exit problem shared by the scheduler and CLI tests.

Four exits on one device. Deeper exits are slower, more accurate and more
confident, as in a trained network: each sample has a difficulty, and an exit
is right (and confident) when its depth exceeds that difficulty, plus noise.
"""

from __future__ import annotations

import numpy as np

from edgeperf.dists import Deterministic, Gamma
from edgeperf.model import DNN, Block, ExitTable
from edgeperf.schedule import ExitProblem

EXIT_DEPTH = np.array([0.25, 0.5, 0.75, 1.0])


def synthetic_table(n: int = 2000, seed: int = 0) -> ExitTable:
    rng = np.random.default_rng(seed)
    difficulty = rng.random(n)
    margin = EXIT_DEPTH[None, :] - difficulty[:, None] + rng.normal(0, 0.15, (n, 4))
    correct = margin > 0
    confidence = np.clip(0.55 + 0.45 * np.tanh(3 * margin) + rng.normal(0, 0.05, (n, 4)), 0, 1)
    return ExitTable(confidence, correct)


def synthetic_model() -> DNN:
    """Four blocks, an exit after each of the first three; 2, 1.5, 1.5, 2 ms."""
    laws = [Gamma(4, 0.002), Deterministic(0.0015), Gamma(9, 0.0015), Gamma(4, 0.002)]
    return DNN(blocks=tuple(
        Block(name=f"b{i}", latency=law, output_bytes=1000,
              exit_probability=0.0 if i < 3 else None) for i, law in enumerate(laws)))


def make_problem(rate: float = 300.0, loss_target: float = 0.01, capacity: int = 8,
                 seed: int = 0) -> ExitProblem:
    return ExitProblem(table=synthetic_table(seed=seed), model=synthetic_model(),
                       capacity=capacity, arrival_rate=rate, loss_target=loss_target)
