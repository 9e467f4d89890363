"""Data for early-exit networks: scikit-learn's bundled ``digits`` and user data.

``digits_splits`` needs no download: ``sklearn.datasets.load_digits`` ships
with scikit-learn. It returns three stratified splits, because the early-exit
pipeline needs three disjoint sets: ``train`` fits the weights, ``calibration``
fits temperature scaling, and ``test`` (held out) builds the exit table.

**Resizing choice.** Digits are 8x8 grey images with values 0..16. They are
divided by 16 (so they lie in [0, 1]) and *upsampled* with bilinear
interpolation (``align_corners=False``) to ``size`` x ``size``, not padded:
the zoo's CIFAR-style networks halve the resolution twice, and a digit padded
into a corner 8x8 patch of a 32x32 canvas would shrink to 2x2 pixels by the
last stage, while an upsampled digit keeps the scale those architectures were
designed for. Bilinear weights are a convex combination, so the values stay in
[0, 1]. The grey channel is replicated to ``channels`` (3 for RGB networks).

``as_dataset`` turns NumPy or torch arrays ``x`` [N, C, H, W] and ``y`` [N]
into a ``TensorDataset`` (float32 images, int64 labels) after checking shapes
and labels, and passes any ``torch.utils.data.Dataset`` through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from .._validation import fail, integer
from .._validation import seed as v_seed

__all__ = ["Splits", "digits_splits", "as_dataset", "DIGITS_CLASSES"]

#: Number of classes of the digits data set (0..9).
DIGITS_CLASSES = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Splits:
    """Three disjoint, stratified splits of one data set.

    ``train`` fits the weights, ``calibration`` fits temperature scaling, and
    ``test`` is held out for the exit table and final accuracies. Each is a
    ``TensorDataset`` of float32 images [N, C, H, W] and int64 labels [N].
    """

    train: TensorDataset
    calibration: TensorDataset
    test: TensorDataset
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape (C, H, W) of one image."""
        return tuple(self.train.tensors[0].shape[1:])  # type: ignore[return-value]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(getattr(self, name))}"
                          for name in ("train", "calibration", "test"))
        return (f"Splits({sizes}, input_shape={self.input_shape}, "
                f"num_classes={self.num_classes})")


def digits_splits(*, size: int = 32, channels: int = 1, seed: int = 0,
                  fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> Splits:
    """scikit-learn's digits as train / calibration / test splits (no download).

    Images are scaled to [0, 1], bilinearly upsampled from 8x8 to
    ``size`` x ``size`` (see the module docstring for why not padding) and
    replicated to ``channels``. The splits are stratified by class and
    determined by ``seed``; ``fractions`` are the shares of the 1797 images in
    (train, calibration, test), each > 0, summing to 1.
    """
    owner = "digits_splits"
    size = integer(owner, "size", size, low=8)
    channels = integer(owner, "channels", channels, low=1)
    seed = v_seed(owner, "seed", seed, bits=32)  # scikit-learn's random_state
    f_train, f_cal, f_test = _fractions(owner, fractions)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = _resize(digits.images, size, channels)
    labels = torch.as_tensor(digits.target, dtype=torch.int64)
    index = np.arange(len(labels))
    try:
        rest, test = train_test_split(index, test_size=f_test, random_state=seed,
                                      stratify=digits.target)
        train, cal = train_test_split(rest, test_size=f_cal / (f_train + f_cal),
                                      random_state=seed, stratify=digits.target[rest])
    except ValueError:  # a split smaller than the classes: it cannot be stratified
        raise fail(owner, "fractions", f"shares that leave every split at least one image "
                   f"per class ({DIGITS_CLASSES} classes, {len(labels)} images)",
                   tuple(fractions)) from None

    def part(idx: np.ndarray) -> TensorDataset:
        idx_t = torch.as_tensor(idx)
        return TensorDataset(images[idx_t].contiguous(), labels[idx_t].contiguous())

    return Splits(train=part(train), calibration=part(cal), test=part(test),
                  num_classes=DIGITS_CLASSES)


def _fractions(owner: str, fractions: object) -> tuple[float, float, float]:
    rule = "three finite numbers > 0 summing to 1"
    try:
        arr = np.asarray(fractions, dtype=float)
    except (TypeError, ValueError):
        raise fail(owner, "fractions", rule, fractions) from None
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0) \
            or abs(arr.sum() - 1.0) > 1e-9:
        raise fail(owner, "fractions", rule, fractions)
    return float(arr[0]), float(arr[1]), float(arr[2])


def _resize(images: np.ndarray, size: int, channels: int) -> torch.Tensor:
    """[N, 8, 8] values 0..16 -> float32 [N, channels, size, size] in [0, 1]."""
    x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
    if size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                            align_corners=False)
    x = x.clamp_(0.0, 1.0)  # guard against rounding just outside [0, 1]
    return x.expand(-1, channels, -1, -1).contiguous()


def as_dataset(x: object, y: object = None, *, num_classes: int | None = None) -> Dataset:
    """A ``Dataset`` from a ``Dataset`` (returned as is) or from arrays.

    Arrays (NumPy or torch): ``x`` is [N, C, H, W] of real numbers (converted
    to float32, not rescaled) and ``y`` is [N] of integers (int64), each in
    ``0..num_classes-1`` when ``num_classes`` is given. A ``Dataset`` must come
    without ``y``; its samples must be ``(image, label)`` pairs.
    """
    owner = "as_dataset"
    if isinstance(x, Dataset):
        if y is not None:
            raise fail(owner, "y", "None when x is a Dataset (its samples carry the labels)",
                       Shown(type(y).__name__))
        return x
    if y is None:
        raise fail(owner, "y", "an array of labels [N] when x is an array", None)
    xs = _tensor(owner, "x", x)
    ys = _tensor(owner, "y", y)
    if xs.ndim != 4:
        raise fail(owner, "x", "an array of images shaped [N, C, H, W]",
                   Shown(f"shape {tuple(xs.shape)}"))
    if xs.is_complex() or not (xs.is_floating_point() or _is_integer(xs)):
        raise fail(owner, "x", "an array of real numbers",
                   Shown(f"dtype {getattr(x, 'dtype', xs.dtype)}"))
    xs = xs.to(torch.float32)
    if not bool(torch.isfinite(xs).all()):
        raise fail(owner, "x", "an array of finite numbers", Shown("an array with NaN or inf"))
    if ys.ndim != 1 or len(ys) != len(xs):
        raise fail(owner, "y", f"an array of labels shaped [N] = [{len(xs)}] "
                   f"to match x of shape {tuple(xs.shape)}", Shown(f"shape {tuple(ys.shape)}"))
    if not _is_integer(ys):
        raise fail(owner, "y", "an array of integer labels",
                   Shown(f"dtype {getattr(y, 'dtype', ys.dtype)}"))
    ys = ys.to(torch.int64)
    if num_classes is not None:
        num_classes = integer(owner, "num_classes", num_classes, low=1)
    check_labels(owner, "y", ys, num_classes)
    return TensorDataset(xs.contiguous(), ys.contiguous())


def check_labels(owner: str, name: str, labels: torch.Tensor,
                 num_classes: int | None) -> None:
    """Raise unless every label is an int in [0, num_classes) (>= 0 if None)."""
    if labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if num_classes is None:
        if low < 0:
            raise fail(owner, name, "labels >= 0", Shown(f"a label {low}"))
        return
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise fail(owner, name, f"labels in [0, {num_classes}) (num_classes={num_classes})",
                   Shown(f"a label {bad}"))


def _tensor(owner: str, name: str, value: object) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype == object or not (np.issubdtype(value.dtype, np.number)
                                         or value.dtype == np.bool_):
            raise fail(owner, name, "a NumPy array or torch tensor of numbers",
                       Shown(f"dtype {value.dtype}"))
        return torch.from_numpy(np.ascontiguousarray(value))
    raise fail(owner, name, "a NumPy array or torch tensor", Shown(type(value).__name__))


def _is_integer(t: torch.Tensor) -> bool:
    return not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool


class Shown(str):
    """Text that error messages show as is, without quotes (``Got shape (3, 8).``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)
