"""Fixtures of the runtime tests (helpers live in runtime_helpers.py)."""

from __future__ import annotations

import pytest

from runtime_helpers import make_model_dir


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """One small trained model folder for the whole session."""
    return make_model_dir(tmp_path_factory.mktemp("tiny-model"))
