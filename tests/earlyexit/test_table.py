"""Exit tables from per-exit logits, and per-exit calibration reports."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgeperf.earlyexit._confidence import confidence
from edgeperf.earlyexit._table import CalibrationReport, calibrate, exit_table_from_logits
from edgeperf.exceptions import InvalidParameterError
from edgeperf.model import ExitTable


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def network_logits(rng: np.random.Generator, n: int, factors=(4.0, 2.0, 1.0),
                   classes: int = 10) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-exit logits of a synthetic network: exit e has calibrated logits z_e
    (labels drawn from softmax(z_e) would be calibrated) sharpened by factors[e],
    later exits better informed about the label."""
    labels = rng.integers(0, classes, n)
    out = []
    for e, factor in enumerate(factors):
        z = rng.normal(0.0, 1.0, (n, classes))
        z[np.arange(n), labels] += 1.0 + 1.5 * e
        out.append(factor * z)
    return out, labels


def test_table_of_hand_made_logits():
    exit0 = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 3.5]])
    exit1 = np.array([[0.0, 5.0], [0.0, 4.0], [9.0, 0.0]])
    labels = np.array([0, 1, 1])
    table = exit_table_from_logits([exit0, exit1], labels)
    assert isinstance(table, ExitTable)
    np.testing.assert_array_equal(table.predicted, [[0, 1], [1, 1], [1, 0]])
    np.testing.assert_array_equal(table.correct, [[1, 0], [1, 1], [1, 0]])
    np.testing.assert_allclose(table.confidence[:, 0], confidence(exit0))
    np.testing.assert_allclose(table.confidence[0, 0], np.exp(2) / (np.exp(2) + 1))


def test_table_applies_temperatures_and_measure():
    logits, labels = network_logits(np.random.default_rng(0), 100)
    table = exit_table_from_logits(logits, labels, measure="margin",
                                   temperatures=[4.0, 2.0, 1.0])
    for e, t in enumerate([4.0, 2.0, 1.0]):
        np.testing.assert_allclose(table.confidence[:, e], confidence(logits[e], "margin", t))
    plain = exit_table_from_logits(logits, labels)
    np.testing.assert_array_equal(table.correct, plain.correct)  # scaling keeps predictions


def test_table_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    logits, labels = network_logits(np.random.default_rng(1), 20)
    table = exit_table_from_logits([torch.from_numpy(x).float() for x in logits],
                                   torch.from_numpy(labels))
    np.testing.assert_array_equal(table.correct, exit_table_from_logits(logits, labels).correct)


def test_calibrate_recovers_the_sharpening_and_reduces_the_ece():
    rng = np.random.default_rng(2)
    factors = (4.0, 2.0, 1.0)
    cal, y_cal = network_logits(rng, 4000, factors)
    test, y_test = network_logits(rng, 4000, factors)
    report = calibrate(cal, y_cal, test, y_test)
    assert isinstance(report, CalibrationReport) and report.n_exits == 3
    # the labels here are not drawn from softmax(z), so z is not exactly
    # calibrated: the temperatures follow the sharpening, not equal it
    assert report.temperatures[0] > report.temperatures[1] > report.temperatures[2]
    assert np.all(report.accuracy[:-1] < report.accuracy[1:])
    assert report.ece_before[0] > 0.3  # sharpened 4 times: far over-confident
    assert np.all(report.ece_after < 0.5 * report.ece_before)
    assert np.all(report.ece_after < 0.04)  # ~0.01-0.02 over seeds with 4000 test samples
    np.testing.assert_allclose(report.table.accuracy_by_exit, report.accuracy)
    np.testing.assert_allclose(report.table.confidence[:, 0],
                               confidence(test[0], temperature=report.temperatures[0]))
    assert report.rows()[1].keys() == {"exit", "temperature", "accuracy", "ece_before",
                                       "ece_after"}
    assert report.measure == "max_softmax" and report.bins == 15


def test_calibrate_with_another_measure_keeps_max_softmax_ece():
    rng = np.random.default_rng(3)
    cal, y_cal = network_logits(rng, 500)
    test, y_test = network_logits(rng, 500)
    entropy = calibrate(cal, y_cal, test, y_test, measure="entropy")
    top = calibrate(cal, y_cal, test, y_test)
    np.testing.assert_allclose(entropy.ece_after, top.ece_after)
    np.testing.assert_allclose(entropy.table.confidence[:, 2],
                               confidence(test[2], "entropy", entropy.temperatures[2]))


# -- errors --------------------------------------------------------------------

def test_table_errors():
    logits = [np.zeros((3, 4)), np.zeros((3, 4))]
    labels = np.array([0, 1, 2])
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'temperatures' parameter of exit_table_from_logits must be 2 finite numbers > 0, "
            "one per exit. Got [1.0, 0.0].")):
        exit_table_from_logits(logits, labels, temperatures=[1.0, 0.0])
    with pytest.raises(InvalidParameterError, match=r"one per exit\. Got \[1\.0\]\.$"):
        exit_table_from_logits(logits, labels, temperatures=[1.0])
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'measure' parameter of exit_table_from_logits must be one of 'max_softmax', "
            "'margin', 'entropy'. Got 'ratio'.")):
        exit_table_from_logits(logits, labels, measure="ratio")
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'labels' parameter of exit_table_from_logits must be class labels in [0, 4). "
            "Got 7.")):
        exit_table_from_logits(logits, np.array([0, 7, 1]))
    with pytest.raises(InvalidParameterError, match=r"'per_exit_logits' parameter of "
                                                    r"exit_table_from_logits .* Got 'ndarray'\.$"):
        exit_table_from_logits(np.zeros((2, 3, 4)), labels)


def test_calibrate_errors():
    cal = [np.zeros((3, 4)), np.zeros((3, 4))]
    y = np.array([0, 1, 2])
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'per_exit_logits_test' parameter of calibrate must be 2 exits of 4 classes, "
            "like the calibration split. Got '1 exits of 4 classes'.")):
        calibrate(cal, y, [np.zeros((3, 4))], y)
    with pytest.raises(InvalidParameterError, match=r"'labels_test' parameter of calibrate must be "
                                                    r"2 integer class labels"):
        calibrate(cal, y, [np.zeros((2, 4))] * 2, y)
    with pytest.raises(InvalidParameterError, match=r"'labels_calibration' parameter of calibrate "
                                                    r"must be class labels in \[0, 4\)\. Got 9\.$"):
        calibrate(cal, np.array([0, 9, 1]), cal, y)
    with pytest.raises(InvalidParameterError, match=r"'measure' parameter of calibrate"):
        calibrate(cal, y, cal, y, measure="ratio")
    with pytest.raises(InvalidParameterError, match=r"'bins' parameter of calibrate must be an "
                                                    r"int >= 1\. Got 0\.$"):
        calibrate(cal, y, cal, y, bins=0)
