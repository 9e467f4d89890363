"""``edgeperf sweep``: a parameter grid of one scenario on a dask cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def sweep(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML or JSON).")],
    set_: Annotated[list[str], typer.Option(
        "--set", show_default=False, metavar="PATH=VALUES",
        help="PATH=VALUES to sweep, e.g. workload.arrival.rate=1:20:0.5 (start:stop:step), "
             "devices[0].capacity=2,5,10 or one value. Repeat for a grid (every combination).")],
    jobs: Annotated[int, typer.Option(help="Arrivals simulated per replication.")] = 50_000,
    replications: Annotated[int, typer.Option(help="Independent replications per point.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed; point i uses seed + i.")] = 0,
    scheduler: Annotated[str | None, typer.Option(
        help="Address of a running dask scheduler, e.g. tcp://10.0.0.5:8786 "
             "(default: start a local cluster of 2 worker processes).")] = None,
    out: Annotated[Path, typer.Option(
        help="Results table: .csv, or .parquet (needs pyarrow).")] = Path("sweep.csv"),
    plot: Annotated[Path | None, typer.Option(
        help="Plot of each metric against the first swept parameter "
             "(default: --out with .png).", show_default=False)] = None,
) -> None:
    """Simulate a grid of variants of a scenario: a table and a plot of every metric."""
    from .sim._sweep import sweep_file
    from .sim._sweep_table import check_outputs

    check_outputs(out)  # before the sweep runs, not after; and before --out gives --plot
    plot = plot if plot is not None else out.with_suffix(".png")
    check_outputs(plot=plot)
    result = sweep_file(scenario, set_, jobs=jobs, replications=replications, seed=seed,
                        scheduler=scheduler)
    result.write(out)
    result.plot(plot)
    print(f"{result.n_points} points, {len(result.rows)} rows: wrote {out} and {plot}")
    if result.failed:
        print(f"edgeperf: {len(result.failed)} of {result.n_points} points failed:",
              file=sys.stderr)
        for f in result.failed:
            print(f"  point {f.index} ({f.label}): {f.error}", file=sys.stderr)
        sys.exit(1)
