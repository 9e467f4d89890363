"""The parity plot: one row of panels per model, written whole; bad input is one error."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib import image

from edgeperf.exceptions import InvalidParameterError
from edgeperf.surrogate import plot_parity

RNG = np.random.default_rng(0)
TRUE = np.column_stack([RNG.uniform(0.01, 1.0, 200), RNG.uniform(0.1, 100.0, 200)])


def test_a_third_column_adds_the_end_to_end_panel(tmp_path):
    three = np.column_stack([TRUE, TRUE[:, 1] * 1.5])
    wide = plot_parity({"chainnet": three * 1.05}, three, tmp_path / "wide.png")
    narrow = plot_parity({"chainnet": TRUE * 1.05}, TRUE, tmp_path / "narrow.png")
    (h3, w3), (h2, w2) = (image.imread(p).shape[:2] for p in (wide, narrow))
    assert h3 == h2 and 1.4 < w3 / w2 < 1.6


def test_one_row_of_panels_per_model(tmp_path):
    one = plot_parity({"chainnet": TRUE * 1.05}, TRUE, tmp_path / "one.png")
    two = plot_parity({"chainnet": TRUE * 1.05, "gat": TRUE * 0.9}, TRUE, tmp_path / "two.png",
                      title="two models")
    assert one == tmp_path / "one.png"
    h1, w1 = image.imread(one).shape[:2]
    h2, w2 = image.imread(two).shape[:2]
    assert w1 == w2 and 1.9 < h2 / h1 < 2.1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png", "two.png"]  # no temporaries


def test_the_suffix_picks_the_format(tmp_path):
    for name, head in (("p.svg", b"<?xml"), ("p.pdf", b"%PDF"), ("p.PNG", b"\x89PNG")):
        path = plot_parity({"chainnet": TRUE * 1.05}, TRUE, tmp_path / name)
        assert path.read_bytes().startswith(head), name
    with pytest.raises(InvalidParameterError, match=r"must be a file name ending in one of "
                                                    r"\..*\.png.*Got '.*p\.txt'"):
        plot_parity({"chainnet": TRUE}, TRUE, tmp_path / "p.txt")


@pytest.mark.parametrize("preds, true, pattern", [
    ({}, TRUE, "The 'preds' parameter of plot_parity must be a non-empty mapping"),
    ({"m": TRUE[:10]}, TRUE, "The 'preds' parameter of plot_parity must be finite "
                             "predictions >= 0 shaped like 'true' (200, 2) for every model. "
                             "Got 'm: (10, 2)'."),
    ({"m": np.where(TRUE > 0.5, np.nan, TRUE)}, TRUE, "Got 'm: (200, 2)'."),
    ({"m": -TRUE}, TRUE, "Got 'm: (200, 2)'."),
    ({"m": TRUE}, -TRUE, "The 'true' parameter of plot_parity must be a non-empty array "
                         "[chains, 2] or [chains, 3] of positive finite values"),
    ({"m": TRUE}, np.ones((200, 4)), "The 'true' parameter of plot_parity must be a non-empty "
                                     "array [chains, 2] or [chains, 3]"),
    ({"m": TRUE[:, 0]}, TRUE[:, 0], "The 'true' parameter of plot_parity"),
    ({"m": TRUE}, "all", "The 'true' parameter of plot_parity must be a non-empty array "
                         "[chains, 2] or [chains, 3] of positive finite values (throughput "
                         "ratio, response time[, end-to-end response time]). Got 'all'."),
    ({"m": {"a": 1}}, TRUE, "The 'preds' parameter of plot_parity must be finite "
                            "predictions >= 0 shaped like 'true' (200, 2) for every model. "
                            "Got {'a': 1}."),
])
def test_bad_input_is_one_error(tmp_path, preds, true, pattern):
    with pytest.raises(InvalidParameterError, match=re.escape(pattern)):
        plot_parity(preds, true, tmp_path / "p.png")
    assert not list(tmp_path.iterdir())


def test_a_prediction_of_zero_is_drawn_at_the_edge(tmp_path):
    # a log axis has no 0: the chain is still shown, not an error after the evaluation
    zeros = TRUE.copy()
    zeros[:5, 0] = 0.0
    assert plot_parity({"m": zeros}, TRUE, tmp_path / "p.png").stat().st_size > 0


def test_a_target_in_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(InvalidParameterError, match="must be a file in an existing folder"):
        plot_parity({"m": TRUE}, TRUE, tmp_path / "missing" / "p.png")
    with pytest.raises(InvalidParameterError, match=r"'path' parameter of plot_parity must be "
                       r"a file path \(str or os\.PathLike\)\. Got None\."):
        plot_parity({"m": TRUE}, TRUE, None)
