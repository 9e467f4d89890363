"""Encoding deployments as graphs: node sets, features by hand, time-unit
invariance, batching."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from surrogate_cases import TWO_CHAINS, TWO_LABELS, exits_and_link, two_chains
from edgeperf.exceptions import InvalidParameterError, UnsupportedModelError
from edgeperf.io import parse_scenario
from edgeperf.surrogate import AnalyticModel, ChainNetModel, load_model, random_deployment
from edgeperf.surrogate._graph import (CHAIN_FEATURES, DEVICE_FEATURES, FRAGMENT_FEATURES,
                                       collate, encode, encode_batch, encode_samples, supports)


def col(names, name):
    return names.index(name)


def test_two_chains_nodes_and_edges():
    g = encode(two_chains(), TWO_LABELS)
    assert g.device_x.shape == (3, len(DEVICE_FEATURES))
    assert g.fragment_x.shape == (5, len(FRAGMENT_FEATURES))
    assert g.chain_x.shape == (2, len(CHAIN_FEATURES))
    assert g.fragment_device.tolist() == [0, 1, 2, 0, 1]
    assert g.fragment_chain.tolist() == [0, 0, 1, 1, 1]
    assert g.fragment_position.tolist() == [0, 1, 0, 1, 2]
    assert g.next_pairs().tolist() == [[0, 2, 3], [1, 3, 4]]
    data = g.to_pyg()
    assert data["fragment", "on", "device"].edge_index.shape == (2, 5)
    assert data["fragment", "next", "fragment"].edge_index.shape == (2, 3)
    assert data["fragment", "of", "chain"].edge_index[1].tolist() == [0, 0, 1, 1, 1]


def test_two_chains_features_by_hand():
    g = encode(two_chains(), TWO_LABELS)
    d, f, c = g.device_x, g.fragment_x, g.chain_x
    # d1 hosts c0 hop 0 (rate 0.5, service 0.5) and c1 hop 1 (rate 0.25, service 0.2)
    assert d[0, col(DEVICE_FEATURES, "fragments")] == 2
    assert d[0, col(DEVICE_FEATURES, "load")] == pytest.approx(0.3)
    assert d[1, col(DEVICE_FEATURES, "load")] == pytest.approx(0.2)
    assert d[2, col(DEVICE_FEATURES, "inv_capacity")] == pytest.approx(0.25)
    hop = dict(zip(FRAGMENT_FEATURES, f[0].tolist()))
    assert hop["service_share"] == pytest.approx(0.5 / 0.75)
    assert hop["device_share"] == pytest.approx(0.5 / 0.7)
    assert hop["utilisation"] == pytest.approx(0.25)
    assert hop["rate_share"] == pytest.approx(0.5 / 0.75)
    assert hop["load_share"] == pytest.approx(0.25 / 0.3)
    assert (hop["position"], hop["inv_length"], hop["exit_probability"]) == (0, 0.5, 0)
    assert f[4, col(FRAGMENT_FEATURES, "position")] == 1.0
    chain = dict(zip(CHAIN_FEATURES, c[1].tolist()))
    assert chain["offered"] == pytest.approx(0.25 * 0.6)
    assert chain["length"] == 3
    assert chain["service_share"] == pytest.approx(0.6 / 1.35)
    assert chain["max_load"] == pytest.approx(0.3)
    assert g.service_time.tolist() == pytest.approx([0.75, 0.6])
    assert g.target[:, :2].numpy() == pytest.approx(np.array([[0.9, 2.0], [0.8, 2.0]]))
    assert g.labels()[:, :2] == pytest.approx(np.array([[0.9, 1.5], [0.8, 1.2]]))
    assert g.target[:, 2].isnan().all()  # no end-to-end label given: unknown


def test_the_end_to_end_target_is_scaled_by_the_path_time():
    labels = [{"tput_ratio": 0.7, "response_time": 0.6, "response_time_e2e": 0.95}]
    g = encode(exits_and_link(), labels)
    # accepted jobs: all at e (mean 0.1375), three quarters on over the link (0.1 and its
    # 0.05 delay) and to s (0.3); a job that exits at e meets no delay
    path = 0.1375 + 0.75 * (0.1 + 0.05) + 0.75 * 0.3
    assert g.path_time.item() == pytest.approx(path)
    assert g.target[0, 2].item() == pytest.approx(0.95 / path)
    assert g.labels()[0] == pytest.approx([0.7, 0.6, 0.95])
    assert g.scale_back(g.target[:, :2].numpy()).shape == (1, 2)  # two columns stay two


def test_link_becomes_a_device_and_exits_thin_the_rate():
    g = encode(exits_and_link())
    assert g.device_x.shape[0] == 3 and g.fragment_x.shape[0] == 3
    assert g.device_x[:, col(DEVICE_FEATURES, "is_link")].tolist() == [0, 0, 1]
    assert g.fragment_device.tolist() == [0, 2, 1]
    reach = g.fragment_x[:, col(FRAGMENT_FEATURES, "reach")].tolist()
    assert reach == pytest.approx([1.0, 0.75, 0.75])
    assert g.fragment_x[0, col(FRAGMENT_FEATURES, "exit_probability")] == pytest.approx(0.25)
    # device e (speed 2): mean 0.25 * 0.1 + 0.75 * 0.15; s 0.3. The link (0.1 + delay 0.05)
    # is left out, as it is from the response-time label
    assert g.service_time.item() == pytest.approx(0.025 + 0.1125 + 0.3)
    assert g.target is None


def test_an_exit_that_takes_every_job_leaves_later_hops_without_flow():
    """The hops after it carry no jobs; their features are finite, and so is every
    model's prediction (no 0/0 where a device hosts nothing that arrives)."""
    system = exits_and_link(exit_probability=1.0)
    g = encode(system)
    assert g.fragment_x[:, col(FRAGMENT_FEATURES, "reach")].tolist() == [1.0, 0.0, 0.0]
    assert g.fragment_x[:, col(FRAGMENT_FEATURES, "rate_share")].tolist() == [1.0, 0.0, 0.0]
    for x in (g.device_x, g.fragment_x, g.chain_x):
        assert torch.isfinite(torch.as_tensor(x)).all()
    shipped = Path(__file__).resolve().parents[2] / "models" / "surrogate"
    for model in (AnalyticModel(), load_model(shipped / "chainnet_edgeperf.safetensors")):
        assert np.isfinite(model.predict([system])).all(), model


@pytest.mark.parametrize("build", [two_chains, exits_and_link])
def test_features_do_not_depend_on_the_time_unit(build):
    one, ten = encode(build(1.0), None), encode(build(10.0), None)
    for name in ("device_x", "fragment_x", "chain_x"):
        assert torch.allclose(getattr(one, name), getattr(ten, name), rtol=1e-5, atol=1e-6), name
    assert torch.allclose(ten.service_time, 10 * one.service_time)


def test_targets_scale_with_the_time_unit():
    labels1 = [x | {"response_time_e2e": 2 * x["response_time"]} for x in TWO_LABELS]
    labels10 = [{"tput_ratio": x["tput_ratio"], "response_time": 10 * x["response_time"],
                 "response_time_e2e": 10 * x["response_time_e2e"]} for x in labels1]
    one, ten = encode(two_chains(1.0), labels1), encode(two_chains(10.0), labels10)
    assert torch.allclose(one.target, ten.target)
    assert torch.allclose(ten.path_time, 10 * one.path_time)
    assert ten.labels() == pytest.approx(one.labels() * [1, 10, 10])


def test_collate_shifts_indices():
    a, b = encode(two_chains(), TWO_LABELS), encode(exits_and_link())
    batch = collate([a, a])
    assert batch.num_graphs == 2 and batch.num_chains == 4
    assert batch.fragment_device.tolist() == [0, 1, 2, 0, 1, 3, 4, 5, 3, 4]
    assert batch.fragment_chain.tolist() == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    assert batch.chain_graph.tolist() == [0, 0, 1, 1]
    assert batch.target.shape == (4, 3)
    assert batch.path_time.tolist() == pytest.approx(a.path_time.tolist() * 2)
    assert collate([a, b]).target is None  # one graph without labels: no targets


def test_encode_batch_equals_collating_single_encodings():
    rng = np.random.default_rng(5)
    systems = [two_chains(), exits_and_link(),
               *(parse_scenario(random_deployment(rng, "edgeperf"), "<drawn>") for _ in range(20))]
    labels = [TWO_LABELS, None, *([None] * 20)]
    one_by_one, together = collate([encode(s) for s in systems]), encode_batch(systems)
    for name in ("device_x", "fragment_x", "chain_x", "fragment_device", "fragment_chain",
                 "fragment_position", "chain_length", "chain_graph", "service_time",
                 "path_time"):
        a, b = getattr(one_by_one, name), getattr(together, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name
    assert together.systems == tuple(systems)
    labelled = encode_batch(systems[:1] * 2, [TWO_LABELS, TWO_LABELS])
    assert torch.allclose(labelled.target, collate([encode(systems[0], labels[0])] * 2).target,
                          rtol=0, atol=0, equal_nan=True)


def test_errors():
    with pytest.raises(InvalidParameterError,
                       match="'system' parameter of encode must be a System"):
        encode({"devices": []})
    with pytest.raises(InvalidParameterError, match=r"one mapping per chain \(2\)"):
        encode(two_chains(), TWO_LABELS[:1])
    with pytest.raises(InvalidParameterError, match="numbers 'tput_ratio' and 'response_time'"):
        encode(two_chains(), [{"tput_ratio": 1.0}, TWO_LABELS[1]])
    for bad in ({"tput_ratio": float("nan")}, {"tput_ratio": 0.0}, {"tput_ratio": 1.2},
                {"response_time": 0.0}, {"response_time": float("inf")}):
        with pytest.raises(InvalidParameterError, match=re.escape(
                "The 'labels' parameter of encode must be a 'tput_ratio' in (0, 1] and a "
                "finite 'response_time' > 0 for every chain. Got {")):
            encode(two_chains(), [{**TWO_LABELS[0], **bad}, TWO_LABELS[1]])
    for bad in (0.0, -1.0, float("inf"), "1"):
        with pytest.raises(InvalidParameterError, match=re.escape(
                "The 'labels' parameter of encode must be a 'response_time_e2e' that is finite "
                "and > 0, or NaN where unknown. Got {")):
            encode(two_chains(), [{**TWO_LABELS[0], "response_time_e2e": bad}, TWO_LABELS[1]])
    with pytest.raises(InvalidParameterError, match="non-empty list of DeploymentGraph"):
        collate([])
    with pytest.raises(InvalidParameterError, match=r"'graphs' parameter of collate must be a "
                       r"non-empty list of DeploymentGraph\. Got 'NoneType'\."):
        collate(None)
    with pytest.raises(InvalidParameterError, match=r"'samples' parameter of encode_samples must "
                       r"be objects with 'scenario' and 'labels'\. Got 'NoneType'\."):
        encode_samples(None)
    with pytest.raises(InvalidParameterError, match=r"encode_samples .*Got 'dict'"):
        encode_samples({"scenario": {}, "labels": []})  # a mapping is not a list of samples
    with pytest.raises(InvalidParameterError, match="'target' parameter of DeploymentGraph"):
        encode(two_chains()).labels()
    with pytest.raises(InvalidParameterError, match="'systems' parameter of encode_batch"):
        encode_batch([])
    with pytest.raises(InvalidParameterError, match=r"one list per system \(1\)"):
        encode_batch([two_chains()], [TWO_LABELS, TWO_LABELS])


def test_systems_outside_the_training_domain_are_refused():
    """Bursty or evenly paced arrivals and multi-server devices: no feature tells
    them apart, so encoding (hence every model's predict) refuses them rather than
    guess."""
    def arriving(arrival: dict) -> dict:
        return {**TWO_CHAINS, "chains": [
            TWO_CHAINS["chains"][0],
            {**TWO_CHAINS["chains"][1], "workload": {"arrival": arrival}}]}

    bursty = arriving({"process": "mmpp", "rates": [0.1, 2.0], "switch_rates": [0.5, 0.5]})
    paced = arriving({"process": "erlang", "rate": 1.0, "phases": 4})
    cores = {**TWO_CHAINS, "devices": [{"name": "d1", "capacity": 2, "servers": 2},
                                       *TWO_CHAINS["devices"][1:]]}
    for scenario, what, got in (
            (bursty, "Poisson arrivals", "MMPPArrivals on chain 'c1'"),
            (paced, "Poisson arrivals", "ErlangArrivals on chain 'c1'"),
            (cores, "single-server devices", "servers > 1 on ['d1']")):
        system = parse_scenario(scenario)
        message = re.escape(f"edgeperf.surrogate supports {what} only, the only kind in its "
                            "training data; simulate this system with edgeperf.sim or place it "
                            f"with method 'simulation'. Got {got}.")
        for call in (supports, encode, lambda s: encode_batch([two_chains(), s]),
                     AnalyticModel().solve, AnalyticModel.supports, ChainNetModel().supports):
            with pytest.raises(UnsupportedModelError, match=message):
                call(system)
    supports(two_chains())  # the domain itself passes
    with pytest.raises(InvalidParameterError, match=r"'system' parameter of supports must be "
                       r"a System\. Got 'dict'\."):
        supports(TWO_CHAINS)


def mm1k_blocking(rho, k):
    """P(full) of an M/M/1/K from its stationary law p_n ~ rho^n, n = 0..K."""
    weights = rho ** np.arange(k + 1)
    return weights[-1] / weights.sum()


@pytest.mark.parametrize("rho", [1e-3, 0.5, 1.0 - 1e-12, 1.0, 1.7, 40.0])
@pytest.mark.parametrize("k", [1, 3, 50])
def test_blocking_is_the_mm1k_formula(rho, k):
    from edgeperf.surrogate._graph import _blocking

    got = _blocking(np.array([rho]), np.array([float(k)]))[0]
    assert got == pytest.approx(mm1k_blocking(rho, k), rel=1e-9)


def test_mm1k_features_of_a_tandem():
    # TWO_CHAINS at 8 times the rates; the flows are acyclic (d3 -> d1 -> d2),
    # so the fixed point can be written down station by station
    scenario = {**TWO_CHAINS, "chains": [
        {**ch, "workload": {"arrival": {"process": "poisson",
                                        "rate": 8 * ch["workload"]["arrival"]["rate"]}}}
        for ch in TWO_CHAINS["chains"]]}
    g = encode(parse_scenario(scenario))
    a3 = 1 - mm1k_blocking(8 * 0.25 * 0.1, 4)
    a1 = 1 - mm1k_blocking(8 * 0.5 * 0.5 + 8 * 0.25 * 0.2 * a3, 2)
    a2 = 1 - mm1k_blocking(a1 * (8 * 0.5 * 0.25 + 8 * 0.25 * 0.3 * a3), 3)
    accept = g.device_x[:, col(DEVICE_FEATURES, "mm1k_accept")].double().numpy()
    assert accept == pytest.approx([a1, a2, a3], rel=1e-5)
    reach = g.fragment_x[:, col(FRAGMENT_FEATURES, "mm1k_reach")].double().numpy()
    assert reach == pytest.approx([1, a1, 1, a3, a3 * a1], rel=1e-5)
    tput = g.chain_x[:, col(CHAIN_FEATURES, "mm1k_tput")].double().numpy()
    assert tput == pytest.approx([a1 * a2, a3 * a1 * a2], rel=1e-5)
