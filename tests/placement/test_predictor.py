"""The regression latency predictor: it recovers a known law, beats the naive
seconds-per-FLOP ratio on layers timed on this host, and predicts the profile
of a tier a model never ran on."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch


from edgeperf.earlyexit import build
from edgeperf.exceptions import InvalidParameterError, NotFittedError
from edgeperf.model import (Device, Link, Placement, PoissonArrivals, System,
                            Workload)
from edgeperf.placement import (LAYER_KINDS, Costs, LatencyPredictor, LayerSample,
                                held_out_error, neurosurgeon, predicted_profile,
                                samples_from_profile, time_layers)
from edgeperf.placement._predictor import _configs
from edgeperf.profiling import count_flops, measure_profile

LAW = {"intercept_s": 5e-6, "s_per_flop": 2e-11, "s_per_input_byte": 1e-9,
       "s_per_output_byte": 5e-10, "s_per_param_byte": 3e-10}


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def synthetic(n: int, seed: int, kind: str = "conv2d", noise: float = 0.0) -> list[LayerSample]:
    """Samples following LAW exactly (times a lognormal factor of SCV ~noise²)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        flops, size_in, size_out, params = (int(x) for x in 10 ** rng.uniform(2, 7, 4))
        mean = float(np.dot(list(LAW.values()), [1, flops, size_in, size_out, params]))
        out.append(LayerSample(kind=kind, flops=flops, input_bytes=size_in, output_bytes=size_out,
                               param_bytes=params,
                               latency_s=mean * float(np.exp(noise * rng.standard_normal()))))
    return out


@pytest.fixture(scope="module")
def timed() -> list[LayerSample]:
    return time_layers(seed=0)


@pytest.fixture(scope="module")
def profile():
    torch.manual_seed(0)
    return measure_profile(build("resnet32", width=4), repetitions=5, warmup=1, threads=1)


# --------------------------------------------------------------------------- the regression


def test_the_fit_recovers_a_known_linear_law():
    predictor = LatencyPredictor().fit(synthetic(40, seed=1))
    assert predictor.kinds == ("conv2d",)
    fitted = predictor.coefficients("conv2d")
    assert fitted == pytest.approx(LAW, rel=1e-6)
    queries = [dataclasses.replace(s, latency_s=None) for s in synthetic(10, seed=2)]
    assert predictor.predict(queries) == pytest.approx([
        np.dot(list(LAW.values()), [1, s.flops, s.input_bytes, s.output_bytes, s.param_bytes])
        for s in queries], rel=1e-6)


def test_one_law_per_kind_and_held_out_error_of_noisy_samples():
    samples = synthetic(30, seed=3, kind="linear", noise=0.05) + \
        [dataclasses.replace(s, kind="relu", latency_s=2 * s.latency_s)
         for s in synthetic(30, seed=4, noise=0.05)]
    predictor = LatencyPredictor().fit(samples)
    assert predictor.coefficients("relu")["s_per_flop"] == pytest.approx(4e-11, rel=0.2)
    errors = held_out_error(samples, test_share=0.3, seed=0)
    assert set(errors) == {"linear", "relu", "all"}
    assert errors["all"]["n_test"] == 18 and errors["linear"]["n_test"] == 9
    assert errors["all"]["mape"] < 0.1 and errors["all"]["median_ape"] < 0.1
    assert held_out_error(samples, seed=0) == errors  # seeded


def test_timed_layers_cover_every_kind_quickly(timed):
    assert {s.kind for s in timed} == set(LAYER_KINDS) and len(timed) == 24 * len(LAYER_KINDS)
    assert all(s.latency_s > 0 and s.flops > 0 for s in timed)
    again = time_layers(per_kind=3, kinds=["conv2d"], repetitions=2, warmup=0, seed=0)
    assert [s.flops for s in again] == [s.flops for s in timed[:3]]  # seeded


@pytest.mark.parametrize("kind", LAYER_KINDS)
def test_analytic_flops_match_the_profilers_count(kind):
    rng = np.random.default_rng(5)
    for _ in range(4):
        module, shape, flops = _configs()[kind](rng)
        assert count_flops(module.eval(), torch.randn(shape)) == flops


def test_held_out_error_on_timed_layers_beats_the_flops_ratio(timed):
    errors = held_out_error(timed, test_share=0.3, seed=0)
    print("\nheld-out MAPE (model vs seconds-per-FLOP ratio):")
    for kind, e in errors.items():
        print(f"  {kind:18s} {e['mape']:.3f} vs {e['baseline_mape']:.3f} (n={e['n_test']})")
    for kind, e in errors.items():
        assert e["mape"] < e["baseline_mape"], kind


# --------------------------------------------------------------------------- profiles


def test_samples_from_a_profile(profile):
    samples = samples_from_profile(profile)
    blocks = [s for s in samples if s.kind == "block"]
    heads = [s for s in samples if s.kind == "head"]
    assert len(blocks) == len(profile.blocks) and len(heads) == len(profile.exits)
    assert blocks[0].input_bytes == 4 * 3 * 32 * 32
    assert [s.input_bytes for s in blocks[1:]] == [b.output_bytes for b in profile.blocks[:-1]]
    assert [s.latency_s for s in blocks] == [b.latency.mean for b in profile.blocks]
    assert heads[0].output_bytes == 4 * profile.num_classes
    unknown = dataclasses.replace(profile.blocks[2], flops=None)
    partial = dataclasses.replace(profile, blocks=(*profile.blocks[:2], unknown,
                                                   *profile.blocks[3:]))
    assert len(samples_from_profile(partial)) == len(samples) - 1


def test_a_predicted_profile_splits_a_tier_never_profiled(profile):
    predictor = LatencyPredictor().fit(samples_from_profile(profile))
    edge = predicted_profile(profile, predictor, speed=4.0)
    same = predicted_profile(profile, predictor)
    assert edge.names == profile.names and edge.exits == profile.exits
    assert [b.latency.mean * 4 for b in edge.blocks] == \
        pytest.approx([b.latency.mean for b in same.blocks])
    model = profile.to_dnn(device_profiles={"edge": edge})
    system = System(model=model, devices=(Device(name="phone", capacity=4),
                                          Device(name="edge", capacity=4)),
                    links=(Link(source="phone", target="edge", bandwidth_bps=1e8, capacity=4),),
                    workload=Workload(arrival=PoissonArrivals(rate=1.0)),
                    placement=Placement.from_mapping({"phone": list(model.names)}))
    assert Costs.of(system).compute_s[:, 1] == pytest.approx([b.law.mean for b in edge.blocks])
    d = neurosurgeon(system)
    assert len(d.details["curve"]["edge"]) == len(profile.blocks) + 1


# --------------------------------------------------------------------------- errors


def test_not_fitted():
    message = "LatencyPredictor is not fitted: call fit(samples) first."
    with pytest.raises(NotFittedError, match=exactly(message)):
        LatencyPredictor().predict(synthetic(2, seed=0))
    with pytest.raises(NotFittedError, match=exactly(message)):
        LatencyPredictor().coefficients("conv2d")


def test_unseen_kind_and_bad_samples():
    predictor = LatencyPredictor().fit(synthetic(5, seed=0))
    query = LayerSample(kind="block", flops=10, input_bytes=4, output_bytes=4)
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'samples' parameter of LatencyPredictor.predict must be samples of fitted "
            "kinds ['conv2d']. Got ['block'].")):
        predictor.predict([query])
    with pytest.raises(InvalidParameterError, match=r"'kind' parameter .* Got 'linear'"):
        predictor.coefficients("linear")
    with pytest.raises(InvalidParameterError, match=r"'kind' parameter .* Got \['conv2d'\]"):
        predictor.coefficients(["conv2d"])  # was a TypeError: unhashable list
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'samples' parameter of LatencyPredictor.fit must be a non-empty list of "
            "LayerSample with latency_s. Got [LayerSample(kind='block', flops=10, "
            "input_bytes=4, output_bytes=4, param_bytes=0, latency_s=None)].")):
        LatencyPredictor().fit([query])
    with pytest.raises(InvalidParameterError, match="'samples' parameter of LatencyPredictor.fit"):
        LatencyPredictor().fit([])


def test_sample_and_option_errors(profile):
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'latency_s' parameter of LayerSample must be a finite number > 0. Got 0.0.")):
        LayerSample(kind="relu", flops=1, input_bytes=4, output_bytes=4, latency_s=0.0)
    with pytest.raises(InvalidParameterError, match=r"'flops' parameter of LayerSample"):
        LayerSample(kind="relu", flops=-1, input_bytes=4, output_bytes=4)
    with pytest.raises(InvalidParameterError, match=re.escape(
            "must be at least 2 samples of each kind (one to fit, one to test). "
            "Got {'relu': 1}.")):
        held_out_error(synthetic(4, seed=0) + synthetic(1, seed=0, kind="relu"))
    with pytest.raises(InvalidParameterError, match=r"'test_share' parameter of held_out_error"):
        held_out_error(synthetic(4, seed=0), test_share=0.0)
    with pytest.raises(InvalidParameterError, match=r"'kinds' parameter of time_layers .* "
                       r"Got \['gru'\]"):
        time_layers(kinds=["gru"])
    with pytest.raises(InvalidParameterError, match=r"'per_kind' parameter of time_layers"):
        time_layers(per_kind=0)
    with pytest.raises(InvalidParameterError, match=r"'threads' parameter of time_layers must "
                                                    r"be an int from 1 to \d+.* Got 0\."):
        time_layers(threads=0)  # torch would raise a RuntimeError of its own
    with pytest.raises(InvalidParameterError, match=r"'seed' parameter of time_layers must be an "
                                                    r"int from 0 to 2\*\*64 - 1\. Got -1\."):
        time_layers(seed=-1)  # numpy would raise a ValueError of its own
    with pytest.raises(InvalidParameterError, match=r"'profile' parameter of samples_from"):
        samples_from_profile({"blocks": []})  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"'predictor' parameter of predicted_prof"):
        predicted_profile(profile, None)  # type: ignore[arg-type]
    unknown = dataclasses.replace(profile, blocks=(
        dataclasses.replace(profile.blocks[0], flops=None), *profile.blocks[1:]))
    with pytest.raises(InvalidParameterError, match=re.escape(
            "must be a profile with FLOPs for every block and head. Got ['stem'].")):
        predicted_profile(unknown, LatencyPredictor().fit(samples_from_profile(profile)))
    with pytest.raises(InvalidParameterError, match=r"'speed' parameter of predicted_profile"):
        predicted_profile(profile, LatencyPredictor().fit(samples_from_profile(profile)),
                          speed=0)


def test_profile_helpers_name_what_they_were_given_instead(profile):
    with pytest.raises(InvalidParameterError, match=r"'profile' parameter of samples_from_profile "
                       r"must be a Profile\. Got 'dict'\.$"):
        samples_from_profile({})  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"'predictor' parameter of predicted_profile "
                       r"must be a LatencyPredictor\. Got None\.$"):
        predicted_profile(profile, None)  # type: ignore[arg-type]
