"""The default zoo model on digits: exits, calibration, and the accuracy-latency curve.

One run: build the default zoo model, train its exits jointly on
scikit-learn's digits (32x32), fit a temperature per exit on the calibration
split, and build the exit table of the held-out split. Then profile it on this
host (batch 1, one thread) and measure each exit's whole path. A common
threshold at every early exit, from 0 (everything leaves at the first exit)
to above 1 (everything reaches the final exit), gives the accuracy-latency
curve. Latency here is without queueing: the sum of the profiled means along
a job's path, the heads it passed included.

Writes ``benchmarks/results/earlyexit.json`` and ``benchmarks/results/earlyexit.png``.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _results import save_result  # benchmarks/_results.py
from edgeperf.earlyexit import DEFAULT_MODEL, train_digits
from edgeperf.earlyexit._curves import plot_exits, threshold_curve
from edgeperf.profiling import measure_paths, measure_profile

ROOT = Path(__file__).resolve().parents[1]
PLOT = ROOT / "benchmarks" / "results" / "earlyexit.png"
SEED, EPOCHS, REPETITIONS = 0, 10, 200


def measure() -> dict:
    start = time.perf_counter()
    trained = train_digits(DEFAULT_MODEL, epochs=EPOCHS, seed=SEED, progress=False)
    trained_s = time.perf_counter() - start
    net = trained.net
    profile = measure_profile(net, repetitions=REPETITIONS, threads=1)
    blocks = [r["block"] for r in trained.exits]
    path_sum = np.array([profile.path_mean_s(b, earlier_heads=True) for b in blocks])
    measured = measure_paths(net, repetitions=REPETITIONS, threads=1, earlier_heads=True)
    # the thresholds: 0 .. 1 and one above every confidence (all reach the final exit)
    grid = np.append(np.linspace(0.0, 1.0, 101), 1.01)
    curve = threshold_curve(trained.table, grid, path_sum)
    plot_exits(curve, PLOT, [f"exit {r['exit']} ({r['block']})" for r in trained.exits])
    exits = [{"index": r["exit"], "block": r["block"], "accuracy": r["accuracy"],
              "ece_before": r["ece_before"], "ece_after": r["ece_after"],
              "temperature": r["temperature"], "mean_latency_s": float(path_sum[i]),
              "measured_path_median_s": measured[r["block"]].p50,
              "profiled_path_median_s": _median_sum(profile, r["block"])}
             for i, r in enumerate(trained.exits)]
    return {
        "model": DEFAULT_MODEL, "dataset": trained.summary["dataset"],
        "splits": trained.summary["splits"], "training": trained.summary["training"],
        "training_wall_s": trained_s,
        "machine": f"{platform.platform()} ({__import__('os').cpu_count()} CPUs), "
                   f"Python {platform.python_version()}, torch {torch.__version__}",
        "run": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "exits": exits,
        "threshold_curve": [{"thresholds": [float(t)] * (len(exits) - 1),
                             "accuracy": float(a), "mean_latency_s": float(m)}
                            for t, a, m in zip(curve.thresholds, curve.accuracy,
                                               curve.mean_latency_s)],
    }


def _median_sum(profile, block: str) -> float:  # noqa: ANN001
    """The path as the sum of its blocks' and heads' medians (medians resist the
    load bursts of a shared machine better than means)."""
    last = profile.names.index(block)
    parts = profile.blocks[:last + 1]
    return sum(b.latency.p50 for b in parts) + sum(b.exit.latency.p50 for b in parts if b.exit)


def checks(result: dict) -> list[str]:
    """The issue's evidence: what must hold, as failed statements (empty: all hold)."""
    failed = []
    acc = np.array([e["accuracy"] for e in result["exits"]])
    half = len(acc) // 2
    if not acc[half:].mean() > acc[:half].mean():
        failed.append("deeper exits are not more accurate on average")
    # early exits must buy latency: some threshold comes within 0.01 of the final exit's
    # accuracy at a lower mean latency than running every job to the end
    final_latency = result["exits"][-1]["mean_latency_s"]
    if not any(c["accuracy"] >= acc[-1] - 0.01 and c["mean_latency_s"] < final_latency
               for c in result["threshold_curve"]):
        failed.append("no threshold is within 0.01 of the final exit's accuracy at lower latency")
    for e in result["exits"]:
        ratio = e["measured_path_median_s"] / e["profiled_path_median_s"]
        if abs(ratio - 1) > 0.15:
            failed.append(f"exit {e['index']}: measured path / sum of blocks = {ratio:.2f}")
    return failed


def markdown_table(result: dict) -> str:
    lines = [f"Run {result['run']} on {result['machine']}. {result['model']} trained "
             f"{result['training']['epochs']} epochs ({result['training']['scheme']}) in "
             f"{result['training_wall_s']:.0f} s; splits {result['splits']}.", "",
             "| exit | block | accuracy | ECE before | ECE after | path mean (ms) | "
             "measured path / sum of blocks (medians) |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for e in result["exits"]:
        ratio = e["measured_path_median_s"] / e["profiled_path_median_s"]
        lines.append(f"| {e['index']} | {e['block']} | {e['accuracy']:.4f} | "
                     f"{e['ece_before']:.4f} | {e['ece_after']:.4f} | "
                     f"{e['mean_latency_s'] * 1e3:.3f} | {ratio:.3f} |")
    curve = result["threshold_curve"]
    lines += ["", "Accuracy against mean latency for a common threshold "
              "(every 10th point and the last; plot: `results/earlyexit.png`):", "",
              "| threshold | accuracy | mean latency (ms) |", "|---:|---:|---:|"]
    for c in curve[::10] + curve[-1:]:
        lines.append(f"| {c['thresholds'][0]:.2f} | {c['accuracy']:.4f} | "
                     f"{c['mean_latency_s'] * 1e3:.3f} |")
    failed = checks(result)
    lines += ["", "Checks: " + ("all hold (deeper exits more accurate on average; a threshold "
                                "within 0.01 of the final accuracy at lower latency; paths "
                                "within 15% of their blocks)."
                                if not failed else "FAILED: " + "; ".join(failed))]
    return "\n".join(lines)


def main() -> int:
    result = measure()
    save_result("earlyexit", result)
    print(markdown_table(result))
    return 1 if checks(result) else 0


if __name__ == "__main__":
    sys.exit(main())
