"""M/G/1/K: edgeperf's exact solver against line-solver, side by side in one process.

For every case (service law, load rho = lambda E[S], capacity K counting the job
in service) both libraries solve the same station:

* ours: ``edgeperf.queueing.mg1k`` (embedded chain at departures, closed-form
  arrival pmf for every law);
* theirs: one of line-solver's M/G/1/K routes, named in each row:
  ``qsys_mm1k_loss`` (M/M/1/K closed form), ``qsys_mapg1k`` with a gamma, ph,
  det or density service descriptor (exact MAP/G/1/K, Poisson arrivals as the
  MAP D0=[[-lambda]], D1=[[lambda]]), or ``qsys_mg1k_loss`` (service given as a
  density callable, integrated numerically).

Each call is timed with ``time.perf_counter`` after one warm-up call, repeated
until a time budget is spent, and the median per call is kept. A row reports
both loss probabilities, their absolute difference, both medians and the ratio
(line-solver time / ours). A line-solver call that raises or returns a
non-finite loss is recorded as such, never dropped.

Also timed: one exact solve (a single call, no warm-up) for K = 100 with a
24-component gamma mixture, against the 1 ms target.

Writes benchmarks/results/mg1k.json and the mg1k section of benchmarks/README.md.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
RESULT_PATH = HERE / "results" / "mg1k.json"
SINGLE_SOLVE_TARGET_S = 1e-3

# Timing budgets: (minimum runs, seconds to spend, maximum runs).
OURS_BUDGET = (20, 0.2, 5000)
THEIRS_BUDGET = (3, 0.5, 500)


@dataclass(frozen=True)
class Case:
    """One row: a service law solved by ours and by the named line-solver route."""

    label: str
    law: object  # an edgeperf ServiceLaw
    rho: float
    capacity: int
    route: str  # mm1k_loss | mapg1k:gamma | mapg1k:ph | mapg1k:det | mapg1k:density | mg1k_loss


ROUTE_FUNCTION = {
    "mm1k_loss": "qsys_mm1k_loss",
    "mapg1k:gamma": "qsys_mapg1k (gamma)",
    "mapg1k:ph": "qsys_mapg1k (ph)",
    "mapg1k:det": "qsys_mapg1k (det)",
    "mapg1k:density": "qsys_mapg1k (density)",
    "mg1k_loss": "qsys_mg1k_loss (density)",
}


# --------------------------------------------------------------------------- laws

def gamma_mixture_24():
    """A fixed 24-component gamma mixture: means 5..60 ms, shapes 2..20."""
    from edgeperf.dists import Gamma, Mixture

    n = 24
    means = np.geomspace(0.005, 0.060, n)
    shapes = np.linspace(2.0, 20.0, n)
    weights = np.random.default_rng(7).dirichlet(np.ones(n))
    weights = weights / weights.sum()
    return Mixture(tuple(Gamma(float(s), float(m)) for s, m in zip(shapes, means)),
                   tuple(float(w) for w in weights))


def cases() -> list[Case]:
    from edgeperf.dists import Deterministic, Exponential, Gamma

    mean = 0.03
    mix = gamma_mixture_24()
    return [
        Case("exponential", Exponential(mean), 0.9, 20, "mm1k_loss"),
        Case("exponential", Exponential(mean), 0.9, 20, "mapg1k:ph"),
        Case("exponential", Exponential(mean), 1.5, 50, "mm1k_loss"),
        Case("exponential", Exponential(mean), 1.0, 5, "mapg1k:gamma"),
        Case("Erlang-2", Gamma(2, mean), 0.5, 5, "mapg1k:gamma"),
        Case("Erlang-2", Gamma(2, mean), 0.9, 1, "mapg1k:gamma"),
        Case("Erlang-2", Gamma(2, mean), 0.9, 1, "mg1k_loss"),
        Case("Erlang-4", Gamma(4, mean), 0.9, 100, "mapg1k:gamma"),
        Case("Erlang-4", Gamma(4, mean), 0.9, 20, "mg1k_loss"),
        Case("gamma k=2.5", Gamma(2.5, mean), 1.0, 20, "mapg1k:gamma"),
        Case("gamma k=2.5", Gamma(2.5, mean), 1.5, 50, "mg1k_loss"),
        Case("deterministic", Deterministic(mean), 0.9, 1, "mapg1k:det"),
        Case("deterministic", Deterministic(mean), 0.9, 20, "mapg1k:det"),
        Case("deterministic", Deterministic(mean), 1.5, 100, "mapg1k:det"),
        Case("24-gamma mixture", mix, 0.9, 100, "mapg1k:density"),
        Case("24-gamma mixture", mix, 0.9, 100, "mg1k_loss"),
        Case("24-gamma mixture", mix, 1.5, 5, "mg1k_loss"),
    ]


def gamma_parts(law) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shapes, scales, weights) of an exponential, gamma or mixture of those."""
    from edgeperf.dists import Exponential, Gamma, Mixture

    if isinstance(law, Exponential):
        return np.array([1.0]), np.array([law.mean]), np.array([1.0])
    if isinstance(law, Gamma):
        return np.array([law.shape]), np.array([law.mean / law.shape]), np.array([1.0])
    if isinstance(law, Mixture):
        parts = [gamma_parts(c) for c in law.components]
        shapes = np.concatenate([p[0] for p in parts])
        scales = np.concatenate([p[1] for p in parts])
        weights = np.concatenate([w * p[2] for w, p in zip(law.weights, parts)])
        return shapes, scales, weights
    raise TypeError(f"no density for {type(law).__name__}")


def density(law) -> Callable:
    """The service density as a callable (scalar or array argument), via scipy.stats."""
    from scipy import stats

    shapes, scales, weights = gamma_parts(law)

    def pdf(t):
        x = np.asarray(t, dtype=float)
        values = stats.gamma.pdf(x[..., None], shapes, scale=scales) @ weights
        return float(values) if values.ndim == 0 else values

    return pdf


# ------------------------------------------------------------------------ solvers

def ours_call(case: Case) -> Callable[[], float]:
    from edgeperf.queueing import mg1k

    lam = case.rho / case.law.mean
    return lambda: mg1k(lam, case.law, case.capacity).loss_probability


def theirs_call(case: Case) -> Callable[[], float]:
    """A zero-argument call of the named line-solver route, returning its loss."""
    from line_solver.api.qsys import qsys_mapg1k, qsys_mg1k_loss, qsys_mm1k_loss

    law, k = case.law, case.capacity
    lam = case.rho / law.mean
    if case.route == "mm1k_loss":
        return lambda: qsys_mm1k_loss(lam, 1.0 / law.mean, k)[0]
    if case.route == "mg1k_loss":
        pdf = density(law)
        return lambda: qsys_mg1k_loss(lam, pdf, k)[2]
    kind = case.route.split(":", 1)[1]
    if kind == "gamma":
        shape = getattr(law, "shape", 1.0)  # exponential = gamma of shape 1
        svc = {"type": "gamma", "alpha": float(shape), "theta": law.mean / shape}
    elif kind == "ph":
        svc = {"type": "ph", "alpha": [1.0], "T": [[-1.0 / law.mean]]}
    elif kind == "det":
        svc = {"type": "det", "d": law.mean}
    else:
        svc = {"type": "density", "pdf": density(law)}
    return lambda: qsys_mapg1k([[-lam]], [[lam]], svc, k)["lossProbability"]


def quiet(fn: Callable[[], float]) -> Callable[[], float]:
    """fn with its stdout and warnings swallowed (line-solver may print)."""
    def call() -> float:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(fn())
    return call


def median_time(fn: Callable[[], float], budget: tuple[int, float, int]) -> float:
    """Median seconds per call of fn, after the caller's warm-up call."""
    min_runs, seconds, max_runs = budget
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs
                                     or time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(fn: Callable[[], float], budget: tuple[int, float, int]) -> dict:
    """Loss from one warm-up call, then the median time; failures are recorded."""
    try:
        loss = fn()
    except Exception as exc:  # line-solver may raise: record it, do not hide it
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                "loss": None, "time_s": None}
    status = "ok" if math.isfinite(loss) else "non-finite"
    return {"status": status, "error": None, "loss": loss if status == "ok" else repr(loss),
            "time_s": median_time(fn, budget)}


def run_case(case: Case) -> dict:
    ours = measure(ours_call(case), OURS_BUDGET)
    if ours["status"] != "ok":
        raise RuntimeError(f"our solver failed on {case}: {ours}")
    theirs = measure(quiet(theirs_call(case)), THEIRS_BUDGET)
    ok = theirs["status"] == "ok"
    return {
        "case": case.label, "service": case.law.to_spec(), "rho": case.rho,
        "capacity": case.capacity, "arrival_rate": case.rho / case.law.mean,
        "line_solver_function": ROUTE_FUNCTION[case.route],
        "line_solver_status": theirs["status"], "line_solver_error": theirs["error"],
        "our_loss": ours["loss"], "their_loss": theirs["loss"],
        "abs_diff": abs(ours["loss"] - theirs["loss"]) if ok else None,
        "our_time_s": ours["time_s"], "their_time_s": theirs["time_s"],
        "ratio": theirs["time_s"] / ours["time_s"] if ok else None,
    }


def single_solve() -> dict:
    """Time ONE exact solve (no warm-up, fresh law) for K = 100, 24-gamma mixture."""
    from edgeperf.queueing import mg1k

    law, k, rho = gamma_mixture_24(), 100, 0.9
    t0 = time.perf_counter()
    loss = mg1k(rho / law.mean, law, k).loss_probability
    elapsed = time.perf_counter() - t0
    return {"case": "24-gamma mixture", "rho": rho, "capacity": k, "loss": loss,
            "time_s": elapsed, "target_s": SINGLE_SOLVE_TARGET_S,
            "meets_target": elapsed < SINGLE_SOLVE_TARGET_S}


def machine_info() -> dict:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(), "numpy": np.__version__,
        "scipy": version("scipy"), "line_solver": version("line-solver"),
        "edgeperf": version("edgeperf"), "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------- report

def _fmt_loss(x) -> str:
    return f"{x:.6e}" if isinstance(x, float) else "—"


def _fmt_us(seconds) -> str:
    return f"{seconds * 1e6:,.0f}" if seconds is not None else "—"


def _fmt_ratio(ratio: float) -> str:
    return f"{ratio:,.0f}×" if ratio >= 10 else f"{ratio:.2g}×"


def markdown_table(result: dict) -> str:
    """The README section for this benchmark, from its JSON result."""
    m = result["machine"]
    lines = [
        f"Run {m['timestamp']} on {m['platform']} ({m['cpu_count']} CPUs), Python {m['python']}, "
        f"numpy {m['numpy']}, scipy {m['scipy']}, line-solver {m['line_solver']}.",
        "",
        "| case | ρ | K | line-solver function | our loss | their loss | abs diff "
        "| ours (µs) | theirs (µs) | ratio |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        if r["line_solver_status"] == "ok":
            their, diff, ratio = _fmt_loss(r["their_loss"]), f"{r['abs_diff']:.1e}", \
                _fmt_ratio(r["ratio"])
        else:
            note = "**error**" if r["line_solver_status"] == "error" else \
                f"**non-finite** ({r['their_loss']})"
            their, diff, ratio = note, "—", "—"
        lines.append(
            f"| {r['case']} | {r['rho']:g} | {r['capacity']} | {r['line_solver_function']} "
            f"| {_fmt_loss(r['our_loss'])} | {their} | {diff} | {_fmt_us(r['our_time_s'])} "
            f"| {_fmt_us(r['their_time_s'])} | {ratio} |")
    failed = [r for r in result["rows"] if r["line_solver_status"] != "ok"]
    if failed:
        lines.append("")
        lines += [f"- line-solver {r['line_solver_status']} on {r['case']}, K={r['capacity']}, "
                  f"{r['line_solver_function']}: `{r['line_solver_error'] or r['their_loss']}`"
                  for r in failed]
    s = result["single_solve"]
    lines += [
        "",
        f"One exact solve, {s['case']}, ρ={s['rho']:g}, K={s['capacity']} (single call, no "
        f"warm-up): **{s['time_s'] * 1e3:.3f} ms** (target < {s['target_s'] * 1e3:g} ms: "
        f"{'met' if s['meets_target'] else 'NOT met'}).",
    ]
    return "\n".join(lines)


def main() -> int:
    warnings.simplefilter("ignore")
    single = single_solve()  # first, so nothing before it has warmed this path
    with contextlib.redirect_stdout(io.StringIO()):
        import line_solver.api.qsys  # noqa: F401  (import cost ~1 s, kept out of timings)
    rows = [run_case(c) for c in cases()]
    result = {"benchmark": "mg1k", "description": __doc__.strip().splitlines()[0],
              "machine": machine_info(), "rows": rows, "single_solve": single}
    RESULT_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULT_PATH.write_text(json.dumps(result, indent=2) + "\n")
    sys.path.insert(0, str(HERE))
    from run import update_readme_section  # benchmarks/run.py

    update_readme_section("mg1k", markdown_table(result))
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
