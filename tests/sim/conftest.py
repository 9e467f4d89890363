"""Scenario mappings shared by the sweep tests."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

EXAMPLE = Path(__file__).parents[2] / "examples" / "scenarios" / "pi_server.yaml"


@pytest.fixture(scope="module")
def pi_server() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


@pytest.fixture(scope="module")
def two_chains(pi_server) -> dict:
    """Two chains sharing the Pi and the server."""
    chain = {k: pi_server[k] for k in ("workload", "model", "placement")}
    chains = [dict(copy.deepcopy(chain), name=n) for n in ("camera", "audio")]
    return {"devices": pi_server["devices"], "links": pi_server["links"], "chains": chains}


