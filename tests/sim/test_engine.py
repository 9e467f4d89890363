"""The event engine against exact results, the reference simulator and SimPy.

Statistical checks use 95% t intervals from independent replications (fixed
seeds, one set per comparison): an estimate must cover the exact value, or two
estimates must differ by less than the half-width of their difference,
sqrt(hw_a² + hw_b²). Exact checks cover ties, reproducibility, the state a
policy sees and the agreement of the engine's two loops.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import simpy
from scipy import stats

from edgeperf.dists import Deterministic, Exponential, Gamma, Lognormal, ServiceLaw
from edgeperf.exceptions import InvalidParameterError
from edgeperf.io import parse_scenario
from edgeperf.model import System
from edgeperf.queueing import mg1k, stations_of
from edgeperf.sim import ExitTable, StaticExits, replicate_chain
from edgeperf.sim import _engine
from edgeperf.sim._engine import run_events
from edgeperf.sim._network import Network, network_of
from edgeperf.sim._plan import plan_run
from edgeperf.sim._policy import JobOutcome, JobState
from edgeperf.sim._record import RunRecord, chain_metrics

REPS = 10


def seeds(base: int) -> range:
    """Each comparison draws its own replications: sharing seeds would make their
    misses coincide (the same seed gives every station the same arrival pattern)."""
    return range(base, base + REPS)


# --------------------------------------------------------------------------- helpers


def block(name: str, law: ServiceLaw, exit: float | None = None, size: int = 4000) -> dict:
    spec = {"name": name, "latency": law.to_spec(), "output_bytes": size}
    return spec if exit is None else {**spec, "exit": {"probability": exit}}


def station_system(law: ServiceLaw, rate: float, capacity: int, servers: int = 1) -> System:
    return parse_scenario({
        "workload": {"arrival": {"process": "poisson", "rate": rate}},
        "model": {"blocks": [block("b", law)]},
        "devices": [{"name": "d", "capacity": capacity, "servers": servers}],
        "placement": {"d": ["b"]}})


def tandem_system() -> System:
    """Two blocks on a Pi (an exit after the second), a link with a queue, a server."""
    return parse_scenario({
        "workload": {"arrival": {"process": "poisson", "rate": 26.0}},
        "model": {"blocks": [block("b0", Gamma(4, 0.010), size=262144),
                             block("b1", Deterministic(0.020), exit=0.3, size=65536),
                             block("b2", Exponential(0.030))]},
        "devices": [{"name": "pi", "capacity": 4}, {"name": "server", "capacity": 3}],
        # 44 ms per activation: the link queues and loses jobs too
        "links": [{"from": "pi", "to": "server", "bandwidth_bps": 12e6, "latency_s": 0.005,
                   "capacity": 2}],
        "placement": {"pi": ["b0", "b1"], "server": ["b2"]}})


def runs(network: Network, jobs: int, seeds: range, exits=None, **kwargs) -> list[RunRecord]:
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        plan = plan_run(network, rng, jobs, 0.1, exits or [None] * len(network.routes))
        out.append(run_events(network, plan, rng, **kwargs))
    return out


#: This file makes about 50 interval comparisons; each uses a 99.9% interval so that
#: the whole file holds at a family-wise 95% level (Bonferroni), instead of one in
#: twenty comparisons missing by chance.
TWO_SIDED = 1 - 0.05 / 50 / 2


def mean_hw(values) -> tuple[float, float]:
    x = np.asarray(values, dtype=float)
    return float(x.mean()), float(stats.t.ppf(TWO_SIDED, len(x) - 1) * x.std(ddof=1)
                                  / np.sqrt(len(x)))


def assert_covers(values, exact: float, what: str) -> None:
    m, hw = mean_hw(values)
    assert abs(m - exact) <= hw, f"{what}: {m:.6g} ± {hw:.3g} misses {exact:.6g}"


def assert_agree(a: tuple[float, float], b: tuple[float, float], what: str) -> None:
    """Two estimates (mean, half-width) of the same quantity."""
    (ma, ha), (mb, hb) = a, b
    assert abs(ma - mb) <= math.hypot(ha, hb), f"{what}: {ma:.6g} ± {ha:.3g} vs {mb:.6g} ± {hb:.3g}"


def assert_same_record(a: RunRecord, b: RunRecord) -> None:
    for field in ("chain", "arrival", "exit", "completion", "lost_at", "measured"):
        assert np.array_equal(getattr(a, field), getattr(b, field), equal_nan=True), field
    for ca, cb in zip(a.counters, b.counters):
        for field in ("offered", "accepted", "sojourn", "busy"):
            assert np.array_equal(getattr(ca, field), getattr(cb, field)), field


def one_run(network: Network, jobs: int, seed: int = 1, exits=None, **kwargs) -> RunRecord:
    return runs(network, jobs, range(seed, seed + 1), exits, **kwargs)[0]


# --------------------------------------------------------------------------- single stations


@pytest.mark.parametrize("law, rate, k, base", [(Exponential(1.0), 0.9, 10, 100),
                                                (Gamma(4, 0.03), 30.0, 3, 200),
                                                (Lognormal(0.02, 3.0), 60.0, 6, 300),
                                                (Deterministic(0.5), 2.4, 2, 400)],
                         ids=["M-K10", "E4-K3", "LN-overload", "D-K2"])
def test_single_station_matches_exact_mg1k(law, rate, k, base):
    records = runs(network_of(station_system(law, rate, k)), 40_000, seeds(base))
    metrics = [chain_metrics(r, 0) for r in records]
    exact = mg1k(rate, law, k)
    for field in ("loss_probability", "throughput", "mean_response_time"):
        assert_covers([getattr(m, field) for m in metrics], getattr(exact, field), field)


def mmck(rate: float, mean: float, c: int, k: int) -> tuple[float, float, float]:
    """Loss, throughput and mean response time of M/M/c/K (closed form)."""
    a = rate * mean
    weights = [a**n / math.factorial(n) if n <= c else a**n / (math.factorial(c) * c ** (n - c))
               for n in range(k + 1)]
    p = np.asarray(weights) / sum(weights)
    throughput = rate * (1.0 - p[k])
    return float(p[k]), throughput, float(np.arange(k + 1) @ p) / throughput


@pytest.mark.parametrize("c, k, rate, base", [(3, 6, 2.7, 500), (2, 2, 2.0, 600)],
                         ids=["M/M/3/6", "Erlang-B"])
def test_several_servers_match_closed_form_mmck(c, k, rate, base):
    records = runs(network_of(station_system(Exponential(1.0), rate, k, servers=c)), 40_000,
                   seeds(base))
    metrics = [chain_metrics(r, 0) for r in records]
    for field, exact in zip(("loss_probability", "throughput", "mean_response_time"),
                            mmck(rate, 1.0, c, k)):
        assert_covers([getattr(m, field) for m in metrics], exact, field)


# --------------------------------------------------------------------------- a tandem


def test_tandem_with_exit_and_link_matches_reference_simulator():
    system = tandem_system()
    metrics = [chain_metrics(r, 0) for r in runs(network_of(system), 40_000, seeds(700))]
    ref = replicate_chain(26.0, stations_of(system), replications=REPS, n_jobs=40_000, seed=7,
                          final_exit="b2")
    for field in ("loss_probability", "throughput", "mean_response_time"):
        assert_agree(mean_hw([getattr(m, field) for m in metrics]),
                     (getattr(ref, field), ref.half_widths[field]), field)
    for k, row in enumerate(ref.stations):
        assert metrics[0].stations[k].name == row.name
        assert_agree(mean_hw([m.stations[k].loss_probability for m in metrics]),
                     (row.loss_probability, ref.half_widths[f"loss_probability[{row.name}]"]),
                     f"loss at {row.name}")


def test_same_seed_gives_the_same_record_bit_for_bit():
    network = network_of(tandem_system())
    a, b = one_run(network, 20_000, seed=3), one_run(network, 20_000, seed=3)
    assert_same_record(a, b)
    assert not np.array_equal(a.lost_at, one_run(network, 20_000, seed=4).lost_at)


# --------------------------------------------------------------------------- shared devices

# (servers, capacity) per device; per chain: rate, hops (device, law, delay after), and the
# probability of leaving at an exit after the first hop
DEVICES = {"d1": (1, 3), "d2": (2, 4)}
CHAINS = {"A": (4.0, [("d1", Exponential(0.1), 0.01), ("d2", Exponential(0.3), 0.0)], 0.2),
          "B": (3.0, [("d2", Gamma(2, 0.2), 0.0), ("d1", Exponential(0.1), 0.0)], None)}


def shared_system() -> System:
    """Chain A visits d1 then d2, chain B d2 then d1: a cycle between devices."""
    chains, links = [], {}
    for name, (rate, hops, q) in CHAINS.items():
        blocks = [block(f"{name}{h}", law, exit=q if h == 0 else None)
                  for h, (_, law, _) in enumerate(hops)]
        chains.append({"name": name, "workload": {"arrival": {"process": "poisson", "rate": rate}},
                       "model": {"blocks": blocks},
                       "placement": {d: [f"{name}{h}"] for h, (d, _, _) in enumerate(hops)}})
        for (d, _, delay), (after, _, _) in zip(hops, hops[1:]):
            links[d, after] = {"from": d, "to": after, "latency_s": delay}  # ideal: no queue
    return parse_scenario({"devices": [{"name": d, "servers": c, "capacity": k}
                                       for d, (c, k) in DEVICES.items()],
                           "links": list(links.values()), "chains": chains})


def simpy_shared(seed: int, jobs: int) -> dict[str, list[float]]:
    """The same model written plainly in SimPy: per chain its loss, then the mean
    response time at each of its hops, over jobs arriving after the warm-up."""
    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    servers = {d: simpy.Resource(env, capacity=c) for d, (c, _) in DEVICES.items()}
    present = dict.fromkeys(DEVICES, 0)
    horizon = jobs / sum(rate for rate, _, _ in CHAINS.values())
    stats_of = {name: {"offered": 0, "lost": 0, "sojourn": [[] for _ in hops]}
                for name, (_, hops, _) in CHAINS.items()}

    def job(name, hops, services, leaves_early, measured):
        tally = stats_of[name]
        tally["offered"] += measured
        for h, (device, _, delay) in enumerate(hops):
            if present[device] >= DEVICES[device][1]:
                tally["lost"] += measured
                return
            present[device] += 1
            arrived = env.now
            with servers[device].request() as turn:  # FIFO
                yield turn
                yield env.timeout(services[h])
            present[device] -= 1
            if measured:
                tally["sojourn"][h].append(env.now - arrived)
            if h == 0 and leaves_early:
                return
            if delay:
                yield env.timeout(delay)

    def source(name, rate, hops, q):
        n = rng.poisson(rate * horizon)
        times = np.sort(rng.uniform(0.0, horizon, n))
        services = np.column_stack([law.sample(rng, n) for _, law, _ in hops])
        early = rng.random(n) < (q or 0.0)
        now = 0.0
        for j in range(n):
            yield env.timeout(times[j] - now)
            now = times[j]
            env.process(job(name, hops, services[j], early[j], times[j] >= 0.1 * horizon))

    for name, (rate, hops, q) in CHAINS.items():
        env.process(source(name, rate, hops, q))
    env.run()
    return {name: [t["lost"] / t["offered"]] + [float(np.mean(s)) for s in t["sojourn"]]
            for name, t in stats_of.items()}


def test_chains_sharing_devices_in_a_cycle_match_a_simpy_model():
    network = network_of(shared_system())
    mine = {name: [] for name in CHAINS}
    for record in runs(network, 40_000, seeds(800)):
        for r, name in enumerate(CHAINS):
            m = chain_metrics(record, r)
            mine[name].append([m.loss_probability] + [s.mean_response_time for s in m.stations])
    theirs = {name: [] for name in CHAINS}
    for seed in seeds(900):
        for name, row in simpy_shared(seed, 12_000).items():
            theirs[name].append(row)
    for name, (_, hops, _) in CHAINS.items():
        a, b = np.asarray(mine[name]), np.asarray(theirs[name])
        for i, what in enumerate(["loss"] + [f"response at {d}" for d, _, _ in hops]):
            assert_agree(mean_hw(a[:, i]), mean_hw(b[:, i]), f"chain {name} {what}")


def test_both_loops_give_the_same_record(monkeypatch):
    """Without policies the arrival-only loop runs; the classic loop with
    departure events must give the very same run."""
    network = network_of(shared_system())
    fast = one_run(network, 20_000, seed=5)
    monkeypatch.setattr(_engine, "_fast_loop",
                        lambda net, routes, slots: _engine._policy_loop(net, routes, slots, {}, {}))
    assert_same_record(fast, one_run(network, 20_000, seed=5))


# --------------------------------------------------------------------------- ties


def tie_system(service: float, capacity: int, servers: int = 1, stations: int = 1) -> System:
    """Arrivals exactly every 1.0 s (a replayed trace) through deterministic stations."""
    names = [f"d{i}" for i in range(stations)]
    return parse_scenario({
        "workload": {"arrival": {"process": "trace", "times": [0.0, 1.0]}},
        "model": {"blocks": [block(f"b{i}", Deterministic(service)) for i in range(stations)]},
        "devices": [{"name": d, "capacity": capacity, "servers": servers} for d in names],
        "links": [{"from": a, "to": b} for a, b in zip(names, names[1:])],
        "placement": {d: [f"b{i}"] for i, d in enumerate(names)}})


class Final:
    def decide(self, state: JobState) -> int:
        return state.n_exits - 1

    def observe(self, outcome: JobOutcome) -> None:
        pass


@pytest.mark.parametrize("policies", [None, {0: Final()}], ids=["fast-loop", "policy-loop"])
@pytest.mark.parametrize("service, capacity, servers, stations",
                         [(1.0, 1, 1, 1), (1.0, 1, 1, 3), (2.0, 2, 2, 1)],
                         ids=["K1", "tandem-K1", "2-servers"])
def test_a_job_arriving_as_another_leaves_takes_its_place(policies, service, capacity, servers,
                                                          stations):
    record = one_run(network_of(tie_system(service, capacity, servers, stations)), 1000,
                     policies=policies)
    assert (record.lost_at == -1).all()
    assert np.array_equal(record.completion - record.arrival,
                          np.full(1000, service * stations))


def test_a_job_arriving_just_before_a_departure_is_lost():
    record = one_run(network_of(tie_system(1.0 + 1e-9, 1)), 1000)
    assert np.array_equal(record.lost_at, np.tile([-1, 0], 500))


# --------------------------------------------------------------------------- online policies


def exits_system(capacity: int = 4) -> System:
    """One device running three blocks, with exits after the first two."""
    return parse_scenario({
        "workload": {"arrival": {"process": "poisson", "rate": 30.0}},
        "model": {"blocks": [block("b0", Exponential(0.01), exit=0.2),
                             block("b1", Exponential(0.01), exit=0.2),
                             block("b2", Exponential(0.02))]},
        "devices": [{"name": "dev", "capacity": capacity}], "placement": {"dev": ["b0", "b1", "b2"]}})


class Recorder:
    """Leaves early when the queue is long; keeps every state and outcome."""

    def __init__(self, threshold: int = 3):
        self.threshold = threshold
        self.states: list[JobState] = []
        self.decided: dict[int, int] = {}
        self.outcomes: list[JobOutcome] = []

    def decide(self, state: JobState) -> int:
        self.states.append(state)
        self.decided[state.job] = 0 if state.jobs_present >= self.threshold else state.n_exits - 1
        return self.decided[state.job]

    def observe(self, outcome: JobOutcome) -> None:
        self.outcomes.append(outcome)


class Always:
    def __init__(self, value: object):
        self.value = value

    def decide(self, state: JobState) -> object:
        return self.value

    def observe(self, outcome: JobOutcome) -> None:
        pass


def test_a_policy_choosing_the_first_exit_sends_every_job_there():
    network = network_of(tandem_system())
    record = one_run(network, 5000, policies={0: Always(0)})
    m = chain_metrics(record, 0)
    assert m.exit_distribution == {"b1": 1.0, "b2": 0.0}
    assert (record.exit[record.lost_at < 0] == 0).all()
    assert record.counters[0].offered[1:].tolist() == [0, 0]  # nobody reaches link or server


def test_a_queue_aware_policy_sees_the_state_the_record_implies():
    policy = Recorder()
    record = one_run(network_of(exits_system()), 5000, policies={0: policy})
    arrival, completion = record.arrival, record.completion
    accepted = record.lost_at < 0
    assert len(policy.states) == accepted.sum()
    # one server, FIFO: a job starts when it arrives or when the job before it leaves
    kept = np.flatnonzero(accepted)
    starts = np.maximum(arrival[kept], np.r_[-np.inf, completion[kept[:-1]]])
    assert [s.time for s in policy.states] == starts.tolist()
    for state in policy.states:
        j, t = state.job, state.time
        # jobs present: accepted, arrived by t, not yet gone (the one route, one station)
        present = int((accepted & (arrival <= t) & (completion > t)).sum())
        assert (state.chain, state.station, state.n_exits) == ("main", "dev", 3)
        assert state.jobs_present == present and state.waiting == present - 1
        assert state.queue_lengths == {"dev": present}
        assert state.recent_arrivals == tuple(arrival[arrival <= t][-64:].tolist())
        assert arrival[j] in state.recent_arrivals and arrival[j] <= t < completion[j]
        assert record.exit[j] == policy.decided[j]
    assert {1, 2, 3} <= {s.jobs_present for s in policy.states} <= {1, 2, 3, 4}
    assert 0 < chain_metrics(record, 0).exit_distribution["b0"] < 1


def test_observe_is_called_once_per_job_with_its_outcome():
    network = network_of(shared_system())
    policy = Recorder(threshold=2)
    record = one_run(network, 5000, policies={1: policy})  # chain B only
    mine = np.flatnonzero(record.chain == 1)
    assert sorted(o.job for o in policy.outcomes) == list(range(len(mine)))
    station_names = [network.stations[h.station].name for h in network.routes[1].hops]
    for o in policy.outcomes:
        j = mine[o.job]
        assert o.chain == "B" and o.completed == (record.lost_at[j] < 0)
        if o.completed:
            assert o.lost_at is None and o.time == record.completion[j]
            assert o.response_time == record.completion[j] - record.arrival[j]
            assert o.exit == record.exit[j] == policy.decided[o.job]
        else:
            assert o.lost_at == station_names[record.lost_at[j]] and o.response_time is None
            # lost at its first hop: before any decision
            assert (o.exit is None) == (record.lost_at[j] == 0)
            assert record.exit[j] == (-1 if o.exit is None else o.exit)
    assert any(not o.completed and o.exit is None for o in policy.outcomes)
    assert any(not o.completed and o.exit is not None for o in policy.outcomes)


def test_a_policy_sees_confidence_rows_and_its_jobs_are_scored_on_the_table():
    rng = np.random.default_rng(0)
    table = ExitTable(confidence=rng.random((50, 3)), correct=rng.random((50, 3)) < 0.7)

    class Confident(Recorder):
        def decide(self, state: JobState) -> int:
            self.states.append(state)
            hit = np.flatnonzero(state.confidence[:-1] >= 0.8)
            self.decided[state.job] = int(hit[0]) if len(hit) else 2
            return self.decided[state.job]

    network = network_of(exits_system())
    plan_rng = np.random.default_rng(9)
    plan = plan_run(network, plan_rng, 3000, 0.1, [StaticExits(table)])
    rows = table.confidence[plan.routes[0].row]
    policy = Confident()
    record = run_events(network, plan, plan_rng, policies={0: policy}, confidences={0: rows})
    for state in policy.states:
        assert np.array_equal(state.confidence, rows[state.job])
    done = record.lost_at < 0
    expected = plan.routes[0].correct[np.arange(3000), record.exit]
    assert np.array_equal(record.correct[done], expected[done])
    for o in policy.outcomes:
        assert o.correct == (bool(expected[o.job]) if o.completed else None)


class Replay:
    """Decides the exits the plan drew up front."""

    def __init__(self, exits: np.ndarray):
        self.exits = exits

    def decide(self, state: JobState) -> int:
        return int(self.exits[state.job])

    def observe(self, outcome: JobOutcome) -> None:
        pass


def test_decided_exits_set_the_service_at_every_hop():
    """Replaying the plan's exits through a policy (services drawn block by block
    at decision) must behave like the plan itself: paired 95% intervals of the
    differences over replications cover 0."""
    network = network_of(tandem_system())
    differences = []
    for seed in seeds(1000):
        plan = plan_run(network, np.random.default_rng(seed), 20_000, 0.1, [None])
        static = chain_metrics(run_events(network, plan, np.random.default_rng(seed + 1)), 0)
        online = chain_metrics(run_events(network, plan, np.random.default_rng(seed + 2),
                                          policies={0: Replay(plan.routes[0].exit)}), 0)
        differences.append([getattr(static, f) - getattr(online, f)
                            for f in ("loss_probability", "mean_response_time")]
                           + [a.utilization - b.utilization
                              for a, b in zip(static.stations, online.stations)])
    for i, what in enumerate(["loss", "response"] + [f"utilization {k}" for k in range(3)]):
        assert_covers(np.asarray(differences)[:, i], 0.0, what)


@pytest.mark.parametrize("value", [7, -1, 1.0, True, "0"])
def test_a_decision_that_is_no_exit_index_is_refused(value):
    network = network_of(exits_system())
    message = f"The 'decide' result of Always must be an exit index in [0, 3). Got {value!r}."
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        one_run(network, 100, policies={0: Always(value)})


def test_bad_policies_and_confidences_are_refused():
    network = network_of(exits_system())
    with pytest.raises(InvalidParameterError, match=r"The 'policies' parameter of run_events"):
        one_run(network, 100, policies={1: Final()})
    with pytest.raises(InvalidParameterError, match=r"The 'policies' parameter of run_events"):
        one_run(network, 100, policies={0: object()})
    with pytest.raises(InvalidParameterError, match=r"The 'confidences' parameter of run_events"):
        one_run(network, 100, policies={0: Final()}, confidences={0: np.zeros((100, 2))})


def test_a_run_with_a_policy_is_reproducible():
    network = network_of(shared_system())
    a = one_run(network, 5000, seed=2, policies={0: Recorder()})
    assert_same_record(a, one_run(network, 5000, seed=2, policies={0: Recorder()}))
