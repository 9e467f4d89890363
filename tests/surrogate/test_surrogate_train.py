"""Training, the MAPE, and saving/loading learned surrogates.

(Named test_surrogate_train.py: tests/earlyexit/test_train.py owns the
module name test_train in pytest's default import mode.)
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from edgeperf._validation import usable_cores
from edgeperf.exceptions import InvalidParameterError, NotFittedError
from edgeperf.io import parse_scenario
from edgeperf.surrogate import random_deployment
from edgeperf.surrogate._domain import Domain
from edgeperf.surrogate._graph import collate, encode
from edgeperf.surrogate._models import AnalyticModel, build_model
from edgeperf.surrogate._store import load_model, save_model
from edgeperf.surrogate._train import mape, train
from surrogate_cases import TWO_LABELS, exits_and_link, two_chains

FAST = {"lr": 5e-3, "batch_size": 8, "patience": 50, "progress": False}


@pytest.fixture(scope="module")
def graphs(published):
    return [encode(s, labels) for s, labels in published]


@pytest.fixture(scope="module")
def ours():
    """Forty deployments of our regime (exits, link stations, variable service)
    labelled by the analytic baseline: cheap labels that include an end-to-end time."""
    rng, graphs = np.random.default_rng(3), []
    for _ in range(40):
        system = parse_scenario(random_deployment(rng, "edgeperf"), "<drawn>")
        rows = AnalyticModel().solve(system)
        graphs.append(encode(system, [{"tput_ratio": t, "response_time": r,
                                       "response_time_e2e": e} for t, r, e in rows]))
    return graphs


def test_mape_by_hand():
    pred, true = np.array([[0.9, 2.0], [0.5, 3.0]]), np.array([[1.0, 1.0], [0.5, 2.0]])
    assert mape(pred, true) == pytest.approx({"tput_ratio": 5.0, "response_time": 75.0,
                                              "mean": 40.0})


def test_training_lowers_validation_error(graphs):
    train_set, val = graphs[:32], collate(graphs[32:])
    model = build_model("chainnet", hidden=16, iterations=2)
    model.fit_normalization(collate(train_set))
    with torch.no_grad():
        before = mape(model(val).numpy(), val.target[:, :2].numpy())["mean"]
    report = train(model, train_set, graphs[32:], epochs=15, **FAST)
    after = mape(model.predict(graphs[32:]), val.labels()[:, :2])["mean"]
    assert after == pytest.approx(report.best_val_mape["mean"], rel=1e-4)
    assert after < 0.6 * before
    assert bool(model.fitted) and report.epochs == 15 and 1 <= report.best_epoch <= 15
    assert report.graphs_per_second > 0 and model.training_report["best_epoch"] == report.best_epoch


def test_an_end_to_end_model_learns_its_third_target_and_keeps_it_when_saved(ours, tmp_path):
    val = collate(ours[32:])
    model = build_model("chainnet", hidden=16, iterations=2, end_to_end=True)
    model.fit_normalization(collate(ours[:32]))
    with torch.no_grad():
        before = mape(model(val).numpy(), val.target.numpy())["response_time_e2e"]
    report = train(model, ours[:32], ours[32:], epochs=15, **FAST)
    assert set(report.best_val_mape) == {"tput_ratio", "response_time", "response_time_e2e",
                                         "mean"}
    pred = model.predict(val)
    assert pred.shape == (val.num_chains, 3)
    after = mape(pred, val.labels())
    assert after["mean"] == pytest.approx(report.best_val_mape["mean"], rel=1e-4)
    assert after["response_time_e2e"] < 0.6 * before
    weights, described = save_model(model, tmp_path)
    assert json.loads(described.read_text())["config"]["end_to_end"] is True
    again = load_model(weights)
    assert again.end_to_end and np.array_equal(again.predict(val), pred)


def test_an_end_to_end_model_needs_end_to_end_labels(graphs):
    model = build_model("chainnet", hidden=8, end_to_end=True)
    with pytest.raises(InvalidParameterError, match=re.escape(
            "The 'train_graphs' parameter of train must be deployments labelled with "
            "'response_time_e2e' for a model with end_to_end=True (ChainNet's published data "
            "has no such label). Got '8 of 8 without it'.")):
        train(model, graphs[:8], graphs[8:10], **FAST)
    assert not bool(model.fitted)


def test_same_seed_same_training(graphs):
    runs = []
    for _ in range(2):
        model = build_model("mlp", hidden=8)
        runs.append(train(model, graphs[:16], graphs[16:24], epochs=3, seed=7, **FAST).train_loss)
    assert runs[0] == runs[1]


def test_early_stopping_and_progress_bar(graphs, capsys):
    model = build_model("gcn", hidden=8)
    report = train(model, graphs[:8], graphs[8:16], epochs=50, lr=1.0, batch_size=4, patience=2,
                   progress=True)
    assert report.stopped_early and report.epochs == report.best_epoch + 2
    assert "training" in capsys.readouterr().out


def test_diverged_training_is_one_clear_error_and_keeps_the_weights(graphs):
    model = build_model("gat", hidden=8)  # at this rate every validation MAPE is NaN
    before = {k: t.clone() for k, t in model.state_dict().items()}
    with pytest.raises(InvalidParameterError, match="'lr' parameter of train .* not finite "
                       r"after any epoch.*Got 1000000\.0"):
        train(model, graphs[:16], graphs[16:24], epochs=3, lr=1e6, batch_size=4, progress=False)
    assert not bool(model.fitted) and model.training_report is None
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[key]), key


@pytest.mark.parametrize("name", ["chainnet", "gat"])
def test_save_load_round_trip(name, tmp_path):
    systems = [two_chains(), exits_and_link(), two_chains(2.0)]
    labelled = [encode(two_chains(), TWO_LABELS)] * 4
    model = build_model(name, hidden=8, seed=1)
    train(model, labelled, labelled[:1], epochs=2, **FAST)
    weights, described = save_model(model, tmp_path, provenance={"data": "hand-built"})
    assert (weights.name, described.name) == ("chainnet.safetensors", "chainnet.json")
    text = json.loads(described.read_text())
    assert text["model"] == name and text["config"]["hidden"] == 8
    assert text["provenance"] == {"data": "hand-built"} and text["training"]["epochs"] == 2
    assert len(text["normalization"]["chain"]["mean"]) == len(text["normalization"]["chain"]
                                                               ["features"])
    assert text["domain"] == Domain.of(labelled[0]).to_dict()
    for target in (tmp_path, weights, described):
        again = load_model(target)
        assert np.array_equal(again.predict(systems), model.predict(systems))
        assert again.domain == model.domain
    save_model(model, tmp_path / "other.bin")
    assert (tmp_path / "other.safetensors").is_file() and (tmp_path / "other.json").is_file()


def test_train_errors(graphs):
    model = build_model("mlp", hidden=8)
    with pytest.raises(InvalidParameterError, match="'epochs' parameter of train must be an int"):
        train(model, graphs[:4], graphs[4:8], epochs=0)
    with pytest.raises(InvalidParameterError, match="'lr' parameter of train"):
        train(model, graphs[:4], graphs[4:8], lr=-1.0)
    with pytest.raises(InvalidParameterError, match=r"^The 'lr' parameter of train must be a "
                       r"finite number > 0 and <= 3\.40282e\+38\. Got 1e\+300\.$"):
        train(model, graphs[:4], graphs[4:8], lr=1e300)  # torch's RuntimeError
    with pytest.raises(InvalidParameterError, match=r"'seed' parameter of train must be an int "
                                                    r"from 0 to 2\*\*64 - 1"):
        train(model, graphs[:4], graphs[4:8], seed=2**64)  # past what torch's generators take
    with pytest.raises(InvalidParameterError, match=r"'threads' parameter of train must be an "
                                                    r"int from 1 to \d+, the cores this machine"):
        train(model, graphs[:4], graphs[4:8], threads=usable_cores() + 1)
    with pytest.raises(InvalidParameterError, match="AnalyticModel needs no training"):
        train(AnalyticModel(), graphs[:4], graphs[4:8])
    with pytest.raises(InvalidParameterError, match="'val_graphs' parameter of train must be "
                                                    "a non-empty list of DeploymentGraph with"):
        train(model, graphs[:4], [encode(two_chains())])
    with pytest.raises(InvalidParameterError, match=r"'pred' parameter of mape must be an array"):
        mape(np.ones((3, 2)), np.ones((2, 2)))
    with pytest.raises(InvalidParameterError, match="'true' parameter of mape must be finite "
                                                    "positive values. Got 0.0."):
        mape(np.ones((2, 2)), np.zeros((2, 2)))
    # these returned NaN or inf
    with pytest.raises(InvalidParameterError, match=r"^The 'pred' parameter of mape must be "
                       r"finite values\. Got nan\.$"):
        mape(np.full((2, 2), np.nan), np.ones((2, 2)))
    with pytest.raises(InvalidParameterError, match=r"^The 'true' parameter of mape must be "
                       r"finite positive values\. Got inf\.$"):
        mape(np.ones((2, 2)), np.full((2, 2), np.inf))
    with pytest.raises(InvalidParameterError, match=r"'pred' parameter of mape must be an array "
                       r"\[n >= 1, 2\]"):
        mape(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(InvalidParameterError, match=r"^The 'pred' parameter of mape must be an "
                       r"array \[n, 2\] or \[n, 3\] of numbers\. Got 'x'\.$"):
        mape("x", np.ones((2, 2)))


def test_store_errors(tmp_path):
    with pytest.raises(InvalidParameterError, match="AnalyticModel has nothing to save"):
        save_model(AnalyticModel(), tmp_path)
    unfitted = build_model("mlp", hidden=8)
    with pytest.raises(InvalidParameterError, match="a fitted model"):
        save_model(unfitted, tmp_path)
    unfitted.fitted.fill_(True)
    with pytest.raises(InvalidParameterError, match="in an existing directory"):
        save_model(unfitted, tmp_path / "no" / "such")
    with pytest.raises(InvalidParameterError, match="JSON-able mapping"):
        save_model(unfitted, tmp_path, provenance={"bad": object()})
    with pytest.raises(InvalidParameterError, match=r"^The 'provenance' parameter of save_model "
                       r"must be None or a JSON-able mapping\. Got 'str'\.$"):
        save_model(unfitted, tmp_path, provenance="run 3")  # dict('run 3') raised a ValueError
    (tmp_path / "pair.json").mkdir()  # the pair is written whole or not at all
    with pytest.raises(InvalidParameterError, match=r"a place for the model's two files "
                       r"\(pair\.json is a folder\)"):
        save_model(unfitted, tmp_path / "pair.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pair.json"]
    (tmp_path / "pair.json").rmdir()
    with pytest.raises(InvalidParameterError, match="its weights file is missing"):
        load_model(tmp_path / "missing")
    save_model(unfitted, tmp_path)
    (tmp_path / "chainnet.json").write_text('{"format": "other"}')
    with pytest.raises(InvalidParameterError, match="a description in format"):
        load_model(tmp_path)
    (tmp_path / "chainnet.json").unlink()
    with pytest.raises(InvalidParameterError, match="its JSON description is missing"):
        load_model(tmp_path)
    save_model(unfitted, tmp_path)
    text = json.loads((tmp_path / "chainnet.json").read_text())
    text["config"]["hidden"] = 16
    (tmp_path / "chainnet.json").write_text(json.dumps(text))
    with pytest.raises(InvalidParameterError, match="weights that fit the described model"):
        load_model(tmp_path)
    text["config"]["hidden"] = 8
    features = text["normalization"]["chain"]["features"]
    text["normalization"]["chain"]["features"] = ["an_older_feature"]
    (tmp_path / "chainnet.json").write_text(json.dumps(text))
    with pytest.raises(InvalidParameterError, match="trained on this version's graph features"):
        load_model(tmp_path)
    text["normalization"]["chain"]["features"] = features
    for key, tampered in (("model", ["mlp"]), ("normalization", [1])):  # TypeError, AttributeError
        (tmp_path / "chainnet.json").write_text(json.dumps({**text, key: tampered}))
        with pytest.raises(InvalidParameterError, match=r"^The 'path' parameter of load_model"):
            load_model(tmp_path)
    text["domain"] = {"chains": [3, 1]}
    (tmp_path / "chainnet.json").write_text(json.dumps(text))
    with pytest.raises(InvalidParameterError, match=r"a description whose domain is valid "
                       r"\(The 'ranges\[chains\]' parameter of Domain must be a \(low, high\)"):
        load_model(tmp_path)
    del text["domain"]  # a model saved before domains were kept: it loads without one
    (tmp_path / "chainnet.json").write_text(json.dumps(text))
    assert load_model(tmp_path).domain is None
    (tmp_path / "chainnet.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(InvalidParameterError, match="a valid safetensors file"):
        load_model(tmp_path)


def test_the_domain_holds_the_training_and_validation_data_and_grows_with_more():
    model = build_model("mlp", hidden=8)
    assert model.domain is None
    fit, val = encode(two_chains(), TWO_LABELS), encode(exits_and_link(), [TWO_LABELS[0]])
    train(model, [fit], [val], epochs=1, **FAST)
    assert model.domain == Domain.of(collate([fit, val])) != Domain.of(fit)
    more = encode(two_chains(), [{"tput_ratio": 0.5, "response_time": 2.0}] * 2)  # hops 2, 3
    before = Domain({**model.domain.ranges, "load": (0.0, 50.0), "hops": (5.0, 9.0)})
    model.domain = before  # training on keeps what it was trained on and adds the new data
    train(model, [more], [more], epochs=1, **FAST)
    assert model.domain == Domain({**before.ranges, "hops": (2.0, 9.0)})


def test_loaded_model_is_fitted_and_untrained_is_not(tmp_path):
    model = build_model("gcn", hidden=8)
    with pytest.raises(NotFittedError):
        model.predict(two_chains())
    labelled = [encode(two_chains(), TWO_LABELS)] * 2
    train(model, labelled, labelled, epochs=1, **FAST)
    save_model(model, tmp_path)
    assert bool(load_model(tmp_path).fitted)
