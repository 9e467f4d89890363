"""Parameter sweeps: a grid of scenario variants evaluated on a dask.distributed cluster.

Every point is re-validated before anything runs; each point is evaluated with
its own seed (``seed + point index``), so results do not depend on which worker
ran what. dask is imported inside the functions that use it, so that
``import edgeperf.sim`` stays fast. The grid is in ``_grid``, the result table
and plot in ``_sweep_table``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import _validation as v
from ..exceptions import EdgePerfError
from ..model import Metrics, System
from ._grid import Point, SweepError, apply_point, check_paths, grid_points, point_label
from ._sweep_table import METRICS, FailedPoint, SweepResult

__all__ = ["run_sweep", "sweep_file", "simulate_point", "LOCAL_CLUSTER"]

#: No dashboard; the scheduler's HTTP endpoint on a free port, not on 8787 (which a
#: cluster already running may hold, and a warning would say so); quiet logs.
LOCAL_CLUSTER = {"dashboard_address": None, "scheduler_kwargs": {"dashboard_address": ":0"},
                 "silence_logs": logging.ERROR}

Evaluate = Callable[..., "Mapping[str, Metrics] | Metrics"]


def simulate_point(system: System, *, jobs: int, replications: int,
                   seed: int) -> dict[str, Metrics]:
    """The default evaluator: the simulator, 10% warm-up discarded."""
    from ._simulate import simulate_chains

    return simulate_chains(system, jobs=jobs, replications=replications, seed=seed, warmup=0.1)


def _evaluate_point(system: System, seed: int, *, evaluate: Any, jobs: int,
                    replications: int) -> dict[str, dict[str, float | None]] | str:
    """Runs on a worker: metrics and half-widths of each chain as plain numbers, or
    the text of the evaluator's refusal."""
    try:
        if hasattr(evaluate, "evaluate"):  # an Evaluator object: evaluate(system) -> Metrics
            result = evaluate.evaluate(system)
        else:
            result = evaluate(system, jobs=jobs, replications=replications, seed=seed)
    except EdgePerfError as err:  # a refusal with its reason: the point's seed gives it again,
        return _error_text(err)   # so it is not retried, nor logged by the worker as a crash
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
def _connect(client: Any, scheduler: str | None, n_workers: int | None,
             timeout: float) -> Iterator[Any]:
    """The given client, one to the scheduler at ``scheduler``, or a local cluster;
    whatever is opened here is closed here."""
    from distributed import Client, LocalCluster
    from distributed.comm import get_address_host_port, parse_address

    if client is not None:
        yield v.instance("run_sweep", "client", client, Client, "an open dask Client")
        return

    if scheduler is not None:
        try:  # checked before a Client exists: a half-made one hangs 20 s when collected
            if parse_address(scheduler)[0] != "inproc":
                get_address_host_port(scheduler)
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
    return _error_text(future.exception())


def _error_text(err: BaseException) -> str:
    """One line: the exception's type and message."""
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
            out[i] = future.result() if future.status == "finished" else _failure(future)
            failed += isinstance(out[i], str)
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
                                  f"{source} at point {i} ({point_label(p)})", base)
                   for i, p in enumerate(points)]
        return tuple(points[0]), points, systems
    if sets is not None:
        raise SweepError("Give --set specs with one base scenario (a mapping), not with a list.")
    items = v.listed("run_sweep", "scenarios", scenarios,
                     "a scenario mapping, or a list of scenario mappings or Systems")
    systems = [s if isinstance(s, System) else parse_scenario(s, f"{source}[{i}]", base)
               for i, s in enumerate(items)]
    if not systems:
        raise SweepError("A sweep needs at least one scenario. Got an empty list.")
    return ("scenario",), [{"scenario": i} for i in range(len(systems))], systems


def run_sweep(scenarios: Mapping[str, Any] | Sequence[Mapping[str, Any] | System],
              sets: Sequence[str] | Mapping[str, Sequence[Any]] | None = None, *,
              evaluate: Evaluate | Any = simulate_point, client: Any = None,
              scheduler: str | None = None, n_workers: int | None = None, timeout: float = 10.0,
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
    local cluster of ``n_workers`` processes is started and closed: at most the
    cores this process may use, and by default two (or one on a one-core machine).
    """
    v.integer("run_sweep", "jobs", jobs, low=1)
    v.integer("run_sweep", "replications", replications, low=1)
    v.integer("run_sweep", "seed", seed, low=0)
    if not (callable(evaluate) or callable(getattr(evaluate, "evaluate", None))):
        # else every point would fail on the workers, one by one
        raise v.fail("run_sweep", "evaluate", "a function evaluate(system, jobs=, "
                     "replications=, seed=) or an evaluator with evaluate(system)",
                     v.brief(evaluate))
    if scheduler is not None and not isinstance(scheduler, str):
        raise v.fail("run_sweep", "scheduler", "None or a scheduler address "
                     "(tcp://HOST:PORT)", v.brief(scheduler))
    if client is None and scheduler is None:  # a local cluster: its workers share our cores
        n_workers = min(2, v.usable_cores()) if n_workers is None else \
            v.cores("run_sweep", "n_workers", n_workers)
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
    from ..io import load_scenario
    from ..io._files import load_yaml

    load_scenario(path)  # one clear message for an unreadable or invalid base file
    data = load_yaml(Path(path).read_text(encoding="utf-8"))
    return run_sweep(data, sets, source=str(path), base=Path(path).parent, **kwargs)
