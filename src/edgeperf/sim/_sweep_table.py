"""Sweep results: one row per point and chain, written as CSV or Parquet, and plotted."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _validation as v
from .._atomic import atomic_path
from ._grid import Point, SweepError, point_label

__all__ = ["METRICS", "FailedPoint", "SweepResult", "check_outputs"]

#: The metrics of every row; each has a ``<metric>_ci`` column (95% half-width).
METRICS = ("throughput", "loss_probability", "mean_response_time", "p50_response_time",
           "p95_response_time", "p99_response_time", "accuracy")
_UNITS = {"throughput": "1/s", "mean_response_time": "s", "p50_response_time": "s",
          "p95_response_time": "s", "p99_response_time": "s"}


@dataclass(frozen=True, slots=True)
class FailedPoint:
    """A grid point whose evaluation raised (or whose workers died beyond retries)."""

    index: int
    point: Point
    error: str

    @property
    def label(self) -> str:
        return point_label(self.point)


@dataclass(frozen=True, slots=True)
class SweepResult:
    """One row per point and chain: ``point``, the swept parameters, ``chain``, each
    metric and its ``<metric>_ci`` (95% half-width, None when the evaluator gives
    none) and ``error`` (empty unless the point failed)."""

    params: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    failed: tuple[FailedPoint, ...]
    n_points: int

    @property
    def columns(self) -> list[str]:
        metrics = [c for m in METRICS for c in (m, f"{m}_ci")]
        return ["point", *self.params, "chain", *metrics, "error"]

    def write(self, path: str | Path) -> Path:
        """CSV or Parquet, by the file's suffix."""
        check_outputs(path)
        return (self.to_parquet if Path(path).suffix == ".parquet" else self.to_csv)(path)

    def to_csv(self, path: str | Path) -> Path:
        def write(tmp: Path) -> None:
            with tmp.open("w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=self.columns)
                writer.writeheader()
                writer.writerows(self.rows)  # None becomes an empty cell

        return _atomic(path, write)

    def to_parquet(self, path: str | Path) -> Path:
        pa, pq = _pyarrow(path)
        # a Parquet column has one type: a parameter swept over e.g. 1,auto becomes text
        mixed = [p for p in self.params
                 if len({float if type(r[p]) is int else type(r[p]) for r in self.rows}) > 1]
        rows = [{**r, **{p: str(r[p]) for p in mixed}} for r in self.rows]
        table = pa.Table.from_pylist(rows)
        return _atomic(path, lambda tmp: pq.write_table(table.select(self.columns), tmp))

    def plot(self, path: str | Path) -> Path:
        """One panel per metric against the first swept parameter: the mean and a
        shaded 95% band, one line per chain and value of the other parameters."""
        check_outputs(plot=path)
        fig = _figure(self)
        return _atomic(path, lambda tmp: fig.savefig(tmp, format=v.plot_format(path), dpi=120))


def _num(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else math.nan


def _lines(result: SweepResult) -> dict[str, list[dict[str, Any]]]:
    """The rows of each plotted line: one per chain and value of the other parameters."""
    chains = set(r["chain"] for r in result.rows)
    lines: dict[str, list[dict[str, Any]]] = {}
    for r in result.rows:
        parts = ([r["chain"]] if len(chains) > 1 else []) + [
            f"{p}={r[p]}" for p in result.params[1:]]
        lines.setdefault(", ".join(parts), []).append(r)
    return lines


def _figure(result: SweepResult):  # noqa: ANN202 - a matplotlib Figure, imported lazily
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    x = result.params[0]
    metrics = [m for m in METRICS if any(math.isfinite(_num(r[m])) for r in result.rows)]
    cols = max(1, min(3, len(metrics)))
    height = math.ceil(max(len(metrics), 1) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * height), layout="constrained")
    if not metrics:
        fig.text(0.5, 0.5, "every point failed: nothing to plot", ha="center")
        return fig
    xs = list(dict.fromkeys(r[x] for r in result.rows))
    numeric = all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in xs)
    position = (lambda a: a) if numeric else xs.index  # text values: evenly spaced, in order
    lines = _lines(result)
    for n, metric in enumerate(metrics):
        ax = fig.add_subplot(height, cols, n + 1)
        for label, rows in lines.items():
            rows = sorted(rows, key=lambda r: position(r[x]))
            at = [position(r[x]) for r in rows]
            mean = [_num(r[metric]) for r in rows]
            half = [_num(r[f"{metric}_ci"]) for r in rows]  # NaN (no band) where none
            line, = ax.plot(at, mean, marker="o", markersize=3, label=label or None)
            ax.fill_between(at, [m - h for m, h in zip(mean, half)],
                            [m + h for m, h in zip(mean, half)], color=line.get_color(),
                            alpha=0.25, linewidth=0)
        unit = _UNITS.get(metric)
        ax.set_title(metric.replace("_", " ") + (f" ({unit})" if unit else ""), fontsize=10)
        ax.set_xlabel(x)
        if not numeric:
            ax.set_xticks(range(len(xs)), [str(a) for a in xs])
        if n == 0 and len(lines) > 1:
            ax.legend(fontsize=7)
    fig.suptitle("mean and 95% confidence band", fontsize=10)
    return fig


def _pyarrow(path: str | Path) -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SweepError(f"Writing {str(path)!r} as Parquet needs pyarrow, which is not installed: "
                         "run `pip install pyarrow`, or write CSV (a .csv file).") from None
    return pa, pq


def check_outputs(table: str | Path | None = None, plot: str | Path | None = None) -> None:
    """Fail early (before a sweep runs) on an output the sweep could not write."""
    if table is not None:
        suffix = Path(table).suffix
        if suffix not in (".csv", ".parquet"):
            raise SweepError(f"The results table {str(table)!r} must end in .csv or .parquet. "
                             f"Got {suffix or 'no suffix'!r}.")
        if suffix == ".parquet":
            _pyarrow(table)
        _writable("results table", Path(table))
    if plot is not None:
        if v.plot_format(plot) is None:
            raise SweepError(f"The plot {str(plot)!r} must end in one of "
                             f"{', '.join('.' + k for k in v.plot_formats())}.")
        _writable("plot", Path(plot))


def _writable(what: str, path: Path) -> None:
    """Fail now, not after the sweep, where _atomic could not write: on a folder, or
    below a file (the folders it makes need none in their way)."""
    if path.is_dir() or not v.can_make_folder(path.parent):
        raise SweepError(f"The {what} {str(path)!r} must be a file whose folder exists or "
                         "can be made.")


def _atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write through a temporary file beside ``path``: readers never see half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            write(tmp)
    except OSError as err:
        raise SweepError(f"Cannot write {str(path)!r}: {err.strerror or err}.") from None
    return path
