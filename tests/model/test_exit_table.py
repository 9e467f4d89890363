"""ExitTable: exact, vectorised evaluation of threshold vectors; subsets; .npz files."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from edgeperf.exceptions import InvalidParameterError
from edgeperf.model import ExitTable


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def small_table() -> ExitTable:
    """Four samples, three exits."""
    confidence = np.array([[0.9, 0.5, 0.2],
                           [0.4, 0.8, 0.3],
                           [0.3, 0.2, 0.6],
                           [0.7, 0.95, 0.99]])
    correct = np.array([[1, 0, 1],
                        [0, 1, 1],
                        [0, 0, 0],
                        [0, 1, 1]])
    return ExitTable(confidence, correct)


def random_table(rng: np.random.Generator, n: int, n_exits: int) -> ExitTable:
    # later exits more confident and more often right, as in a real network
    depth = np.linspace(0.0, 1.0, n_exits)
    confidence = np.clip(rng.beta(2, 2, (n, n_exits)) * 0.5 + 0.5 * depth, 0.0, 1.0)
    correct = rng.random((n, n_exits)) < 0.5 + 0.4 * depth
    # discrete confidences make ties with thresholds likely
    confidence[: n // 4] = np.round(confidence[: n // 4], 1)
    return ExitTable(confidence, correct, rng.integers(0, 10, (n, n_exits)))


def loop_evaluate(table: ExitTable, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plain definition: each sample leaves at the first exit reaching its threshold."""
    n, e = table.confidence.shape
    shares, accuracy = np.zeros((len(thresholds), e)), np.zeros(len(thresholds))
    for m, thr in enumerate(thresholds):
        for i in range(n):
            leave = next((k for k in range(e - 1) if table.confidence[i, k] >= thr[k]), e - 1)
            shares[m, leave] += 1 / n
            accuracy[m] += table.correct[i, leave] / n
    return shares, accuracy


def test_evaluate_a_hand_made_table():
    table = small_table()
    shares, accuracy = table.evaluate([0.6, 0.9])
    # sample 0 leaves at exit 0 (0.9), 1 goes on to the final exit (0.4, 0.8),
    # 2 final, 3 exit 0 (0.7): right are sample 0 (exit 0) and sample 1 (final)
    np.testing.assert_allclose(shares, [[0.5, 0.0, 0.5]])
    np.testing.assert_allclose(accuracy, [0.5])
    shares, accuracy = table.evaluate([[0.95, 0.8, 0.0], [0.9, 0.5, 0.123]])
    np.testing.assert_allclose(shares, [[0.0, 0.5, 0.5], [0.25, 0.5, 0.25]])
    # vector 1: 0 final (right), 1 exit 1 (right), 2 final (wrong), 3 exit 1 (right)
    # vector 2: 0 exit 0 (right), 1 exit 1 (right), 2 final (wrong), 3 exit 1 (right)
    np.testing.assert_allclose(accuracy, [0.75, 0.75])


def test_a_confidence_equal_to_its_threshold_exits():
    table = small_table()
    shares, _ = table.evaluate([0.7, 2.0])
    np.testing.assert_allclose(shares, [[0.5, 0.0, 0.5]])


def test_thresholds_at_zero_take_every_sample_at_the_first_exit_and_above_one_none():
    table = random_table(np.random.default_rng(0), 300, 5)
    shares, accuracy = table.evaluate(np.zeros(4))
    np.testing.assert_array_equal(shares, [[1, 0, 0, 0, 0]])
    assert accuracy[0] == pytest.approx(table.accuracy_by_exit[0])
    shares, accuracy = table.evaluate(np.full(4, 1.01))
    np.testing.assert_array_equal(shares, [[0, 0, 0, 0, 1]])
    assert accuracy[0] == pytest.approx(table.accuracy_by_exit[-1])
    shares, _ = table.evaluate([[-5.0, np.inf, np.inf, np.inf]])
    np.testing.assert_array_equal(shares, [[1, 0, 0, 0, 0]])


@pytest.mark.parametrize("n, n_exits", [(1, 1), (1, 3), (37, 2), (200, 6)])
def test_vectorised_evaluate_equals_a_plain_loop(n, n_exits):
    rng = np.random.default_rng(n * 10 + n_exits)
    table = random_table(rng, n, n_exits)
    thresholds = rng.choice([0.0, 0.3, 0.5, 0.7, 1.0], (40, n_exits - 1)) \
        + rng.choice([0.0, 0.01 * rng.random()], (40, n_exits - 1))
    shares, accuracy = table.evaluate(thresholds)
    expected_shares, expected_accuracy = loop_evaluate(table, thresholds)
    np.testing.assert_allclose(shares, expected_shares, atol=1e-12)
    np.testing.assert_allclose(accuracy, expected_accuracy, atol=1e-12)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    for m in range(0, 40, 7):  # agrees with the simulator's exits_for
        exits = table.exits_for(thresholds[m])
        np.testing.assert_allclose(np.bincount(exits, minlength=n_exits) / n, shares[m])


def test_chunked_evaluation_gives_the_same_numbers(monkeypatch):
    import edgeperf.model.exit_table as module

    table = random_table(np.random.default_rng(1), 50, 4)
    thresholds = np.random.default_rng(2).random((33, 4))  # final column ignored
    whole = table.evaluate(thresholds)
    monkeypatch.setattr(module, "_CHUNK_CELLS", 120)  # 2 vectors per chunk
    chunked = table.evaluate(thresholds)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])
    np.testing.assert_array_equal(whole[0], table.evaluate(thresholds[:, :3])[0])


def test_evaluate_is_fast():
    rng = np.random.default_rng(3)
    table = random_table(rng, 1000, 16)
    thresholds = rng.random((2000, 15)) ** 0.3
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        table.evaluate(thresholds)
        best = min(best, time.perf_counter() - start)
    rate = len(thresholds) / best
    print(f"ExitTable.evaluate: {rate:,.0f} threshold vectors per second (N=1000, E=16)")
    assert rate >= 1000


def test_sizes_and_accuracy_by_exit():
    table = small_table()
    assert (table.n_samples, table.n_exits) == (4, 3)
    np.testing.assert_allclose(table.accuracy_by_exit, [0.25, 0.5, 0.75])
    assert table.predicted is None


def test_subset_keeps_rows_and_predictions():
    table = random_table(np.random.default_rng(4), 20, 3)
    part = table.subset([3, 3, 7])
    np.testing.assert_array_equal(part.confidence, table.confidence[[3, 3, 7]])
    np.testing.assert_array_equal(part.correct, table.correct[[3, 3, 7]])
    np.testing.assert_array_equal(part.predicted, table.predicted[[3, 3, 7]])
    mask = np.zeros(20, bool)
    mask[[1, 5]] = True
    np.testing.assert_array_equal(table.subset(mask).confidence, table.confidence[[1, 5]])


def test_npz_round_trip(tmp_path):
    table = random_table(np.random.default_rng(5), 30, 4)
    path = tmp_path / "table.npz"
    table.save(path)
    back = ExitTable.load(path)
    np.testing.assert_array_equal(back.confidence, table.confidence)
    np.testing.assert_array_equal(back.correct, table.correct)
    np.testing.assert_array_equal(back.predicted, table.predicted)
    plain = small_table()
    plain.save(tmp_path / "plain")  # the exact path, no ".npz" appended
    assert ExitTable.load(tmp_path / "plain").predicted is None
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'path' parameter of ExitTable.save must be a file path (str or os.PathLike). "
            "Got None.")):
        plain.save(None)
    with pytest.raises(InvalidParameterError, match=r"ExitTable.save must be a file, not a "
                                                    r"folder\."):
        plain.save(tmp_path)


# -- errors --------------------------------------------------------------------

def test_threshold_errors():
    table = small_table()
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'thresholds' parameter of ExitTable.evaluate must be a vector [2] or a matrix "
            "[M, 2] of thresholds (one per early exit; a last column for the final exit is "
            "ignored), no NaN. Got 'shape (1, 4)'.")):
        table.evaluate([0.1, 0.2, 0.3, 0.4])
    with pytest.raises(InvalidParameterError, match=r"no NaN\. Got 'NaN'\.$"):
        table.evaluate([[0.5, np.nan]])
    with pytest.raises(InvalidParameterError, match=r"no NaN\. Got 'shape \(2, 2, 2\)'\.$"):
        table.evaluate(np.zeros((2, 2, 2)))
    with pytest.raises(InvalidParameterError, match=r"no NaN\. Got 'a'\.$"):
        table.evaluate("a")


def test_exits_for_errors():
    table = small_table()
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'thresholds' parameter of ExitTable.exits_for must be one threshold per early "
            "exit (2), no NaN. Got 'NaN'.")):
        table.exits_for([0.5, np.nan])  # NaN compares false: every sample went to the end
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'rows' parameter of ExitTable.exits_for must be a 1-D array of sample indices "
            f"below {table.n_samples}. Got [0, {table.n_samples}].")):
        table.exits_for([0.5, 0.5], rows=[0, table.n_samples])
    with pytest.raises(InvalidParameterError, match=r"indices below \d+\. Got \[0\.5\]\.$"):
        table.exits_for([0.5, 0.5], rows=[0.5])


def test_confidences_must_be_numbers():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'confidence' parameter of ExitTable must be a 2-D array [samples, exits]. "
            "Got [['high', 'low']].")):
        ExitTable(confidence=[["high", "low"]], correct=[[1, 0]])


def test_predicted_errors():
    conf, correct = np.full((2, 2), 0.5), np.ones((2, 2))
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'predicted' parameter of ExitTable must be the shape of confidence (2, 2). "
            "Got (2,).")):
        ExitTable(conf, correct, np.zeros(2, int))
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'predicted' parameter of ExitTable must be class indices (ints >= 0). Got -1.")):
        ExitTable(conf, correct, np.array([[0, 1], [-1, 2]]))
    with pytest.raises(InvalidParameterError, match=r"class indices \(ints >= 0\)\. "
                                                    r"Got dtype\('float64'\)\.$"):
        ExitTable(conf, correct, np.zeros((2, 2)))


def test_subset_errors():
    table = small_table()
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'rows' parameter of ExitTable.subset must be a non-empty list of row indices in "
            "[0, 4) or a boolean mask of length 4. Got [0, 4].")):
        table.subset([0, 4])
    with pytest.raises(InvalidParameterError, match=r"Got \[\]\.$"):
        table.subset([])
    with pytest.raises(InvalidParameterError, match=r"Got 'mask of shape \(4,\) selecting 0'\.$"):
        table.subset(np.zeros(4, bool))


def test_load_errors(tmp_path):
    missing = tmp_path / "missing.npz"
    with pytest.raises(InvalidParameterError, match=r"^The 'path' parameter of ExitTable.load "
                       r"must be a readable \.npz file holding arrays 'confidence' and 'correct' "
                       r"\[samples, exits\] \(.*No such file.*\)\. Got '.*missing\.npz'\.$"):
        ExitTable.load(missing)
    with pytest.raises(InvalidParameterError, match=r"^The 'path' parameter of ExitTable.load "
                       r"must be a file path \(str or os\.PathLike\)\. Got None\.$"):
        ExitTable.load(None)
    text = tmp_path / "text.npz"
    text.write_text("not a table")
    with pytest.raises(InvalidParameterError, match=r"must be a readable \.npz file .*\(not an "
                                                    r"\.npz archive\)\. Got '.*text\.npz'\.$"):
        ExitTable.load(text)
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros((3, 2)))
    with pytest.raises(InvalidParameterError, match=r"\(not an \.npz archive\)"):
        ExitTable.load(npy)
    partial = tmp_path / "partial.npz"
    np.savez(partial, confidence=np.zeros((3, 2)))
    with pytest.raises(InvalidParameterError, match=r"\(missing \['correct'\]\)"):
        ExitTable.load(partial)
    objects = tmp_path / "objects.npz"
    np.savez(objects, confidence=np.array([{"a": 1}], dtype=object), correct=np.ones((1, 1)))
    with pytest.raises(InvalidParameterError, match=r"allow_pickle=False"):
        ExitTable.load(objects)
    invalid = tmp_path / "invalid.npz"
    np.savez(invalid, confidence=np.full((2, 2), 2.0), correct=np.ones((2, 2)))
    with pytest.raises(InvalidParameterError, match=re.escape(
            "must be a valid .npz file holding arrays 'confidence' and 'correct' [samples, "
            "exits] (The 'confidence' parameter of ExitTable must be values in [0, 1]. "
            "Got 2.0.).")):
        ExitTable.load(invalid)
