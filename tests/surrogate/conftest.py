"""Fixtures of the surrogate tests: a few dozen published ChainNet deployments."""

from __future__ import annotations

import pytest

from edgeperf.io import parse_scenario, read_chainnet
from surrogate_cases import DATA


@pytest.fixture(scope="session")
def published():
    """Forty-eight published deployments as (system, labels) pairs."""
    if not (DATA / "numClasses.txt").is_file():
        pytest.skip("the ChainNet data set is not next to the project")
    return [(parse_scenario(s.scenario), s.labels) for s in read_chainnet(DATA, 48)]
