"""``edgeperf schedule``: a policy's decision for a scenario, and what it predicts.

Kept out of cli.py; the schedulers load only when the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["schedule_command"]

_out = Console()


def schedule_command(
    scenario: Annotated[Path, typer.Argument(
        help="One chain on one device, its model from a profile (model: {profile: ...}).")],
    exit_table: Annotated[Path, typer.Option(help="The model's exit table (exit_table.npz).")],
    policy: Annotated[str, typer.Option(help="static, static_tuned, queueing_lp, bayes, "
                                             "knapsack, ucb or lp_lookup.")] = "static_tuned",
    loss_target: Annotated[float, typer.Option(help="Largest acceptable loss ratio L*.")] = 0.01,
    simulate: Annotated[bool, typer.Option(help="Also simulate the decision (10 replications).")]
        = False,
    jobs: Annotated[int, typer.Option(help="Simulated arrivals per replication.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of the policy search and the simulation.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Choose exits for a scenario's device under a loss target; predict and simulate."""
    from .io import load_scenario
    from .model import ExitTable
    from .schedule import (OFFLINE, POLICIES, online_policy, predict, problem_of,
                           simulate_decision, solve)
    from .sim import StaticExits
    from .sim import simulate as run_simulation

    choices = [p for p in POLICIES if p != "bayes_lookup"]  # it needs a saved lookup
    if policy not in choices:
        from . import _validation as v
        raise v.fail("schedule", "policy", f"one of {choices} (bayes_lookup runs from a saved "
                     "lookup: edgeperf run --policy bayes_lookup --lookup FILE)", policy)
    problem = problem_of(load_scenario(scenario), ExitTable.load(exit_table), loss_target)
    result: dict = {"policy": policy, "loss_target": loss_target,
                    "arrival_rate": problem.arrival_rate}
    if policy in OFFLINE:
        options = {"seed": seed} if policy == "bayes" else {}
        decision = solve(problem, policy, **options)
        result["decision"] = {"thresholds": list(getattr(decision, "thresholds", [])) or None,
                              "probabilities": list(getattr(decision, "probabilities", []))
                              or None, "solve_time_s": decision.solve_time_s}
        result["predicted"] = predict(problem, decision).to_dict()
        if simulate:
            result["simulated"] = simulate_decision(problem, decision, jobs=jobs,
                                                    seed=seed).to_dict()
    else:  # online: only the simulation says what it does
        result["simulated"] = run_simulation(
            problem.system(), jobs=jobs, replications=10, seed=seed, engine="event",
            exits=StaticExits(table=problem.table),
            policies=online_policy(problem, policy)).to_dict()
    if as_json:
        print(json.dumps(result))
        return
    _print(result, problem.exit_names)


def _print(result: dict, exit_names: tuple[str, ...]) -> None:
    decision = result.get("decision")
    if decision:
        values = decision["thresholds"] or decision["probabilities"]
        kind = "threshold" if decision["thresholds"] else "probability"
        names = exit_names[:-1] if decision["thresholds"] else exit_names
        # one line above the table: as its title it wrapped to the two columns' width
        _out.print(f"{result['policy']}: {kind} per exit (found in "
                   f"{decision['solve_time_s'] * 1e3:.1f} ms)")
        table = Table()
        table.add_column("exit")
        table.add_column(kind, justify="right")
        for name, x in zip(names, values):
            table.add_row(name, f"{x:.4g}")
        _out.print(table)
    table = Table(title=f"at {result['arrival_rate']:g} jobs/s, loss target "
                        f"{result['loss_target']:g}")
    table.add_column("metric")
    for source in ("predicted", "simulated"):
        if source in result:
            table.add_column(source, justify="right")
    rows = [("loss probability", "loss_probability"), ("accuracy", "accuracy"),
            ("mean response time s", "mean_response_time"), ("throughput 1/s", "throughput")]
    for label, key in rows:
        cells = []
        for source in ("predicted", "simulated"):
            if source in result:
                m = result[source]
                x, hw = m.get(key), (m.get("half_widths") or {}).get(key)
                cells.append("—" if x is None else f"{x:.5g}" + (f" ± {hw:.2g}" if hw else ""))
        table.add_row(label, *cells)
    _out.print(table)
