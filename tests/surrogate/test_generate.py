"""Generated training data: deployments within their regime, labels reproducible and
equal to a direct simulation, failures skipped and counted, and the CLI command."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import typer

from cli_helpers import assert_one_error_line, run
from edgeperf import cli
from edgeperf._cmd_surrogate import surrogate_app
from edgeperf.exceptions import EdgePerfError, InvalidParameterError
from edgeperf.io import parse_scenario
from edgeperf.surrogate._dataset import LABELS, load_dataset
from edgeperf.surrogate._generate import (GENERATOR_VERSION, REGIMES, Regime, deployments,
                                          generate, generate_dataset, larger_deployment,
                                          random_deployment)

FAST = {"jobs": 2000, "replications": 2, "progress": False}


@pytest.fixture(scope="module")
def client():
    """An in-process cluster (starts in a second; its worker sees monkeypatches)."""
    from distributed import Client, LocalCluster

    from edgeperf.sim._sweep import LOCAL_CLUSTER

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      **LOCAL_CLUSTER) as cluster, Client(cluster, set_as_default=False) as c:
        yield c


def paths(scenario: dict) -> list[list[str]]:
    return [list(c["placement"]) for c in scenario["chains"]]


def check_bounds(scenario: dict, r: Regime) -> None:
    names = [d["name"] for d in scenario["devices"]]
    assert r.min_devices <= len(names) <= r.pool
    assert r.chains[0] <= len(scenario["chains"]) <= r.chains[1]
    assert all(r.capacity[0] <= d["capacity"] <= r.capacity[1] for d in scenario["devices"])
    used = set()
    for chain in scenario["chains"]:
        path = list(chain["placement"])
        assert r.path[0] <= len(path) <= r.path[1] and len(set(path)) == len(path)
        assert all(f == [f"f{i}"] for i, f in enumerate(chain["placement"].values()))
        gap = 1 / chain["workload"]["arrival"]["rate"]
        assert r.interarrival_s[0] <= gap * (1 + 1e-12) and gap <= r.interarrival_s[1] * (1 + 1e-12)
        for block in chain["model"]["blocks"]:
            mean = block["latency"].get("value", block["latency"].get("mean"))
            assert r.service_s[0] < mean <= r.service_s[1]
        used.update(path)
    assert used == set(names)  # every device serves some chain, as in ChainNet
    pairs = {(a, b) for p in paths(scenario) for a, b in zip(p, p[1:])}
    pairs |= {(c["source"], next(iter(c["placement"]))) for c in scenario["chains"]
              if "source" in c}  # the upload of a chain's inputs from its source
    assert {(link["from"], link["to"]) for link in scenario["links"]} == pairs


@pytest.mark.parametrize("regime", list(REGIMES))
def test_deployments_respect_their_regime_and_parse(regime):
    r = REGIMES[regime]
    drawn = deployments(400, regime=regime, seed=11)
    for scenario in drawn:
        check_bounds(scenario, r)
    for scenario in drawn[:40]:
        system = parse_scenario(scenario, f"{regime} deployment")
        assert [c.name for c in system.chains] == [c["name"] for c in scenario["chains"]]
    counts = Counter(len(s["chains"]) for s in drawn)
    assert set(counts) == set(range(r.chains[0], r.chains[1] + 1))  # the whole range is used


def test_chainnet_deployments_are_chainnets_and_edgeperf_adds_its_features():
    plain = deployments(200, regime="chainnet", seed=3)
    blocks = [b for s in plain for c in s["chains"] for b in c["model"]["blocks"]]
    assert all(b["latency"]["kind"] == "deterministic" and "exit" not in b for b in blocks)
    assert all(set(link) == {"from", "to"} for s in plain for link in s["links"])
    rich = deployments(200, regime="edgeperf", seed=3)
    blocks = [b for s in rich for c in s["chains"] for b in c["model"]["blocks"]]
    kinds = Counter(b["latency"]["kind"] for b in blocks)
    assert set(kinds) == {"deterministic", "gamma", "lognormal"}
    scv = [b["latency"].get("scv", 1 / b["latency"].get("shape", math.inf)) for b in blocks
           if b["latency"]["kind"] != "deterministic"]
    assert 0.1 <= min(scv) and max(scv) <= 2.0
    exits = [b["exit"]["probability"] for b in blocks if "exit" in b]
    assert 0.2 < len(exits) / len(blocks) < 0.3 and all(0.1 <= p <= 0.5 for p in exits)
    assert all("exit" not in c["model"]["blocks"][-1] for s in rich for c in s["chains"])
    links = [link for s in rich for link in s["links"] if "bandwidth_bps" in link]
    assert links and all(2e6 <= link["bandwidth_bps"] <= 2e7 and 1 <= link["capacity"] <= 50
                         for link in links)
    # some chains upload their inputs from a source on another device, over a link
    assert not any("source" in c for s in plain for c in s["chains"])
    uploads = [(s, c) for s in rich for c in s["chains"] if "source" in c]
    assert 0.25 < len(uploads) / sum(len(s["chains"]) for s in rich) < 0.35
    for s, c in uploads:
        first = next(iter(c["placement"]))
        assert c["source"] != first and 2e4 <= c["model"]["input_bytes"] <= 5e5
        assert {"from": c["source"], "to": first} in [
            {k: link[k] for k in ("from", "to")} for link in s["links"]]
        parse_scenario(s)  # a valid scenario


def test_larger_deployments_exceed_the_training_regime():
    rng = np.random.default_rng(4)
    for features in (False, True):
        drawn = [larger_deployment(rng, features=features) for _ in range(100)]
        assert all(len(s["devices"]) > REGIMES["chainnet"].pool for s in drawn)
        assert all(len(p) > REGIMES["chainnet"].path[1] for s in drawn for p in paths(s))
        assert max(len(s["chains"]) for s in drawn) == 4
        assert any("bandwidth_bps" in link for s in drawn for link in s["links"]) == features


def test_deployment_i_does_not_depend_on_how_many_are_drawn():
    assert deployments(3, regime="edgeperf", seed=9) == deployments(6, regime="edgeperf",
                                                                    seed=9)[:3]
    assert deployments(3, seed=9) != deployments(3, seed=10)


def test_bad_regimes_are_rejected():
    with pytest.raises(InvalidParameterError, match=r"'regime' parameter of random_deployment "
                       r"must be one of \['chainnet', 'edgeperf', 'larger', 'larger-edgeperf'\] "
                       r"or a Regime. Got 'big'"):
        random_deployment(np.random.default_rng(0), "big")
    with pytest.raises(InvalidParameterError, match=r"'rng' parameter of random_deployment"):
        random_deployment(0)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"'path' parameter of Regime must be a pair "
                       r"of integers \(low, high\) with 1 <= low <= high. Got \(3, 2\)"):
        Regime(path=(3, 2))
    with pytest.raises(InvalidParameterError, match=r"'interarrival_s' .* 0 < low <= high"):
        Regime(interarrival_s=(0.0, 1.0))
    with pytest.raises(InvalidParameterError, match=r"'service_s' .*high > low"):
        Regime(service_s=(1.0, 1.0))
    with pytest.raises(InvalidParameterError, match=r"'pool' parameter of Regime must be an int "
                       r">= 6"):
        Regime(pool=5)
    with pytest.raises(InvalidParameterError, match=r"'min_devices' .*<= min\(pool, most chains "
                       r"x longest path\) = 4. Got 5"):
        Regime(chains=(1, 1), path=(2, 4), min_devices=5)
    with pytest.raises(InvalidParameterError, match=r"^The 'capacity' parameter of Regime must "
                       r"be a pair of integers below 2\*\*62\. Got \(1, 10+\)\.$"):
        Regime(capacity=(1, 10**30))  # numpy's ValueError when drawn
    with pytest.raises(InvalidParameterError, match=r"^The 'features' parameter of Regime must "
                       r"be True or False\. Got 'str'\.$"):
        Regime(features="yes")
    with pytest.raises(InvalidParameterError, match=r"^The 'features' parameter of "
                       r"larger_deployment must be True or False\. Got 'str'\.$"):
        larger_deployment(np.random.default_rng(0), features="yes")


def test_generation_is_reproducible_and_agrees_with_a_direct_simulation(client):
    from edgeperf.sim import simulate_chains

    first = generate(6, regime="edgeperf", seed=21, client=client, **FAST)
    assert first == generate(6, regime="edgeperf", seed=21, client=client, **FAST)
    scenarios = deployments(6, regime="edgeperf", seed=21)
    assert [s.scenario for s in first] == scenarios
    for i in (0, 5):  # deployment i is simulated with seed + i
        system = parse_scenario(scenarios[i], "direct")
        direct = simulate_chains(system, jobs=2000, replications=2, seed=21 + i, engine="event",
                                 warmup=0.1)
        devices = {d.name for d in system.devices}
        for chain, label in zip(system.chains, first[i].labels):
            m = direct[chain.name]
            assert label["tput_ratio"] == 1 - m.loss_probability
            assert label["throughput"] == m.throughput
            assert label["response_time_e2e"] == m.mean_response_time
            assert label["response_time"] == sum(s.mean_response_time for s in m.stations
                                                 if s.name in devices)
        assert set(first[i].device_loss) == devices
        assert all(0 <= x <= 1 for x in first[i].device_loss.values())
    labels = [lab for s in first for lab in s.labels]
    assert all(0 < lab["tput_ratio"] <= 1 and lab["response_time"] > 0 for lab in labels)
    assert all(set(lab) == set(LABELS) for lab in labels)


def test_a_deployment_that_fails_is_skipped_and_counted(client, monkeypatch):
    from edgeperf import sim

    real = sim.simulate_chains

    def fails_on_seed_31(system, **kwargs):
        if kwargs["seed"] == 31:
            raise FloatingPointError("the queue overflowed")
        return real(system, **kwargs)

    monkeypatch.setattr(sim, "simulate_chains", fails_on_seed_31)
    data = generate_dataset(3, seed=30, client=client, **FAST)
    assert [s.scenario for s in data.samples] == [deployments(3, seed=30)[i] for i in (0, 2)]
    assert data.meta["skipped"] == 1 and data.meta["requested"] == 3
    assert data.meta["failures"] == ["deployment 1: FloatingPointError: the queue overflowed"]
    with pytest.warns(RuntimeWarning, match=r"1 of 3 deployments failed to simulate"):
        assert len(generate(3, seed=30, client=client, **FAST)) == 2


def test_no_data_set_when_every_deployment_fails(client, monkeypatch):
    from edgeperf import sim

    def fails(system, **kwargs):
        raise FloatingPointError("the queue overflowed")

    monkeypatch.setattr(sim, "simulate_chains", fails)
    with pytest.raises(EdgePerfError, match=r"^generate: all 2 deployments failed to simulate, so "
                       r"there is no data set; first: deployment 0: FloatingPointError: the "
                       r"queue overflowed$"):
        generate_dataset(2, seed=30, client=client, **FAST)


def test_generate_rejects_too_few_jobs_before_simulating():
    with pytest.raises(InvalidParameterError, match=r"'jobs' parameter of generate must be an "
                       r"int >= 100. Got 10"):
        generate(2, jobs=10, client=object())


@pytest.fixture
def edgeperf_cli(monkeypatch):
    """The command as cli.py registers it: ``app.add_typer(surrogate_app, name="surrogate")``."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.add_typer(surrogate_app, name="surrogate")
    monkeypatch.setattr(cli, "app", app)


def test_the_command_writes_a_data_set(capsys, tmp_path, edgeperf_cli):
    out = tmp_path / "train.npz"
    code, stdout, err = run(capsys, "surrogate", "generate", "--out", str(out), "--samples", "3",
                            "--regime", "edgeperf", "--seed", "4", "--jobs", "1000",
                            "--replications", "1", "--workers", "1")
    assert code == 0, err
    data = load_dataset(out)
    chains = sum(len(s.labels) for s in data.samples)
    assert stdout == f"3 deployments, {chains} chains: wrote {out}\n"
    assert [s.scenario for s in data.samples] == deployments(3, regime="edgeperf", seed=4)
    assert {k: data.meta[k] for k in ("regime", "seed", "jobs", "replications", "skipped")} == {
        "regime": "edgeperf", "seed": 4, "jobs": 1000, "replications": 1, "skipped": 0}
    assert data.meta["generator_version"] == GENERATOR_VERSION == 2


@pytest.mark.parametrize(("argv", "pattern"), [
    (["--samples", "0"], r"Invalid value for '--samples': .*greater than or equal to 1"),
    (["--samples", "2", "--jobs", "50"], r"Invalid value for '--jobs': .*greater than or equal "
                                         r"to 100"),
    (["--samples", "2", "--regime", "huge"], r"Invalid value for '--regime': .*'huge' is not "
                                              r"one of 'chainnet', .*"),
    (["--samples", "2", "--out", "x.csv"], r"The '--out' parameter of surrogate generate must "
                                           r"be a file name ending in .npz. Got 'x.csv'\."),
    (["--samples", "2", "--out", "no/such/x.npz"], r"The '--out' parameter .*must be a file in "
                                                   r"an existing folder. Got 'no/such/x.npz'\."),
    (["--samples", "2", "--workers", "100000"], r"The '--workers' parameter of surrogate generate "
                                                r"must be an int from 1 to \d+, the cores .* Got "
                                                r"100000\."),
])
def test_bad_input_is_one_line_and_exit_2(capsys, edgeperf_cli, argv, pattern):
    if "--out" not in argv:
        argv = [*argv, "--out", "train.npz"]
    assert_one_error_line(*run(capsys, "surrogate", "generate", *argv), pattern)
