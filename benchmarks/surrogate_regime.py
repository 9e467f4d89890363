"""Does the `chainnet` regime draw deployments like ChainNet's published ones?

The learned twin is trained on deployments the generator draws and judged on
ChainNet's published ones (``../shared/data/chainnet/val``), so "cross-dataset"
only means something once it is known how far apart the two are. This compares
the shipped model's training data (``surrogate.py``'s ``TRAIN``: five
``chainnet``-regime sets) with the published deployments in two ways:

* **Summaries**, side by side: devices per deployment, chains, path lengths,
  device loads (offered load, before any loss), the share of overloaded devices
  (load above 1) and of deployments with one, and the share of chains losing
  more than 10% of their jobs.
* **A classifier two-sample test**: gradient-boosted trees learn to tell a
  published chain from a generated one from what the surrogate sees of it
  (its chain features, the largest and smallest of each hop and device
  feature along its path, and its deployment's device and chain counts), and
  then from that and its two labels: do the two simulators also answer alike?
  Their out-of-fold ROC AUC is 0.5 when the two cannot be told apart and 1
  when they always can. Folds and the bootstrap's 95% interval are drawn by
  deployment: the chains of one deployment share devices. With the labels,
  the test is run on every chain and on the chains that lose at least 1% of
  their jobs: a throughput ratio just below 1 tells how long the simulation
  ran (a longer run sees rarer losses), and the published runs are longer
  than the generator's (about 1.5e5 arrivals against 6e4), so near 1 the
  labels differ however alike the two simulators are.

    .venv/bin/python benchmarks/surrogate_regime.py      (or: make bench)

Writes benchmarks/results/surrogate_regime.json, in about three minutes once
``surrogate.py`` has generated the training data (``make bench`` runs it
first). Without the published deployments there is nothing to compare: the
result says so.
"""

from __future__ import annotations

from _results import save_result  # benchmarks/_results.py
import time

import numpy as np
from surrogate import CHAINNET, SEED, TRAIN, _label_rows, dataset

FOLDS = 5
DRAWS = 500  # bootstrap resamples of the AUC
LOSSY = 0.9  # a chain "loses more than 10%" below this throughput ratio
SOME_LOSS = 0.99  # the label test's chains that lose at least 1%


def _tables(samples) -> dict:  # noqa: ANN001
    """Per chain: the classifier's features and labels, and its deployment; per
    device, its offered load and deployment."""
    from edgeperf.surrogate import DEVICE_FEATURES, collate, encode_samples

    g = collate(encode_samples(samples))
    cx, fx, dx = g.chain_x.numpy(), g.fragment_x.numpy(), g.device_x.numpy()
    chain, device = g.fragment_chain.numpy(), g.fragment_device.numpy()
    hop = np.concatenate([fx, dx[device]], 1)
    most = np.full((len(cx), hop.shape[1]), -np.inf)
    least = np.full_like(most, np.inf)
    np.maximum.at(most, chain, hop)
    np.minimum.at(least, chain, hop)
    sizes = np.array([[len(s.scenario["devices"]), len(s.labels)] for s in samples])
    owner = np.repeat(np.arange(len(samples)), sizes[:, 1])
    device_owner = np.repeat(np.arange(len(samples)), sizes[:, 0])
    return {"features": np.concatenate([cx, most, least, sizes[owner]], 1),
            "labels": _label_rows(samples), "owner": owner,
            "path_length": np.bincount(chain), "sizes": sizes,
            "load": dx[:, DEVICE_FEATURES.index("load")], "device_owner": device_owner}


def summary(t: dict) -> dict:
    """What the docs quote of a set of deployments."""
    overloaded = t["load"] > 1.0
    return {"deployments": len(t["sizes"]), "chains": len(t["owner"]),
            "devices": np.bincount(t["sizes"][:, 0], minlength=11)[2:].tolist(),
            "chains_per_deployment": np.bincount(t["sizes"][:, 1], minlength=4)[1:].tolist(),
            "path_length": np.bincount(t["path_length"], minlength=7)[2:].tolist(),
            "load_quartiles": np.percentile(t["load"], [25, 50, 75]).tolist(),
            "overloaded_devices": float(overloaded.mean()),
            "deployments_overloaded": float(np.bincount(
                t["device_owner"], overloaded, len(t["sizes"])).astype(bool).mean()),
            "chains_losing_10pct": float(np.mean(t["labels"][:, 0] < LOSSY)),
            "chains_losing_none": float(np.mean(t["labels"][:, 0] == 1.0))}


def two_sample_auc(x: np.ndarray, published: np.ndarray, groups: np.ndarray) -> dict:
    """Out-of-fold AUC of a classifier telling published rows (``published``
    True) from generated ones, folds by ``groups`` (any labels), with a
    bootstrap interval over groups."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict

    groups = np.unique(groups, return_inverse=True)[1]  # 0..n-1, as bincount needs
    clf = HistGradientBoostingClassifier(random_state=SEED)
    score = cross_val_predict(clf, x, published, groups=groups, cv=GroupKFold(FOLDS),
                              method="predict_proba")[:, 1]
    rng = np.random.default_rng(SEED)
    members = np.split(np.argsort(groups, kind="stable"),
                       np.cumsum(np.bincount(groups))[:-1])
    draws = []
    for _ in range(DRAWS):
        rows = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        draws.append(roc_auc_score(published[rows], score[rows]))
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"auc": float(roc_auc_score(published, score)), "low": float(low),
            "high": float(high)}


def measure() -> dict:
    from edgeperf.surrogate import from_chainnet

    started = time.perf_counter()
    if not CHAINNET.is_dir():
        return {"skipped": f"{CHAINNET} not found: nothing to compare the generator with"}
    sets = {"generated": [s for name in TRAIN for s in dataset(name).samples],
            "published": from_chainnet(CHAINNET, None)}
    tables = {k: _tables(v) for k, v in sets.items()}
    gen, pub = tables["generated"], tables["published"]
    published = np.r_[np.zeros(len(gen["owner"]), bool), np.ones(len(pub["owner"]), bool)]
    groups = np.r_[gen["owner"], pub["owner"] + len(gen["sizes"])]  # one per deployment
    features = np.concatenate([gen["features"], pub["features"]])
    labels = np.concatenate([gen["labels"], pub["labels"]])
    with_labels = np.concatenate([features, np.log(labels)], 1)
    lossy = labels[:, 0] < SOME_LOSS
    tests = {"features": two_sample_auc(features, published, groups),
             "features + labels": two_sample_auc(with_labels, published, groups),
             "features + labels, chains losing at least 1%": two_sample_auc(
                 with_labels[lossy], published[lossy], groups[lossy])}
    return {"summaries": {k: summary(t) for k, t in tables.items()}, "two_sample": tests,
            "settings": {"generated": list(TRAIN), "folds": FOLDS, "draws": DRAWS,
                         "confidence": 0.95, "seed": SEED},
            "wall_s": time.perf_counter() - started}


def markdown_table(result: dict) -> str:
    if "skipped" in result:
        return result["skipped"]
    gen, pub = (result["summaries"][k] for k in ("generated", "published"))

    def shares(counts: list[int]) -> str:
        return " / ".join(f"{c / sum(counts):.0%}" for c in counts)

    rows = [("deployments (chains)", lambda s: f"{s['deployments']} ({s['chains']})"),
            ("devices 2..10", lambda s: shares(s["devices"])),
            ("chains 1..3", lambda s: shares(s["chains_per_deployment"])),
            ("path length 2..6", lambda s: shares(s["path_length"])),
            ("device load, quartiles", lambda s: " / ".join(f"{q:.2f}"
                                                             for q in s["load_quartiles"])),
            ("devices overloaded (load > 1)", lambda s: f"{s['overloaded_devices']:.1%}"),
            ("deployments with an overloaded device",
             lambda s: f"{s['deployments_overloaded']:.1%}"),
            ("chains losing more than 10%", lambda s: f"{s['chains_losing_10pct']:.1%}"),
            ("chains that lost no job (ratio exactly 1)",
             lambda s: f"{s['chains_losing_none']:.1%}")]
    lines = ["The shipped model's training data (`chainnet` regime) beside ChainNet's "
             f"published deployments; {result['wall_s']:.0f} s.", "",
             "| | generated | published |", "|---|---|---|"]
    lines += [f"| {name} | {show(gen)} | {show(pub)} |" for name, show in rows]
    lines += ["", "Can a classifier tell a published chain from a generated one? Out-of-fold "
              f"ROC AUC ({result['settings']['folds']} folds by deployment; 0.5: not at all), "
              f"with a bootstrap 95% interval over deployments:", "",
              "| the classifier sees | AUC | 95% interval |", "|---|---|---|"]
    lines += [f"| {k} | {t['auc']:.3f} | {t['low']:.3f} to {t['high']:.3f} |"
              for k, t in result["two_sample"].items()]
    return "\n".join(lines)


def main() -> int:
    result = measure()
    if "skipped" in result:
        print(result["skipped"])
        return 0
    print(save_result("surrogate_regime", result))
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
