"""The ``edgeperf`` command: a thin layer over the library.

User errors print one line on stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ._cmd_chainnet import import_chainnet_command
from ._cmd_earlyexit import exits_command, profile_command, train_exits_command
from ._cmd_place import place_command
from ._cmd_runtime import run_command, worker_command
from ._cmd_schedule import schedule_command
from ._cmd_surrogate import surrogate_app
from ._cmd_sweep import sweep
from .exceptions import EdgePerfError
from .model import Metrics, StationMetrics

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Performance engineering of edge AI: queueing models and simulation of deployments.")
_out = Console()


class StationMethodName(str, Enum):
    exact = "exact"
    mgs = "mgs"


class QueueMethodName(str, Enum):
    exact = "exact"
    mgs = "mgs"
    simulate = "simulate"


class EngineName(str, Enum):
    auto = "auto"
    kernel = "kernel"
    event = "event"


class ChainMethodName(str, Enum):
    poisson = "poisson"
    two_moment = "two-moment"


def _fmt(x: float | None, unit: str = "", digits: int = 6, half: float | None = None) -> str:
    if x is None:
        return "—"
    return f"{x:.{digits}g}" + (f" ± {half:.2g}" if half is not None else "") + unit


def _with_ci(row: dict, half_widths: dict[str, float], suffix: str = "") -> dict:
    """Each metric of ``row`` followed by its 95% half-width as ``<metric>_ci``
    (None where there is none: one replication, or no value)."""
    out: dict = {}
    for key, value in row.items():
        out[key] = value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "capacity":
            out[f"{key}_ci"] = half_widths.get(key + suffix)
    return out


def _simulation_json(m: Metrics) -> dict:
    """The keys of ``analyze --json`` plus a ``_ci`` half-width beside each metric."""
    hw = m.half_widths
    out = _with_ci(m.to_dict(), hw)
    out["exit_distribution_ci"] = {e: hw.get(f"exit_distribution[{e}]")
                                   for e in m.exit_distribution}
    out["stations"] = [_with_ci(s.to_dict(), hw, f"[{s.name}]") for s in m.stations]
    return out


def _station_table(m: StationMetrics, title: str, hw: dict[str, float] | None = None) -> Table:
    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value" if hw is None else "value ± 95% half-width", justify="right")

    def cell(field: str, unit: str = "") -> str:
        return _fmt(getattr(m, field), unit, half=(hw or {}).get(f"{field}[{m.name}]"))

    rows = [("arrival rate", cell("arrival_rate", " 1/s")), ("capacity K", str(m.capacity)),
            ("loss probability", cell("loss_probability")),
            ("throughput", cell("throughput", " 1/s")), ("utilization", cell("utilization")),
            ("mean number in system", cell("mean_number")),
            ("mean response time", cell("mean_response_time", " s")),
            ("mean waiting time", cell("mean_waiting_time", " s"))]
    for row in rows:
        table.add_row(*row)
    return table


def _chain_tables(m: Metrics, title: str) -> list[Table]:
    stations = Table(title=f"{title} — per station ({m.kind}, {m.method})")
    for col in ("station", "offered 1/s", "loss", "throughput 1/s", "utilization",
                "mean response s"):
        stations.add_column(col, justify="left" if col == "station" else "right")
    for s in m.stations:
        stations.add_row(s.name, *(_fmt(x, digits=4) for x in (
            s.arrival_rate, s.loss_probability, s.throughput, s.utilization,
            s.mean_response_time)))
    hw = m.half_widths
    summary = Table(title="end to end")
    summary.add_column("metric")
    summary.add_column("value ± 95% half-width" if hw else "value", justify="right")
    rows = [("arrival rate", "arrival_rate", " 1/s"), ("loss probability", "loss_probability", ""),
            ("throughput (completed)", "throughput", " 1/s"),
            ("mean response time", "mean_response_time", " s"),
            ("p95 response time", "p95_response_time", " s"), ("accuracy", "accuracy", "")]
    for label, field, unit in rows:
        if getattr(m, field) is not None or field in ("loss_probability", "mean_response_time"):
            summary.add_row(label, _fmt(getattr(m, field), unit, half=hw.get(field)))
    for name, share in m.exit_distribution.items():
        summary.add_row(f"share leaving at exit {name}",
                        _fmt(share, half=hw.get(f"exit_distribution[{name}]")))
    return [stations, summary]


@app.command()
def queue(
    arrival_rate: Annotated[float, typer.Option(help="Poisson arrival rate, jobs per second.")],
    capacity: Annotated[int, typer.Option(help="Capacity K, the job in service included.")],
    service: Annotated[str, typer.Option(
        help='Service law as JSON, e.g. \'{"kind": "gamma", "shape": 4, "mean": 0.03}\'.')],
    method: Annotated[QueueMethodName, typer.Option(
        help="exact, mgs (MacGregor Smith) or simulate.")] = QueueMethodName.exact,
    jobs: Annotated[int, typer.Option(help="Simulated arrivals per replication.")] = 200_000,
    replications: Annotated[int, typer.Option(help="Independent simulation replications.")] = 5,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 0,
    phases: Annotated[int, typer.Option(
        help="Erlang phases k of the arrivals' gaps (SCV 1/k); 1: Poisson.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Analyse one M/G/1/K station (E_k/G/1/K with --phases), or simulate it."""
    from .io import law_from_spec
    from .queueing import ekg1k, mg1k

    law = law_from_spec(service, source="--service")
    kind = "M/G/1/K" if phases == 1 else f"E_{phases}/G/1/K"
    if phases != 1 and method is QueueMethodName.mgs:
        from . import _validation as v

        raise v.fail("queue", "method", "exact or simulate with --phases above 1 (mgs is for "
                     "Poisson arrivals)", method.value)
    if method is QueueMethodName.simulate:
        from .sim import simulate_station

        sim = simulate_station(arrival_rate, law, capacity, jobs=jobs, replications=replications,
                               seed=seed, phases=phases)
        row = sim.stations[0]
        if as_json:
            print(json.dumps(_with_ci(row.to_dict(), sim.half_widths, f"[{row.name}]")))
            return
        _out.print(_station_table(row, f"{kind} station (simulated, {row.method})",
                                  sim.half_widths))
        return
    result = mg1k(arrival_rate, law, capacity, method.value) if phases == 1 else \
        ekg1k(arrival_rate, phases, law, capacity)
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    _out.print(_station_table(result, f"{kind} station ({result.kind}, {result.method})"))
    if method is QueueMethodName.exact and phases == 1:
        approx = mg1k(arrival_rate, law, capacity, "mgs").loss_probability
        _out.print(f"MacGregor Smith's approximation of the loss: {approx:.6g} "
                   f"(error {approx - result.loss_probability:+.3g} against the exact value)")


@app.command()
def analyze(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML or JSON).")],
    method: Annotated[ChainMethodName, typer.Option(
        help="Decomposition: poisson inputs, or two-moment (carries input variability).")]
        = ChainMethodName.poisson,
    station_method: Annotated[StationMethodName, typer.Option(
        help="How each station is solved: exact M/G/1/K or mgs.")] = StationMethodName.exact,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Predict loss, throughput, latency and exits of a scenario analytically."""
    from .io import load_scenario
    from .queueing import DecompositionEvaluator

    system = load_scenario(scenario)
    result = DecompositionEvaluator(method.value, station_method.value).evaluate(system)
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    for table in _chain_tables(result, str(scenario)):
        _out.print(table)


@app.command()
def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML or JSON).")],
    jobs: Annotated[int, typer.Option(help="Arrivals per replication (all chains).")] = 200_000,
    replications: Annotated[int, typer.Option(help="Independent replications.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same numbers.")] = 0,
    warmup: Annotated[float, typer.Option(help="Share of simulated time discarded.")] = 0.1,
    engine: Annotated[EngineName, typer.Option(
        help="kernel (compiled, one chain), event (anything), or auto.")] = EngineName.auto,
    trace: Annotated[Path | None, typer.Option(
        help="Write the first replication's jobs to this CSV file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Simulate a scenario: loss, throughput, latency and exits with 95% half-widths."""
    from .io import load_scenario
    from .sim import simulate_chains

    system = load_scenario(scenario)
    results = simulate_chains(system, jobs=jobs, replications=replications, seed=seed,
                              warmup=warmup, engine=engine.value, trace=trace,
                              progress=sys.stderr.isatty())
    if as_json:
        if len(results) == 1:
            print(json.dumps(_simulation_json(next(iter(results.values())))))
        else:
            print(json.dumps({"chains": {c: _simulation_json(m) for c, m in results.items()}}))
        return
    for name, m in results.items():
        title = str(scenario) if len(results) == 1 else f"{scenario} — chain {name}"
        for table in _chain_tables(m, title):
            _out.print(table)
    if trace is not None:
        _out.print(f"per-job trace written to {trace}")


# Commands with long option lists live in their own modules (heavy imports inside).
app.command("import-chainnet")(import_chainnet_command)
app.command("sweep")(sweep)
app.command("train-exits")(train_exits_command)
app.command("exits")(exits_command)
app.command("profile")(profile_command)
app.command("schedule")(schedule_command)
app.command("place")(place_command)
app.command("run")(run_command)
app.command("worker")(worker_command)
app.add_typer(surrogate_app, name="surrogate")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit 2."""
    try:
        app(args=argv, standalone_mode=False)
    except EdgePerfError as err:
        print(f"edgeperf: error: {err}", file=sys.stderr)
        sys.exit(2)
    except MemoryError as err:  # e.g. numpy asked for more than this machine holds
        why = f" ({err})" if str(err) else ""
        print(f"edgeperf: error: out of memory{why}; ask for less: fewer jobs or samples, "
              "smaller capacities.", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as done:  # --help and friends
        sys.exit(done.exit_code)
    except typer.Abort:
        print("edgeperf: aborted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as err:  # usage errors: bad option, missing argument
        message = err.format_message()
        if message:  # empty when the help was shown for a bare `edgeperf`
            print(f"edgeperf: error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
