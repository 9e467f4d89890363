"""How sure the learned twin's lead over the GAT is, and where it is made.

The ChainNet-style network at the shipped size and the GAT baseline, each
trained with the seeds of ``surrogate_variants.py`` on the shipped model's
data (seed 0 of the former is the shipped model; the others come from the
benchmarks' cache or are trained again), predict the same deployments: the
generated test set and, next to the project, ChainNet's published ones
(``../shared/data/chainnet/val``). Per data set and target, the lead is
1 - MAPE(chainnet) / MAPE(gat), once for seed 0 (the shipped model against
``surrogate.py``'s GAT) and once for each kind's error averaged over the seeds.
Its 95% interval comes from a paired bootstrap over deployments (the chains of
one deployment share devices, so their errors are not independent):
deployments are drawn with replacement, every model scored on the same draw.
It measures how much the lead depends on which deployments were drawn; the
mean over seeds also averages out the training seed. ``p_goal`` is the share
of draws where the lead reaches the issue's goal, 30%.

On the published data, the shipped model's and the seed-0 GAT's
throughput-ratio errors are also split by the chain's true ratio: the bands
show where the lead is made, and so do a split by the number of chains of
each chain's deployment (1 to 3) and one by how far the competing flows have
travelled: the most hops another chain's jobs have made before they reach a
device the chain also uses (:func:`competitors_travelled`). Their predictions
against the published labels, chain by chain, are drawn in
benchmarks/results/surrogate_lead.png.

Every model sees the same features, among them the outputs of the M/M/1/K
decomposition (``QUEUEING``), which give the GAT a strong prior. ChainNet's
paper compares with an off-the-shelf GAT on the deployment's plain
description; to measure the lead in that setting too, both kinds are also
trained and scored, with the same seeds, on graphs whose M/M/1/K features are
held at neutral constants (:func:`without_queueing`): the pair "without
M/M/1/K".

    .venv/bin/python benchmarks/surrogate_lead.py      (or: make bench)

Writes benchmarks/results/surrogate_lead.json and .png; in about a minute once the
models are cached (``make bench`` runs ``surrogate.py`` before it, and
``surrogate_variants.py`` after it reuses the seeds it trains); training the
pair without M/M/1/K features takes about 35 minutes on one core.
"""

from __future__ import annotations

from _results import RESULTS, save_result  # benchmarks/_results.py
import time

import numpy as np
from surrogate import (CHAINNET, SEED, SHIPPED, TRAIN, VAL_SAMPLES, _fit, _label_rows,
                       band_errors, dataset)
from surrogate_variants import SEEDS

DRAWS = 2000  # bootstrap resamples
GOAL = 0.30  # the lead over the GAT
BANDS = (0.0, 0.05, 0.2, 0.5, 0.8, 0.95, 1.0 + 1e-9)  # true throughput ratio
TARGETS = ("tput_ratio", "response_time")
#: per node set, the features computed by the M/M/1/K decomposition and the neutral
#: value each is held at without them (an acceptance of 0.5 is a logit of 0, so the
#: ChainNet-style per-hop readout then starts from no prior)
QUEUEING = {"device_x": {"log_mm1k_load": 0.0, "mm1k_accept": 0.5},
            "fragment_x": {"mm1k_reach": 1.0, "mm1k_accept": 0.5},
            "chain_x": {"mm1k_tput": 1.0, "log_mm1k_tput": 0.0}}
FEATURES = ("all", "without M/M/1/K")  # the two pairs of models compared
PLOT = RESULTS / "surrogate_lead.png"


def _per_deployment(owner: np.ndarray, true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """[deployments, 2]: the summed absolute percentage errors of each deployment's
    chains (``owner``: each chain's deployment)."""
    error = np.abs(pred - true) / true * 100.0
    return np.stack([np.bincount(owner, error[:, k]) for k in range(2)], 1)


def lead_interval(ours: np.ndarray, theirs: np.ndarray, seed: int = 0) -> list[dict]:
    """Per target: the lead of ``ours`` over ``theirs`` (per-deployment error sums,
    [deployments, 2]), its paired-bootstrap 95% interval and the share of draws
    reaching GOAL."""
    rng = np.random.default_rng(seed)
    n = len(ours)
    leads = np.empty((DRAWS, 2))
    for start in range(0, DRAWS, 100):  # 100 draws at a time keeps the counts small
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=min(100, DRAWS - start))
        leads[start:start + len(counts)] = 1.0 - (counts @ ours) / (counts @ theirs)
    point = 1.0 - ours.sum(0) / theirs.sum(0)
    low, high = np.percentile(leads, [2.5, 97.5], axis=0)
    return [{"target": t, "lead": float(point[k]), "low": float(low[k]),
             "high": float(high[k]), "p_goal": float(np.mean(leads[:, k] >= GOAL))}
            for k, t in enumerate(TARGETS)]


def by_band(true: np.ndarray, preds: dict[str, np.ndarray]) -> list[dict]:
    """Throughput-ratio MAPE of each model per band of the true ratio (``band_errors``),
    the lead there and each band's share of the gap between their summed errors."""
    ours, theirs = (band_errors(preds[kind][:, 0], true, BANDS) for kind in ("chainnet", "gat"))
    pairs = [(a, b) for a, b in zip(ours, theirs) if a["chains"]]
    gap = sum((b["mape"] - a["mape"]) * a["chains"] for a, b in pairs)
    return [{"low": a["low"], "high": a["high"], "chains": a["chains"], "chainnet": a["mape"],
             "gat": b["mape"], "lead": 1.0 - a["mape"] / b["mape"],
             "share_of_gap": (b["mape"] - a["mape"]) * a["chains"] / gap} for a, b in pairs]


def by_group(key: str, groups: np.ndarray, true: np.ndarray, preds: dict[str, np.ndarray]
             ) -> list[dict]:
    """Throughput-ratio MAPE of each model per value of ``groups`` (one per chain,
    named ``key`` in the rows), the lead there and each group's share of the gap
    between their summed errors."""
    error = {kind: np.abs(p[:, 0] - true) / true * 100.0 for kind, p in preds.items()}
    gap = (error["gat"] - error["chainnet"]).sum()
    out = []
    for value in np.unique(groups):
        k = groups == value
        ours, theirs = error["chainnet"][k].mean(), error["gat"][k].mean()
        out.append({key: int(value), "chains": int(k.sum()),
                    "chainnet": float(ours), "gat": float(theirs),
                    "lead": float(1.0 - ours / theirs),
                    "share_of_gap": float((error["gat"][k] - error["chainnet"][k]).sum() / gap)})
    return out


def competitors_travelled(batch) -> np.ndarray:  # noqa: ANN001 - a collated DeploymentGraph
    """Per chain, the most hops another chain's jobs have made before they reach a
    device this chain also uses: 0 when every competing flow arrives fresh (still
    Poisson), -1 when the chain shares no device. A flow that has crossed stations
    is thinned and smoothed by them, which the M/M/1/K decomposition ignores."""
    chain, device = batch.fragment_chain.numpy(), batch.fragment_device.numpy()
    position = batch.fragment_position.numpy()
    out = np.full(len(batch.chain_x), -1)
    for d in np.unique(device):
        here = np.flatnonzero(device == d)
        for a in here:
            others = here[chain[here] != chain[a]]
            if len(others):
                out[chain[a]] = max(out[chain[a]], int(position[others].max()))
    return out


def without_queueing(graph):  # noqa: ANN001, ANN201 - a DeploymentGraph
    """``graph`` with the QUEUEING features held at their neutral values."""
    import dataclasses

    from edgeperf.surrogate import CHAIN_FEATURES, DEVICE_FEATURES, FRAGMENT_FEATURES

    names = {"device_x": DEVICE_FEATURES, "fragment_x": FRAGMENT_FEATURES,
             "chain_x": CHAIN_FEATURES}
    held = {}
    for key, values in QUEUEING.items():
        x = getattr(graph, key).clone()
        for feature, value in values.items():
            x[:, names[key].index(feature)] = value
        held[key] = x
    return dataclasses.replace(graph, **held)


def _models() -> dict[str, dict[str, list]]:
    """Per FEATURES entry and kind, its models in the order of SEEDS; with all
    features, chainnet's seed 0 is the shipped model."""
    from edgeperf.surrogate import load_model

    shipped = load_model(SHIPPED)
    config = {k: shipped.config[k] for k in ("hidden", "iterations", "readout")}
    raw = {"tag": "raw", "transform": (without_queueing, QUEUEING)}
    given = {"chainnet": [shipped if seed == SEED else _fit("chainnet", TRAIN, seed, **config)
                          for seed in SEEDS],
             "gat": [_fit("gat", TRAIN, seed) for seed in SEEDS]}
    held = {"chainnet": [_fit("chainnet", TRAIN, seed, **raw, **config) for seed in SEEDS],
            "gat": [_fit("gat", TRAIN, seed, **raw) for seed in SEEDS]}
    return dict(zip(FEATURES, (given, held)))


def measure() -> dict:
    import torch

    from edgeperf.surrogate import collate, encode_samples, from_chainnet, plot_parity

    started = time.perf_counter()
    torch.set_num_threads(1)
    models = _models()
    sets = {"generated": dataset("generated").samples}
    if CHAINNET.is_dir():
        sets["chainnet_val"] = from_chainnet(CHAINNET, VAL_SAMPLES)
    else:
        print(f"{CHAINNET} not found: the published deployments are left out", flush=True)
    first = SEEDS.index(SEED)
    out: dict = {"datasets": [], "bands": None, "by_chains": None, "by_competitors": None}
    for key, samples in sets.items():
        graphs, true = encode_samples(samples), _label_rows(samples)
        sizes = [len(s.labels) for s in samples]
        owner = np.repeat(np.arange(len(samples)), sizes)
        chains = len(true)
        row = {"dataset": key, "deployments": len(samples), "chains": chains, "comparisons": []}
        for features, pair in models.items():
            seen = graphs if features == FEATURES[0] else [without_queueing(g) for g in graphs]
            preds = {kind: [m.predict(seen) for m in ms] for kind, ms in pair.items()}
            # [seeds, deployments, 2] per kind
            errors = {kind: np.stack([_per_deployment(owner, true, p) for p in ps])
                      for kind, ps in preds.items()}
            for label, pick in ((f"seed {SEED}", lambda e: e[first]),
                                (f"mean of {len(SEEDS)} seeds", lambda e: e.mean(0))):
                ours, theirs = pick(errors["chainnet"]), pick(errors["gat"])
                row["comparisons"].append({
                    "features": features, "models": label,
                    "mape": {kind: dict(zip(TARGETS, (pick(e).sum(0) / chains).tolist()))
                             for kind, e in errors.items()},
                    "lead": lead_interval(ours, theirs)})
            if key == "chainnet_val" and features == FEATURES[0]:
                shown = {kind: p[first] for kind, p in preds.items()}
                out["bands"] = by_band(true[:, 0], shown)
                out["by_chains"] = by_group("chains_per_deployment", np.repeat(sizes, sizes),
                                            true[:, 0], shown)
                out["by_competitors"] = by_group(
                    "competitors_travelled", competitors_travelled(collate(graphs)),
                    true[:, 0], shown)
                plot_parity({f"{kind}, seed {SEED}": p for kind, p in shown.items()}, true, PLOT,
                            title=f"ChainNet's {chains} published chains")
        out["datasets"].append(row)
        print(row, flush=True)
    out["settings"] = {"draws": DRAWS, "goal": GOAL, "confidence": 0.95, "seeds": list(SEEDS),
                       "bands_seed": SEED, "features": list(FEATURES),
                       "without_queueing": QUEUEING}
    out["wall_s"] = time.perf_counter() - started
    return out


def markdown_table(result: dict) -> str:
    lines = [f"Lead of the ChainNet-style model over the GAT, 1 - MAPE ratio (with all "
             "features, seed 0 is the shipped model; two decimals, so that a lead just "
             "under the goal does not read as reaching it), with a paired "
             f"bootstrap 95% interval over deployments ({result['settings']['draws']} "
             f"draws); 'reaches goal': the share of draws where the lead is at least "
             f"{result['settings']['goal']:.0%}.", "",
             "| data | features | models | target | chainnet MAPE, % | GAT MAPE, % | lead "
             "| 95% interval | reaches goal |", "|---|---|---|---|---|---|---|---|---|"]
    for d in result["datasets"]:
        for c in d["comparisons"]:
            for r in c["lead"]:
                t = r["target"]
                lines.append(f"| {d['dataset']} ({d['chains']} chains) | {c['features']} | "
                             f"{c['models']} | {t} | "
                             f"{c['mape']['chainnet'][t]:.2f} | {c['mape']['gat'][t]:.2f} | "
                             f"{r['lead']:.2%} | {r['low']:.0%} to {r['high']:.0%} | "
                             f"{r['p_goal']:.0%} |")
    if result["bands"]:
        seed = result["settings"]["bands_seed"]
        lines += ["", f"Published deployments, seed {seed}, throughput ratio, by the "
                  "chain's true ratio:", "",
                  "| true ratio | chains | chainnet MAPE, % | GAT MAPE, % | lead "
                  "| share of the gap |", "|---|---|---|---|---|---|"]
        for b in result["bands"]:
            closing = "]" if b["high"] == 1.0 else ")"
            lines.append(f"| [{b['low']:g}, {b['high']:g}{closing} | {b['chains']} | "
                         f"{b['chainnet']:.2f} | {b['gat']:.2f} | {b['lead']:.0%} | "
                         f"{b['share_of_gap']:.0%} |")
    if result.get("by_chains"):
        lines += ["", f"Published deployments, seed {result['settings']['bands_seed']}, "
                  "throughput ratio, by the number of chains in the deployment:", "",
                  "| chains per deployment | chains | chainnet MAPE, % | GAT MAPE, % | lead "
                  "| share of the gap |", "|---|---|---|---|---|---|"]
        for b in result["by_chains"]:
            lines.append(f"| {b['chains_per_deployment']} | {b['chains']} | "
                         f"{b['chainnet']:.2f} | {b['gat']:.2f} | {b['lead']:.0%} | "
                         f"{b['share_of_gap']:.0%} |")
    if result.get("by_competitors"):
        lines += ["", f"Published deployments, seed {result['settings']['bands_seed']}, "
                  "throughput ratio, by the most hops another chain's jobs have made before "
                  "they reach a device the chain also uses (0: they arrive fresh):", "",
                  "| competitors' hops before | chains | chainnet MAPE, % | GAT MAPE, % | lead "
                  "| share of the gap |", "|---|---|---|---|---|---|"]
        for b in result["by_competitors"]:
            hops = b["competitors_travelled"]
            lines.append(f"| {'shares no device' if hops < 0 else hops} | {b['chains']} | "
                         f"{b['chainnet']:.2f} | {b['gat']:.2f} | {b['lead']:.0%} | "
                         f"{b['share_of_gap']:.0%} |")
    return "\n".join(lines)


def main() -> int:
    result = measure()
    print(save_result("surrogate_lead", result))
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
