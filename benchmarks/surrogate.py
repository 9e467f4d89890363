"""The learned twin against its baselines, on data it did and did not generate.

Models: the shipped ChainNet-style GNN (``models/surrogate/chainnet.safetensors``,
trained only on deployments edgeperf generated), a GAT, a GCN and an MLP
trained here on the same data with the same seed, and the analytic
decomposition (no learning). Data sets:

* ``generated``: held-out deployments of the training regime (ChainNet's),
  labelled by the event engine with twice the training labels' arrivals;
* ``chainnet_val``: ChainNet's published deployments (``../shared/data/chainnet/val``),
  never used for training — cross-dataset generalisation;
* ``larger``: deployments larger than any seen in training (11-16 devices,
  paths of 7-10 devices, up to 4 chains).

It also times a prediction (encoding included) against simulating the same
deployment with the event engine at the labels' length, and searches
placements of several chains with the surrogate, with the simulator (the
talk's baseline), with the analytic model and with the ILP per chain, under
one time budget (``edgeperf.placement.compare_search``).

    .venv/bin/python benchmarks/surrogate.py      (or: make bench)

Writes benchmarks/results/surrogate.json. The data sets are cached in
build/surrogate (delete them to regenerate).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from edgeperf._atomic import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "build" / "surrogate"
SHIPPED = ROOT / "models" / "surrogate" / "chainnet.safetensors"
CHAINNET = ROOT.parent / "shared" / "data" / "chainnet" / "val"
SEED = 0
#: name -> (file, samples, regime, seed, jobs)
DATA = {"train": ("chainnet_3000.npz", 3000, "chainnet", 1, 30_000),
        "train_b": ("chainnet_4000b.npz", 4000, "chainnet", 4, 30_000),
        "generated": ("test_chainnet_500.npz", 500, "chainnet", 2, 60_000),
        "larger": ("test_larger_200.npz", 200, "larger", 3, 60_000)}
VAL_SAMPLES = 2000  # of ChainNet's 10,000 published deployments


def dataset(name: str):  # noqa: ANN201 - a Dataset
    from edgeperf.surrogate import generate_dataset, load_dataset, save_dataset

    file, n, regime, seed, jobs = DATA[name]
    path = CACHE / file
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        data = generate_dataset(n, regime=regime, seed=seed, jobs=jobs, progress=False)
        save_dataset(data.samples, path, meta=data.meta)
    return load_dataset(path)


def baselines() -> dict:
    """GAT, GCN and MLP trained on the training set as the shipped model was."""
    from edgeperf.surrogate import build_model, encode_samples, load_model, save_model, train

    graphs = encode_samples([*dataset("train").samples, *dataset("train_b").samples])
    order = np.random.default_rng(SEED).permutation(len(graphs))
    cut = int(round(0.2 * len(graphs)))
    val, fit = [graphs[i] for i in order[:cut]], [graphs[i] for i in order[cut:]]
    models = {"chainnet": load_model(SHIPPED)}
    for name in ("gat", "gcn", "mlp"):
        path = CACHE / "models" / f"{name}.safetensors"
        if not path.is_file():
            net = build_model(name, seed=SEED)
            train(net, fit, val, epochs=200, patience=20, seed=SEED, progress=False)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_model(net, path, provenance={"data": [DATA["train"][0], DATA["train_b"][0]],
                                              "seed": SEED})
        models[name] = load_model(path)
    return models


def simulation_s(samples, n: int = 50) -> float:  # noqa: ANN001
    """Seconds to simulate one deployment as the labels were (event engine)."""
    from edgeperf.io import parse_scenario
    from edgeperf.sim import simulate_chains

    systems = [parse_scenario(s.scenario, "<deployment>") for s in samples[:n]]
    start = time.perf_counter()
    for i, system in enumerate(systems):
        simulate_chains(system, engine="event", jobs=DATA["train"][4], replications=2, seed=i)
    return (time.perf_counter() - start) / len(systems)


def placement_search(model, budget_s: float = 5.0) -> list[dict]:  # noqa: ANN001
    """Surrogate-, simulation- and analytic-driven search and per-chain ILP under the
    same time budget, on deployments of the training regime and larger ones."""
    from edgeperf.io import parse_scenario
    from edgeperf.placement import compare_search
    from edgeperf.surrogate import larger_deployment, random_deployment

    out = []
    for regime, draw in (("chainnet", random_deployment), ("larger", larger_deployment)):
        for seed in (1, 2):
            system = parse_scenario(draw(np.random.default_rng(seed)), "<deployment>")
            result = compare_search(system, time_budget_s=budget_s, seed=seed, model=model)
            out.append({"regime": regime, "seed": seed, "budget_s": budget_s,
                        "methods": {k: {x: r[x] for x in ("worst_loss", "worst_loss_half_width",
                                                          "evaluated", "search_time_s")}
                                    for k, r in result.items()}})
            print(f"search {regime} {seed}: " + ", ".join(
                f"{k} {r['worst_loss']:.3f}" for k, r in result.items()), flush=True)
    return out


def measure() -> dict:
    from edgeperf.surrogate import AnalyticModel, evaluate_model, from_chainnet

    started = time.perf_counter()
    sets = {"generated": list(dataset("generated").samples),
            "larger": list(dataset("larger").samples)}
    if CHAINNET.is_dir():
        sets["chainnet_val"] = from_chainnet(CHAINNET, VAL_SAMPLES)
    models = {**baselines(), "analytic": AnalyticModel()}
    rows = []
    for model_name, model in models.items():
        for data_name, samples in sets.items():
            r = evaluate_model(model, samples)
            rows.append({"name": model_name, "dataset": data_name, **r})
            print(f"{model_name:9s} {data_name:13s} tput {r['mape_tput_ratio']:6.2f}%  "
                  f"resp {r['mape_response_time']:6.2f}%", flush=True)
    reference = sets.get("chainnet_val", sets["generated"])
    shipped = next(r for r in rows if r["name"] == "chainnet"
                   and r["dataset"] == ("chainnet_val" if CHAINNET.is_dir() else "generated"))
    inference = shipped["inference_s_per_deployment"]
    return {"host": {"python": sys.version.split()[0], "machine": platform.machine()},
            "models": rows, "inference_s_per_deployment": inference,
            "encode_s_per_deployment": shipped["encode_s_per_deployment"],
            "forward_s_per_deployment": shipped["forward_s_per_deployment"],
            "placement_search": placement_search(models["chainnet"]),
            "simulation_s_per_deployment": simulation_s(reference),
            "settings": {"val_samples": VAL_SAMPLES, "data": DATA, "seed": SEED},
            "wall_s": time.perf_counter() - started}


def markdown_table(result: dict) -> str:
    sets = sorted({r["dataset"] for r in result["models"]})
    lines = ["MAPE of throughput ratio / response time (sum of per-device means, ChainNet's "
             "label), %. Only `chainnet` ships; every learned model saw generated data only.",
             "", "| model | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for name in dict.fromkeys(r["name"] for r in result["models"]):
        cells = []
        for d in sets:
            r = next(x for x in result["models"] if x["name"] == name and x["dataset"] == d)
            cells.append(f"{r['mape_tput_ratio']:.2f} / {r['mape_response_time']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Placement search, {result['placement_search'][0]['budget_s']:g} s each: "
              "simulated worst-chain loss of each method's winner (candidates scored).", "",
              "| deployment | " + " | ".join(result["placement_search"][0]["methods"]) + " |",
              "|---" * (len(result["placement_search"][0]["methods"]) + 1) + "|"]
    for row in result["placement_search"]:
        lines.append(f"| {row['regime']} {row['seed']} | " + " | ".join(
            f"{m['worst_loss']:.3f} ({m['evaluated']})" for m in row["methods"].values()) + " |")
    inf, sim = result["inference_s_per_deployment"], result["simulation_s_per_deployment"]
    lines += ["", f"A prediction takes {inf * 1e3:.2f} ms a deployment (batches of 256): "
              f"{result['encode_s_per_deployment'] * 1e3:.2f} ms to parse and encode it, "
              f"{result['forward_s_per_deployment'] * 1e3:.2f} ms of forward pass; simulating "
              f"one as the labels were takes {sim * 1e3:.0f} ms: {sim / inf:.0f}x "
              f"({sim / result['forward_s_per_deployment']:.0f}x the forward pass alone)."]
    return "\n".join(lines)


def main() -> int:
    result = measure()
    RESULTS.mkdir(exist_ok=True)
    write_text_atomic(RESULTS / "surrogate.json", json.dumps(result, indent=1, default=float))
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
