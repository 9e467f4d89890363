"""Threshold curves on hand-made exit tables."""

import numpy as np
import pytest

from edgeperf.earlyexit._curves import plot_exits, threshold_curve
from edgeperf.exceptions import InvalidParameterError
from edgeperf.model import ExitTable

# three samples, three exits: confidences at the two early exits, final always 1
TABLE = ExitTable(np.array([[0.9, 0.5, 1.0], [0.3, 0.8, 1.0], [0.1, 0.2, 1.0]]),
                  np.array([[1, 0, 1], [0, 1, 1], [0, 0, 0]], dtype=bool))


def test_a_common_threshold_gives_exact_shares_accuracy_and_latency():
    curve = threshold_curve(TABLE, np.array([0.0, 0.6, 0.95]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(curve.shares, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1]])
    np.testing.assert_allclose(curve.accuracy, [1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(curve.mean_latency_s, [1.0, 2.0, 3.0])
    # at 0.6: sample 0 leaves at exit 0 (right), 1 at exit 1 (right), 2 at the final (wrong)
    np.testing.assert_allclose(curve.exit_accuracy[1], [1.0, 1.0, 0.0])
    assert np.isnan(curve.exit_accuracy[0, 1]) and np.isnan(curve.exit_accuracy[2, 0])


def test_the_curve_spans_first_to_final_exit():
    curve = threshold_curve(TABLE, np.array([0.0, 1.01]))
    assert curve.accuracy[0] == TABLE.accuracy_by_exit[0]
    assert curve.accuracy[-1] == TABLE.accuracy_by_exit[-1]
    assert curve.mean_latency_s is None


def test_bad_path_latencies_are_refused():
    with pytest.raises(InvalidParameterError, match=r"'path_latency_s' parameter of "
                       r"threshold_curve must be one latency per exit \(3\)\. Got \(2,\)\."):
        threshold_curve(TABLE, None, np.array([1.0, 2.0]))


def test_plot_has_a_panel_per_exit_and_is_written_whole(tmp_path):
    out = plot_exits(threshold_curve(TABLE, None, np.array([1.0, 2.0, 3.0])), tmp_path / "e.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["e.png"]
