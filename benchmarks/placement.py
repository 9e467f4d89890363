"""Placement methods on the testbed scenarios, from light load to overload.

For each scenario and arrival rate, each method (Neurosurgeon's two-tier
split, the DNN-Surgery min-cut, the ILP's latency optimum and the loss-aware
placement) chooses a placement; the simulator then measures it (5
replications, 95% half-widths): loss ratio, throughput, mean and p95 response
time. The loss reduction of the loss-aware placement over the latency-only
ones is computed from those simulated losses, side by side in one run.

Side studies in the same run:

* ILP scaling: CEED's 56 profiled modules as a chain on 10 devices (the
  testbed twice, on a random radio-range graph), solved to proven optimality;
* the loss-aware local search against exhaustive enumeration on the testbed;
* the Neurosurgeon latency regression: held-out error on timed layers;
* the min-cut on a residual network traced with torch.fx, and how fast it
  re-decides when the bandwidth changes;
* online re-splitting under a Wi-Fi bandwidth trace, against a fixed split.

    .venv/bin/python benchmarks/placement.py      (or: make bench)

Writes benchmarks/results/placement.json and placement.png.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from _results import RESULTS, save_result  # benchmarks/_results.py
from edgeperf.io import load_scenario
from edgeperf.model import PoissonArrivals, System, Workload
from edgeperf.placement import (BandwidthTrace, LatencyPredictor, MinCutSolver,
                                compare_resplitting, held_out_error, ilp, layer_graph,
                                loss_aware, place, time_layers)
from edgeperf.sim import simulate

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {  # name -> (file, arrival rates from light load to overload)
    "testbed_ceed": (ROOT / "examples" / "scenarios" / "testbed_ceed.yaml",
                     [0.3, 0.6, 0.9, 1.2, 1.6, 2.0, 2.5]),
    "pair_resnet56": (ROOT / "examples" / "scenarios" / "pair_resnet56.yaml",
                      [40.0, 80.0, 120.0, 160.0, 200.0, 240.0]),
}
METHODS = ("neurosurgeon", "mincut", "ilp", "loss_aware")
JOBS, REPLICATIONS, SEED = 100_000, 5, 0
CEED = ROOT.parent / "shared" / "data" / "ceed"
LEVELS = (0.5e6, 4e6, 30e6)  # Wi-Fi bandwidth levels of the re-splitting study, bit/s


def at_rate(system: System, rate: float) -> System:
    chain = dataclasses.replace(system.chains[0],
                                workload=Workload(arrival=PoissonArrivals(rate=rate)))
    return System(devices=system.devices, links=system.links, chains=[chain])


def decide(system: System, method: str):  # noqa: ANN201 - a PlacementDecision
    if method == "ilp":
        return ilp(system, objective="latency")
    if method == "loss_aware":
        return loss_aware(system, confirm=3, jobs=JOBS // 2, seed=SEED)
    return place(system, method)


def comparison() -> list[dict]:
    rows = []
    for name, (file, rates) in SCENARIOS.items():
        base = load_scenario(file)
        for rate in rates:
            system = at_rate(base, rate)
            for method in METHODS:
                decision = decide(system, method)
                m = simulate(decision.system, jobs=JOBS, replications=REPLICATIONS, seed=SEED)
                hw = m.half_widths
                rows.append({
                    "scenario": name, "method": method, "arrival_rate": rate,
                    "placement": {d: len(b) for d, b in decision.placement.as_dict().items()},
                    "loss_probability": m.loss_probability, "loss_ci": hw["loss_probability"],
                    "throughput": m.throughput, "throughput_ci": hw["throughput"],
                    "mean_response_time": m.mean_response_time,
                    "mean_response_time_ci": hw.get("mean_response_time"),
                    "p95_response_time": m.p95_response_time,
                    "p95_response_time_ci": hw.get("p95_response_time"),
                    "latency_s": decision.latency_s, "solve_time_s": decision.solve_time_s})
                print(f"{name} {rate:5.2f} {method:12s} loss {m.loss_probability:.4f} "
                      f"mean {m.mean_response_time:.3f} s  {rows[-1]['placement']}", flush=True)
    return rows


def reductions(rows: list[dict]) -> list[dict]:
    """Loss reduction of loss-aware over each latency-only method, per scenario and rate."""
    out = []
    for name, (_, rates) in SCENARIOS.items():
        for rate in rates:
            at = {r["method"]: r for r in rows if r["scenario"] == name
                  and r["arrival_rate"] == rate}
            aware = at["loss_aware"]["loss_probability"]
            row = {"scenario": name, "arrival_rate": rate, "loss_aware": aware}
            for method in ("neurosurgeon", "mincut", "ilp"):
                other = at[method]["loss_probability"]
                row[method] = other
                row[f"reduction_vs_{method}"] = 1.0 - aware / other if other > 0 else None
            out.append(row)
    return out


def ilp_scaling() -> dict:
    """CEED's 56 modules on 10 devices: the testbed's five kinds twice, placed
    on a 100 m square with a 45 m radio range (seeded)."""
    from edgeperf.dists import Gamma
    from edgeperf.model import DNN, Block, Device, Link, Placement

    layers = json.loads((CEED / "system_profile.json").read_text())
    times, sizes = layers["layers_execution_time"], layers["layers_output_memory"]
    blocks = tuple(Block(name=f"m{i}_{k}", latency=Gamma(1.0 / max(t["var"] / t["mean"] ** 2,
                                                                    1e-3), t["mean"]),
                         output_bytes=int(sizes[k])) for i, (k, t) in enumerate(times.items()))
    rng = np.random.default_rng(7)
    kinds = [(1.0, 256e6), (0.71, 256e6), (0.71, 128e6), (0.12, 256e6), (0.12, 256e6)] * 2
    devices = tuple(Device(name=f"d{i}", capacity=4, speed=s, memory_bytes=int(m))
                    for i, (s, m) in enumerate(kinds))
    xy = rng.uniform(0, 100, size=(10, 2))
    links = tuple(Link(source=f"d{i}", target=f"d{j}", bandwidth_bps=10e6, capacity=8,
                       latency_s=0.002)
                  for i in range(10) for j in range(10)
                  if i != j and np.hypot(*(xy[i] - xy[j])) <= 45.0)
    system = System(model=DNN(blocks=blocks, input_bytes=12288), devices=devices, links=links,
                    workload=Workload(arrival=PoissonArrivals(rate=0.5)),
                    placement=Placement.from_mapping({"d0": [b.name for b in blocks]}),
                    source="d0")
    out = {"blocks": len(blocks), "devices": len(devices), "links": len(links)}
    for objective in ("latency", "bottleneck", "mix"):
        d = ilp(system, objective=objective, time_limit_s=120.0)
        out[objective] = {"solve_time_s": d.solve_time_s,
                          "proven_optimal": d.details["proven_optimal"],
                          "n_variables": d.details["n_variables"],
                          "fragments": len(d.placement.assignment), "value": d.value}
        print(f"ilp 56x10 {objective}: {d.solve_time_s:.2f} s, proven "
              f"{d.details['proven_optimal']}", flush=True)
    return out


def search_check(rate: float = 1.6) -> dict:
    """The local search against every valid placement of the testbed (analytic loss)."""
    system = at_rate(load_scenario(SCENARIOS["testbed_ceed"][0]), rate)
    searched = loss_aware(system, confirm=0)
    exhaustive = loss_aware(system, confirm=0, exhaustive_limit=10**6)
    return {"arrival_rate": rate,
            "local_search": {"loss": searched.details["predicted"]["loss_probability"],
                             "scored": searched.details["scored"],
                             "solve_time_s": searched.solve_time_s},
            "exhaustive": {"loss": exhaustive.details["predicted"]["loss_probability"],
                           "scored": exhaustive.details["scored"],
                           "solve_time_s": exhaustive.solve_time_s},
            "same_placement": searched.assignment == exhaustive.assignment}


def predictor_error() -> dict:
    samples = time_layers(per_kind=30, seed=SEED)
    errors = held_out_error(samples, test_share=0.3, seed=SEED)
    LatencyPredictor().fit(samples)  # the fit the split uses; it must succeed on all kinds
    return errors


def mincut_dag() -> dict:
    """The min-cut on ResNet-32 traced with torch.fx (branches: residual shortcuts):
    the edge 2x slower than this host, the server 2x faster."""
    import torch

    from edgeperf.earlyexit import build

    graph = layer_graph(build("resnet32"), torch.randn(1, 3, 32, 32), repeats=20, warmup=3)
    edge_s, server_s = graph.latency_s * 2.0, graph.latency_s / 2.0
    out = {"nodes": graph.n_nodes, "edges": len(graph.edges), "bandwidths": []}
    solver = MinCutSolver(graph, edge_s, server_s)
    for bandwidth in (1e6, 3e6, 1e7, 3e7, 1e8, 1e9):
        start = time.perf_counter()
        split = solver.solve(bandwidth)
        redecide = time.perf_counter() - start
        start = time.perf_counter()
        fresh = MinCutSolver(graph, edge_s, server_s).solve(bandwidth)  # build, then solve
        fresh_s = time.perf_counter() - start
        out["bandwidths"].append({"bandwidth_bps": bandwidth, "latency_s": split.latency_s,
                                  "edge_nodes": len(split.edge), "cut_tensors": len(split.cut),
                                  "redecide_s": redecide, "fresh_s": fresh_s,
                                  "same_cut": split.edge == fresh.edge})
    return out


def resplitting() -> dict:
    """The pair at 5 requests/s under a Markov Wi-Fi trace (0.5, 4 or 30 Mbit/s, 30 s
    holds), while another tenant takes 2 or 3 of the Pi's 4 cores now and then
    (Amdahl, 75 % parallel): the fixed split best at the mean conditions, the
    re-splitting controller (10 % hysteresis, 10 s dwell) and an eager oracle."""
    from edgeperf.placement import CoreScaling, CoresTrace

    system = at_rate(load_scenario(SCENARIOS["pair_resnet56"][0]), 5.0)
    trace = BandwidthTrace.wifi(1800.0, seed=SEED, levels_bps=LEVELS)
    cores = CoresTrace(times_s=(0.0, 300.0, 600.0, 900.0, 1200.0, 1500.0),
                       cores=(4, 2, 4, 1, 4, 2))
    comparison = compare_resplitting(system, trace, device="pi", server="server", cores=cores,
                                     scaling=CoreScaling(0.75, reference_cores=4),
                                     duration_s=1800.0, seed=SEED, replications=5)
    return {"arrival_rate": 5.0, "trace_levels_bps": list(LEVELS), "duration_s": 1800.0,
            "cores": list(cores.cores), "strategies": comparison.rows()}


def measure() -> dict:
    started = time.perf_counter()
    rows = comparison()
    result = {"host": {"python": sys.version.split()[0], "machine": platform.machine()},
              "settings": {"jobs": JOBS, "replications": REPLICATIONS, "seed": SEED},
              "rows": rows, "reductions": reductions(rows), "ilp_scaling": ilp_scaling(),
              "search_check": search_check(), "predictor": predictor_error(),
              "mincut_dag": mincut_dag(), "resplitting": resplitting()}
    result["wall_s"] = time.perf_counter() - started
    return result


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def markdown_table(result: dict) -> str:
    lines = ["Simulated loss ratio (± 95% half-width) of each method's placement; the last "
             "column is the loss-aware placement's reduction over the best latency-only one "
             f"({result['settings']['replications']} replications of "
             f"{result['settings']['jobs']} jobs).", "",
             "| scenario | rate 1/s | neurosurgeon | mincut | ilp | loss-aware | reduction |",
             "|---|---|---|---|---|---|---|"]
    rows = result["rows"]
    for red in result["reductions"]:
        cells = []
        for method in METHODS:
            r = next(x for x in rows if x["scenario"] == red["scenario"]
                     and x["arrival_rate"] == red["arrival_rate"] and x["method"] == method)
            cells.append(f"{r['loss_probability']:.4f} ± {r['loss_ci']:.4f}")
        best = min(red["neurosurgeon"], red["mincut"], red["ilp"])
        cut = 1.0 - red["loss_aware"] / best if best > 0 else None
        lines.append(f"| {red['scenario']} | {red['arrival_rate']:g} | " + " | ".join(cells)
                     + f" | {_pct(cut)} |")
    scale = result["ilp_scaling"]
    lines += ["", f"ILP on {scale['blocks']} blocks × {scale['devices']} devices "
              f"({scale['links']} links): " + "; ".join(
                  f"{o} {scale[o]['solve_time_s']:.2f} s"
                  + (" (proven optimal)" if scale[o]["proven_optimal"] else " (not proven)")
                  for o in ("latency", "bottleneck", "mix")) + "."]
    check = result["search_check"]
    lines.append(f"Loss-aware local search on the testbed at {check['arrival_rate']:g}/s: loss "
                 f"{check['local_search']['loss']:.4f} from {check['local_search']['scored']} "
                 f"placements, against the exhaustive optimum {check['exhaustive']['loss']:.4f} "
                 f"from {check['exhaustive']['scored']}.")
    pred = result["predictor"]["all"]
    lines.append(f"Latency regression, held-out layers: MAPE {_pct(pred['mape'])} against "
                 f"{_pct(pred['baseline_mape'])} for one seconds-per-FLOP ratio.")
    dag = result["mincut_dag"]
    lines.append(f"Min-cut on ResNet-32's fx graph ({dag['nodes']} nodes): " + "; ".join(
        f"{b['bandwidth_bps'] / 1e6:g} Mbit/s → {b['edge_nodes']} nodes on the edge, "
        f"re-decided in {b['redecide_s'] * 1e3:.1f} ms (built and solved afresh: "
        f"{b['fresh_s'] * 1e3:.1f} ms)" for b in dag["bandwidths"]) + ".")
    rs = result["resplitting"]
    lines += ["", f"Online re-splitting on the pair at {rs['arrival_rate']:g}/s, Wi-Fi at "
              + ", ".join(f"{x / 1e6:g}" for x in rs["trace_levels_bps"])
              + " Mbit/s, the Pi's cores " + "→".join(str(c) for c in rs["cores"]) + ":", "",
              "| strategy | switches | loss | mean response s | p95 response s |",
              "|---|---|---|---|---|"]
    for r in rs["strategies"]:
        lines.append(f"| {r['strategy']} | {r['switches']} | {r['loss_probability']:.4f} ± "
                     f"{r['loss_probability_hw']:.4f} | {r['mean_response_time']:.4f} ± "
                     f"{r['mean_response_time_hw']:.4f} | {r['p95_response_time']:.3f} ± "
                     f"{r['p95_response_time_hw']:.3f} |")
    return "\n".join(lines)


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SCENARIOS), figsize=(6 * len(SCENARIOS), 4))
    for ax, name in zip(np.atleast_1d(axes), SCENARIOS):
        for method in METHODS:
            pts = [r for r in result["rows"] if r["scenario"] == name and r["method"] == method]
            ax.errorbar([r["arrival_rate"] for r in pts], [r["loss_probability"] for r in pts],
                        yerr=[r["loss_ci"] for r in pts], marker="o", capsize=3, label=method)
        ax.set(title=name, xlabel="arrival rate (1/s)", ylabel="simulated loss ratio")
        ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "placement.png", dpi=120)


def main() -> int:
    result = measure()
    save_result("placement", result)
    plot(result)
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
