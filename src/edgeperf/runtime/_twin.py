"""The digital twin beside the run: what the analytic model and the simulator
predict for the scenario the runtime just measured.

Both predictions use the exits the run's policy implies: for thresholds, the
exit table gives each exit's share (``ExitTable.evaluate``), turned into the
probability of leaving at an exit given a job reached it; the simulator draws
table rows and applies the thresholds directly (``ThresholdExits``). An
online policy is simulated with the same policy object (event engine) and
has no analytic prediction.

Where the twin cannot match: a worker's fragment costs more than the
profile's blocks (numpy in and out, Python between blocks, cold caches) —
:func:`measured_calibration` takes that factor per device from the workers'
heartbeats and the twin can use it, as a profile measured on that device would; a slower device is
emulated by holding each job until its CPU time divided by the speed has
passed, and sleeps overshoot by scheduler latency; the workers share this
host's cores, so the parts that are not stretched (receiving, decoding,
sending) wait for each other; Python and ZeroMQ add hand-over times the
profile never saw; ideal links' latency is not emulated; and a run of a few
seconds holds few jobs, so its half-widths are wide.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import _validation as v
from ..exceptions import UnsupportedModelError
from ..model import DNN, ExitTable, Metrics, System
from ._deployment import Deployment
from ._orchestrator import RunResult

__all__ = ["twin_report", "measured_calibration", "KEYS", "exit_probabilities"]

#: The metrics the twin compares.
KEYS = ("loss_probability", "throughput", "mean_response_time", "p95_response_time",
        "accuracy")


def exit_probabilities(shares: np.ndarray) -> list[float]:
    """P(leave at exit k | reached exit k) for the non-final exits, from the
    share of all jobs leaving at each exit."""
    reach, out = 1.0, []
    for share in shares[:-1]:
        out.append(float(min(1.0, share / reach)) if reach > 1e-12 else 0.0)
        reach -= share
    return out


def _with_exits(system: System, chain: str, probabilities: list[float]) -> System:
    """``system`` with the exit probabilities of ``chain``'s non-final exits replaced."""
    target = system.chain(chain)
    it = iter(probabilities)
    blocks = tuple(replace(b, exit_probability=next(it)) if b.exit_probability is not None
                   else b for b in target.model.blocks)
    model = DNN(blocks=blocks, input_bytes=target.model.input_bytes)
    chains = [replace(c, model=model) if c.name == chain else c for c in system.chains]
    return System(devices=system.devices, links=system.links, chains=chains)


def _row(m: Metrics | None, accuracy: float | None = None) -> dict[str, Any] | None:
    if m is None:
        return None
    row = {k: getattr(m, k) for k in KEYS}
    if accuracy is not None:
        row["accuracy"] = accuracy
    row["half_widths"] = {k: m.half_widths[k] for k in KEYS if k in m.half_widths}
    row["method"] = f"{m.kind}, {m.method}"
    return row


def _errors(measured: dict[str, Any], predicted: dict[str, Any] | None) -> dict | None:
    """(measured - predicted) / predicted per metric; None where undefined."""
    if predicted is None:
        return None
    out = {}
    for k in KEYS:
        x, p = measured.get(k), predicted.get(k)
        out[k] = None if x is None or p is None or abs(p) < 1e-12 else (x - p) / p
    return out


def _single(system: System, chain: str) -> System:
    """The chain alone (the evaluators take one chain)."""
    target = system.chain(chain)
    return System(devices=system.devices, links=system.links, chains=[target])


def _thresholds_twin(system: System, table: ExitTable, thresholds: tuple[float, ...], *,
                     jobs: int, replications: int, seed: int) -> tuple[dict | None, dict, str]:
    from ..queueing import DecompositionEvaluator
    from ..sim import ThresholdExits, simulate

    shares, accuracy = table.evaluate(thresholds)
    chain = system.chains[0].name
    predicted = _with_exits(system, chain, exit_probabilities(shares[0]))
    note = ""
    try:
        analytic = _row(DecompositionEvaluator().evaluate(predicted), float(accuracy[0]))
    except UnsupportedModelError as err:
        analytic, note = None, str(err)
    simulated = _row(simulate(predicted, jobs=jobs, replications=replications, seed=seed,
                              exits=ThresholdExits(table, thresholds)))
    return analytic, simulated, note  # type: ignore[return-value]


def _online_twin(system: System, table: ExitTable, deployment: Deployment, *, jobs: int,
                 replications: int, seed: int) -> dict:
    from ..schedule import online_policy, problem_of
    from ..sim import StaticExits, simulate

    ep = deployment.exit_policy
    policy = online_policy(problem_of(system, table, ep.loss_target), ep.policy, **ep.options)
    return _row(simulate(system, jobs=jobs, replications=replications, seed=seed,
                         engine="event", exits=StaticExits(table=table),
                         policies=policy))  # type: ignore[return-value]


def measured_calibration(run: RunResult) -> dict[str, float]:
    """Per device: the CPU time its jobs took in the run over the profile's
    time for the blocks they ran (from the workers' heartbeats)."""
    return {d: w["cpu_s"] / w["profile_s"] for d, w in run.work.items() if w["profile_s"] > 0}


def _calibrated(system: System, chain: str, factors: dict[str, float]) -> System:
    """``system`` with each device's block latencies scaled by its factor."""
    target = system.chain(chain)
    device_of = {b: d for d, blocks in target.placement.assignment for b in blocks}
    blocks = []
    for b in target.model.blocks:
        device = system.device(device_of[b.name])
        blocks.append(replace(b, device_latency={
            **b.device_latency,
            device.name: b.latency_on(device).scaled(factors[device.name])}))
    model = DNN(blocks=tuple(blocks), input_bytes=target.model.input_bytes)
    chains = [replace(c, model=model) if c.name == chain else c for c in system.chains]
    return System(devices=system.devices, links=system.links, chains=chains)


def twin_report(system: System, deployment: Deployment, run: RunResult, *,
                jobs: int = 20_000, replications: int = 5, seed: int = 0,
                calibration: dict[str, float] | None = None) -> dict[str, Any]:
    """Measured metrics next to the analytic and simulated predictions, with the
    relative error of the measurement against each (see the module docstring
    for where they cannot agree). ``calibration`` (from :func:`measured_calibration`)
    scales each device's profiled latencies to what the runtime's fragment
    costs on this host, as a profile measured on that device would."""
    for name, value, kind, rule in (("system", system, System, "a System"),
                                    ("deployment", deployment, Deployment, "a Deployment"),
                                    ("run", run, RunResult, "a RunResult (from run_deployment)")):
        v.instance("twin_report", name, value, kind, rule)
    table = ExitTable.load(Path(deployment.model_dir) / "exit_table.npz")
    chain_system = _single(system, deployment.chain)
    if calibration is not None:
        chain_system = _calibrated(chain_system, deployment.chain, calibration)
    policy = deployment.exit_policy
    if policy.kind == "thresholds":
        analytic, simulated, note = _thresholds_twin(
            chain_system, table, policy.thresholds, jobs=jobs, replications=replications,
            seed=seed)
    else:
        analytic, note = None, f"online policy {policy.policy!r}: no analytic prediction"
        simulated = _online_twin(chain_system, table, deployment, jobs=jobs,
                                 replications=replications, seed=seed)
    measured = _row(run.metrics)
    return {"measured": measured, "analytic": analytic, "simulated": simulated,
            "relative_error": {"analytic": _errors(measured, analytic),  # type: ignore[arg-type]
                               "simulated": _errors(measured, simulated)},  # type: ignore[arg-type]
            "exit_policy": {"kind": policy.kind, "thresholds": list(policy.thresholds),
                            "policy": policy.policy},
            "calibration": calibration,
            "run": run.to_dict(), "notes": [note] if note else []}
