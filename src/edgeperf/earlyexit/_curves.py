"""What one threshold does: exit rates, accuracy and mean latency, and their plots.

A common threshold t applied at every early exit sweeps from "everything
leaves at the first exit" (t = 0) to "everything runs to the final exit"
(t above every confidence). Each point is exact on the held-out exit table. With
the mean latency of each exit's path (its blocks, plus the heads of the exits
it passed), it also gives the mean latency of a job without queueing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _validation as v
from .._atomic import atomic_path
from ..model import ExitTable

__all__ = ["ThresholdCurve", "threshold_curve", "plot_exits"]


@dataclass(frozen=True, slots=True, eq=False)
class ThresholdCurve:
    """``thresholds`` [T]; ``shares`` [T, E] of samples leaving at each exit;
    ``accuracy`` [T] overall; ``exit_accuracy`` [T, E] among the samples leaving
    at each exit (NaN where none leave); ``mean_latency_s`` [T] when path
    latencies were given."""

    thresholds: np.ndarray
    shares: np.ndarray
    accuracy: np.ndarray
    exit_accuracy: np.ndarray
    mean_latency_s: np.ndarray | None


def threshold_curve(table: ExitTable, thresholds: np.ndarray | None = None,
                    path_latency_s: np.ndarray | None = None) -> ThresholdCurve:
    """Exit rates and accuracy of a common threshold at every early exit."""
    grid = np.linspace(0.0, 1.0, 101) if thresholds is None else np.asarray(thresholds, float)
    if grid.ndim != 1 or len(grid) == 0:
        raise v.fail("threshold_curve", "thresholds", "a non-empty 1-D list", grid.shape)
    matrix = np.repeat(grid[:, None], table.n_exits - 1, axis=1)
    shares, accuracy = table.evaluate(matrix)
    exits = np.stack([table.exits_for(row) for row in matrix])  # [T, N]
    correct = table.correct[np.arange(table.n_samples)[None, :], exits]
    exit_accuracy = np.full(shares.shape, np.nan)
    for e in range(table.n_exits):
        leaving = exits == e
        counts = leaving.sum(axis=1)
        right = (correct & leaving).sum(axis=1)
        exit_accuracy[counts > 0, e] = right[counts > 0] / counts[counts > 0]
    latency = None
    if path_latency_s is not None:
        paths = np.asarray(path_latency_s, dtype=float)
        if paths.shape != (table.n_exits,):
            raise v.fail("threshold_curve", "path_latency_s", f"one latency per exit "
                         f"({table.n_exits})", paths.shape)
        latency = shares @ paths
    return ThresholdCurve(grid, shares, accuracy, exit_accuracy, latency)


def plot_exits(curve: ThresholdCurve, path: str | Path, names: list[str] | None = None) -> Path:
    """One panel per exit (its exit rate and the accuracy of the samples leaving
    there, against the threshold) and a last panel with the overall accuracy.
    The suffix of ``path`` picks the format (.png, .pdf, .svg, ...)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    target = v.plot_file("plot_exits", "path", v.path("plot_exits", "path", path))
    n = curve.shares.shape[1]
    names = names or [f"exit {e}" for e in range(n)]
    cols = min(4, n + 1)
    rows = -(-(n + 1) // cols)
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    for e in range(n):
        ax = fig.add_subplot(rows, cols, e + 1)
        ax.plot(curve.thresholds, curve.shares[:, e], label="exit rate")
        ax.plot(curve.thresholds, curve.exit_accuracy[:, e], label="accuracy here")
        ax.set_title(names[e], fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("threshold", fontsize=8)
        if e == 0:
            ax.legend(fontsize=7)
    ax = fig.add_subplot(rows, cols, n + 1)
    if curve.mean_latency_s is not None:
        ax.plot(curve.mean_latency_s * 1e3, curve.accuracy, marker=".")
        ax.set_xlabel("mean latency (ms)", fontsize=8)
    else:
        ax.plot(curve.thresholds, curve.accuracy)
        ax.set_xlabel("threshold", fontsize=8)
    ax.set_title("overall accuracy", fontsize=9)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=110, format=v.plot_format(target))
    return target
