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

from .exceptions import EdgePerfError
from .model import Metrics, StationMetrics

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Performance engineering of edge AI: queueing models of deployments.")
_out = Console()


class StationMethodName(str, Enum):
    exact = "exact"
    mgs = "mgs"


class ChainMethodName(str, Enum):
    poisson = "poisson"
    two_moment = "two-moment"


def _fmt(x: float | None, unit: str = "", digits: int = 6) -> str:
    return "—" if x is None else f"{x:.{digits}g}{unit}"


def _station_table(m: StationMetrics, title: str) -> Table:
    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [("arrival rate", _fmt(m.arrival_rate, " 1/s")), ("capacity K", str(m.capacity)),
            ("loss probability", _fmt(m.loss_probability)),
            ("throughput", _fmt(m.throughput, " 1/s")), ("utilization", _fmt(m.utilization)),
            ("mean number in system", _fmt(m.mean_number)),
            ("mean response time", _fmt(m.mean_response_time, " s")),
            ("mean waiting time", _fmt(m.mean_waiting_time, " s"))]
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
    summary = Table(title="end to end")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    summary.add_row("arrival rate", _fmt(m.arrival_rate, " 1/s"))
    summary.add_row("loss probability", _fmt(m.loss_probability))
    summary.add_row("throughput (completed)", _fmt(m.throughput, " 1/s"))
    summary.add_row("mean response time", _fmt(m.mean_response_time, " s"))
    for name, share in m.exit_distribution.items():
        summary.add_row(f"share leaving at exit {name}", _fmt(share))
    return [stations, summary]


@app.command()
def queue(
    arrival_rate: Annotated[float, typer.Option(help="Poisson arrival rate, jobs per second.")],
    capacity: Annotated[int, typer.Option(help="Capacity K, the job in service included.")],
    service: Annotated[str, typer.Option(
        help='Service law as JSON, e.g. \'{"kind": "gamma", "shape": 4, "mean": 0.03}\'.')],
    method: Annotated[StationMethodName, typer.Option(help="exact or mgs (MacGregor Smith).")]
        = StationMethodName.exact,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Analyse one M/G/1/K station."""
    from .io import law_from_spec
    from .queueing import mg1k

    law = law_from_spec(service, source="--service")
    result = mg1k(arrival_rate, law, capacity, method.value)
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    _out.print(_station_table(result, f"M/G/1/K station ({result.kind}, {result.method})"))
    if method is StationMethodName.exact:
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit 2."""
    try:
        app(args=argv, standalone_mode=False)
    except EdgePerfError as err:
        print(f"edgeperf: error: {err}", file=sys.stderr)
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
