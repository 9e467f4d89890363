"""The models that ship in models/surrogate: they load, know the bounds of
what they were trained on, and on published deployments the ChainNet-regime
one never trained on it beats the analytic decomposition."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeperf.surrogate import AnalyticModel, evaluate_model, from_chainnet, load_model
from surrogate_cases import DATA

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "surrogate" / "chainnet.safetensors"


def test_the_shipped_model_beats_the_analytic_decomposition():
    if not (DATA / "numClasses.txt").is_file():
        pytest.skip("the ChainNet data set is not next to the project")
    samples = from_chainnet(DATA, 300)
    learned = evaluate_model(load_model(SHIPPED), samples)
    analytic = evaluate_model(AnalyticModel(), samples)
    assert learned["chains"] == analytic["chains"] > 500
    assert learned["mape_tput_ratio"] < analytic["mape_tput_ratio"]
    assert learned["mape_response_time"] < analytic["mape_response_time"]


def test_the_shipped_models_keep_the_bounds_of_their_training_regimes():
    """Their domains, from all their training data, are the regimes' bounds
    (docs/background/surrogate.md), rounded outward to three figures."""
    chainnet = load_model(SHIPPED).domain.ranges
    load = chainnet.pop("load")
    assert chainnet == {"chains": (1, 3), "stations": (2, 10), "link_stations": (0, 0),
                        "hops": (2, 6), "capacity": (1, 50), "scv": (0, 0),
                        "exit_probability": (0, 0), "link_share": (0, 0),
                        "upload_links": (0, 0)}
    assert load[0] == 0 and load[1] > 1  # the regime overloads some devices
    ours = load_model(SHIPPED.with_name("chainnet_edgeperf.safetensors")).domain.ranges
    assert ours["scv"] == (0, 2) and ours["exit_probability"] == (0, 0.5)
    assert ours["link_stations"][1] >= 1 and ours["hops"][1] > 6  # link stations add hops
    # links between devices, and a camera's upload before the first on up to every chain
    assert 0 < ours["link_share"][1] < 1 and ours["upload_links"] == (0, 3)
    assert (ours["chains"], ours["capacity"], ours["load"]) == (
        (1, 3), (1, 50), (0, load[1]))
