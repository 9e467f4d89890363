"""The kernel, the event engine and a plain SimPy model, on the same scenarios.

Kernel and engine read the same plan and the same service draws, so for one
seed they must produce the same jobs' fates exactly; the SimPy model is
independent code and must agree within confidence intervals.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import simpy
from scipy import stats

from edgeperf.io import load_scenario, parse_scenario
from edgeperf.sim import simulate
from edgeperf.sim._engine import run_events
from edgeperf.sim._kernel import run_kernel
from edgeperf.sim._network import network_of
from edgeperf.sim._plan import plan_run

EXAMPLE = Path(__file__).parents[2] / "examples" / "scenarios" / "pi_server.yaml"


def chain5():
    names = [f"s{i}" for i in range(5)]
    return parse_scenario({
        "workload": {"arrival": {"process": "mmpp", "rates": [0.5, 2.0], "switch_rates": [0.2, 0.2]}},
        "model": {"blocks": [{"name": f"b{i}", "latency": {"kind": "gamma", "shape": 2, "mean": m},
                              "output_bytes": 1000, **({"exit": {"probability": 0.2}} if i == 1 else {})}
                             for i, m in enumerate((0.5, 0.8, 0.6, 0.7, 0.3))]},
        "devices": [{"name": n, "capacity": 3 + i} for i, n in enumerate(names)],
        "links": [{"from": a, "to": b, "latency_s": 0.05} for a, b in zip(names, names[1:])],
        "placement": {n: [f"b{i}"] for i, n in enumerate(names)}})


@pytest.mark.parametrize("system", [load_scenario(EXAMPLE), chain5()], ids=["pi_server", "chain5"])
def test_kernel_and_engine_give_every_job_the_same_fate(system):
    network = network_of(system)
    records = []
    for run in (run_kernel, run_events):
        rng = np.random.default_rng(17)
        plan = plan_run(network, rng, 30_000, 0.1, [None])
        records.append(run(network, plan, rng))
    kernel, engine = records
    np.testing.assert_array_equal(kernel.lost_at, engine.lost_at)
    np.testing.assert_array_equal(kernel.exit, engine.exit)
    np.testing.assert_allclose(kernel.completion, engine.completion, rtol=1e-12, equal_nan=True)
    for a, b in zip(kernel.counters, engine.counters):
        np.testing.assert_array_equal(a.offered, b.offered)
        np.testing.assert_array_equal(a.accepted, b.accepted)
        np.testing.assert_allclose(a.sojourn, b.sojourn, rtol=1e-9)
    assert (kernel.lost_at >= 0).any()  # the cases do lose jobs


def simpy_pi_server(seed: int, jobs: int) -> tuple[float, float]:
    """pi_server.yaml written out by hand in SimPy: loss and mean response time
    of the jobs arriving after the first 10%."""
    rng = random.Random(seed)
    env = simpy.Environment()
    pi, link, server = (simpy.Resource(env, 1) for _ in range(3))
    capacity = {pi: 5, link: 10, server: 10}
    outcome: list[tuple[bool, float]] = []

    def admitted(station) -> bool:
        return station.count + len(station.queue) < capacity[station]

    def serve(station, duration):
        with station.request() as request:
            yield request
            yield env.timeout(duration)

    def job(measured: bool):
        start = env.now
        for station, duration in ((pi, None), (link, 65536 * 8 / 20e6), (server, None)):
            if not admitted(station):
                if measured:
                    outcome.append((False, 0.0))
                return
            if station is pi:
                b0 = rng.gammavariate(4, 0.010 / 4)
                yield from serve(pi, b0 + 0.020)
                if rng.random() < 0.3:  # the exit after b1
                    break
            elif station is link:
                yield from serve(link, duration)
                yield env.timeout(0.005)
            else:
                yield from serve(server, rng.expovariate(1 / 0.030) / 4.0)
        if measured:
            outcome.append((True, env.now - start))

    def source():
        for n in range(jobs):
            yield env.timeout(rng.expovariate(26.0))
            env.process(job(n >= jobs // 10))

    env.process(source())
    env.run()
    done = [t for ok, t in outcome if ok]
    return 1 - len(done) / len(outcome), float(np.mean(done))


def test_kernel_and_engine_agree_with_a_plain_simpy_model():
    reps = 10
    simpy_runs = np.array([simpy_pi_server(seed, 20_000) for seed in range(reps)])
    t = stats.t.ppf(0.975, reps - 1)
    system = load_scenario(EXAMPLE)
    for engine in ("kernel", "event"):
        ours = simulate(system, jobs=20_000, replications=reps, seed=1, engine=engine)
        for k, field in enumerate(("loss_probability", "mean_response_time")):
            theirs = simpy_runs[:, k]
            half = t * theirs.std(ddof=1) / math.sqrt(reps)
            diff = abs(getattr(ours, field) - theirs.mean())
            assert diff <= math.hypot(half, ours.half_widths[field]), (engine, field)
