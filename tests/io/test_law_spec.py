"""law_from_spec: every kind of service law, from a mapping or JSON text, and its errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeperf.dists import (Deterministic, Empirical, Exponential, Gamma, Lognormal, Mixture,
                            ServiceLaw, Sum)
from edgeperf.exceptions import InvalidParameterError
from edgeperf.io import ScenarioError, law_from_spec


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


MIXTURE_SPEC = {"kind": "mixture", "weights": [0.25, 0.75],
                "components": [{"kind": "exponential", "mean": 0.01},
                               {"kind": "deterministic", "value": 0.02}]}

SPECS: list[tuple[dict, ServiceLaw]] = [
    ({"kind": "deterministic", "value": 0.02}, Deterministic(0.02)),
    ({"kind": "exponential", "mean": 0.03}, Exponential(0.03)),
    ({"kind": "gamma", "shape": 4, "mean": 0.03}, Gamma(4.0, 0.03)),
    ({"kind": "lognormal", "mean": 0.01, "scv": 2.5}, Lognormal(0.01, 2.5)),
    ({"kind": "empirical", "samples": [0.01, 0.02, 0.0, 0.05]},
     Empirical((0.01, 0.02, 0.0, 0.05))),
    (MIXTURE_SPEC, Mixture((Exponential(0.01), Deterministic(0.02)), (0.25, 0.75))),
    ({"kind": "sum", "components": [{"kind": "gamma", "shape": 2.5, "mean": 0.004},
                                    MIXTURE_SPEC]},
     Sum((Gamma(2.5, 0.004), Mixture((Exponential(0.01), Deterministic(0.02)), (0.25, 0.75))))),
]
IDS = [spec["kind"] for spec, _ in SPECS]


@pytest.mark.parametrize("spec, law", SPECS, ids=IDS)
def test_every_kind_from_a_mapping(spec, law):
    built = law_from_spec(spec)
    assert type(built) is type(law)
    assert built == law


@pytest.mark.parametrize("spec, law", SPECS, ids=IDS)
def test_every_kind_from_json_text(spec, law):
    assert law_from_spec(json.dumps(spec)) == law


@pytest.mark.parametrize("spec, law", SPECS, ids=IDS)
def test_to_spec_round_trips(spec, law):
    assert law_from_spec(law.to_spec()) == law
    assert law_from_spec(json.dumps(law.to_spec())) == law


@pytest.mark.parametrize("spec, law", SPECS, ids=IDS)
def test_to_spec_is_json(spec, law):
    assert json.loads(json.dumps(law.to_spec())) == law.to_spec()


def test_the_built_law_has_the_spec_moments():
    assert law_from_spec({"kind": "gamma", "shape": 4, "mean": 0.03}).scv == 0.25
    law = law_from_spec(MIXTURE_SPEC)
    assert law.mean == 0.25 * 0.01 + 0.75 * 0.02


def test_mixture_inside_mixture():
    inner = {"kind": "mixture", "weights": [0.5, 0.5],
             "components": [{"kind": "exponential", "mean": 1.0},
                            {"kind": "exponential", "mean": 3.0}]}
    law = law_from_spec({"kind": "mixture", "weights": [1.0],
                         "components": [inner]})
    assert law == Mixture((Mixture((Exponential(1.0), Exponential(3.0)), (0.5, 0.5)),), (1.0,))


@given(mean=st.floats(min_value=1e-6, max_value=1e6),
       shape=st.floats(min_value=1e-3, max_value=1e3),
       scv=st.floats(min_value=1e-3, max_value=1e3))
def test_round_trip_of_single_laws_for_any_parameters(mean, shape, scv):
    for law in (Deterministic(mean), Exponential(mean), Gamma(shape, mean), Lognormal(mean, scv)):
        assert law_from_spec(law.to_spec()) == law
        assert law_from_spec(json.dumps(law.to_spec())) == law


@given(st.lists(st.floats(min_value=0.0, max_value=1e3), min_size=1, max_size=20)
       .filter(lambda xs: np.mean(xs) > 0))  # the rule: a positive mean
def test_round_trip_of_empirical_laws(samples):
    law = Empirical(tuple(samples))
    assert law_from_spec(law.to_spec()) == law


def test_mixture_round_trip_is_exact_for_any_valid_weights():
    components = (Exponential(0.01), Exponential(0.02), Exponential(0.03))
    law = Mixture(components, (0.06, 0.57, 0.37))
    assert law_from_spec(law.to_spec()) == law


# --------------------------------------------------------------------------- errors


def test_errors_are_scenario_errors_and_value_errors():
    with pytest.raises(ScenarioError) as info:
        law_from_spec({"kind": "exponential", "mean": -1.0})
    assert isinstance(info.value, InvalidParameterError)
    assert isinstance(info.value, ValueError)


def test_bad_json_text():
    with pytest.raises(ScenarioError, match=exactly(
            "service: is not valid JSON: Expecting ',' delimiter at column 17. "
            "Got '{\"kind\": \"gamma\"'.")):
        law_from_spec('{"kind": "gamma"')


def test_a_key_given_twice_in_json_text():
    with pytest.raises(ScenarioError, match=exactly(
            "--service: is not valid JSON: key 'mean' is given twice. Got "
            "'{\"kind\": \"exponential\", \"mean\": 1, \"mean\": 2}'.")):
        law_from_spec('{"kind": "exponential", "mean": 1, "mean": 2}', source="--service")


def test_bad_json_text_names_the_source():
    with pytest.raises(ScenarioError, match=exactly(
            "--service: is not valid JSON: Expecting property name enclosed in double quotes "
            "at column 2. Got '{bad'.")):
        law_from_spec("{bad", source="--service")


def test_unknown_kind():
    with pytest.raises(ScenarioError, match=exactly(
            "service: (top level): Input tag 'weibull' found using 'kind' does not match any of "
            "the expected tags: 'deterministic', 'exponential', 'gamma', 'lognormal', "
            "'empirical', 'mixture', 'sum'. Got {'kind': 'weibull', 'mean': 1.0}.")):
        law_from_spec({"kind": "weibull", "mean": 1.0})


def test_missing_kind():
    with pytest.raises(ScenarioError, match=exactly(
            "service: (top level): Unable to extract tag using discriminator 'kind'. "
            "Got {'mean': 1.0}.")):
        law_from_spec({"mean": 1.0})


def test_missing_field():
    with pytest.raises(ScenarioError, match=exactly("service: shape: is required but missing.")):
        law_from_spec('{"kind": "gamma", "mean": 1}')


def test_extra_field():
    with pytest.raises(ScenarioError, match=exactly(
            "service: rate: is not a known field. Got 3.")):
        law_from_spec({"kind": "gamma", "shape": 2, "mean": 1, "rate": 3})


def test_missing_field_deep_inside_a_sum():
    spec = {"kind": "sum", "components": [{"kind": "exponential", "mean": 1.0},
                                          {"kind": "gamma", "mean": 1.0}]}
    with pytest.raises(ScenarioError, match=exactly(
            "service: components[1].shape: is required but missing.")):
        law_from_spec(spec)


@pytest.mark.parametrize("mean", [-1.0, 0.0, float("nan"), float("inf")])
def test_mean_must_be_finite_and_positive(mean):
    with pytest.raises(ScenarioError, match=exactly(
            "service: mean: The 'mean' parameter of Exponential must be a finite "
            f"number > 0. Got {mean!r}.")):
        law_from_spec({"kind": "exponential", "mean": mean})


def test_negative_mean_from_json_text():
    with pytest.raises(ScenarioError, match=re.escape(
            "The 'mean' parameter of Gamma must be a finite number > 0. Got -0.5.")):
        law_from_spec('{"kind": "gamma", "shape": 2, "mean": -0.5}')


@pytest.mark.parametrize("value", ["0.1", True, None, [0.1]])
def test_numbers_must_be_numbers(value):
    with pytest.raises(ScenarioError, match=exactly(
            f"service: mean: Input should be a valid number. Got {value!r}.")):
        law_from_spec({"kind": "exponential", "mean": value})


def test_mixture_weights_must_sum_to_one():
    spec = dict(MIXTURE_SPEC, weights=[0.5, 0.6])
    with pytest.raises(ScenarioError, match=exactly(
            "service: weights: The 'weights' parameter of Mixture must be 2 non-negative "
            "finite numbers summing to 1. Got [0.5, 0.6].")):
        law_from_spec(spec)


def test_mixture_weights_must_match_the_components():
    spec = dict(MIXTURE_SPEC, weights=[1.0])
    with pytest.raises(ScenarioError, match=exactly(
            "service: weights: The 'weights' parameter of Mixture must be 2 non-negative "
            "finite numbers summing to 1. Got [1.0].")):
        law_from_spec(spec)


def test_bad_mixture_inside_a_sum_names_its_path():
    spec = {"kind": "sum", "components": [{"kind": "exponential", "mean": 1.0},
                                          dict(MIXTURE_SPEC, weights=[0.5, 0.6])]}
    with pytest.raises(ScenarioError, match=exactly(
            "service: components[1].weights: The 'weights' parameter of Mixture must be 2 non-negative "
            "finite numbers summing to 1. Got [0.5, 0.6].")):
        law_from_spec(spec)


def test_empty_empirical_samples():
    with pytest.raises(ScenarioError, match=exactly(
            "service: samples: The 'samples' parameter of Empirical must be a non-empty "
            "list of finite numbers >= 0 with a positive mean. Got ().")):
        law_from_spec({"kind": "empirical", "samples": []})


def test_empty_sum():
    with pytest.raises(ScenarioError, match=exactly(
            "service: components: The 'components' parameter of Sum must be a non-empty list "
            "of service laws. Got ().")):
        law_from_spec({"kind": "sum", "components": []})


@pytest.mark.parametrize("spec", [[1], 5, None])
def test_spec_must_be_a_mapping(spec):
    with pytest.raises(ScenarioError, match=exactly(
            "service: (top level): Input should be a valid dictionary or object to extract "
            f"fields from. Got {spec!r}.")):
        law_from_spec(spec)  # type: ignore[arg-type]


def test_json_text_that_is_not_an_object():
    with pytest.raises(ScenarioError, match=exactly(
            "service: (top level): Input should be a valid dictionary or object to extract "
            "fields from. Got 'x'.")):
        law_from_spec('"x"')


def test_several_problems_are_reported_as_one_message():
    with pytest.raises(ScenarioError, match=exactly(
            "service: a: is not a known field. Got 1. (and 1 more problem)")):
        law_from_spec({"kind": "exponential", "mean": 1.0, "a": 1, "b": 2})


def test_negative_mean_names_the_field():
    with pytest.raises(ScenarioError, match=re.escape("service: mean: The 'mean' parameter")):
        law_from_spec({"kind": "exponential", "mean": -1.0})
