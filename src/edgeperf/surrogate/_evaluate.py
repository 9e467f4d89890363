"""Judging a surrogate: MAPE per target on labelled deployments, and its speed.

Chains whose true throughput ratio or response time is not positive (a chain
that lost every job) have no percentage error; they are left out and counted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _validation as v

__all__ = ["evaluate_model"]


def evaluate_model(model: Any, samples: Sequence[Any], *, batch: int = 256) -> dict[str, Any]:
    """MAPE of ``model`` on ``samples`` (with ``.scenario`` and ``.labels``):
    ``mape_tput_ratio``, ``mape_response_time`` (percent), ``chains`` scored,
    ``chains_left_out`` and ``inference_s_per_deployment``: encoding (the
    scenario mapping parsed and turned into a graph) plus the batched forward,
    after one warm-up call, also reported apart."""
    from ._graph import encode_samples
    from ._train import mape

    items = list(samples)
    if not items:
        raise v.fail("evaluate_model", "samples", "a non-empty list of labelled deployments",
                     samples)
    start = time.perf_counter()
    graphs = encode_samples(items)
    encoded = time.perf_counter()
    model.predict(graphs[:1])  # the first call compiles and allocates: not a prediction's cost
    warm = time.perf_counter()
    pred = np.concatenate([model.predict(graphs[i:i + batch])
                           for i in range(0, len(graphs), batch)])
    forward = time.perf_counter() - warm
    elapsed = (encoded - start) + forward
    true = np.array([[c["tput_ratio"], c["response_time"]] for s in items for c in s.labels])
    keep = np.all(true > 0, axis=1) & np.all(np.isfinite(true), axis=1)
    err = mape(pred[keep], true[keep])
    return {"mape_tput_ratio": err["tput_ratio"], "mape_response_time": err["response_time"],
            "chains": int(keep.sum()), "chains_left_out": int((~keep).sum()),
            "inference_s_per_deployment": elapsed / len(items),
            "encode_s_per_deployment": (encoded - start) / len(items),
            "forward_s_per_deployment": forward / len(items)}
