"""Parameter sweeps: a grid of scenario variants evaluated on a dask.distributed cluster.

A ``--set PATH=VALUES`` spec addresses the raw scenario mapping (as read from
YAML/JSON) with dots and list indices: ``workload.arrival.rate``,
``devices[0].capacity`` (or ``devices.0.capacity``),
``chains[1].workload.arrival.rate``. The path must exist in the file (add a
defaulted field such as ``servers: 1`` to the file to sweep it). VALUES is
``start:stop:step`` (stop included when it lands on the grid), a list
``1,2,5`` or one value; several specs make the Cartesian product.

Every point is re-validated before anything runs; each point is evaluated with
its own seed (``seed + point index``), so results do not depend on which worker
ran what. dask is imported inside the functions that use it, so that
``import edgeperf.sim`` stays fast.
"""

from __future__ import annotations

import copy
import csv
import itertools
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .. import _validation as v
from ..exceptions import InvalidParameterError
from ..model import Metrics, System

__all__ = ["SweepError", "SweepResult", "FailedPoint", "METRICS", "parse_set", "grid_points",
           "check_paths", "apply_point", "run_sweep", "sweep_file", "simulate_point",
           "check_outputs", "LOCAL_CLUSTER"]

#: The metrics of every row; each has a ``<metric>_ci`` column (95% half-width).
METRICS = ("throughput", "loss_probability", "mean_response_time", "p50_response_time",
           "p95_response_time", "p99_response_time", "accuracy")
_UNITS = {"throughput": "1/s", "mean_response_time": "s", "p50_response_time": "s",
          "p95_response_time": "s", "p99_response_time": "s"}
#: No dashboard; the scheduler's HTTP endpoint on a free port, not on 8787 (which a
#: cluster already running may hold, and a warning would say so); quiet logs.
LOCAL_CLUSTER = {"dashboard_address": None, "scheduler_kwargs": {"dashboard_address": ":0"},
                 "silence_logs": logging.ERROR}
#: A guard against a typo such as 1:1e6:1 queueing a million simulations.
MAX_POINTS = 100_000
_EXAMPLE = "e.g. workload.arrival.rate=1:20:0.5"
_SEGMENT = r"[^.\[\]=]+(?:\[\d+\])*"
_PATH = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")

Point = dict[str, Any]
Evaluate = Callable[..., "Mapping[str, Metrics] | Metrics"]


class SweepError(InvalidParameterError):
    """A sweep spec, grid point, scheduler or output breaks a rule; one line says which."""


# --------------------------------------------------------------------------- grid


def _split(path: str) -> tuple[str | int, ...]:
    """``devices[0].capacity`` -> ('devices', 0, 'capacity'); dotted digits stay strings
    and become indices only where the scenario has a list."""
    if not _PATH.fullmatch(path):
        raise SweepError(f"--set path {path!r} is malformed: use names joined by dots, with list "
                         f"indices as [i] or .i ({_EXAMPLE}).")
    tokens: list[str | int] = []
    for segment in path.split("."):
        name, *indices = segment.replace("]", "").split("[")
        tokens += [name, *map(int, indices)]
    return tuple(tokens)


def _show(tokens: Sequence[str | int]) -> str:
    out = ""
    for t in tokens:
        out += f"[{t}]" if isinstance(t, int) else ("." if out else "") + t
    return out or "the top level"


def _scalar(text: str) -> Any:
    """One value as written: an int, a float, true/false, or else a string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _range(path: str, text: str) -> list[int | float]:
    """start:stop:step in exact decimal arithmetic, so 0.1:0.3:0.1 ends at 0.3."""
    parts = [p.strip() for p in text.split(":")]
    if len(parts) != 3:
        raise SweepError(f"--set {path}: range {text!r} must be start:stop:step ({_EXAMPLE}).")
    try:
        start, stop, step = (Decimal(p) for p in parts)
    except InvalidOperation:
        raise SweepError(f"--set {path}: range {text!r} must be three numbers "
                         f"start:stop:step ({_EXAMPLE}).") from None
    if not all(x.is_finite() for x in (start, stop, step)):
        raise SweepError(f"--set {path}: range {text!r} must have finite numbers.")
    if step <= 0:
        raise SweepError(f"--set {path}: the step of range {text!r} must be > 0. Got {parts[2]}.")
    if stop < start:
        raise SweepError(f"--set {path}: range {text!r} must have stop >= start.")
    count = int((stop - start) / step) + 1
    if count > MAX_POINTS:
        raise SweepError(f"--set {path}: range {text!r} has {count} values; at most {MAX_POINTS}.")
    integral = all(isinstance(_scalar(p), int) for p in parts)
    return [(int if integral else float)(start + i * step) for i in range(count)]


def parse_set(spec: str) -> tuple[str, tuple[Any, ...]]:
    """``'PATH=VALUES'`` -> (PATH, values).

    >>> parse_set("workload.arrival.rate=0.1:0.3:0.1")
    ('workload.arrival.rate', (0.1, 0.2, 0.3))
    """
    path, sep, text = spec.partition("=")
    path, text = path.strip(), text.strip()
    if not sep or not path:
        raise SweepError(f"--set {spec!r} must look like PATH=VALUES ({_EXAMPLE}).")
    _split(path)
    if not text:
        raise SweepError(f"--set {path}: has no values after '=' ({_EXAMPLE}).")
    if ":" in text:
        return path, tuple(_range(path, text))
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise SweepError(f"--set {path}: list {text!r} has an empty item.")
    return path, tuple(_scalar(t) for t in items)


def grid_points(sets: Sequence[str] | Mapping[str, Sequence[Any]]) -> list[Point]:
    """The Cartesian product of ``--set`` specs (or of a mapping path -> values),
    the first parameter varying slowest."""
    specs = list(sets.items()) if isinstance(sets, Mapping) else [parse_set(s) for s in sets]
    if not specs:
        raise SweepError(f"A sweep needs at least one --set PATH=VALUES ({_EXAMPLE}).")
    seen: dict[tuple, str] = {}
    for path, values in specs:
        key = tuple(int(t) if isinstance(t, str) and t.isdigit() else t for t in _split(path))
        if key in seen:
            raise SweepError(f"--set {path}: the same parameter is set twice "
                             f"({seen[key]!r} and {path!r}).")
        seen[key] = path
        if isinstance(values, str) or not len(values):
            raise SweepError(f"--set {path}: needs a non-empty list of values. Got {values!r}.")
    total = math.prod(len(values) for _, values in specs)
    if total > MAX_POINTS:
        raise SweepError(f"The grid has {total} points; at most {MAX_POINTS}.")
    paths = [p for p, _ in specs]
    return [dict(zip(paths, combo)) for combo in itertools.product(*(vals for _, vals in specs))]


def _locate(data: Any, path: str) -> tuple[Any, str | int]:
    """The container holding ``path`` and its key there; an unknown path names the
    point it fails at and what exists there."""
    tokens, node, where = _split(path), data, []
    parent, key = None, None
    for token in tokens:
        at = _show(where)
        if isinstance(node, dict):
            if token not in node:
                keys = ", ".join(map(str, node)) or "none"
                raise SweepError(f"Unknown --set path {path!r}: {at} has no key {token!r}; "
                                 f"its keys are: {keys}.")
            key = token
        elif isinstance(node, list):
            index = token if isinstance(token, int) else int(token) if token.isdigit() else None
            if index is None or index >= len(node):
                rule = f"indices 0..{len(node) - 1}" if node else "no items"
                raise SweepError(f"Unknown --set path {path!r}: {at} is a list with {rule}. "
                                 f"Got {token!r}.")
            key = index
        else:
            raise SweepError(f"Unknown --set path {path!r}: {at} is a value ({node!r}) "
                             f"with no key {token!r}.")
        parent, node = node, node[key]
        where.append(key)
    return parent, key  # type: ignore[return-value]


def check_paths(data: Any, paths: Sequence[str]) -> None:
    """Raise SweepError for the first path that does not exist in ``data``."""
    for path in paths:
        _locate(data, path)


def apply_point(data: Any, point: Point) -> Any:
    """A deep copy of ``data`` with each path of ``point`` set; ``data`` is unchanged."""
    out = copy.deepcopy(data)
    for path, value in point.items():
        parent, key = _locate(out, path)
        parent[key] = value
    return out


def _label(point: Point) -> str:
    return ", ".join(f"{p}={x}" for p, x in point.items())


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class FailedPoint:
    """A grid point whose evaluation raised (or whose workers died beyond retries)."""

    index: int
    point: Point
    error: str

    @property
    def label(self) -> str:
        return _label(self.point)


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
        return _atomic(path, lambda tmp: fig.savefig(tmp, format=Path(path).suffix[1:], dpi=120))


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
    if plot is not None:
        from matplotlib.backend_bases import FigureCanvasBase

        suffix = Path(plot).suffix[1:]
        known = FigureCanvasBase.get_supported_filetypes()
        if suffix not in known:
            raise SweepError(f"The plot {str(plot)!r} must end in one of "
                             f"{', '.join('.' + k for k in sorted(known))}.")


def _atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write through a temporary file beside ``path``: readers never see half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
        os.close(fd)
    except OSError as err:
        raise SweepError(f"Cannot write {str(path)!r}: {err.strerror or err}.") from None
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp makes it private; results are meant to be shared
        os.replace(tmp, path)
    except OSError as err:
        raise SweepError(f"Cannot write {str(path)!r}: {err.strerror or err}.") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------- running


def simulate_point(system: System, *, jobs: int, replications: int,
                   seed: int) -> dict[str, Metrics]:
    """The default evaluator: the simulator, 10% warm-up discarded."""
    from ._simulate import simulate_chains

    return simulate_chains(system, jobs=jobs, replications=replications, seed=seed, warmup=0.1)


def _evaluate_point(system: System, seed: int, *, evaluate: Any, jobs: int,
                    replications: int) -> dict[str, dict[str, float | None]]:
    """Runs on a worker: metrics and half-widths of each chain as plain numbers."""
    if hasattr(evaluate, "evaluate"):  # an Evaluator object: evaluate(system) -> Metrics
        result = evaluate.evaluate(system)
    else:
        result = evaluate(system, jobs=jobs, replications=replications, seed=seed)
    if isinstance(result, Metrics):
        result = {system.chains[0].name if len(system.chains) == 1 else "all": result}
    out = {}
    for chain, m in result.items():
        row: dict[str, float | None] = {}
        for name in METRICS:
            value, half = getattr(m, name), m.half_widths.get(name)
            row[name] = None if value is None else float(value)
            row[f"{name}_ci"] = None if half is None else float(half)
        out[chain] = row
    return out


@contextmanager
def _connect(client: Any, scheduler: str | None, n_workers: int, timeout: float) -> Iterator[Any]:
    """The given client, one to the scheduler at ``scheduler``, or a local cluster;
    whatever is opened here is closed here."""
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            opened = Client(scheduler, timeout=timeout, set_as_default=False)
        except ValueError as err:
            raise SweepError(f"The scheduler address {scheduler!r} is malformed: {err} "
                             "(e.g. tcp://10.0.0.5:8786).") from None
        except (OSError, TimeoutError) as err:
            raise SweepError(f"The dask scheduler at {scheduler!r} does not answer: "
                             f"{str(err).rstrip('.')}.") from None
        with opened:
            yield opened
        return
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      **LOCAL_CLUSTER) as cluster, Client(cluster, set_as_default=False) as local:
        yield local


def _failure(future: Any) -> str:
    """One line of text for a future that did not finish."""
    if future.status != "error":
        return f"the task was {future.status} (lost contact with the scheduler?)"
    err = future.exception()
    text = " ".join(str(err).split()) or "(no message)"
    return f"{type(err).__name__}: {text[:400]}"


def _gather(client: Any, systems: Sequence[System], seed: int, progress: bool,
            **kwargs: Any) -> list[Any]:
    """Per point, its chains' metrics or the text of its failure, in point order."""
    from distributed import as_completed
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    seeds = [seed + i for i in range(len(systems))]  # fixed per point, whoever runs it
    futures = client.map(_evaluate_point, systems, seeds, retries=2, pure=False, **kwargs)
    index = {f.key: i for i, f in enumerate(futures)}
    out: list[Any] = [None] * len(futures)
    bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True), disable=not progress)
    with bar:
        task = bar.add_task("sweep", total=len(futures), failed=0)
        failed = 0
        for future in as_completed(futures, loop=client.loop):
            i = index[future.key]
            if future.status == "finished":
                out[i] = future.result()
            else:
                out[i], failed = _failure(future), failed + 1
            future.release()
            bar.update(task, advance=1, failed=failed)
    return out


def _prepare(scenarios: Any, sets: Any, source: str, base: str | Path
             ) -> tuple[tuple[str, ...], list[Point], list[System]]:
    """Swept parameters, points and the validated System of each point."""
    from ..io import parse_scenario

    if isinstance(scenarios, Mapping):  # a base scenario and a grid
        data = dict(scenarios)
        points = grid_points(sets if sets is not None else [])
        check_paths(data, list(points[0]))  # unknown paths fail before anything runs
        systems = [parse_scenario(apply_point(data, p),
                                  f"{source} at point {i} ({_label(p)})", base)
                   for i, p in enumerate(points)]
        return tuple(points[0]), points, systems
    if sets is not None:
        raise SweepError("Give --set specs with one base scenario (a mapping), not with a list.")
    systems = [s if isinstance(s, System) else parse_scenario(s, f"{source}[{i}]", base)
               for i, s in enumerate(scenarios)]
    if not systems:
        raise SweepError("A sweep needs at least one scenario. Got an empty list.")
    return ("scenario",), [{"scenario": i} for i in range(len(systems))], systems


def run_sweep(scenarios: Mapping[str, Any] | Sequence[Mapping[str, Any] | System],
              sets: Sequence[str] | Mapping[str, Sequence[Any]] | None = None, *,
              evaluate: Evaluate | Any = simulate_point, client: Any = None,
              scheduler: str | None = None, n_workers: int = 2, timeout: float = 10.0,
              jobs: int = 50_000, replications: int = 5, seed: int = 0, progress: bool = True,
              source: str = "<scenario>", base: str | Path = ".") -> SweepResult:
    """Evaluate a grid of variants of one scenario, or a list of scenarios, on dask.

    ``scenarios`` is a raw scenario mapping swept over ``sets`` (``--set``
    strings or a mapping path -> values), or a list of mappings / Systems (the
    ``scenario`` column is then the position in the list). ``evaluate`` is
    called on a worker as ``evaluate(system, jobs=, replications=, seed=)`` and
    returns Metrics by chain name (or one Metrics), or is an object with
    ``evaluate(system) -> Metrics``. ``client`` is an open dask Client;
    otherwise ``scheduler`` is the address of a running scheduler; otherwise a
    local cluster of ``n_workers`` processes is started and closed.
    """
    v.integer("run_sweep", "jobs", jobs, low=1)
    v.integer("run_sweep", "replications", replications, low=1)
    v.integer("run_sweep", "seed", seed, low=0)
    v.integer("run_sweep", "n_workers", n_workers, low=1)
    params, points, systems = _prepare(scenarios, sets, source, base)
    with _connect(client, scheduler, n_workers, v.positive("run_sweep", "timeout", timeout)) as c:
        outcomes = _gather(c, systems, seed, progress, evaluate=evaluate, jobs=jobs,
                           replications=replications)
    rows, failed = [], []
    empty = {c: None for m in METRICS for c in (m, f"{m}_ci")}
    for i, (point, system, outcome) in enumerate(zip(points, systems, outcomes)):
        error = outcome if isinstance(outcome, str) else ""
        if error:  # a failed point keeps a row per chain, with the reason
            failed.append(FailedPoint(i, point, error))
            outcome = {c.name: empty for c in system.chains}
        rows += [{"point": i, **point, "chain": chain, **metrics, "error": error}
                 for chain, metrics in outcome.items()]
    return SweepResult(params, tuple(rows), tuple(failed), len(points))


def sweep_file(path: str | Path, sets: Sequence[str], **kwargs: Any) -> SweepResult:
    """``run_sweep`` over a scenario file; the file itself must be valid first."""
    import yaml

    from ..io import load_scenario

    load_scenario(path)  # one clear message for an unreadable or invalid base file
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return run_sweep(data, sets, source=str(path), base=Path(path).parent, **kwargs)
