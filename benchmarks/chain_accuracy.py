"""When to trust the decomposition: its loss error against simulation over a grid of chains.

A seeded generator draws chains of 2, 3, 5 and 8 stations (one block per
device, devices wired by ideal links) at a largest offered load ρ_max of 0.5,
0.8, 1.0, 1.2 and 1.5, in five families: exponential stations, smooth ones
(deterministic, Erlang-4), bursty ones (gamma SCV 2, lognormal SCV 3), a random
mix of all five laws, and that mix with an early exit. Capacities are drawn
from 1 to 10; the bottleneck (the station at ρ_max) moves along the chain from
case to case, the other stations are offered ρ_max × U(0.3, 0.9). Two chains
per family and cell: 200 in all.

The offered load of station i is ρ_i = λ_i E[S_i], where λ_i is the external
rate thinned by the early exits before i only (not by losses): the load the
station would see if nothing upstream were lost.

Both sides see the identical ``System``: the analytic side is
``DecompositionEvaluator(method).evaluate`` for both methods, the reference is
``simulate(engine="kernel")`` (10 replications x 100,000 jobs, 95%
half-widths). ``rel_error = |loss_analytic - loss_sim| / loss_sim``; a case
whose simulated loss is below ``MIN_LOSS`` has no meaningful relative error and
is listed under ``"skipped"`` with its absolute error instead of in ``"rows"``.
Writes ``benchmarks/results/chain_accuracy.json`` and rewrites its table in
docs/background/chain.md.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from edgeperf.io import parse_scenario
from edgeperf.queueing import DecompositionEvaluator
from edgeperf.sim import simulate

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "chain_accuracy.json"
DOC = ROOT / "docs" / "background" / "chain.md"  # its table is rewritten by each run
MARKERS = ("<!-- chain_accuracy:start -->", "<!-- chain_accuracy:end -->")

SEED = 2024  # the grid generator's seed; case c simulates with seed c
REPLICATIONS, JOBS = 10, 100_000
MIN_LOSS = 1e-3  # below this simulated loss, only the absolute error is reported
STATIONS = (2, 3, 5, 8)
RHO_MAX = (0.5, 0.8, 1.0, 1.2, 1.5)
REPEATS = 2  # chains drawn per family and grid cell
METHODS = ("poisson", "two-moment")
RATE = 1.0  # external arrival rate (jobs/s); service means are set from the loads

#: name -> (SCV, latency spec of the given mean)
LAWS = {
    "deterministic": (0.0, lambda m: {"kind": "deterministic", "value": m}),
    "erlang-4": (0.25, lambda m: {"kind": "gamma", "shape": 4.0, "mean": m}),
    "exponential": (1.0, lambda m: {"kind": "exponential", "mean": m}),
    "gamma-scv2": (2.0, lambda m: {"kind": "gamma", "shape": 0.5, "mean": m}),
    "lognormal-scv3": (3.0, lambda m: {"kind": "lognormal", "mean": m, "scv": 3.0}),
}
#: chain family -> the laws its stations are drawn from, and whether it has an early exit
FAMILIES = {
    "exponential": (("exponential",), False),
    "smooth": (("deterministic", "erlang-4"), False),
    "bursty": (("gamma-scv2", "lognormal-scv3"), False),
    "mixed": (tuple(LAWS), False),
    "mixed + exit": (tuple(LAWS), True),
}


def grid() -> list[dict]:
    """Every case of the grid, drawn from one fixed generator."""
    rng = np.random.default_rng(SEED)
    cases = []
    for n in STATIONS:
        for cell, rho_max in enumerate(RHO_MAX):
            for rep in range(REPEATS):
                for f, (family, (laws, has_exit)) in enumerate(FAMILIES.items()):
                    cases.append(_draw(rng, len(cases), family, laws, has_exit, n, rho_max,
                                       bottleneck=(f + cell + rep) % n))
    return cases


def _draw(rng: np.random.Generator, case_id: int, family: str, laws: tuple[str, ...],
          has_exit: bool, n: int, rho_max: float, bottleneck: int) -> dict:
    """One chain: the bottleneck at ``rho_max``, the others at ρ_max x U(0.3, 0.9)."""
    loads = rho_max * rng.uniform(0.3, 0.9, n)
    loads[bottleneck] = rho_max
    exit_at, exit_p = None, 0.0
    if has_exit:
        exit_at = int(rng.integers(0, n - 1))  # after a station other than the last
        exit_p = float(rng.uniform(0.2, 0.5))
    return {"id": case_id, "family": family, "stations": n, "rho_max": rho_max,
            "bottleneck": bottleneck, "loads": [float(x) for x in loads],
            "laws": [str(rng.choice(laws)) for _ in range(n)],
            "capacities": [int(k) for k in rng.integers(1, 11, n)],
            "exit_at": exit_at, "exit_probability": exit_p}


def scenario(case: dict) -> dict:
    """The scenario of one case: block i on device d{i}, ideal links between them."""
    n, reach = case["stations"], 1.0  # reach: share of arrivals not gone at an exit before i
    blocks = []
    for i in range(n):
        mean = case["loads"][i] / (RATE * reach)
        block = {"name": f"b{i}", "latency": LAWS[case["laws"][i]][1](mean), "output_bytes": 1000}
        if case["exit_at"] == i:
            block["exit"] = {"probability": case["exit_probability"]}
            reach *= 1.0 - case["exit_probability"]
        blocks.append(block)
    return {
        "workload": {"arrival": {"process": "poisson", "rate": RATE}},
        "model": {"blocks": blocks},
        "devices": [{"name": f"d{i}", "capacity": case["capacities"][i]} for i in range(n)],
        "links": [{"from": f"d{i}", "to": f"d{i + 1}"} for i in range(n - 1)],
        "placement": {f"d{i}": [f"b{i}"] for i in range(n)},
    }


def measure(case: dict) -> dict:
    """Simulation and both decompositions of one case, on the same System."""
    system = parse_scenario(scenario(case), source=f"case {case['id']}")
    sim = simulate(system, jobs=JOBS, replications=REPLICATIONS, seed=case["id"], engine="kernel")
    out = {"loss_sim": sim.loss_probability, "loss_sim_ci": sim.half_widths["loss_probability"],
           "response_sim": sim.mean_response_time,
           "response_sim_ci": sim.half_widths.get("mean_response_time")}
    for method in METHODS:
        m = DecompositionEvaluator(method).evaluate(system)
        out[method] = {"loss": m.loss_probability, "response": m.mean_response_time}
    return out


def _smooth_downstream(case: dict) -> bool:
    """Whether a station after the first is smoother than exponential (SCV < 1):
    the decomposition's known weak spot (its input is smoother than Poisson)."""
    return any(LAWS[name][0] < 1.0 for name in case["laws"][1:])


def rows_of(case: dict, r: dict) -> tuple[list[dict], list[dict]]:
    """One row per method; cases with too little simulated loss go to ``skipped``."""
    rows, skipped = [], []
    for method in METHODS:
        a = r[method]
        row = {
            "stations": case["stations"], "rho_max": case["rho_max"], "method": method,
            "loss_sim": r["loss_sim"], "loss_sim_ci": r["loss_sim_ci"], "loss_analytic": a["loss"],
            "abs_error": abs(a["loss"] - r["loss_sim"]),
            "loss_error": a["loss"] - r["loss_sim"],
            "case": case["id"], "family": case["family"], "bottleneck": case["bottleneck"],
            "scv": [LAWS[name][0] for name in case["laws"]], "laws": case["laws"],
            "capacity": case["capacities"], "loads": [round(x, 4) for x in case["loads"]],
            "exit_at": case["exit_at"], "exit_probability": case["exit_probability"],
            "smooth_downstream": _smooth_downstream(case),
            "response_sim": r["response_sim"], "response_sim_ci": r["response_sim_ci"],
            "response_analytic": a["response"],
            "response_rel_error": (a["response"] / r["response_sim"] - 1.0
                                   if a["response"] is not None and r["response_sim"] else None),
        }
        if r["loss_sim"] >= MIN_LOSS:
            row["rel_error"] = row["abs_error"] / r["loss_sim"]
            row["sim_rel_ci"] = r["loss_sim_ci"] / r["loss_sim"]
            # move rel_error next to the other required keys for readability
            rows.append({k: row[k] for k in ("stations", "rho_max", "method", "loss_sim",
                                             "loss_sim_ci", "loss_analytic", "rel_error")}
                        | row)
        else:
            skipped.append(row)
    return rows, skipped


def main() -> None:
    started = time.perf_counter()
    cases = grid()
    workers = min(len(os.sched_getaffinity(0)), 4)
    with ProcessPoolExecutor(workers) as pool:  # each case is seeded: the order does not matter
        results = list(pool.map(measure, cases, chunksize=1))
    rows, skipped = [], []
    for case, r in zip(cases, results):
        a, b = rows_of(case, r)
        rows += a
        skipped += b
    result = {
        "rows": rows, "skipped": skipped,
        "run": {"seed": SEED, "replications": REPLICATIONS, "jobs_per_replication": JOBS,
                "min_loss": MIN_LOSS, "cases": len(cases), "workers": workers,
                "engine": "kernel", "seconds": time.perf_counter() - started},
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "cpus": len(os.sched_getaffinity(0))},
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(_dumps(result))
    table = markdown_table(result)
    _rewrite_doc_table(table)
    print(table)


def _dumps(result: dict) -> str:
    """JSON with one line per row, so that the file stays small and diffs stay readable."""
    parts = []
    for key, value in result.items():
        if isinstance(value, list):
            items = ",\n".join("    " + json.dumps(x, ensure_ascii=False) for x in value)
            parts.append(f'  "{key}": [\n{items}\n  ]' if value else f'  "{key}": []')
        else:
            parts.append(f'  "{key}": {json.dumps(value, ensure_ascii=False)}')
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _rewrite_doc_table(table: str) -> None:
    start, end = MARKERS
    text = DOC.read_text()
    i, j = text.index(start), text.index(end)
    DOC.write_text(text[: i + len(start)] + "\n" + table + "\n" + text[j:])


def _stats(errors: list[float]) -> str:
    if not errors:
        return "– | – | –"
    e = np.asarray(errors)
    return (f"{np.median(e):.1%} | {np.quantile(e, 0.9):.1%} | "
            f"{np.mean(e <= 0.05):.0%} / {np.mean(e <= 0.2):.0%}")


def _summary(rows: list[dict], key: str | Callable[[dict], object], values: list) -> list[str]:
    lines = []
    for value in values:
        sel = [r for r in rows if key(r) == value] if callable(key) else \
            [r for r in rows if r[key] == value]
        by = {m: [r["rel_error"] for r in sel if r["method"] == m] for m in METHODS}
        label = (" | ".join(str(x) for x in value) if isinstance(value, tuple)
                 else {False: "no", True: "yes"}.get(value, value))
        lines.append(f"| {label} | {len(by[METHODS[0]])} | {_stats(by['poisson'])} | "
                     f"{_stats(by['two-moment'])} |")
    return lines


def _signed(rows: list[dict], label: str, keep: Callable[[dict], bool]) -> str:
    """One row of the signed-error table: per method, the share of chains off by more
    than 20%, the median signed relative error and the range of analytic / simulated."""
    cells = []
    for method in METHODS:
        sel = [r for r in rows if r["method"] == method and keep(r)]
        ratio = np.array([r["loss_analytic"] / r["loss_sim"] for r in sel])
        cells.append(f"{np.mean(np.abs(ratio - 1.0) > 0.2):.0%} | {np.median(ratio - 1.0):+.0%} | "
                     f"{ratio.min():.2f}–{ratio.max():.2f}")
    return f"| {label} | {len(sel)} | " + " | ".join(cells) + " |"


def markdown_table(result: dict) -> str:
    rows, run = result["rows"], result["run"]
    n_skipped = len({r["case"] for r in result["skipped"]})
    worst_skipped = max((r["abs_error"] for r in result["skipped"]), default=0.0)
    head = ("| cases | Poisson median | Poisson p90 | Poisson ≤5% / ≤20% | "
            "two-moment median | two-moment p90 | two-moment ≤5% / ≤20% |")
    rule = "|---" * 9 + "|"
    lines = [
        f"Relative error of the end-to-end loss, |analytic − simulated| / simulated, over "
        f"{run['cases']} seeded chains (seed {run['seed']}; simulation: kernel, "
        f"{run['replications']} replications x {run['jobs_per_replication']} jobs). "
        f"{n_skipped} chains whose simulated loss is below {run['min_loss']:g} are left out "
        f"(largest absolute error among them: {worst_skipped:.1e}). "
        f"Per method: median and 90th percentile of the relative error, and the share of "
        f"chains within 5% / within 20%. "
        f"Run time {run['seconds']:.0f} s on {run['workers']} worker processes.",
        "",
        "By number of stations and largest offered load ρ_max:",
        "",
        "| stations | ρ_max " + head, rule,
        *_summary(rows, lambda r: (r["stations"], r["rho_max"]),
                  [(n, rho) for n in STATIONS for rho in RHO_MAX]),
        "",
        "By service variability of the chain:",
        "",
        "| chains " + head, rule[4:],
        *_summary(rows, "family", list(FAMILIES)),
        "",
        "By whether a station after the first is smoother than exponential (SCV < 1):",
        "",
        "| station with SCV < 1 after the first " + head, rule[4:],
        *_summary(rows, "smooth_downstream", [False, True]),
        "",
        "Signed: share of chains off by more than 20%, median of (analytic − simulated) / "
        "simulated, and the range of analytic / simulated loss:",
        "",
        "| chains | cases | Poisson > 20% | Poisson median | Poisson range | "
        "two-moment > 20% | two-moment median | two-moment range |",
        "|---" * 8 + "|",
        _signed(rows, "no station with SCV < 1 after the first",
                lambda r: not r["smooth_downstream"]),
        _signed(rows, "a station with SCV < 1 after the first, ρ_max ≤ 1",
                lambda r: r["smooth_downstream"] and r["rho_max"] <= 1.0),
        _signed(rows, "smooth (every station SCV < 1), ρ_max ≤ 1",
                lambda r: r["family"] == "smooth" and r["rho_max"] <= 1.0),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
