"""Judging a surrogate: MAPE against labels by hand, chains without a
percentage error left out, and the timing it reports."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgeperf.exceptions import InvalidParameterError
from edgeperf.surrogate import AnalyticModel, Sample, evaluate_model
from surrogate_cases import TWO_CHAINS


class Fixed:
    """A 'model' that predicts the same (tput_ratio, response_time[, end to end])
    for every chain."""

    def __init__(self, tput: float, response: float, *e2e: float) -> None:
        self.row = (tput, response, *e2e)

    def predict(self, graphs):  # noqa: ANN001, ANN201
        return np.array([self.row] * graphs.num_chains)


def sample(labels):  # noqa: ANN001, ANN201
    full = tuple({"response_time_e2e": float("nan"), **x, "throughput": float("nan")}
                 for x in labels)
    return Sample(scenario=TWO_CHAINS, labels=full, device_loss={})


def test_mape_by_hand_and_chains_left_out():
    items = [sample([{"tput_ratio": 0.8, "response_time": 2.0},
                     {"tput_ratio": 1.0, "response_time": 1.0}]),
             sample([{"tput_ratio": 0.0, "response_time": 1.0},  # no percentage error
                     {"tput_ratio": 0.5, "response_time": 4.0}])]
    r = evaluate_model(Fixed(1.0, 2.0), items, batch=1)
    assert r["chains"] == 3 and r["chains_left_out"] == 1
    assert r["mape_tput_ratio"] == pytest.approx(100 * (0.25 + 0 + 1.0) / 3)
    assert r["mape_response_time"] == pytest.approx(100 * (0 + 1.0 + 0.5) / 3)
    assert r["mae_tput_ratio"] == pytest.approx((0.2 + 0 + 0.5) / 3)
    assert r["mae_response_time"] == pytest.approx((0 + 1.0 + 2.0) / 3)


def test_the_end_to_end_error_on_the_chains_labelled_with_it():
    items = [sample([{"tput_ratio": 0.8, "response_time": 2.0, "response_time_e2e": 4.0},
                     {"tput_ratio": 1.0, "response_time": 1.0}]),  # no end-to-end label
             sample([{"tput_ratio": 0.0, "response_time": 1.0, "response_time_e2e": 1.0},
                     {"tput_ratio": 0.5, "response_time": 4.0, "response_time_e2e": 2.5}])]
    r = evaluate_model(Fixed(1.0, 2.0, 3.0), items)
    # the chain left out for its throughput ratio is left out here too
    assert r["chains_e2e"] == 2
    assert r["mape_response_time_e2e"] == pytest.approx(100 * (0.25 + 0.2) / 2)
    assert r["mae_response_time_e2e"] == pytest.approx((1.0 + 0.5) / 2)
    assert r["mape_response_time"] == evaluate_model(Fixed(1.0, 2.0), items)["mape_response_time"]
    assert "mape_response_time_e2e" not in evaluate_model(Fixed(1.0, 2.0), items)
    unlabelled = [sample([{"tput_ratio": 1.0, "response_time": 1.0}] * 2)]
    assert "chains_e2e" not in evaluate_model(Fixed(1.0, 2.0, 3.0), unlabelled)


def test_the_parity_plot_has_an_end_to_end_panel_where_every_chain_has_that_label(tmp_path):
    from matplotlib import image

    labelled = [sample([{"tput_ratio": 0.8, "response_time": 2.0, "response_time_e2e": 4.0},
                        {"tput_ratio": 1.0, "response_time": 1.0, "response_time_e2e": 1.5}])]
    unlabelled = [sample([{"tput_ratio": 1.0, "response_time": 1.0}] * 2)]
    widths = {}
    for name, model, items in (("two", Fixed(1.0, 2.0), labelled),
                               ("three", Fixed(1.0, 2.0, 3.0), labelled),
                               ("partly", Fixed(1.0, 2.0, 3.0), labelled + unlabelled)):
        evaluate_model(model, items, plot=tmp_path / f"{name}.png")
        widths[name] = image.imread(tmp_path / f"{name}.png").shape[1]
    assert widths["partly"] == widths["two"] and 1.4 < widths["three"] / widths["two"] < 1.6


def test_timing_is_encoding_plus_forward():
    items = [sample([{"tput_ratio": 1.0, "response_time": 1.0}] * 2)] * 3
    r = evaluate_model(AnalyticModel(), items, batch=2)
    assert r["inference_s_per_deployment"] == pytest.approx(
        r["encode_s_per_deployment"] + r["forward_s_per_deployment"])
    assert min(r["encode_s_per_deployment"], r["forward_s_per_deployment"],
               r["parse_s_per_deployment"]) > 0


def test_deployments_outside_the_models_domain_are_counted():
    from edgeperf.io import parse_scenario
    from edgeperf.surrogate import Domain, encode

    items = [sample([{"tput_ratio": 1.0, "response_time": 1.0}] * 2)] * 3
    model = Fixed(1.0, 1.0)
    assert evaluate_model(model, items)["deployments_outside_domain"] is None  # keeps none
    model.domain = Domain.of(encode(parse_scenario(TWO_CHAINS)))
    assert evaluate_model(model, items, batch=2)["deployments_outside_domain"] == 0
    model.domain = Domain({**model.domain.ranges, "capacity": (1, 3)})  # d3 has 4
    assert evaluate_model(model, items, batch=2)["deployments_outside_domain"] == 3


def test_errors():
    lost = sample([{"tput_ratio": 0.0, "response_time": 1.0}] * 2)
    with pytest.raises(InvalidParameterError, match=r"'samples' parameter of evaluate_model must "
                       r"be deployments with at least one chain whose true .*Got 'none in 1 "
                       r"deployment\(s\)'"):
        evaluate_model(Fixed(1.0, 2.0), [lost])
    good = sample([{"tput_ratio": 1.0, "response_time": 1.0}] * 2)
    with pytest.raises(InvalidParameterError, match=r"'model' parameter of evaluate_model must be "
                       r"a model whose predictions are finite"):
        evaluate_model(Fixed(float("nan"), 2.0), [good])
    with pytest.raises(InvalidParameterError, match="non-empty list of labelled deployments"):
        evaluate_model(AnalyticModel(), [])
    with pytest.raises(InvalidParameterError, match=r"'samples' parameter of evaluate_model must "
                       r"be a non-empty list of labelled .*Got 'NoneType'\."):
        evaluate_model(AnalyticModel(), None)
    with pytest.raises(InvalidParameterError, match=r"'plot' parameter of evaluate_model must "
                       r"be a file path .*Got 3\."):
        evaluate_model(AnalyticModel(), [good], plot=3)
    with pytest.raises(InvalidParameterError, match="'batch' parameter of evaluate_model"):
        evaluate_model(AnalyticModel(), [sample([{"tput_ratio": 1, "response_time": 1}] * 2)],
                       batch=0)
    with pytest.raises(InvalidParameterError, match=r"^The 'model' parameter of evaluate_model "
                       r"must be a surrogate model \(load_model, build_model\)\. Got None\.$"):
        evaluate_model(None, [good])  # was an AttributeError


@pytest.mark.parametrize("labels", [
    (),  # an AxisError
    ({"tput_ratio": 1.0, "response_time": 1.0},) * 3,  # more labels than chains: IndexError
    ({"tput": 1.0, "response_time": 1.0},) * 2,  # a KeyError
    ({"tput_ratio": "1", "response_time": 1.0},) * 2,  # numpy's UFuncTypeError
])
def test_labels_that_do_not_fit_the_deployment_are_named(labels):
    # any object with scenario and labels is taken (Sample checks its own)
    bad = SimpleNamespace(scenario=TWO_CHAINS, labels=labels)
    with pytest.raises(InvalidParameterError, match=r"^The 'samples' parameter of evaluate_model "
                       r"must be labels of sample 0: one mapping per chain \(2\) with numbers "
                       r"\['tput_ratio', 'response_time'\]\. Got "):
        evaluate_model(Fixed(1.0, 2.0), [bad])
