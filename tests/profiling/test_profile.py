"""Profile: law fitting, statistics, the DNN it yields, and its JSON file (round trip, errors)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from edgeperf.dists import Deterministic, Exponential, Gamma, Lognormal, Sum
from edgeperf.exceptions import InvalidParameterError
from edgeperf.io import ScenarioError
from edgeperf.model import DNN
from edgeperf.profiling import (DETERMINISTIC_SCV, BlockProfile, HeadProfile, LatencyStats, Profile,
                                fit_law, load_profile, profile_from_dict)


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def stats(mean: float, law=None) -> LatencyStats:
    return LatencyStats(n=100, mean=mean, var=(0.1 * mean) ** 2, p50=mean, p95=1.2 * mean,
                        p99=1.5 * mean, law=law or Gamma(100.0, mean))


def head(mean: float) -> HeadProfile:
    return HeadProfile(latency=stats(mean, Lognormal(mean, 0.05)), flops=1280, param_bytes=2600)


def small_profile() -> Profile:
    """Four blocks; exits after b1 and after the last block (the final classifier)."""
    return Profile(
        name="toy", source="measured on testhost", input_shape=(3, 32, 32), num_classes=10,
        host={"node": "testhost", "torch_threads": "1"},
        blocks=(
            BlockProfile(name="b0", latency=stats(0.002, Deterministic(0.002)),
                         output_bytes=65536, flops=1_000_000, param_bytes=1792),
            BlockProfile(name="b1", latency=stats(0.003), output_bytes=65536, flops=2_000_000,
                         param_bytes=36928, exit=head(0.0004)),
            BlockProfile(name="b2", latency=stats(0.004, Exponential(0.004)), output_bytes=32768,
                         flops=None, param_bytes=None),
            BlockProfile(name="b3", latency=stats(0.005, Lognormal(0.005, 0.2)),
                         output_bytes=32768, flops=3, param_bytes=4, exit=head(0.0005)),
        ))


# --------------------------------------------------------------------------- fitting


def test_tiny_scv_fits_a_deterministic_law_with_the_sample_mean():
    samples = np.full(50, 0.01) + np.linspace(-1e-5, 1e-5, 50)
    law = fit_law(samples)
    assert law == Deterministic(float(samples.mean()))


def test_one_sample_fits_a_deterministic_law():
    assert fit_law([0.25]) == Deterministic(0.25)


@pytest.mark.parametrize("kind", ["gamma", "lognormal"])
def test_fit_law_keeps_mean_and_scv_and_picks_the_likelier_family(kind):
    rng = np.random.default_rng(3)
    truth = Gamma(2.0, 0.01) if kind == "gamma" else Lognormal(0.01, 2.0)
    samples = truth.sample(rng, 4000)
    law = fit_law(samples)
    assert type(law) is type(truth)
    assert law.mean == pytest.approx(samples.mean(), rel=1e-12)
    assert law.scv == pytest.approx(samples.var(ddof=1) / samples.mean() ** 2, rel=1e-9)
    assert law.scv >= DETERMINISTIC_SCV


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_fit_law_is_scale_free_at_the_extremes_of_floats(scale):
    # the squared mean underflowed (ZeroDivisionError) and the sum overflowed (a NaN shape)
    law = fit_law([1.0 * scale, 1.7 * scale])
    assert law.mean == pytest.approx(1.35 * scale, rel=1e-12)
    assert law.scv == pytest.approx(0.245 / 1.35**2, rel=1e-12)


@pytest.mark.parametrize("samples, got", [
    ([], "[]"), ([0.1, -0.1], "[0.1, -0.1]"), ([0.1, float("nan")], "[0.1, nan]"),
    (np.zeros(7), "[0.0, 0.0, 0.0, 0.0, 0.0, '...']"), ("fast", "'fast'"),
    ([[0.1], [0.2]], "[0.1, 0.2]"),
])
def test_fit_law_rejects_samples_that_are_not_positive_latencies(samples, got):
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'samples' parameter of fit_law must be a non-empty list of finite numbers > 0. "
            f"Got {got}.")):
        fit_law(samples)


def test_latency_stats_from_samples():
    samples = np.arange(1, 101) * 1e-3
    s = LatencyStats.from_samples(samples)
    assert s.n == 100
    assert s.mean == pytest.approx(0.0505)
    assert s.var == pytest.approx(samples.var(ddof=1))
    assert (s.p50, s.p95, s.p99) == pytest.approx(tuple(np.percentile(samples, [50, 95, 99])))
    assert s.law == fit_law(samples)
    assert s.scv == pytest.approx(s.var / s.mean**2)


@pytest.mark.parametrize("change, message", [
    ({"n": 0}, "The 'n' parameter of LatencyStats must be an int >= 1. Got 0."),
    ({"mean": 0.0}, "The 'mean' parameter of LatencyStats must be a finite number > 0. Got 0.0."),
    ({"var": -1.0}, "The 'var' parameter of LatencyStats must be a finite number >= 0. Got -1.0."),
    ({"p95": 0.5}, "The 'p99' value of LatencyStats must be percentiles with p50 <= p95 <= p99. "
                   "Got [0.01, 0.5, 0.015]."),
    ({"p50": -0.01}, "The 'p50' parameter of LatencyStats must be a finite number >= 0. "
                     "Got -0.01."),
    ({"n": None}, None),
    ({"law": 0.01}, "The 'law' parameter of LatencyStats must be a service law from "
                    "edgeperf.dists. Got 0.01."),
])
def test_latency_stats_rejects_bad_values(change, message):
    fields = {"n": 10, "mean": 0.01, "var": 1e-6, "p50": 0.01, "p95": 0.012, "p99": 0.015,
              "law": Deterministic(0.01)} | change
    if message is None:  # allowed: moments imported without a sample count
        assert LatencyStats(**fields).n is None
        return
    with pytest.raises(InvalidParameterError, match=exactly(message)):
        LatencyStats(**fields)


@pytest.mark.parametrize("make, message", [
    (lambda: BlockProfile(name="", latency=stats(0.1), output_bytes=1),
     "The 'name' parameter of BlockProfile must be a non-empty string. Got ''."),
    (lambda: BlockProfile(name="b", latency=0.1, output_bytes=1),
     "The 'latency' parameter of BlockProfile must be a LatencyStats. Got 0.1."),
    (lambda: BlockProfile(name="b", latency=stats(0.1), output_bytes=-1),
     "The 'output_bytes' parameter of BlockProfile must be an int >= 0. Got -1."),
    (lambda: BlockProfile(name="b", latency=stats(0.1), output_bytes=1, flops=1.5),
     "The 'flops' parameter of BlockProfile must be an int >= 0. Got 1.5."),
    (lambda: BlockProfile(name="b", latency=stats(0.1), output_bytes=1, exit="head"),
     "The 'exit' parameter of BlockProfile must be a HeadProfile or None. Got 'head'."),
    (lambda: HeadProfile(latency=None),
     "The 'latency' parameter of HeadProfile must be a LatencyStats. Got None."),
    (lambda: Profile(name="p", source=" ", input_shape=(3,), num_classes=2, blocks=()),
     "The 'source' parameter of Profile must be a non-empty string. Got ' '."),
    (lambda: HeadProfile(latency=stats(0.1), param_bytes=-2),
     "The 'param_bytes' parameter of HeadProfile must be an int >= 0. Got -2."),
    (lambda: Profile(name="p", source="s", input_shape=(3, 0), num_classes=10, blocks=()),
     "The 'input_shape' parameter of Profile must be a non-empty list of ints >= 1. Got (3, 0)."),
    (lambda: Profile(name="p", source="s", input_shape=(3,), num_classes=0, blocks=()),
     "The 'num_classes' parameter of Profile must be an int >= 1. Got 0."),
    (lambda: Profile(name="p", source="s", input_shape=(3,), num_classes=2, host={"a": 1},
                     blocks=()),
     "The 'host' parameter of Profile must be a mapping of strings to strings. Got {'a': 1}."),
    (lambda: Profile(name="p", source="s", input_shape=(3,), num_classes=2, blocks=()),
     "The 'blocks' parameter of Profile must be a non-empty list of BlockProfile. Got ()."),
    (lambda: Profile(name="p", source="s", input_shape=(3,), num_classes=2,
                     blocks=small_profile().blocks[:2] * 2),
     "The 'blocks' parameter of Profile must be blocks with unique names. Got ['b0', 'b1']."),
])
def test_profile_objects_reject_bad_values(make, message):
    with pytest.raises(InvalidParameterError, match=exactly(message)):
        make()


# --------------------------------------------------------------------------- views and the DNN


def test_exits_and_path_means():
    p = small_profile()
    assert p.names == ("b0", "b1", "b2", "b3")
    assert p.exits == ("b1", "b3")
    assert p.path_mean_s("b1") == pytest.approx(0.002 + 0.003 + 0.0004)
    assert p.path_mean_s("b3") == pytest.approx(0.014 + 0.0005)
    assert p.path_mean_s("b3", earlier_heads=True) == pytest.approx(0.014 + 0.0009)
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'exit_block' parameter of Profile.path_mean_s must be one of ['b1', 'b3']. "
            "Got 'b2'.")):
        p.path_mean_s("b2")


def test_to_dnn_sums_block_and_head_laws_and_sets_exit_probabilities():
    p = small_profile()
    dnn = p.to_dnn({"b1": 0.4})
    assert isinstance(dnn, DNN)
    assert dnn.names == p.names
    b0, b1, b2, b3 = dnn.blocks
    assert b0.latency == Deterministic(0.002) and b0.exit_probability is None
    assert b1.latency == Sum((Gamma(100.0, 0.003), Lognormal(0.0004, 0.05)))
    assert b1.exit_probability == 0.4
    assert b2.latency == Exponential(0.004) and b2.exit_probability is None
    assert b3.latency == Sum((Lognormal(0.005, 0.2), Lognormal(0.0005, 0.05)))
    assert b3.exit_probability is None  # the final exit takes every job reaching it
    assert [b.output_bytes for b in dnn.blocks] == [65536, 65536, 32768, 32768]
    assert b1.latency.mean == pytest.approx(0.0034)


def test_to_dnn_gives_untaken_exits_probability_zero():
    dnn = small_profile().to_dnn()
    assert [b.exit_probability for b in dnn.blocks] == [None, 0.0, None, None]


@pytest.mark.parametrize("given, bad", [({"b2": 0.1}, ["b2"]), ({"b3": 0.1}, ["b3"]),
                                        ({"zz": 0.1, "b0": 0.2}, ["b0", "zz"])])
def test_to_dnn_rejects_probabilities_for_blocks_without_an_intermediate_exit(given, bad):
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'exit_probabilities' parameter of Profile.to_dnn must be keyed by exit blocks "
            "among ['b1'] (the last block's exit takes every job reaching it). "
            f"Got {bad!r}.")):
        small_profile().to_dnn(given)


@pytest.mark.parametrize("name", ["exit_probabilities", "device_profiles"])
def test_to_dnn_rejects_what_is_not_a_mapping(name):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The {name!r} parameter of Profile.to_dnn must be None or a mapping by name. "
            "Got 'list'.")):
        small_profile().to_dnn(**{name: [0.5]})


def test_to_dnn_rejects_a_probability_above_one():
    with pytest.raises(InvalidParameterError, match="^The 'exit_probability' parameter of Block"):
        small_profile().to_dnn({"b1": 1.5})


# --------------------------------------------------------------------------- JSON


def test_json_round_trip_is_exact(tmp_path):
    p = small_profile()
    file = p.save(tmp_path / "toy.json")
    assert file == tmp_path / "toy.json"
    assert load_profile(file) == p
    assert load_profile(str(file)) == p
    assert profile_from_dict(json.loads(p.to_json())) == p
    with pytest.raises(InvalidParameterError, match=re.escape(
            "The 'path' parameter of Profile.save must be a file in an existing folder. ")):
        p.save(tmp_path / "no" / "toy.json")
    assert [f.name for f in tmp_path.iterdir()] == ["toy.json"]  # no temporary file left


def test_json_layout():
    data = json.loads(small_profile().to_json())
    assert data["format"] == "edgeperf-profile" and data["version"] == 1
    assert data["input_shape"] == [3, 32, 32]
    block = data["blocks"][1]
    assert set(block) == {"name", "latency", "output_bytes", "flops", "param_bytes", "exit"}
    assert block["latency"]["law"] == {"kind": "gamma", "shape": 100.0, "mean": 0.003}
    assert block["exit"]["latency"]["law"] == {"kind": "lognormal", "mean": 0.0004, "scv": 0.05}
    assert data["blocks"][0]["exit"] is None


def test_save_overwrites_atomically(tmp_path):
    file = tmp_path / "p.json"
    file.write_text("old", encoding="utf-8")
    small_profile().save(file)
    assert load_profile(file) == small_profile()


def _write(tmp_path, data) -> str:
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return str(file)


def _broken(edit):
    data = json.loads(small_profile().to_json())
    edit(data)
    return data


@pytest.mark.parametrize("edit, tail", [
    (lambda d: d["blocks"][1]["latency"].update(mean=-1.0),
     "blocks[1].latency.mean: The 'mean' parameter of LatencyStats must be a finite number > 0. "
     "Got -1.0."),
    (lambda d: d["blocks"][1]["latency"]["law"].update(shape=0),
     "blocks[1].latency.law.shape: The 'shape' parameter of Gamma must be a finite number > 0. "
     "Got 0.0."),
    (lambda d: d["blocks"][3]["exit"]["latency"].pop("p99"),
     "blocks[3].exit.latency.p99: is required but missing."),
    (lambda d: d["blocks"][0].update(output_bytes="big"),
     "blocks[0].output_bytes: Input should be a valid integer. Got 'big'."),
    (lambda d: d["blocks"][0].update(colour="red"),
     "blocks[0].colour: is not a known field. Got 'red'."),
    (lambda d: d.pop("format"), "format: is required but missing."),
    (lambda d: d.update(version=2), "version: Input should be 1. Got 2."),
    (lambda d: d["blocks"].append(d["blocks"][0]),
     "blocks: The 'blocks' parameter of Profile must be blocks with unique names. Got ['b0']."),
])
def test_a_bad_profile_file_gets_one_line_naming_file_and_field(tmp_path, edit, tail):
    file = _write(tmp_path, _broken(edit))
    with pytest.raises(ScenarioError, match=exactly(f"{file}: {tail}")):
        load_profile(file)


def test_load_profile_refuses_what_is_not_a_path():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'path' parameter of load_profile must be a file path (str or os.PathLike). "
            "Got None.")):
        load_profile(None)


def test_several_problems_are_counted(tmp_path):
    def edit(d):
        d["blocks"][0]["latency"].pop("mean")
        d["blocks"][1]["latency"].pop("var")
    file = _write(tmp_path, _broken(edit))
    with pytest.raises(ScenarioError, match=exactly(
            f"{file}: blocks[0].latency.mean: is required but missing. (and 1 more problem)")):
        load_profile(file)


def test_a_missing_file(tmp_path):
    file = tmp_path / "none.json"
    with pytest.raises(ScenarioError, match=exactly(
            f"{file}: cannot be read: No such file or directory.")):
        load_profile(file)


def test_a_file_that_is_not_json(tmp_path):
    file = _write(tmp_path, '{"format": "edgeperf-profile",\n  oops}')
    with pytest.raises(ScenarioError, match=exactly(
            f"{file}: is not valid JSON: Expecting property name enclosed in double quotes "
            "at line 2 column 3.")):
        load_profile(file)


def test_a_file_that_is_not_utf8(tmp_path):
    file = tmp_path / "binary.json"
    file.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ScenarioError, match="^" + re.escape(f"{file}: is not UTF-8 text: byte 0")):
        load_profile(file)


def test_a_json_list_is_not_a_profile(tmp_path):
    file = _write(tmp_path, [1, 2])
    with pytest.raises(ScenarioError, match=exactly(
            f"{file}: (top level): must be a mapping (an edgeperf profile). Got list.")):
        load_profile(file)


def test_numbers_written_to_json_read_back_exactly(tmp_path):
    weird = math.pi * 1e-7
    p = Profile(name="x", source="s", input_shape=(1,), num_classes=2,
                blocks=(BlockProfile(name="only", latency=stats(weird, Lognormal(weird, 1 / 3)),
                                     output_bytes=0, exit=head(weird / 7)),))
    assert load_profile(p.save(tmp_path / "x.json")) == p
