"""``edgeperf run``: the scenario run for real, measured next to its twin.

Kept out of cli.py; the runtime (torch, zmq) loads only when the command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["run_command", "worker_command"]

_out = Console()


def _model_dir(scenario: Path) -> Path:
    """The folder of the scenario's profile: where ``train-exits`` put the model."""
    import yaml

    from .io import ScenarioError
    from .io._files import load_yaml, read_text

    try:
        data = load_yaml(read_text(scenario))
        profile = data["model"]["profile"]
    except (yaml.YAMLError, KeyError, TypeError):
        raise ScenarioError(f"{scenario}: names no model profile (model: {{profile: ...}}); "
                            "give the trained model's folder with --model.") from None
    return (scenario.parent / str(profile)).parent


def _local(address: str) -> bool:
    """Whether a ZeroMQ address is on this host (a worker this run may start)."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "[::1]") or address.startswith("ipc://")


def _policy(threshold: float | None, policy: str | None, loss_target: float,
            n_exits: int, lookup: Path | None = None) -> Any:
    from . import _validation as v
    from .runtime import ExitPolicySpec

    v.probability("run", "loss_target", loss_target)
    if lookup is not None and policy != "bayes_lookup":
        raise v.fail("run", "lookup", "given only with --policy bayes_lookup", str(lookup))
    if policy is None:
        shared = 0.9 if threshold is None else v.real("run", "threshold", threshold, low=0.0)
        return ExitPolicySpec(thresholds=(shared,) * (n_exits - 1))
    from .schedule import ONLINE

    if threshold is not None or policy not in ONLINE:
        raise v.fail("run", "policy", f"one of the online policies {list(ONLINE)}, without "
                     "--threshold", policy)
    options = {} if lookup is None else {"lookup": str(lookup.resolve())}
    return ExitPolicySpec(kind="online", policy=policy, loss_target=loss_target, options=options)


def run_command(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML or JSON), one chain.")],
    duration: Annotated[float, typer.Option(help="Seconds of load.")] = 60.0,
    model: Annotated[Path | None, typer.Option(
        help="Trained model folder (default: the folder of the scenario's profile).")] = None,
    threshold: Annotated[float | None, typer.Option(
        help="One threshold for every non-final exit (default 0.9).")] = None,
    policy: Annotated[str | None, typer.Option(
        help="An online exit policy instead: knapsack, ucb, lp_lookup or bayes_lookup.")]
        = None,
    lookup: Annotated[Path | None, typer.Option(
        help="bayes_lookup: a saved BayesLookup (JSON).")] = None,
    loss_target: Annotated[float, typer.Option(help="The online policy's loss target.")]
        = 0.01,
    seed: Annotated[int, typer.Option(help="Seed of the arrivals and the simulation.")] = 0,
    warmup: Annotated[float, typer.Option(help="Share of the run left out of the metrics.")]
        = 0.1,
    jobs: Annotated[int, typer.Option(help="Simulated arrivals per replication.")] = 20_000,
    out: Annotated[Path | None, typer.Option(
        help="Write measured/analytic/simulated as JSON to this file.")] = None,
    threads: Annotated[int, typer.Option(
        help="torch threads of each worker, at most this host's cores.")] = 1,
    deployment_file: Annotated[Path | None, typer.Option(
        "--deployment", help="Run this deployment instead of planning one on loopback: "
        "workers bound to other hosts must be running there (edgeperf worker "
        "--deployment FILE --device NAME).")] = None,
    external: Annotated[list[str] | None, typer.Option(
        help="A device whose worker is already running (repeat for several).")] = None,
    save_deployment: Annotated[Path | None, typer.Option(
        help="Write the planned deployment here (to edit hosts and reuse with "
             "--deployment).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the scenario's split model across worker processes; compare with the twin."""
    from . import _validation as v
    from ._atomic import write_text_atomic
    from .io import load_scenario
    from .runtime import load_deployment
    from .runtime._orchestrator import run_deployment
    from .runtime._plan import plan_deployment
    from .runtime._twin import measured_calibration, twin_report

    v.positive("run", "duration", duration)
    for name, target in (("--out", out), ("--save-deployment", save_deployment)):
        if target is not None:  # before the run, not after it
            v.output_file("run", name, target)
    system = load_scenario(scenario)
    folder = model if model is not None else _model_dir(scenario)
    n_exits = 1 + sum(b.exit_probability is not None for b in system.chains[0].model.blocks)
    if deployment_file is not None:
        deployment = load_deployment(deployment_file)
    else:
        spec = _policy(threshold, policy, loss_target, n_exits, lookup)
        deployment = plan_deployment(system, folder, scenario_path=scenario, thresholds=spec,
                                     threads=v.cores("run", "threads", threads))
    if save_deployment is not None:
        deployment.save(save_deployment)
    remote = {w.device for w in deployment.workers if not _local(w.bind)}
    result = run_deployment(deployment, duration_s=duration, seed=seed, warmup=warmup,
                            progress=sys.stderr.isatty() and not as_json,
                            external=remote | set(external or ()))
    report = twin_report(system, deployment, result, jobs=jobs, seed=seed,
                         calibration=measured_calibration(result))
    if out is not None:
        write_text_atomic(out, json.dumps(report, indent=1) + "\n")
    if as_json:
        print(json.dumps(report))
        return
    _print(report, scenario, duration)


def _cell(row: dict | None, key: str) -> str:
    if row is None or row.get(key) is None:
        return "—"
    hw = (row.get("half_widths") or {}).get(key)
    return f"{row[key]:.4g}" + (f" ± {hw:.2g}" if hw else "")


def _print(report: dict, scenario: Path, duration: float) -> None:
    counts = report["run"]["counts"]
    table = Table(title=f"{scenario}: {duration:g} s run — offered {counts['offered']}, "
                        f"completed {counts['completed']}, dropped {counts['dropped']}")
    table.add_column("metric")
    for source in ("measured", "analytic", "simulated"):
        table.add_column(source, justify="right")
    labels = {"loss_probability": "loss probability", "throughput": "throughput 1/s",
              "mean_response_time": "mean response time s",
              "p95_response_time": "p95 response time s", "accuracy": "accuracy"}
    for key, label in labels.items():
        table.add_row(label, *(_cell(report[s], key)
                               for s in ("measured", "analytic", "simulated")))
    _out.print(table)
    for station, reasons in report["run"]["drops"].items():
        _out.print(f"dropped at {station}: " + ", ".join(f"{n} {r}" for r, n in reasons.items()))
    for f in report["run"]["failures"]:
        _out.print(f"worker {f['station']} {f['why']} at {f['t_s']:g} s (restarted)")
    for note in report["notes"]:
        _out.print(note)


def worker_command(
    deployment: Annotated[Path, typer.Option(help="The deployment JSON file.")],
    device: Annotated[str, typer.Option(help="The device whose fragment to run.")],
    bind: Annotated[str | None, typer.Option(
        help="Address to bind (default: the deployment's).")] = None,
) -> None:
    """Run one device's worker of a deployment until SIGTERM or Ctrl-C."""
    import zmq

    from .exceptions import InvalidParameterError
    from .runtime import load_deployment
    from .runtime._worker import run_worker

    try:
        run_worker(load_deployment(deployment), device, bind=bind)
    except (OSError, zmq.ZMQError) as err:  # e.g. the address is taken
        raise InvalidParameterError(f"worker {device!r} cannot serve: {err}") from None
