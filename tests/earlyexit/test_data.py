"""Digits splits (no download) and array / Dataset inputs of the early-exit package."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from edgeperf.earlyexit._data import DIGITS_CLASSES, Splits, as_dataset, digits_splits
from edgeperf.exceptions import InvalidParameterError

torch.set_num_threads(1)

N_DIGITS = 1797


@pytest.fixture(scope="module")
def splits() -> Splits:
    return digits_splits()


def _labels(ds: TensorDataset) -> np.ndarray:
    return ds.tensors[1].numpy()


def test_splits_sizes_shapes_and_types(splits):
    parts = (splits.train, splits.calibration, splits.test)
    assert sum(len(p) for p in parts) == N_DIGITS
    assert [len(p) for p in parts] == [1077, 360, 360]
    for p in parts:
        x, y = p.tensors
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (1, 32, 32) and y.shape == (len(x),)
    assert splits.input_shape == (1, 32, 32)
    assert splits.num_classes == DIGITS_CLASSES == 10
    assert "train=1077" in repr(splits) and "input_shape=(1, 32, 32)" in repr(splits)


def test_splits_are_stratified(splits):
    from sklearn.datasets import load_digits

    per_class = np.bincount(load_digits().target, minlength=10)
    for part, share in ((splits.train, 0.6), (splits.calibration, 0.2), (splits.test, 0.2)):
        counts = np.bincount(_labels(part), minlength=10)
        assert np.all(np.abs(counts - share * per_class) <= 1.5), counts


def test_splits_partition_the_data_set():
    """The three splits together hold every digit exactly once (as a multiset)."""
    from collections import Counter

    from sklearn.datasets import load_digits

    digits = load_digits()
    original = Counter((np.float32(img / 16).tobytes(), int(t))
                       for img, t in zip(digits.images, digits.target))
    small = digits_splits(size=8)
    parts = Counter((x[0].numpy().tobytes(), int(y))
                    for p in (small.train, small.calibration, small.test)
                    for x, y in zip(*p.tensors))
    assert parts == original


def test_values_lie_in_unit_interval_and_cover_it(splits):
    x = splits.train.tensors[0]
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0


def test_size_8_is_the_original_grid_scaled_by_16():
    x = digits_splits(size=8).train.tensors[0]
    assert x.shape[1:] == (1, 8, 8)
    assert torch.equal(x * 16, (x * 16).round())


def test_upsampling_keeps_the_mean_intensity():
    # bilinear upsampling with align_corners=False preserves the image mean closely
    small = digits_splits(size=8).test.tensors[0].mean(dim=(1, 2, 3))
    big = digits_splits(size=32).test.tensors[0].mean(dim=(1, 2, 3))
    assert torch.allclose(small, big, atol=0.02)


def test_channels_are_replicated():
    x = digits_splits(size=16, channels=3).calibration.tensors[0]
    assert x.shape[1:] == (3, 16, 16)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])


def test_same_seed_same_splits_other_seed_other_splits(splits):
    again = digits_splits()
    for a, b in zip((splits.train, splits.test), (again.train, again.test)):
        assert all(torch.equal(u, v) for u, v in zip(a.tensors, b.tensors))
    other = digits_splits(seed=1)
    assert not torch.equal(splits.train.tensors[1], other.train.tensors[1])


def test_custom_fractions():
    s = digits_splits(size=8, fractions=(0.8, 0.1, 0.1))
    assert len(s.train) + len(s.calibration) + len(s.test) == N_DIGITS
    assert len(s.test) == 180 and len(s.calibration) == 180


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"size": 4}, r"The 'size' parameter of digits_splits must be an int >= 8\. Got 4\."),
    ({"channels": 0}, r"'channels' parameter of digits_splits must be an int >= 1\. Got 0\."),
    ({"seed": -1}, r"'seed' parameter of digits_splits must be an int from 0 to 2\*\*32 - 1\. "
                   r"Got -1\."),
    ({"seed": 2**32}, r"'seed' parameter of digits_splits must be an int from 0 to 2\*\*32 - 1\. "
                      r"Got 4294967296\."),
    ({"fractions": (0.5, 0.5)}, r"'fractions' parameter of digits_splits must be three "
                                r"finite numbers > 0 summing to 1\. Got \(0\.5, 0\.5\)\."),
    ({"fractions": (0.8, 0.2, 0.0)}, r"'fractions' .* > 0 summing to 1\. Got \(0\.8, 0\.2, 0\.0\)"),
    ({"fractions": (0.6, 0.2, 0.3)}, r"'fractions' .* summing to 1"),
    ({"fractions": "abc"}, r"'fractions' .* Got 'abc'\."),
    ({"fractions": (0.001, 0.001, 0.998)},  # scikit-learn's ValueError on a stratified split
     r"^The 'fractions' parameter of digits_splits must be shares that leave every split at "
     r"least one image per class \(10 classes, 1797 images\)\. Got \(0\.001, 0\.001, 0\.998\)\.$"),
])
def test_digits_splits_rejects_bad_parameters(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        digits_splits(**kwargs)


# --- as_dataset -----------------------------------------------------------------------

def test_numpy_arrays_become_a_float32_int64_tensor_dataset():
    x = np.random.default_rng(0).random((5, 2, 4, 4))  # float64
    y = np.array([0, 1, 2, 1, 0], dtype=np.int32)
    ds = as_dataset(x, y, num_classes=3)
    assert isinstance(ds, TensorDataset) and len(ds) == 5
    assert ds.tensors[0].dtype == torch.float32 and ds.tensors[1].dtype == torch.int64
    np.testing.assert_allclose(ds.tensors[0].numpy(), x.astype(np.float32))
    np.testing.assert_array_equal(ds.tensors[1].numpy(), y)


def test_torch_tensors_and_uint8_images_are_accepted():
    x = torch.randint(0, 255, (3, 1, 8, 8), dtype=torch.uint8)
    ds = as_dataset(x, torch.tensor([0, 1, 9]))
    with pytest.raises(InvalidParameterError, match=r"integer labels\. Got dtype torch\.float32\."):
        as_dataset(x, torch.zeros(3))
    assert ds.tensors[0].dtype == torch.float32 and float(ds.tensors[0].max()) <= 255


def test_a_dataset_passes_through_unchanged(splits):
    assert as_dataset(splits.test) is splits.test


class _Plain(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i):
        return torch.zeros(1, 8, 8), i


@pytest.mark.parametrize(("x", "y", "kwargs", "match"), [
    (np.zeros((3, 8)), np.zeros(3, int), {},
     r"The 'x' parameter of as_dataset must be an array of images shaped \[N, C, H, W\]\. "
     r"Got shape \(3, 8\)\."),
    (np.zeros((3, 1, 8, 8)), np.zeros(4, int), {},
     r"The 'y' parameter of as_dataset must be an array of labels shaped \[N\] = \[3\] to "
     r"match x of shape \(3, 1, 8, 8\)\. Got shape \(4,\)\."),
    (np.zeros((3, 1, 8, 8)), np.zeros((3, 1), int), {}, r"'y' .* Got shape \(3, 1\)\."),
    (np.zeros((3, 1, 8, 8)), np.zeros(3), {},
     r"'y' parameter of as_dataset must be an array of integer labels\. Got dtype float64\."),
    (np.zeros((3, 1, 8, 8)), np.array([0, 1, 3]), {"num_classes": 3},
     r"'y' parameter of as_dataset must be labels in \[0, 3\) \(num_classes=3\)\. Got a label 3\."),
    (np.zeros((3, 1, 8, 8)), np.array([0, -1, 1]), {},
     r"'y' parameter of as_dataset must be labels >= 0\. Got a label -1\."),
    (np.full((2, 1, 2, 2), np.nan), np.array([0, 1]), {},
     r"'x' parameter of as_dataset must be an array of finite numbers\. Got an array with NaN"),
    ([[[[0.0]]]], np.array([0]), {},
     r"'x' parameter of as_dataset must be a NumPy array or torch tensor\. Got list\."),
    (np.array([[[["a"]]]]), np.array([0]), {}, r"'x' .* of numbers\. Got dtype <U1\."),
    (np.zeros((1, 1, 2, 2), dtype=complex), np.array([0]), {}, r"'x' .* Got dtype complex128"),
    (np.zeros((1, 1, 2, 2)), None, {},
     r"'y' parameter of as_dataset must be an array of labels \[N\] when x is an array\. "
     r"Got None\."),
    (_Plain(), np.array([0, 1]), {},
     r"'y' parameter of as_dataset must be None when x is a Dataset .* Got ndarray\."),
    (np.zeros((1, 1, 2, 2)), np.array([0]), {"num_classes": 0},
     r"'num_classes' parameter of as_dataset must be an int >= 1\. Got 0\."),
])
def test_as_dataset_rejects_bad_arrays(x, y, kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        as_dataset(x, y, **kwargs)
