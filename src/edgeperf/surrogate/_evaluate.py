"""Judging a surrogate: MAPE per target on labelled deployments, and its speed.

Chains whose true throughput ratio or response time is not positive (a chain
that lost every job) have no percentage error; they are left out and counted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import _validation as v
from ._dataset import LABELS

__all__ = ["evaluate_model"]


def evaluate_model(model: Any, samples: Sequence[Any], *, batch: int = 256,
                   plot: str | Path | None = None) -> dict[str, Any]:
    """MAPE of ``model`` on ``samples`` (with ``.scenario`` and ``.labels``):
    ``mape_tput_ratio``, ``mape_response_time`` (percent), the mean absolute
    errors ``mae_tput_ratio`` and ``mae_response_time`` (the data's time unit),
    ``chains`` scored, ``chains_left_out``, and the time a prediction takes per
    deployment:
    ``inference_s_per_deployment`` from a parsed System, as the simulator starts,
    split into ``encode_s_per_deployment`` (batches of ``batch``) and
    ``forward_s_per_deployment``, after one warm-up call;
    ``parse_s_per_deployment`` (the scenario mapping to a System) is apart;
    ``deployments_outside_domain``: how many lie outside the model's training
    domain (:class:`Domain`), None for a model that keeps none.
    A model that predicts the end-to-end response time (``end_to_end``), on
    chains labelled with it, adds ``mape_response_time_e2e``,
    ``mae_response_time_e2e`` and ``chains_e2e`` (ChainNet's published data has
    no such label).
    ``plot``: also write the parity plot of the scored chains to this PNG."""
    from ..io import parse_scenario
    from ._graph import encode_batch
    from ._train import mape

    rule = "a non-empty list of labelled deployments (with 'scenario' and 'labels')"
    items = v.listed("evaluate_model", "samples", samples, rule)
    if not items or not all(hasattr(s, "scenario") and hasattr(s, "labels") for s in items):
        raise v.fail("evaluate_model", "samples", rule, samples)
    v.integer("evaluate_model", "batch", batch, low=1)
    if not callable(getattr(model, "predict", None)):
        raise v.fail("evaluate_model", "model", "a surrogate model (load_model, build_model)",
                     v.brief(model))
    if plot is not None:
        v.plot_file("evaluate_model", "plot", v.path("evaluate_model", "plot", plot))
    start = time.perf_counter()
    systems = [parse_scenario(s.scenario, source=f"sample {n}") for n, s in enumerate(items)]
    parsed = time.perf_counter()
    _check_labels(items, systems)
    model.predict(encode_batch(systems[:1]))  # the first call allocates: not a prediction's cost
    encode_s = forward_s = 0.0
    domain, outside = getattr(model, "domain", None), 0
    preds = []
    for i in range(0, len(systems), batch):
        t0 = time.perf_counter()
        graph = encode_batch(systems[i:i + batch])
        t1 = time.perf_counter()
        preds.append(model.predict(graph))
        encode_s, forward_s = encode_s + t1 - t0, forward_s + time.perf_counter() - t1
        if domain is not None:
            outside += sum(bool(gaps) for gaps in domain.gaps(graph))
    pred = np.concatenate(preds)
    labels = [c for s in items for c in s.labels]
    true = np.array([[c["tput_ratio"], c["response_time"]] for c in labels])
    e2e = np.array([float(c.get("response_time_e2e", np.nan)) for c in labels])  # NaN: none
    keep = np.all(true > 0, axis=1) & np.all(np.isfinite(true), axis=1)
    if not keep.any():
        raise v.fail("evaluate_model", "samples", "deployments with at least one chain whose "
                     "true throughput ratio and response time are positive and finite",
                     f"none in {len(items)} deployment(s)")
    if not np.all(np.isfinite(pred[keep])):
        raise v.fail("evaluate_model", "model", "a model whose predictions are finite on "
                     "these deployments (some are NaN or infinite)", type(model).__name__)
    err = mape(pred[keep, :2], true[keep])
    if plot is not None:
        from ._plot import plot_parity

        shown, truth = pred[keep, :2], true[keep]
        if pred.shape[1] > 2 and np.all(np.isfinite(e2e[keep]) & (e2e[keep] > 0)):  # 3rd panel
            shown, truth = pred[keep], np.column_stack([truth, e2e[keep]])
        plot_parity({getattr(model, "name", "") or type(model).__name__: shown}, truth, plot)
    absolute = np.mean(np.abs(pred[keep, :2] - true[keep]), axis=0)
    n = len(items)
    return {"mape_tput_ratio": err["tput_ratio"], "mape_response_time": err["response_time"],
            "mae_tput_ratio": float(absolute[0]), "mae_response_time": float(absolute[1]),
            "chains": int(keep.sum()), "chains_left_out": int((~keep).sum()),
            "inference_s_per_deployment": (encode_s + forward_s) / n,
            "encode_s_per_deployment": encode_s / n, "forward_s_per_deployment": forward_s / n,
            "parse_s_per_deployment": (parsed - start) / n,
            "deployments_outside_domain": outside if domain is not None else None,
            **_end_to_end(pred, e2e, keep)}


def _end_to_end(pred: np.ndarray, true: np.ndarray, keep: np.ndarray) -> dict[str, Any]:
    """The end-to-end response time's errors, for a model that predicts it, on the
    scored chains labelled with it (``true``, NaN where not); nothing otherwise."""
    if pred.shape[1] < 3:
        return {}
    known = keep & np.isfinite(true) & (true > 0)
    if not known.any():
        return {}
    gap = np.abs(pred[known, 2] - true[known])
    return {"mape_response_time_e2e": float(np.mean(gap / true[known]) * 100.0),
            "mae_response_time_e2e": float(np.mean(gap)), "chains_e2e": int(known.sum())}


def _check_labels(items: list, systems: list) -> None:
    """Each deployment's labels: one mapping per chain with numeric ``tput_ratio``
    and ``response_time`` (NaN or 0 leaves a chain out of the score)."""
    for n, (sample, system) in enumerate(zip(items, systems)):
        labels = sample.labels
        ok = isinstance(labels, (list, tuple)) and len(labels) == len(system.chains) and all(
            isinstance(c, Mapping) and all(v.is_real(c.get(k)) for k in LABELS[:2])
            for c in labels)
        if not ok:
            raise v.fail("evaluate_model", "samples", f"labels of sample {n}: one mapping per "
                         f"chain ({len(system.chains)}) with numbers {list(LABELS[:2])}",
                         v.shown(labels, 4))
