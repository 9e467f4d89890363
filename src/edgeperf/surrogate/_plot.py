"""The parity plot of learned twins: each chain's predicted against its true
throughput ratio and response time (and end-to-end response time, when given),
one row of panels per model.

Both axes are logarithmic: the chains that lose most of their jobs, where the
error concentrates, sit in the first decade of the throughput ratio and would
be a smudge at the origin on a linear axis. Dashed lines mark ±10%; a
prediction of 0 is drawn at the lower edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .. import _validation as v
from .._atomic import atomic_path

__all__ = ["plot_parity"]

_TARGETS = {"tput_ratio": "throughput ratio", "response_time": "response time",  # mape's keys
            "response_time_e2e": "end-to-end time"}
_BAND = 0.10  # the dashed lines: ±10%


def _checked(preds: object, true: object) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rule = ("a non-empty array [chains, 2] or [chains, 3] of positive finite values "
            "(throughput ratio, response time[, end-to-end response time])")
    t = v.array("plot_parity", "true", true, rule)
    if t.ndim != 2 or t.shape[1] not in (2, 3) or len(t) == 0 or not np.all(t > 0) \
            or not np.all(np.isfinite(t)):
        raise v.fail("plot_parity", "true", rule, t.shape)
    if not isinstance(preds, Mapping) or not preds:
        raise v.fail("plot_parity", "preds", "a non-empty mapping of model name to predictions",
                     type(preds).__name__)
    out = {}
    rule = f"finite predictions >= 0 shaped like 'true' {t.shape} for every model"
    for name, p in preds.items():
        p = v.array("plot_parity", "preds", p, rule)
        if p.shape != t.shape or not np.all(p >= 0) or not np.all(np.isfinite(p)):
            raise v.fail("plot_parity", "preds", rule, f"{name}: {p.shape}")
        out[str(name)] = p
    return out, t


def plot_parity(preds: Mapping[str, object], true: object, path: str | Path, *,
                title: str | None = None) -> Path:
    """Write the parity plot of ``preds`` (model name -> [chains, 2] predictions of
    the throughput ratio and the response time, or [chains, 3] with the end-to-end
    response time) against ``true`` to ``path`` (written whole or not at all; its
    suffix picks the format, e.g. .png); one panel per column, each naming its
    MAPE."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ._train import mape

    preds, t = _checked(preds, true)
    target = v.plot_file("plot_parity", "path", v.path("plot_parity", "path", path))
    columns = t.shape[1]
    fig = Figure(figsize=(3.5 * columns, 3.2 * len(preds)), layout="constrained")
    FigureCanvasAgg(fig)
    for row, (name, p) in enumerate(preds.items()):
        errors = mape(p, t)
        for k, (key, label) in enumerate(list(_TARGETS.items())[:columns]):
            ax = fig.add_subplot(len(preds), columns, columns * row + k + 1)
            low = min(t[:, k].min(), p[:, k][p[:, k] > 0].min(initial=np.inf)) / 1.2
            high = max(t[:, k].max(), p[:, k].max()) * 1.2
            line = np.geomspace(low, high, 50)
            ax.scatter(t[:, k], np.maximum(p[:, k], low), s=2, alpha=0.3, linewidths=0,
                       rasterized=True)
            ax.plot(line, line, color="black", linewidth=0.8)
            for factor in (1 - _BAND, 1 + _BAND):
                ax.plot(line, factor * line, color="grey", linewidth=0.6, linestyle="--")
            ax.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high))
            ax.set_title(f"{name}: {label}, MAPE {errors[key]:.2f}%", fontsize=9)
            ax.set_xlabel(f"true {label}", fontsize=8)
            ax.set_ylabel(f"predicted {label}", fontsize=8)
            ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=110, format=v.plot_format(target))
    return target
