"""Confidence measures, temperature fitting and expected calibration error."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from edgeperf.earlyexit._confidence import (MEASURES, TEMPERATURE_BOUNDS, confidence,
                                            expected_calibration_error, fit_temperature,
                                            fit_temperatures)
from edgeperf.exceptions import InvalidParameterError


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def calibrated_logits(rng: np.random.Generator, n: int, classes: int = 10,
                      scale: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Logits z and labels drawn from softmax(z): z is perfectly calibrated (T = 1)."""
    z = rng.normal(0.0, scale, (n, classes))
    z[np.arange(n), rng.integers(0, classes, n)] += scale  # one class favoured per sample
    cumulative = softmax(z).cumsum(axis=1)
    labels = (cumulative > rng.random((n, 1))).argmax(axis=1)
    return z, labels


# -- confidence measures -------------------------------------------------------

def test_measures_of_hand_computed_logits():
    logits = np.array([[math.log(4.0), math.log(2.0), math.log(1.0), math.log(1.0)],
                       [0.0, 0.0, 0.0, 0.0]])
    p = np.array([0.5, 0.25, 0.125, 0.125])  # softmax of the first row
    entropy = -(p * np.log(p)).sum()
    np.testing.assert_allclose(confidence(logits), [0.5, 0.25], atol=1e-12)
    np.testing.assert_allclose(confidence(logits, "margin"), [0.25, 0.0], atol=1e-12)
    np.testing.assert_allclose(confidence(logits, "entropy"),
                               [1.0 - entropy / math.log(4.0), 0.0], atol=1e-12)


def test_temperature_divides_the_logits():
    logits = np.array([[2.0, 0.0]])
    # softmax([1, 0]) at T = 2: e / (e + 1)
    assert confidence(logits, temperature=2.0)[0] == pytest.approx(math.e / (math.e + 1.0))
    assert confidence(logits, temperature=1e-6)[0] == pytest.approx(1.0)


def test_a_one_hot_prediction_is_fully_confident_under_every_measure():
    logits = np.array([[1000.0, 0.0, 0.0]])
    for measure in MEASURES:
        assert confidence(logits, measure)[0] == pytest.approx(1.0)


def test_huge_logits_give_no_nan_and_stay_in_range():
    rng = np.random.default_rng(0)
    logits = np.vstack([rng.normal(0.0, 1e6, (200, 7)),
                        [[1.7e308, -1.7e308, 0.0, 0, 0, 0, 0]],
                        [[-1e300] * 7]])
    for measure in MEASURES:
        for temperature in (1.0, 1e-300, 1e300):
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                c = confidence(logits, measure, temperature)
            assert np.all(np.isfinite(c)) and np.all((c >= 0.0) & (c <= 1.0)), measure
        assert confidence(logits, measure)[-2] == pytest.approx(1.0)


def test_measures_are_ordered_and_in_range_on_random_logits():
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 3.0, (500, 10))
    top, margin = confidence(logits), confidence(logits, "margin")
    assert np.all((top >= 0.1 - 1e-12) & (top <= 1.0))  # max softmax >= 1/C
    assert np.all(margin <= top)
    assert np.all((confidence(logits, "entropy") >= 0) & (confidence(logits, "entropy") <= 1))


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    logits = torch.tensor([[2.0, 0.0, -1.0]], requires_grad=True, dtype=torch.bfloat16)
    np.testing.assert_allclose(confidence(logits), confidence(logits.detach().float().numpy()))
    z = np.random.default_rng(2).normal(size=(50, 3))
    y = np.arange(50) % 3
    assert fit_temperature(torch.from_numpy(z), torch.from_numpy(y)) == \
        pytest.approx(fit_temperature(z, y))


# -- temperature scaling -------------------------------------------------------

@pytest.mark.parametrize("factor", [0.5, 3.0])
def test_fit_temperature_recovers_the_factor_the_logits_were_scaled_by(factor):
    rng = np.random.default_rng(3)
    z, labels = calibrated_logits(rng, 20_000)
    fitted = fit_temperature(factor * z, labels)
    # Maximum likelihood of beta = 1/T: the Fisher information of the sample is
    # sum_n Var_{p_n}(z_n,y) at the true softmax(z) (per unit of beta = 1/factor
    # on logits factor * z), so sd(T) = factor / sqrt(sum_n Var_{p_n}(z)) by the
    # delta method (about 0.5 % of T here). Allow 5 standard deviations.
    p = softmax(z)
    information = ((p * z**2).sum(axis=1) - (p * z).sum(axis=1) ** 2).sum()
    sd = factor / math.sqrt(information)
    assert sd < 0.01 * factor
    assert abs(fitted - factor) < 5 * sd


def test_fit_temperatures_fits_each_exit():
    rng = np.random.default_rng(4)
    z, labels = calibrated_logits(rng, 5_000)
    temps = fit_temperatures([2.0 * z, z, 0.5 * z], labels)
    assert temps.shape == (3,)
    np.testing.assert_allclose(temps, [2.0, 1.0, 0.5], rtol=0.05)


def test_fit_temperature_stays_in_bounds_when_every_sample_is_right():
    logits = np.array([[3.0, 0.0], [0.0, 3.0]])
    fitted = fit_temperature(logits, np.array([0, 1]))
    assert fitted == pytest.approx(TEMPERATURE_BOUNDS[0], rel=1e-3)  # NLL falls as T -> 0


# -- expected calibration error ------------------------------------------------

def test_ece_of_hand_made_bins():
    conf = np.array([0.05, 0.15, 0.95, 0.95, 1.0])
    correct = np.array([0, 1, 1, 0, 1])
    # bins of width 0.5: [0, 0.5) holds 0.05 and 0.15 (acc 0.5, mean 0.1);
    # [0.5, 1] holds 0.95, 0.95, 1.0 (acc 2/3, mean 0.9667)
    expected = 2 / 5 * abs(0.5 - 0.1) + 3 / 5 * abs(2 / 3 - 2.9 / 3)
    assert expected_calibration_error(conf, correct, bins=2) == pytest.approx(expected)
    assert expected_calibration_error(np.array([0.0, 1.0]), np.array([0, 1])) == 0.0


def test_ece_of_a_calibrated_set_is_small_and_of_an_over_confident_one_large():
    rng = np.random.default_rng(5)
    n = 20_000
    conf = rng.uniform(0.0, 1.0, n)
    calibrated = rng.random(n) < conf
    over_confident = rng.random(n) < 0.6 * conf  # true accuracy 0.6 of what it claims
    # calibrated: only sampling noise, ~0.011 with ~1300 samples per bin of 15;
    # over-confident: 0.4 * mean(conf) = 0.2
    assert expected_calibration_error(conf, calibrated) < 0.03
    assert expected_calibration_error(conf, over_confident) == pytest.approx(0.2, abs=0.03)


def test_temperature_scaling_reduces_the_ece_of_over_confident_logits():
    rng = np.random.default_rng(6)
    z, labels = calibrated_logits(rng, 8_000)
    logits = 3.0 * z  # over-confident
    t = fit_temperature(logits[:4000], labels[:4000])
    test, y = logits[4000:], labels[4000:]
    correct = test.argmax(axis=1) == y
    before = expected_calibration_error(confidence(test), correct)
    after = expected_calibration_error(confidence(test, temperature=t), correct)
    assert before > 0.15
    assert after < 0.03


# -- errors --------------------------------------------------------------------

def test_unknown_measure():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'measure' parameter of confidence must be one of 'max_softmax', 'margin', "
            "'entropy'. Got 'top1'.")):
        confidence(np.zeros((2, 3)), "top1")


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_temperature_must_be_positive(temperature):
    with pytest.raises(InvalidParameterError,
                       match=r"^The 'temperature' parameter of confidence must be a finite "
                             r"number > 0\. Got "):
        confidence(np.zeros((2, 3)), temperature=temperature)


def test_logits_shape_and_values():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'logits' parameter of confidence must be a 2-D array of logits [samples, "
            "classes] with at least one sample and two classes. Got 'shape (3,)'.")):
        confidence(np.zeros(3))
    with pytest.raises(InvalidParameterError, match=r"with at least one sample and two classes\. "
                                                    r"Got 'shape \(4, 1\)'"):
        confidence(np.zeros((4, 1)))
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'logits' parameter of fit_temperature must be finite logits. Got nan.")):
        fit_temperature(np.array([[0.0, np.nan]]), np.array([0]))


def test_labels_must_match_and_be_in_range():
    logits = np.zeros((3, 4))
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'labels' parameter of fit_temperature must be class labels in [0, 4). Got 4.")):
        fit_temperature(logits, np.array([0, 4, 1]))
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'labels' parameter of fit_temperature must be 3 integer class labels, one per "
            "sample. Got 'int64 array of shape (2,)'.")):
        fit_temperature(logits, np.array([0, 1]))
    with pytest.raises(InvalidParameterError, match=r"3 integer class labels, one per sample\. "
                                                    r"Got 'float64 array of shape \(3,\)'"):
        fit_temperature(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(InvalidParameterError, match=r"class labels in \[0, 4\)\. Got -1\."):
        fit_temperatures([logits, logits], np.array([0, -1, 1]))


def test_per_exit_logits_must_share_a_shape():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'per_exit_logits[1]' parameter of fit_temperatures must be the shape of "
            "per_exit_logits[0] (3, 4). Got (3, 5).")):
        fit_temperatures([np.zeros((3, 4)), np.zeros((3, 5))], np.zeros(3, int))
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'per_exit_logits' parameter of fit_temperatures must be a non-empty list of "
            "logits [samples, classes], one per exit. Got 'list'.")):
        fit_temperatures([], np.zeros(3, int))


def test_ece_errors():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'confidence' parameter of expected_calibration_error must be a non-empty 1-D "
            "array of values in [0, 1]. Got 1.5.")):
        expected_calibration_error(np.array([0.5, 1.5]), np.array([1, 0]))
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'correct' parameter of expected_calibration_error must be 2 booleans (0 or 1), "
            "one per confidence. Got 'int64 array of shape (3,)'.")):
        expected_calibration_error(np.array([0.5, 0.5]), np.array([1, 0, 1]))
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'bins' parameter of expected_calibration_error must be an int >= 1. Got 0.")):
        expected_calibration_error(np.array([0.5]), np.array([1]), bins=0)
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'confidence' parameter of expected_calibration_error must be a non-empty 1-D "
            "array of values in [0, 1]. Got ['high'].")):
        expected_calibration_error(["high"], np.array([1]))
