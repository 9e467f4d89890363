"""The twin's calibration: per device, the run's CPU time over the profile's."""

from __future__ import annotations

import dataclasses

import pytest

from edgeperf.exceptions import InvalidParameterError
from edgeperf.io import load_scenario
from edgeperf.queueing import DecompositionEvaluator
from edgeperf.runtime._twin import _calibrated, measured_calibration, twin_report
from runtime_helpers import write_scenario

BLOCKS = ["stem", "s1b0", "s1b1", "s1b2", "s1b3", "s1b4", "s2b0", "s2b1", "s2b2", "s2b3",
          "s2b4", "s3b0", "s3b1", "s3b2", "s3b3", "s3b4"]


@dataclasses.dataclass
class _Run:
    work: dict


def test_the_factor_is_cpu_over_profile_time_per_device():
    run = _Run(work={"a": {"cpu_s": 3.0, "profile_s": 2.0},
                     "b": {"cpu_s": 1.0, "profile_s": 0.0}})
    assert measured_calibration(run) == {"a": 1.5}  # b ran nothing: no factor


def test_calibration_scales_each_device_s_latencies(tmp_path, tiny_model):
    file = write_scenario(tmp_path, tiny_model, rate=5.0,
                          devices=[{"name": "a", "capacity": 4, "speed": 0.5},
                                   {"name": "b", "capacity": 4, "speed": 0.25}],
                          placement={"a": BLOCKS[:8], "b": BLOCKS[8:]},
                          links=[{"source": "a", "target": "b", "bandwidth_bps": 1e9,
                                  "capacity": 10}])
    system = load_scenario(file)
    scaled = _calibrated(system, "main", {"a": 2.0, "b": 3.0})
    a, b = system.device("a"), system.device("b")
    for i, (before, after) in enumerate(zip(system.model.blocks, scaled.model.blocks)):
        device, factor = (a, 2.0) if i < 8 else (b, 3.0)
        assert after.latency_on(device).mean == pytest.approx(
            factor * before.latency_on(device).mean)
    evaluator = DecompositionEvaluator()
    assert evaluator.evaluate(scaled).mean_response_time > \
        evaluator.evaluate(system).mean_response_time


def test_the_report_needs_a_system_a_deployment_and_a_run(tmp_path, tiny_model):
    system = load_scenario(write_scenario(tmp_path, tiny_model, rate=5.0,
                                          devices=[{"name": "a", "capacity": 4}],
                                          placement={"a": BLOCKS}))
    with pytest.raises(InvalidParameterError, match=r"^The 'system' parameter of twin_report "
                       r"must be a System\. Got None\.$"):
        twin_report(None, None, None)
    with pytest.raises(InvalidParameterError, match=r"^The 'deployment' parameter of "
                       r"twin_report must be a Deployment\. Got 'dict'\.$"):
        twin_report(system, {}, None)
