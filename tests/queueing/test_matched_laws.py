"""DecompositionEvaluator(matched_laws=True): each law replaced by its two-moment
gamma gives the same losses as the exact laws on profiled (lognormal) blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeperf.io import load_scenario
from edgeperf.placement import Costs
from edgeperf.queueing import DecompositionEvaluator

REPO = Path(__file__).parents[2]
CEED = REPO / ".." / "shared" / "data" / "ceed"


@pytest.mark.skipif(not (CEED / "system_profile.json").is_file(),
                    reason="the CEED profile (../shared/data/ceed) is not here")
@pytest.mark.parametrize("cuts", [(20,), (10, 15), (5, 15)])
def test_matched_laws_keep_the_testbed_losses(cuts):
    system = load_scenario(REPO / "examples" / "scenarios" / "testbed_ceed.yaml")
    costs = Costs.of(system)
    sizes = np.diff((0, *cuts)) if cuts[-1] == 20 else np.diff((0, *cuts, 20))
    placed = costs.placed(np.repeat(np.arange(len(sizes)), sizes))
    exact = DecompositionEvaluator().evaluate(placed)
    matched = DecompositionEvaluator(matched_laws=True).evaluate(placed)
    assert matched.loss_probability == pytest.approx(exact.loss_probability, rel=1e-4)
    assert matched.mean_response_time == pytest.approx(exact.mean_response_time, rel=1e-4)
