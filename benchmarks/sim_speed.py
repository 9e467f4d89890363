"""Simulation speed: our compiled kernel and event engine against SimPy and Ciw.

Two models, run by all four in one process: an M/M/1/K station (rate 0.9,
mean service 1, K = 10) and a chain of five such stations (mean services 0.5,
0.8, 1.0, 0.7, 0.9 at rate 0.9; K = 10 each). Jobs per second is arrivals
simulated over wall time, end to end: drawing random numbers, simulating and
computing the statistics. Each engine gets one warm-up call (numba compiles
the kernel on the first one) and its best of three timed calls is kept.
Writes ``benchmarks/results/sim_speed.json``.

The SimPy and Ciw models are the plainest idiomatic ones: SimPy with a
``Resource`` and a generator per job, Ciw with its ``Network``. Ciw blocks a job
whose next station is full rather than dropping it (blocking after service);
at these loads that touches few jobs, and it does not change the work done
per job.
"""

from __future__ import annotations

import platform
import random
import sys
import time

import ciw
import simpy

from _results import save_result  # benchmarks/_results.py
from edgeperf.io import parse_scenario
from edgeperf.sim import simulate

RATE, K = 0.9, 10
MODELS = {"mg1k": (1.0,), "chain5": (0.5, 0.8, 1.0, 0.7, 0.9)}
JOBS = {"kernel": 2_000_000, "event": 400_000, "simpy": 100_000, "ciw": 40_000}


def scenario(means: tuple[float, ...]) -> dict:
    names = [f"s{i}" for i in range(len(means))]
    return {
        "workload": {"arrival": {"process": "poisson", "rate": RATE}},
        "model": {"blocks": [{"name": f"b{i}", "latency": {"kind": "exponential", "mean": m},
                              "output_bytes": 1} for i, m in enumerate(means)]},
        "devices": [{"name": n, "capacity": K} for n in names],
        "links": [{"from": a, "to": b} for a, b in zip(names, names[1:])],  # ideal links
        "placement": {n: [f"b{i}"] for i, n in enumerate(names)},
    }


def ours(engine: str):
    def run(means: tuple[float, ...], jobs: int, seed: int) -> float:
        system = parse_scenario(scenario(means))
        return simulate(system, jobs=jobs, replications=1, seed=seed, engine=engine).loss_probability
    return run


def run_simpy(means: tuple[float, ...], jobs: int, seed: int) -> float:
    """Poisson arrivals into a chain of single-server FIFO stations of capacity K."""
    rng = random.Random(seed)
    env = simpy.Environment()
    stations = [simpy.Resource(env, capacity=1) for _ in means]
    response: list[float] = []  # per completed job, as our statistics need

    def job():
        start = env.now
        for station, mean in zip(stations, means):
            if station.count + len(station.queue) >= K:
                return  # lost
            with station.request() as request:
                yield request
                yield env.timeout(rng.expovariate(1.0 / mean))
        response.append(env.now - start)

    def source():
        for _ in range(jobs):
            yield env.timeout(rng.expovariate(RATE))
            env.process(job())

    env.process(source())
    env.run()
    return 1.0 - len(response) / jobs


def run_ciw(means: tuple[float, ...], jobs: int, seed: int) -> float:
    n = len(means)
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(RATE)] + [None] * (n - 1),
        service_distributions=[ciw.dists.Exponential(1.0 / m) for m in means],
        number_of_servers=[1] * n,
        queue_capacities=[K - 1] * n,  # Ciw counts waiting places only
        routing=[[1.0 if j == i + 1 else 0.0 for j in range(n)] for i in range(n)])
    ciw.seed(seed)
    sim = ciw.Simulation(network)
    sim.simulate_until_max_customers(jobs, method="Arrive")
    records = sim.get_all_records()
    completed = [r for r in records if r.node == n and r.record_type == "service"]
    offered = sum(1 for r in records if r.node == 1)  # served or rejected at the first node
    return 1.0 - len(completed) / offered


ENGINES = {"kernel": ours("kernel"), "event": ours("event"), "simpy": run_simpy, "ciw": run_ciw}


def measure() -> dict:
    rows = []
    for model, means in MODELS.items():
        for engine, run in ENGINES.items():
            jobs = JOBS[engine]
            run(means, min(jobs, 20_000), 0)  # warm-up (numba compiles here)
            best = float("inf")
            for seed in range(1, 4):
                start = time.perf_counter()
                loss = run(means, jobs, seed)
                best = min(best, time.perf_counter() - start)
            rows.append({"model": model, "engine": engine, "jobs": jobs,
                         "jobs_per_second": jobs / best, "seconds": best, "loss": loss})
            print(f"{model:7s} {engine:7s} {jobs / best:12,.0f} jobs/s  loss {loss:.4f}", flush=True)
    return {"run": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": f"{platform.platform()} ({__import__('os').cpu_count()} CPUs), "
                       f"Python {platform.python_version()}, simpy {simpy.__version__}, "
                       f"ciw {ciw.__version__}",
            "rows": rows}


def markdown_table(result: dict) -> str:
    rows = result["rows"]
    speed = {(r["model"], r["engine"]): r["jobs_per_second"] for r in rows}
    lines = [f"Run {result['run']} on {result['machine']}.", "",
             "| model | engine | jobs | jobs/s | loss | × SimPy | × Ciw |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        key = r["model"]
        lines.append(f"| {key} | {r['engine']} | {r['jobs']:,} | {r['jobs_per_second']:,.0f} | "
                      f"{r['loss']:.4f} | {r['jobs_per_second'] / speed[key, 'simpy']:.1f}× | "
                      f"{r['jobs_per_second'] / speed[key, 'ciw']:.1f}× |")
    return "\n".join(lines)


def main() -> int:
    result = measure()
    save_result("sim_speed", result)
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
