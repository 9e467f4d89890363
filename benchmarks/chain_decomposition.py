"""How far the loss-chain decomposition is from simulation.

For a set of chains (the bundled example, also fed by evenly spaced camera
frames, exponential, smooth and bursty stations, several exits), the analytic decomposition with Poisson inputs and
with the two-moment correction is set beside the reference simulator (10
independent replications, 95% confidence half-widths), all in one run. Writes
``benchmarks/results/chain_decomposition.json``.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

from _results import save_result  # benchmarks/_results.py
from edgeperf.dists import Deterministic, Exponential, Gamma, Lognormal
from edgeperf.io import load_scenario
from edgeperf.queueing import Station, StationExit, loss_chain, stations_of
from edgeperf.sim import replicate_chain

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "background" / "chain.md"  # its table is rewritten by each run
REPLICATIONS, JOBS = 10, 100_000


def _exit(name: str, p: float, law) -> tuple[StationExit, ...]:
    return (StationExit(name=name, probability=p, service=law),)


def cases() -> dict[str, tuple]:
    """name -> (arrival rate, stations, final exit[, Erlang phases of the arrivals])."""
    example = load_scenario(ROOT / "examples" / "scenarios" / "pi_server.yaml")
    pi_chain = stations_of(example)
    return {
        "example pi_server (26/s)": (26.0, pi_chain, "b2"),
        "example pi_server (33/s)": (33.0, pi_chain, "b2"),
        "pi_server, camera frames (Erlang-8, 33/s)": (33.0, pi_chain, "b2", 8),
        "exponential tandem": (1.0, (Station(name="a", capacity=3, service=Exponential(1 / 1.2)),
                                     Station(name="b", capacity=2, service=Exponential(1 / 0.9))),
                               "final"),
        "smooth device, link, server": (30.0, (
            Station(name="dev", capacity=4, service=Gamma(8, 0.03)),
            Station(name="link", capacity=2, service=Deterministic(0.028)),
            Station(name="srv", capacity=3, service=Exponential(0.01))), "final"),
        "bursty device, link, server": (40.0, (
            Station(name="dev", capacity=6, service=Lognormal(0.02, 4.0)),
            Station(name="link", capacity=3, service=Deterministic(0.015)),
            Station(name="srv", capacity=4, service=Gamma(2, 0.018))), "final"),
        "three devices, two exits": (40.0, (
            Station(name="d1", capacity=4, service=Gamma(4, 0.02),
                    exits=_exit("x1", 0.3, Gamma(4, 0.02))),
            Station(name="l1", capacity=5, service=Deterministic(0.01), delay_s=0.002),
            Station(name="d2", capacity=4, service=Gamma(4, 0.02),
                    exits=_exit("x2", 0.3, Gamma(4, 0.02))),
            Station(name="l2", capacity=5, service=Deterministic(0.01), delay_s=0.002),
            Station(name="d3", capacity=4, service=Exponential(0.015))), "final"),
    }


def measure(rate: float, chain: tuple[Station, ...], final: str, phases: int = 1) -> dict:
    sim = replicate_chain(rate, chain, replications=REPLICATIONS, n_jobs=JOBS, seed=1,
                          final_exit=final, arrival_phases=phases)
    row = {"simulation": {"loss": sim.loss_probability, "loss_hw": sim.half_widths["loss_probability"],
                          "response_s": sim.mean_response_time,
                          "response_hw_s": sim.half_widths["mean_response_time"]}}
    for method in ("poisson", "two-moment"):
        m = loss_chain(rate, chain, final_exit=final, method=method, arrival_phases=phases)
        row[method] = {"loss": m.loss_probability, "response_s": m.mean_response_time,
                       "loss_error": m.loss_probability - sim.loss_probability,
                       "response_rel_error": m.mean_response_time / sim.mean_response_time - 1}
    return row


def main() -> None:
    started = time.perf_counter()
    rows = {name: measure(*case) for name, case in cases().items()}
    result = {"replications": REPLICATIONS, "jobs_per_replication": JOBS, "cases": rows,
              "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
              "seconds": time.perf_counter() - started}
    save_result("chain_decomposition", result)
    table = markdown_table(result)
    _rewrite_doc_table(table)
    print(table)


def _rewrite_doc_table(table: str) -> None:
    start, end = "<!-- chain_decomposition:start -->", "<!-- chain_decomposition:end -->"
    text = DOC.read_text()
    i, j = text.index(start), text.index(end)
    DOC.write_text(text[: i + len(start)] + "\n" + table + "\n" + text[j:])


def markdown_table(result: dict) -> str:
    lines = [
        "End-to-end loss and mean response time: reference simulation "
        f"({result['replications']} replications x {result['jobs_per_replication']} jobs, "
        "95% half-widths) beside the decomposition with Poisson inputs and with the "
        "two-moment correction. Relative errors of the response time against the simulated mean.",
        "",
        "| chain | sim loss | Poisson loss | two-moment loss | sim response s | Poisson err | two-moment err |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["cases"].items():
        s, p, t = r["simulation"], r["poisson"], r["two-moment"]
        lines.append(
            f"| {name} | {s['loss']:.4f} ± {s['loss_hw']:.4f} | {p['loss']:.4f} | {t['loss']:.4f} | "
            f"{s['response_s']:.4f} ± {s['response_hw_s']:.4f} | {p['response_rel_error']:+.1%} | "
            f"{t['response_rel_error']:+.1%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
