"""The learned twin's prediction time against torch's thread count, on an idle
machine and on one whose cores other processes keep busy.

The shipped model predicts random deployments of the ``chainnet`` regime
(encoded beforehand: the forward pass alone): 32 one at a time, as a
placement search scores a single candidate, and 256 in one batch, as the
benchmark of ``surrogate.py`` times it. "Busy": one process per usable core spins while
the predictions run, as a sweep, a simulation-driven search or a second
training would. Each figure is the median of five timed calls after a warm-up
call, per deployment. This is why ``predict`` (and ``train``) run on one
thread unless told otherwise. Writes ``benchmarks/results/surrogate_threads.json``.
"""

from __future__ import annotations

import multiprocessing
import platform
import time
from pathlib import Path

import numpy as np

from _results import save_result  # benchmarks/_results.py
from edgeperf._validation import usable_cores
from edgeperf.io import parse_scenario
from edgeperf.surrogate import deployments, encode, encode_batch, load_model

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "surrogate" / "chainnet.safetensors"
SINGLES, BATCH, REPEATS = 32, 256, 5


def _spin(stop) -> None:  # noqa: ANN001
    while not stop.is_set():
        pass


def _per_deployment_ms(model, graphs: list, threads: int) -> float:  # noqa: ANN001
    """Median over REPEATS of the time to predict every graph, per deployment."""
    count = sum(g.num_graphs for g in graphs)
    model.predict(graphs[0], threads=threads)  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for graph in graphs:
            model.predict(graph, threads=threads)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / count * 1e3


def _measure(model, shapes: dict, counts: list[int], load: str) -> list[dict]:  # noqa: ANN001
    return [{"load": load, "threads": t, "batch": batch,
             "ms_per_deployment": _per_deployment_ms(model, graphs, t)}
            for batch, graphs in shapes.items() for t in counts]


def main() -> None:
    model = load_model(SHIPPED)
    systems = [parse_scenario(s, f"deployment {n}")
               for n, s in enumerate(deployments(BATCH, seed=0))]
    shapes = {1: [encode(s) for s in systems[:SINGLES]], BATCH: [encode_batch(systems)]}
    cores = usable_cores()
    counts = [1, 2] if cores >= 2 else [1]
    rows = _measure(model, shapes, counts, "idle")
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    spinners = [context.Process(target=_spin, args=(stop,), daemon=True) for _ in range(cores)]
    for p in spinners:
        p.start()
    try:
        rows += _measure(model, shapes, counts, "busy")
    finally:
        stop.set()
        for p in spinners:
            p.join()
    for r in rows:
        print(f"{r['load']:5} threads {r['threads']} batch {r['batch']:3}: "
              f"{r['ms_per_deployment']:.4f} ms", flush=True)
    save_result("surrogate_threads", {"usable_cores": cores, "singles": SINGLES,
                                      "batch": BATCH, "repeats": REPEATS,
                                      "python": platform.python_version(), "rows": rows})


def markdown_table(result: dict) -> str:
    rows = result["rows"]
    ms = {(r["load"], r["threads"], r["batch"]): r["ms_per_deployment"] for r in rows}
    lines = [f"The shipped model's forward pass per deployment, ms: {result['singles']} "
             f"deployments one at a time (batch 1) or {result['batch']} in one batch, median "
             f"of {result['repeats']} calls; {result['usable_cores']} usable cores; 'busy': "
             "one spinning process per core.",
             "", "| load | torch threads | batch | ms per deployment |", "|---|---|---|---|"]
    lines += [f"| {r['load']} | {r['threads']} | {r['batch']} | {r['ms_per_deployment']:.4f} |"
              for r in rows]
    if ("busy", 2, 1) in ms:
        lines += ["", "Two threads against one: " + "; ".join(
            f"{load}, batch {b}: {ms[(load, 2, b)] / ms[(load, 1, b)]:.2f}x the time"
            for load in ("idle", "busy") for b in sorted({r['batch'] for r in rows})) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
