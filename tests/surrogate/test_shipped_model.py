"""The model that ships in models/surrogate: it loads, and on published
deployments it never trained on it beats the analytic decomposition."""

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
