"""The synthetic problem as a fixture (builders in tests/exit_problems.py)."""

import pytest

from exit_problems import make_problem
from edgeperf.schedule import ExitProblem


@pytest.fixture
def problem() -> ExitProblem:
    return make_problem()
