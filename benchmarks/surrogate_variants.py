"""How the learned twin's size and seed move its error, and its lead over the GAT.

`benchmarks/surrogate.py` compares one trained network of each kind. This
trains the ChainNet-style network at several sizes (hidden width x
iterations) and, for the shipped size and the GAT, with other seeds (the
weights' initialisation and the batch order; data and held-out fifth stay the
same), all on the shipped model's training data; and, as an ablation, the
shipped size with the throughput ratio read out per chain (``readout="chain"``)
instead of composed along the chain's hops. To see whether the lead holds as
data grows, the shipped size and the GAT are also trained, seed 0, on the
shipped model's data with three more ``chainnet``-regime sets (``MORE``:
31,000 deployments instead of 19,000). Each is scored on the held-out fifth
of the shipped model's data (``validation``: what a size is chosen on; left
out for the larger training set, which holds part of it), on the generated
test set of `surrogate.py` (``generated``, never trained on) and on ChainNet's
published deployments (``published``, never trained on nor chosen on; without
them next to the project that column is left out), and its forward pass is
timed on one torch thread. The shipped model is the ``chainnet`` row of its
own size, seed 0 and data.

    .venv/bin/python benchmarks/surrogate_variants.py      (or: make bench)

Writes benchmarks/results/surrogate_variants.json. Trained models are cached
in build/surrogate/models; untrained, each takes 5 to 20 minutes on this
project's 2-core machine.
"""

from __future__ import annotations

from _results import save_result  # benchmarks/_results.py
import sys
import time

import numpy as np
from surrogate import CHAINNET, SEED, SHIPPED, THREADS, TRAIN, VAL_SAMPLES, _fit, dataset

Run = tuple[str, dict, int, tuple[str, ...]]  # (name, config, seed, training data sets)

#: (hidden, iterations) of the ChainNet-style network, each trained with seed 0
SIZES = ((64, 3), (48, 3), (32, 3), (48, 2), (32, 4))
SEEDS = (0, 1, 2)  # for the shipped size and the GAT
MORE = TRAIN + ("train_9", "train_10", "train_11")  # the data-scaling run's training data


def _held_out() -> list:
    """The fifth of the pooled training data that every model was stopped on."""
    samples = [s for d in TRAIN for s in dataset(d).samples]
    order = np.random.default_rng(SEED).permutation(len(samples))
    return [samples[i] for i in order[:int(round(0.2 * len(samples)))]]


def _models(shipped_config: dict) -> list[Run]:
    """Every model scored."""
    runs = [("chainnet", {"hidden": h, "iterations": i, "readout": "hops"}, SEED, TRAIN)
            for h, i in SIZES]
    runs += [("chainnet", shipped_config, s, TRAIN) for s in SEEDS if s != SEED]
    runs += [("chainnet", shipped_config | {"readout": "chain"}, s, TRAIN)  # ablation
             for s in SEEDS]
    runs += [("gat", {}, s, TRAIN) for s in SEEDS]
    return runs + [("chainnet", shipped_config, SEED, MORE), ("gat", {}, SEED, MORE)]


def measure() -> dict:
    import torch

    from edgeperf.surrogate import evaluate_model, from_chainnet, load_model

    started = time.perf_counter()
    torch.set_num_threads(THREADS)
    sets = {"validation": _held_out(), "generated": dataset("generated").samples}
    if CHAINNET.is_dir():
        sets["published"] = from_chainnet(CHAINNET, VAL_SAMPLES)
    shipped = load_model(SHIPPED)
    shipped_config = {k: shipped.config[k] for k in ("hidden", "iterations", "readout")}
    sizes = {d: len(dataset(d).samples) for d in MORE}  # deployments per training set
    rows = []
    for name, config, seed, data in _models(shipped_config):
        is_shipped = (name, config, seed, data) == ("chainnet", shipped_config, SEED, TRAIN)
        model = shipped if is_shipped else _fit(
            name, data, seed, tag="" if data == TRAIN else "more", **config)
        row = {"name": name, "config": {k: v for k, v in model.config.items() if k != "seed"},
               "seed": seed, "shipped": is_shipped,
               "train": list(data), "train_deployments": sum(sizes[d] for d in data)}
        for key, samples in sets.items():
            if key == "validation" and data != TRAIN:  # trained on part of it
                row |= {f"{key}_mape_tput_ratio": None, f"{key}_mape_response_time": None}
                continue
            score = evaluate_model(model, samples)
            row |= {f"{key}_mape_tput_ratio": score["mape_tput_ratio"],
                    f"{key}_mape_response_time": score["mape_response_time"]}
        row["forward_s_per_deployment"] = score["forward_s_per_deployment"]
        rows.append(row)
        print(row, flush=True)
    return {"models": rows, "margin_over_gat": _margins(rows, shipped_config, list(sets)),
            "settings": {"sizes": SIZES, "seeds": SEEDS, "train": TRAIN, "more": MORE,
                         "val_samples": VAL_SAMPLES, "torch_threads": THREADS},
            "wall_s": time.perf_counter() - started}


def _margins(rows: list[dict], shipped_config: dict, sets: list[str]) -> dict:
    """1 - chainnet / gat of the mean MAPE over the seeds, per data set and target;
    ``readout_*``: 1 - chainnet / the same network with the per-chain readout;
    ``seed0_*`` and ``more_*``: 1 - chainnet / gat of the seed-0 models trained on
    TRAIN and on MORE (no validation: the MORE models trained on part of it)."""
    def mean(name: str, key: str, config: dict, data: tuple = TRAIN,
             seeds: tuple = SEEDS) -> float:
        return float(np.mean([r[key] for r in rows if r["name"] == name
                              and r["train"] == list(data) and r["seed"] in seeds
                              and all(r["config"][k] == v for k, v in config.items())]))
    ablated = shipped_config | {"readout": "chain"}
    out = {}
    for s in sets:
        for t in ("tput_ratio", "response_time"):
            key = f"{s}_mape_{t}"
            ours = mean("chainnet", key, shipped_config)
            out[f"{s}_{t}"] = 1.0 - ours / mean("gat", key, {})
            out[f"readout_{s}_{t}"] = 1.0 - ours / mean("chainnet", key, ablated)
            if s == "validation":
                continue
            for tag, data in (("seed0", TRAIN), ("more", MORE)):
                out[f"{tag}_{s}_{t}"] = 1.0 - mean("chainnet", key, shipped_config, data, (
                    SEED,)) / mean("gat", key, {}, data, (SEED,))
    return out


def _lower(gain: float) -> str:
    return "the same" if abs(gain) < 0.005 else f"{abs(gain):.0%} " + (
        "lower" if gain > 0 else "higher")


def markdown_table(result: dict) -> str:
    rows = result["models"]
    sets = [k[:-len("_mape_tput_ratio")] for k in rows[0] if k.endswith("_mape_tput_ratio")]
    lines = ["MAPE throughput ratio / response time, %, on the held-out fifth of the "
             "training data (validation), on the generated test set and on ChainNet's "
             "published deployments; forward pass per deployment on one thread (batches of "
             "256).", "",
             "| model | config | seed | trained on | " + " | ".join(sets)
             + " | forward, ms |", "|---" * (len(sets) + 5) + "|"]
    for r in rows:
        size = ", ".join(f"{k} {v}" for k, v in r["config"].items())
        name = r["name"] + (" (shipped)" if r["shipped"] else "")
        cells = ["–" if r[f"{s}_mape_tput_ratio"] is None else
                 f"{r[f'{s}_mape_tput_ratio']:.2f} / {r[f'{s}_mape_response_time']:.2f}"
                 for s in sets]
        lines.append(f"| {name} | {size} | {r['seed']} | {r['train_deployments']:,} | "
                     + " | ".join(cells) + f" | {r['forward_s_per_deployment'] * 1e3:.3f} |")
    margin = result["margin_over_gat"]
    lines += ["", "Over the seeds, the shipped size's mean error is lower than the GAT's by "
              + "; ".join(f"{margin[f'{s}_tput_ratio']:.0%} on throughput ratio and "
                          f"{margin[f'{s}_response_time']:.0%} on response time ({s})"
                          for s in sets) + ".",
              "", "Against the same network with a per-chain readout (`readout chain`), "
              "the per-hop throughput readout's mean error over the seeds is "
              + "; ".join(f"{_lower(margin[f'readout_{s}_tput_ratio'])} on throughput ratio "
                          f"and {_lower(margin[f'readout_{s}_response_time'])} on response "
                          f"time ({s})" for s in sets) + ".",
              "", "Seed 0 only, the shipped size's error is lower than the GAT's by "
              + "; ".join(f"{margin[f'seed0_{s}_tput_ratio']:.0%} / "
                          f"{margin[f'seed0_{s}_response_time']:.0%} ({s})"
                          for s in sets if s != "validation")
              + " when both train on the shipped model's data, and by "
              + "; ".join(f"{margin[f'more_{s}_tput_ratio']:.0%} / "
                          f"{margin[f'more_{s}_response_time']:.0%} ({s})"
                          for s in sets if s != "validation")
              + " when both train on the larger set (throughput ratio / response time)."]
    return "\n".join(lines)


def main() -> int:
    result = measure()
    save_result("surrogate_variants", result)
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
