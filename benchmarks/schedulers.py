"""Every early-exit scheduler on the same device, loads and loss targets.

Zoo models are trained on digits (or reused from ``build/bench-models``) and
profiled on this host; each runs on one device of capacity 10. Poisson
arrivals go from light load to overload, as multiples of the rate at which
the device saturates when every job runs to the final exit. Loss targets are
1% and 5%. Every policy is evaluated by simulation: 5 replications, 95%
half-widths. Offline policies are simulated with the compiled kernel; online
ones run in the event engine. A policy meets its target when the simulated
loss is within its confidence interval of the target or below it. Where no
policy can meet a target (the fastest exit alone loses more), the point is
listed as infeasible, not scored.

Three studies follow, on each model with L* = 5%:

- an input shift at 0.9 and 1.6 times saturation: noisy inputs start
  mid-stream (``harder_inputs``). Each policy's loss and accuracy are reported
  before and after, and so is where discounted UCB's choices move;
- UCB's exact pseudo-regret curve on a stationary stream;
- the Bayes lookup over the rates: built, saved, loaded back and reused.

For online policies the solve time is the median time of one decision.

Writes ``benchmarks/results/schedulers.json``, ``benchmarks/results/schedulers.png``
and ``benchmarks/results/bayes_lookup_<model>.json``.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import numpy as np

from _results import RESULTS, save_result  # benchmarks/_results.py
from edgeperf.earlyexit import load_trained, save_trained, train_digits
from edgeperf.exceptions import InfeasibleError
from edgeperf.profiling import measure_profile
from edgeperf.schedule import (OFFLINE, ONLINE, BayesLookup, ExitProblem, QueueingLPPolicy,
                               online_policy, simulate_decision, solve)
from edgeperf.schedule._knapsack import harder_inputs, simulate_shift
from edgeperf.sim import StaticExits, simulate

ROOT = Path(__file__).resolve().parents[1]
PLOT = ROOT / "benchmarks" / "results" / "schedulers.png"
MODELS = ("resnet32", "resnet29")
CAPACITY, LOADS, TARGETS = 10, (0.3, 0.6, 0.9, 1.2, 1.6, 2.2), (0.01, 0.05)
JOBS, REPLICATIONS, SEED = 40_000, 5, 0


def model_problem(name: str) -> ExitProblem:
    folder = ROOT / "build" / "bench-models" / name
    try:
        trained = load_trained(folder)
    except Exception:  # noqa: BLE001 - not trained yet (or stale): train it now
        trained = train_digits(name, epochs=10, seed=SEED, progress=False)
        save_trained(trained, folder)
    profile = measure_profile(trained.net, repetitions=100, threads=1)
    return ExitProblem(table=trained.table, model=profile.to_dnn(), capacity=CAPACITY,
                       arrival_rate=1.0, loss_target=TARGETS[0])


def row(model: str, policy: str, problem: ExitProblem, metrics, solve_time_s: float) -> dict:  # noqa: ANN001
    loss, ci = metrics.loss_probability, metrics.half_widths["loss_probability"]
    return {"model": model, "policy": policy, "arrival_rate": problem.arrival_rate,
            "loss_target": problem.loss_target, "accuracy": metrics.accuracy,
            "mean_latency_s": metrics.mean_response_time,
            "p95_latency_s": metrics.p95_response_time, "loss_probability": loss, "loss_ci": ci,
            "target_met": bool(loss - ci <= problem.loss_target), "solve_time_s": solve_time_s,
            "load": problem.arrival_rate * problem.exit_means[-1]}


def run_point(model: str, problem: ExitProblem) -> tuple[list[dict], dict | None]:
    rows = []
    try:
        lowest = problem.lowest_loss()
        if lowest > problem.loss_target:
            raise problem.infeasible("benchmark")
    except InfeasibleError as err:
        return [], {"model": model, "arrival_rate": problem.arrival_rate,
                    "loss_target": problem.loss_target, "reason": str(err)}
    for policy in OFFLINE:
        options = {"seed": SEED} if policy == "bayes" else {}
        try:
            decision = solve(problem, policy, **options)
        except InfeasibleError:
            continue  # cannot happen above the lowest loss, but never score a best effort
        metrics = simulate_decision(problem, decision, jobs=JOBS, replications=REPLICATIONS,
                                    seed=SEED)
        rows.append(row(model, policy, problem, metrics, decision.solve_time_s))
    for policy in ONLINE:
        decider = Timed(online_policy(problem, policy))
        metrics = simulate(problem.system(), jobs=JOBS, replications=REPLICATIONS, seed=SEED,
                           engine="event", exits=StaticExits(table=problem.table),
                           policies=decider)
        rows.append(row(model, policy, problem, metrics, decider.median_s))
    return rows, None


class Timed:
    """An online policy whose decisions are timed (the simulator calls ``decide``)."""

    def __init__(self, policy: object) -> None:
        self.policy, self.times = policy, []

    def decide(self, state):  # noqa: ANN001, ANN201
        start = time.perf_counter()
        exit_ = self.policy.decide(state)
        self.times.append(time.perf_counter() - start)
        return exit_

    def observe(self, outcome) -> None:  # noqa: ANN001
        self.policy.observe(outcome)

    @property
    def median_s(self) -> float:
        return float(sorted(self.times)[len(self.times) // 2])


def shift_study(problem: ExitProblem, shifted) -> dict:  # noqa: ANN001 - an ExitTable
    """Every policy through one run whose inputs turn noisy half-way."""
    thresholds = {name: solve(problem, name, **({"seed": SEED} if name == "bayes" else {}))
                  for name in ("static", "static_tuned", "bayes")}
    online = {"queueing_lp": QueueingLPPolicy(problem, seed=SEED),
              "knapsack": online_policy(problem, "knapsack"),
              "ucb": online_policy(problem, "ucb", discount=0.999)}
    out = {}
    for name, decision in thresholds.items():
        run = simulate_shift(problem, shifted, thresholds=decision.thresholds, jobs=JOBS,
                             seed=SEED)
        out[name] = {"before": vars_of(run.before), "after": vars_of(run.after)}
    for name, policy in online.items():
        run = simulate_shift(problem, shifted, policy=policy, jobs=JOBS, seed=SEED)
        out[name] = {"before": vars_of(run.before), "after": vars_of(run.after)}
    # does the (discounted) bandit move to the new best threshold?
    bandit = online["ucb"]
    chosen = bandit.choices()
    half, tail = len(chosen) // 2, max(len(chosen) // 10, 1)
    out["ucb"]["adaptation"] = {
        "best_threshold_before": float(bandit.best_thresholds(problem.table)[0]),
        "best_threshold_after": float(bandit.best_thresholds(shifted)[0]),
        "mean_threshold_end_of_first_half": float(chosen[half - tail:half].mean()),
        "mean_threshold_end_of_run": float(chosen[-tail:].mean())}
    return out


def studies(model: str, base: ExitProblem, rates: list[float]) -> dict:
    """Shift (at 0.9 and 1.6 x saturation), regret and lookup on one model, L* = 5%."""
    saturation = 1.0 / base.exit_means[-1]
    problem = ExitProblem(table=base.table, model=base.model, capacity=CAPACITY,
                          arrival_rate=0.9 * saturation, loss_target=0.05)
    shifted = harder_inputs(problem.table, seed=SEED)
    shift = {f"{load:g}": shift_study(problem.with_rate(load * saturation), shifted)
             for load in (0.9, 1.6)}
    bandit = online_policy(problem, "ucb")
    simulate(problem.system(), jobs=JOBS, replications=1, seed=SEED, engine="event",
             exits=StaticExits(table=problem.table), policies=bandit)
    regret = bandit.regret_curve()
    marks = np.unique(np.geomspace(1, len(regret), 40).astype(int)) - 1
    start = time.perf_counter()
    lookup = BayesLookup.build(problem, rates, seed=SEED, progress=False)
    built_s = time.perf_counter() - start
    file = RESULTS / f"bayes_lookup_{model}.json"
    lookup.save(file)
    again = BayesLookup.load(file)
    reused = all(again.decision_for(r).thresholds == lookup.decision_for(r).thresholds
                 for r in rates)
    return {"saturation_rate": saturation, "loss_target": problem.loss_target,
            "shift": shift,
            "regret": {"jobs": (marks + 1).tolist(), "cumulative": regret[marks].tolist()},
            "bayes_lookup": {"rates": rates, "build_s": built_s, "file": file.name,
                             "reloaded_identical": reused}}


def vars_of(phase) -> dict:  # noqa: ANN001
    return {"loss_probability": phase.loss_probability, "accuracy": phase.accuracy,
            "offered": phase.offered}


def measure() -> dict:
    rows, infeasible, study = [], [], {}
    for model in MODELS:
        base = model_problem(model)
        saturation = 1.0 / base.exit_means[-1]
        study[model] = studies(model, base, [load * saturation for load in LOADS[:4]])
        for load in LOADS:
            at_load = base.with_rate(load * saturation)
            # every exit's arrival pmf at this rate, computed once before any policy is
            # timed (otherwise the first policy timed pays for all of them)
            at_load.loss(np.full(at_load.table.n_exits, 1.0 / at_load.table.n_exits))
            for target in TARGETS:
                problem = at_load.with_target(target)
                got, why = run_point(model, problem)
                rows += got
                if why:
                    infeasible.append(why)
                print(f"{model} load {load} target {target}: {len(got)} policies", flush=True)
    return {"run": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": f"{platform.platform()}, Python {platform.python_version()}",
            "rows": rows, "infeasible": infeasible, "studies": study}


def findings(result: dict) -> list[str]:
    """The issue's claims, checked on this run's rows."""
    rows = result["rows"]
    point = {(r["model"], r["arrival_rate"], r["loss_target"], r["policy"]): r for r in rows}
    keys = sorted({k[:3] for k in point})
    missed = {p: [k for k in keys if (*k, p) in point and not point[(*k, p)]["target_met"]]
              for p in ("static", "static_tuned", "queueing_lp", "bayes", "knapsack", "ucb")}
    worse = [k for k in keys if point[(*k, "bayes")]["accuracy"]
             < point[(*k, "static_tuned")]["accuracy"]]
    slowest = max(r["solve_time_s"] for r in rows if r["policy"] == "bayes")
    knap = max(r["solve_time_s"] for r in rows if r["policy"] == "knapsack")
    wins = {}
    for k in keys:
        met = [p for p in ("static_tuned", "queueing_lp", "bayes", "knapsack", "ucb")
               if (*k, p) in point and point[(*k, p)]["target_met"]]
        best = max(met, key=lambda p: point[(*k, p)]["accuracy"]) if met else None
        wins[best] = wins.get(best, 0) + 1
    return [
        f"Points missing the target (out of {len(keys)}): "
        + ", ".join(f"{p} {len(v)}" for p, v in missed.items()) + ".",
        f"Bayes less accurate than static_tuned at {len(worse)} of {len(keys)} points; "
        f"slowest Bayes solve {slowest:.2f} s.",
        f"Knapsack: median decision time at most {knap * 1e6:.0f} µs.",
        "Most accurate policy among those meeting the target, by points won: "
        + ", ".join(f"{p} {n}" for p, n in sorted(wins.items(), key=lambda x: -x[1])) + ".",
    ]


def markdown_table(result: dict) -> str:
    lines = [f"Run {result['run']} on {result['machine']}.", ""]
    lines += [f"- {line}" for line in findings(result)]
    lines += ["",
             "| model | load | L* | policy | accuracy | mean ms | p95 ms | loss ± 95% | met | "
             "solve ms |", "|---|---:|---:|---|---:|---:|---:|---:|---|---:|"]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} | {r['load']:.1f} | {r['loss_target']:g} | {r['policy']} | "
            f"{r['accuracy']:.4f} | {r['mean_latency_s'] * 1e3:.2f} | "
            f"{r['p95_latency_s'] * 1e3:.2f} | {r['loss_probability']:.4f} ± {r['loss_ci']:.4f} | "
            f"{'yes' if r['target_met'] else '**no**'} | {r['solve_time_s'] * 1e3:.3g} |")
    for model, st in result.get("studies", {}).items():
        for load, policies in st["shift"].items():
            lines += ["", f"**{model}, input shift** at {load} × saturation "
                      f"({float(load) * st['saturation_rate']:.0f}/s), L* = {st['loss_target']:g}: "
                      "loss and accuracy before → after noisy inputs start.", "",
                      "| policy | loss before | loss after | accuracy before | accuracy after |",
                      "|---|---:|---:|---:|---:|"]
            for name, ph in policies.items():
                b, a = ph["before"], ph["after"]
                lines.append(f"| {name} | {b['loss_probability']:.4f} | "
                             f"{a['loss_probability']:.4f} | {b['accuracy']:.4f} | "
                             f"{a['accuracy']:.4f} |")
            ad = policies["ucb"]["adaptation"]
            lines += ["", f"Discounted UCB: best threshold {ad['best_threshold_before']:g} before "
                      f"the shift and {ad['best_threshold_after']:g} after; its mean choice "
                      f"{ad['mean_threshold_end_of_first_half']:.2f} just before the shift and "
                      f"{ad['mean_threshold_end_of_run']:.2f} at the end of the run."]
        reg, lookup = st["regret"], st["bayes_lookup"]
        q = len(reg["jobs"]) // 4
        lines += ["", f"UCB regret per job: {reg['cumulative'][q] / reg['jobs'][q]:.4f} "
                  f"after {reg['jobs'][q]} jobs, {reg['cumulative'][-1] / reg['jobs'][-1]:.4f} "
                  f"after {reg['jobs'][-1]}. Bayes lookup over {len(lookup['rates'])} rates built "
                  f"in {lookup['build_s']:.1f} s, saved to `results/{lookup['file']}`, reloaded "
                  f"{'identical' if lookup['reloaded_identical'] else '**different**'}."]
    if result["infeasible"]:
        lines += ["", "Infeasible points (no policy can meet the target):", ""]
        lines += [f"- {x['model']} at {x['arrival_rate']:.0f}/s, L* = {x['loss_target']:g}"
                  for x in result["infeasible"]]
    return "\n".join(lines)


def plot(result: dict) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from edgeperf._atomic import atomic_path

    panels = [(m, t) for m in MODELS for t in TARGETS]
    rows = len(MODELS) + 1  # the last row: UCB's regret
    fig = Figure(figsize=(5 * len(TARGETS), 3.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    for n, (model, target) in enumerate(panels):
        ax = fig.add_subplot(rows, len(TARGETS), n + 1)
        for policy in OFFLINE + ONLINE:
            pts = [r for r in result["rows"] if (r["model"], r["loss_target"], r["policy"])
                   == (model, target, policy)]
            if pts:
                ax.plot([p["load"] for p in pts], [p["accuracy"] for p in pts], marker="o",
                        label=policy, linestyle="-" if all(p["target_met"] for p in pts) else ":")
        ax.set_title(f"{model}, L* = {target:g} (dotted: misses the target somewhere)",
                     fontsize=8)
        ax.set_xlabel("load (rate × final-exit service time)")
        ax.set_ylabel("accuracy")
        if n == 0:
            ax.legend(fontsize=7)
    ax = fig.add_subplot(rows, len(TARGETS), len(panels) + 1)
    for model, st in result.get("studies", {}).items():
        jobs, cumulative = np.array(st["regret"]["jobs"]), np.array(st["regret"]["cumulative"])
        ax.loglog(jobs, cumulative / jobs, label=model)
    ax.set_title("UCB: exact pseudo-regret per job (stationary stream)", fontsize=8)
    ax.set_xlabel("jobs")
    ax.legend(fontsize=7)
    with atomic_path(PLOT) as tmp:
        fig.savefig(tmp, dpi=110)


def main() -> int:
    result = measure()
    save_result("schedulers", result)
    plot(result)
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
