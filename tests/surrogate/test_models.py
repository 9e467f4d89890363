"""The surrogate models: shapes and ranges of every model, the analytic
baseline against the exact M/G/1/K, the fitted rule and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeperf._validation import usable_cores
from edgeperf.dists import Deterministic, Exponential, Mixture
from edgeperf.exceptions import InvalidParameterError, NotFittedError
from edgeperf.model import (DNN, Block, Chain, Device, Link, Placement, PoissonArrivals, System,
                            Workload)
from edgeperf.queueing import mg1k, stations_of
from edgeperf.surrogate._graph import CHAIN_FEATURES, collate, encode
from edgeperf.surrogate._models import AnalyticModel, MODELS, _completed, build_model
from surrogate_cases import TWO_LABELS, exits_and_link, two_chains

LEARNED = ["chainnet", "chainnet-chain", "gat", "gcn", "mlp"]  # -chain: the readout ablation
TINY = {"chainnet": {"hidden": 8, "iterations": 2},
        "chainnet-chain": {"hidden": 8, "iterations": 2, "readout": "chain"},
        "gat": {"hidden": 8, "heads": 2},
        "gcn": {"hidden": 8}, "mlp": {"hidden": 8}}


def hand_built():
    return collate([encode(two_chains(), TWO_LABELS), encode(exits_and_link()),
                    encode(two_chains(3.0))])


def check_ranges(out, batch, columns=2):
    assert out.shape == (batch.num_chains, columns)
    assert torch.all((out[:, 0] > 0) & (out[:, 0] <= 1))
    assert torch.all(out[:, 1] >= 1)
    assert torch.all(out[:, 2:] > 0)


@pytest.mark.parametrize("name", LEARNED)
def test_forward_shapes_and_ranges(name):
    model, batch = build_model(name.split("-")[0], **TINY[name]), hand_built()
    model.fit_normalization(batch)
    out = model(batch)
    check_ranges(out, batch)
    out.sum().backward()  # gradients reach every parameter
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", LEARNED)
def test_an_end_to_end_model_adds_a_third_positive_output(name):
    config, batch = TINY[name], hand_built()
    plain, both = (build_model(name.split("-")[0], **config, **extra)
                   for extra in ({}, {"end_to_end": True}))
    assert (plain.end_to_end, both.end_to_end) == (False, True)
    assert "end_to_end" not in plain.config and both.config["end_to_end"] is True
    both.fit_normalization(batch)
    out = both(batch)
    check_ranges(out, batch, columns=3)
    out[:, 2].sum().backward()  # the new output is learned through the shared states
    first = both.embed["chain"][0] if hasattr(both, "embed") else both.net[0]
    assert first.weight.grad.abs().sum() > 0
    both.fitted.fill_(True)
    pred = both.predict(batch)
    with torch.no_grad():
        ratios = both(batch).double().numpy()
    assert pred[:, 2] == pytest.approx(ratios[:, 2] * batch.path_time.numpy())


@pytest.mark.parametrize("name", LEARNED)
def test_forward_on_published_batch(name, published):
    batch = collate([encode(s, labels) for s, labels in published])
    model = build_model(name.split("-")[0], **TINY[name])
    model.fit_normalization(batch)
    with torch.no_grad():
        check_ranges(model(batch), batch)


def test_chain_throughput_with_no_offsets_is_the_mm1k_decomposition(published):
    # ChainNet's hops compose the throughput ratio as the decomposition does:
    # exits and a link station included, one chain per station visit
    batch = collate([hand_built(), *(encode(s) for s, _ in published[:20])])
    composed = _completed(batch, torch.zeros(batch.fragment_x.shape[0]))
    decomposed = batch.chain_x[:, CHAIN_FEATURES.index("mm1k_tput")]
    assert int((decomposed < 0.9).sum()) >= 5  # chains that lose jobs, not only 1 == 1
    torch.testing.assert_close(composed, decomposed.clamp_min(1e-6), rtol=0, atol=1e-5)


def test_chain_throughput_does_not_depend_on_the_batch(published):
    # each chain's hops are summed on their own: a chain's ratio is the same
    # alone and behind thousands of other chains (a sum over the batch rounds it)
    alone = hand_built()
    many = collate([*(encode(s) for s, _ in published)] * 40 + [alone])
    logits = torch.full((many.fragment_x.shape[0],), -0.3)
    tail = _completed(many, logits)[-alone.num_chains:]
    torch.testing.assert_close(tail, _completed(alone, logits[:alone.fragment_x.shape[0]]),
                               rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", LEARNED)
def test_predict_needs_a_fitted_model(name):
    model = build_model(name.split("-")[0], **TINY[name])
    with pytest.raises(NotFittedError, match="is not fitted: train it"):
        model.predict(two_chains())
    model.fitted.fill_(True)
    pred = model.predict([two_chains(), exits_and_link()])
    batch = hand_built()
    assert pred.shape == (3, 2)
    assert np.all(pred[:, 1] >= batch.service_time.numpy()[:3] * (1 - 1e-6))


def test_predict_runs_on_one_torch_thread_unless_told_and_restores_the_count(monkeypatch):
    model = build_model("mlp", hidden=8)
    model.fitted.fill_(True)
    seen, forward = [], model.forward
    monkeypatch.setattr(model, "forward",
                        lambda batch: (seen.append(torch.get_num_threads()), forward(batch))[1])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the caller's own setting
        model.predict(two_chains())
        assert seen == [1] and torch.get_num_threads() == 2
        if usable_cores() >= 2:
            torch.set_num_threads(1)
            model.predict(two_chains(), threads=2)
            assert seen[-1] == 2 and torch.get_num_threads() == 1
        with pytest.raises(InvalidParameterError, match=r"^The 'threads' parameter of MLPModel"
                           r"\.predict must be an int from 1 to \d+, the cores this machine"):
            model.predict(two_chains(), threads=usable_cores() + 1)
    finally:
        torch.set_num_threads(before)


def test_predict_restores_training_mode_even_when_forward_fails(monkeypatch):
    model = build_model("mlp", hidden=8)
    model.fitted.fill_(True)
    model.train()
    model.predict(two_chains())
    assert model.training

    def broken(batch):
        raise RuntimeError("forward failed")

    monkeypatch.setattr(model, "forward", broken)
    with pytest.raises(RuntimeError, match="forward failed"):
        model.predict(two_chains())
    assert model.training
    model.eval()
    with pytest.raises(RuntimeError, match="forward failed"):
        model.predict(two_chains())
    assert not model.training


def test_same_seed_same_weights():
    a, b = build_model("gat", seed=3), build_model("gat", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    c = build_model("gat", seed=4)
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))


def single(law, rate=1.5, capacity=4):
    return System(model=DNN(blocks=(Block(name="b", latency=law, output_bytes=0),)),
                  workload=Workload(arrival=PoissonArrivals(rate=rate)),
                  placement=Placement.from_mapping({"d": ["b"]}),
                  devices=[Device(name="d", capacity=capacity)])


@pytest.mark.parametrize("law", [Deterministic(0.5), Exponential(0.8)])
def test_analytic_single_station_is_the_exact_mg1k(law):
    exact = mg1k(1.5, law, 4)
    pred = AnalyticModel().predict(single(law))
    # one station: the end-to-end time is the response there
    assert pred[0] == pytest.approx([1 - exact.loss_probability, exact.mean_response_time,
                                     exact.mean_response_time], rel=1e-12)


def test_analytic_two_chains_on_one_device_share_the_exact_wait():
    def chain(name, rate, s):
        return Chain(name=name, model=DNN(blocks=(Block(name="b", latency=Deterministic(s),
                                                        output_bytes=0),)),
                     workload=Workload(arrival=PoissonArrivals(rate=rate)),
                     placement=Placement.from_mapping({"d": ["b"]}))
    system = System(devices=[Device(name="d", capacity=3)],
                    chains=[chain("x", 1.0, 0.2), chain("y", 0.5, 0.6)])
    exact = mg1k(1.5, Mixture((Deterministic(0.2), Deterministic(0.6)), (2 / 3, 1 / 3)), 3)
    pred = AnalyticModel().predict(system)
    assert pred[:, 0] == pytest.approx([1 - exact.loss_probability] * 2)
    assert pred[:, 1] == pytest.approx([exact.mean_waiting_time + 0.2,
                                        exact.mean_waiting_time + 0.6])


def slow_link(rate: float = 0.1) -> System:
    """Two light devices (10 ms each) joined by a link that takes 1 s per job."""
    blocks = (Block(name="a", latency=Deterministic(0.01), output_bytes=125_000),
              Block(name="b", latency=Deterministic(0.01), output_bytes=0))
    return System(model=DNN(blocks=blocks, input_bytes=0),
                  workload=Workload(arrival=PoissonArrivals(rate=rate)),
                  placement=Placement.from_mapping({"pi": ["a"], "edge": ["b"]}),
                  devices=[Device(name="pi", capacity=5), Device(name="edge", capacity=5)],
                  links=[Link(source="pi", target="edge", bandwidth_bps=1e6, capacity=50)])


def test_the_response_time_counts_devices_only_as_the_label_does():
    """ChainNet's label sums the mean responses at the devices: a slow link adds
    nothing to it, so neither the analytic baseline nor the scale S_c counts it."""
    graph = encode(slow_link())
    assert graph.service_time.item() == pytest.approx(0.02)
    response = AnalyticModel().predict(graph)[0, 1]  # load 0.001: waits of ~1e-5 s
    assert 0.02 <= response < 0.02 * 1.001


def test_analytic_end_to_end_time_by_hand():
    """One chain: an exit on e, a link, then s. Completed jobs either leave at the
    exit after e's wait and the exit's service, or cross everything; solved here
    station by station with the exact M/G/1/K (a tandem has no feedback)."""
    system = exits_and_link()
    e, link, s = stations_of(system)
    at_e = mg1k(2.0, e.law, e.capacity)
    over = 2.0 * (1 - at_e.loss_probability) * e.pass_probability
    at_link = mg1k(over, link.law, link.capacity)
    at_s = mg1k(over * (1 - at_link.loss_probability), s.law, s.capacity)
    leave = [0.25 * (1 - at_e.loss_probability),
             0.75 * (1 - at_e.loss_probability) * (1 - at_link.loss_probability)
             * (1 - at_s.loss_probability)]
    times = [at_e.mean_waiting_time + 0.1,  # the exit after block a: 0.2 / speed 2
             at_e.mean_waiting_time + 0.15 + at_link.mean_waiting_time + 0.1 + 0.05
             + at_s.mean_waiting_time + 0.3]
    pred = AnalyticModel().predict(system)[0]
    assert pred[0] == pytest.approx(sum(leave), rel=1e-9)
    assert pred[2] == pytest.approx(np.dot(leave, times) / sum(leave), rel=1e-9)
    # the devices' sum counts e's and s's responses only, whatever the exit
    assert pred[1] == pytest.approx(at_e.mean_response_time + at_s.mean_response_time, rel=1e-9)


def test_analytic_ranges_on_hand_built_and_published(published):
    graphs = [encode(s) for s, _ in published] + [encode(two_chains()), encode(exits_and_link())]
    pred = AnalyticModel().predict(graphs)
    total = collate(graphs).service_time.numpy()
    assert np.all((pred[:, 0] > 0) & (pred[:, 0] <= 1))
    assert np.all(pred[:, 1] >= total * (1 - 1e-9))


def test_errors():
    for name in ("transformer", ["gat"]):
        with pytest.raises(InvalidParameterError, match=r"'name' parameter of build_model must "
                                                        r"be one of \['analytic'"):
            build_model(name)
    with pytest.raises(InvalidParameterError, match="keyword arguments of ChainNetModel"):
        build_model("chainnet", depth=3)
    with pytest.raises(InvalidParameterError, match="'iterations' parameter of ChainNetModel"):
        build_model("chainnet", iterations=0)
    for seed in (-1, 2**64):
        with pytest.raises(InvalidParameterError, match=r"'seed' parameter of GATModel must be an "
                                                        r"int from 0 to 2\*\*64 - 1"):
            build_model("gat", seed=seed)
    with pytest.raises(InvalidParameterError, match=r"'readout' parameter of ChainNetModel must "
                                                    r"be one of \['hops', 'chain'\]"):
        build_model("chainnet", readout="device")
    with pytest.raises(InvalidParameterError, match=r"^The 'end_to_end' parameter of GCNModel "
                                                    r"must be True or False\. Got 1\.$"):
        build_model("gcn", end_to_end=1)
    with pytest.raises(InvalidParameterError, match=r"dividing hidden \(64\)"):
        build_model("gat", heads=5)
    with pytest.raises(InvalidParameterError, match="'hidden' parameter of MLPModel"):
        build_model("mlp", hidden=1)
    with pytest.raises(InvalidParameterError, match="'graphs' parameter of AnalyticModel.predict"):
        AnalyticModel().predict([])
    with pytest.raises(InvalidParameterError, match="'tolerance' parameter of AnalyticModel"):
        AnalyticModel(tolerance=0)
    assert sorted(MODELS) == ["analytic", "chainnet", "gat", "gcn", "mlp"]
