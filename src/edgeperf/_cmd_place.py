"""``edgeperf place``: where to cut a scenario's model and which device runs
which fragment; prints the decision and what it predicts, and writes the
placed scenario.

Kept out of cli.py; the optimisers load only when the command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["place_command"]

_out = Console()
JOINT = ("surrogate", "simulation")  # the methods that place every chain at once


def place_command(
    scenario: Annotated[Path, typer.Argument(help="The scenario whose chain to place.")],
    method: Annotated[str, typer.Option(help="neurosurgeon, scission, mincut, ilp, loss-aware, "
                                             "surrogate or simulation.")] = "loss-aware",
    objective: Annotated[str | None, typer.Option(
        help="neurosurgeon/scission: latency or energy; ilp: latency, bottleneck or mix; "
             "surrogate, simulation: worst_loss or mean_loss.")] = None,
    weight: Annotated[float | None, typer.Option(help="ilp mix: the latency weight.")] = None,
    max_utilisation: Annotated[float | None, typer.Option(
        help="ilp: each device's processing budget (utilisation).")] = None,
    power: Annotated[str | None, typer.Option(
        help="energy objective: 'compute_w,transmit_w,idle_w' of the device tier.")] = None,
    loss_target: Annotated[float | None, typer.Option(
        help="loss-aware: the largest acceptable loss ratio.")] = None,
    exit_table: Annotated[Path | None, typer.Option(
        help="loss-aware: the model's exit table; the exit policy is chosen too, among one "
             "shared threshold per exit from 0.5 to 1 (then accuracy is maximised within "
             "--loss-target).")] = None,
    confirm: Annotated[int | None, typer.Option(
        help="loss-aware: simulate this many best candidates (default 3; 0: none); "
             "surrogate, simulation: 0 skips simulating the winner.")] = None,
    seed: Annotated[int | None, typer.Option(
        help="loss-aware, surrogate, simulation: the seed of the search and its "
             "simulations.")] = None,
    model: Annotated[Path | None, typer.Option(
        help="surrogate: the trained model (default: the shipped one for the scenario's "
             "regime, models/surrogate/chainnet.safetensors or chainnet_edgeperf.safetensors).")]
        = None,
    time_budget_s: Annotated[float | None, typer.Option(
        help="surrogate, simulation: seconds of search before the winner is simulated "
             "(default 10 and 30).")] = None,
    scoring_jobs: Annotated[int | None, typer.Option(
        help="simulation: arrivals simulated per candidate (default 2000; more for bursty "
             "arrivals).")] = None,
    chain: Annotated[str | None, typer.Option(help="The chain to place (several chains).")]
        = None,
    out: Annotated[Path | None, typer.Option(help="Write the placed scenario here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Choose a placement; print it, its predicted metrics, and write the placed scenario."""
    from . import _validation as v
    from .io import load_scenario
    from .placement import place, write_placed_scenario
    from .queueing import DecompositionEvaluator

    options = {"objective": objective, "weight": weight, "max_utilisation": max_utilisation,
               "power": None if power is None else _power(power), "loss_target": loss_target,
               "confirm": confirm, "seed": seed, "model": model, "time_budget_s": time_budget_s,
               "scoring_jobs": scoring_jobs}
    if method in JOINT and confirm is not None:
        options["confirm"] = confirm > 0
    system = load_scenario(scenario)
    if out is not None:  # before the search, not after
        v.output_file("place", "--out", out)
    if method == "loss-aware":
        options["progress"] = _progress() if sys.stderr.isatty() and not as_json else None
    if exit_table is not None:
        options["options"] = _exit_options(exit_table, system, chain)
    decision = place(system, method, chain=chain, **options)
    evaluator = DecompositionEvaluator()
    try:
        evaluator.supports(decision.system)
        predicted = evaluator.evaluate(decision.system).to_dict()
    except ValueError as err:  # UnsupportedModelError: the simulator can still run it
        predicted = {"unsupported": str(err)}
    if out is not None:
        write_placed_scenario(scenario, decision, out)
    result = dict(decision.to_dict(), predicted=predicted,
                  out=None if out is None else str(out))
    if as_json:
        print(json.dumps(result, default=float))
        return
    _print(result)


def _power(text: str):  # noqa: ANN202 - a PowerModel
    from . import _validation as v
    from .placement import PowerModel

    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (2, 3):
        raise v.fail("place", "power", "'compute_w,transmit_w' or 'compute_w,transmit_w,idle_w'",
                     text)
    return PowerModel(**dict(zip(("compute_w", "transmit_w", "idle_w"), values)))


def _exit_options(path: Path, system, chain: str | None):  # noqa: ANN001, ANN202
    """Exit options of a shared threshold per exit, 0.5 to 1 in steps of 0.05."""
    import numpy as np

    from .model import ExitTable
    from .placement import exit_options

    table = ExitTable.load(path)
    model = (system.chains[0] if chain is None else system.chain(chain)).model
    grid = np.round(np.arange(0.5, 1.0001, 0.05), 2)
    return exit_options(table, model, np.repeat(grid[:, None], table.n_exits - 1, axis=1))


def _progress():  # noqa: ANN202 - a callback
    def show(scored: int) -> None:
        if scored % 50 == 0:
            print(f"\rscored {scored} placements", end="", file=sys.stderr, flush=True)
    return show


def _print(result: dict) -> None:
    placements = result["details"].get("placements") or {result["chain"]: result["placement"]}
    simulated = result["details"].get("simulated") or {}
    # the joint searches' own score of each chain (loss-aware's "predicted" is one Metrics)
    estimated = result["details"]["predicted"] if result["method"] in JOINT else {}
    title = f"{result['method']}: minimises {result['objective']} (found in " \
            f"{result['solve_time_s'] * 1e3:.1f} ms)"
    if len(placements) > 1:  # one line, not squeezed into the width of each table
        _out.print(title)
    for chain, placement in placements.items():
        table = Table(title=title if len(placements) == 1 else f"chain {chain}")
        table.add_column("device")
        table.add_column("blocks")
        for device, blocks in placement.items():
            shown = blocks[0] if len(blocks) == 1 else \
                f"{blocks[0]} .. {blocks[-1]} ({len(blocks)})"
            table.add_row(device, shown)
        _out.print(table)
        if chain in estimated:
            e = estimated[chain]
            # end to end, as simulated below, where the scorer gives it; else ChainNet's label
            what, value = ("mean response", e["response_time_e2e"]) \
                if "response_time_e2e" in e else ("response at the devices", e["response_time"])
            _out.print(f"{result['method']} estimate: loss {e['loss']:.4g}, {what} "
                       f"{value:.5g} s")
        if chain in simulated:
            s = simulated[chain]
            _out.print(f"simulated: loss {s['loss']:.4g} ± {s['loss_half_width']:.2g}, mean "
                       f"response {s['mean_response_time']:.5g} s")
    of = f" (chain {result['chain']})" if len(placements) > 1 else ""
    _out.print(f"objective value {result['value']:.6g}; latency without queueing "
               f"{result['latency_s']:.6g} s{of}")
    outside = result["details"].get("outside_training")
    if outside:
        _out.print("note: this placement lies outside the twin's training data, so its "
                   f"estimate is an extrapolation (trust the simulation): {'; '.join(outside)}")
    option = result["details"].get("exit_option")
    if option:
        _out.print(f"exit thresholds {option['label']}: accuracy {option['accuracy']:.4f}")
    predicted = result["predicted"]
    if "unsupported" not in predicted:
        _out.print(f"predicted: loss {predicted['loss_probability']:.4g}, throughput "
                   f"{predicted['throughput']:.5g} 1/s, mean response "
                   f"{predicted['mean_response_time']:.5g} s")
    elif not estimated:  # the search's estimates stand in for the analytic prediction
        _out.print(f"no analytic prediction: {predicted['unsupported']}")
    if result["out"]:
        _out.print(f"placed scenario written to {result['out']}")
