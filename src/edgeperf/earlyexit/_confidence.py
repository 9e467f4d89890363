"""Confidence of an exit's prediction, temperature scaling and calibration error.

All functions take logits ``[N, C]`` (N samples, C >= 2 classes) as NumPy arrays
or torch tensors (converted; torch itself is never imported here) and work in
float64 through the log-softmax, so huge logits give no overflow and no NaN.

Confidence measures, each in [0, 1] (higher: more sure):

- ``"max_softmax"``: the largest softmax probability.
- ``"margin"``: the largest minus the second largest probability.
- ``"entropy"``: ``1 - H(p) / log C``, one minus the normalised entropy.

Temperature scaling divides an exit's logits by a scalar T > 0 fitted on a
calibration split (minimum negative log-likelihood); it changes no prediction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar

from .. import _validation as v

__all__ = ["MEASURES", "confidence", "fit_temperature", "fit_temperatures",
           "expected_calibration_error", "log_softmax", "TEMPERATURE_BOUNDS"]

MEASURES = ("max_softmax", "margin", "entropy")
_MEASURE_RULE = "one of " + ", ".join(repr(m) for m in MEASURES)
TEMPERATURE_BOUNDS = (0.05, 20.0)
"""The range :func:`fit_temperature` searches; a fit at a bound means the data
pull further (e.g. every calibration sample right: T -> 0)."""


def confidence(logits: object, measure: str = "max_softmax",
               temperature: float = 1.0) -> np.ndarray:
    """The confidence ``[N]`` in [0, 1] of each row of ``logits / temperature``."""
    owner = "confidence"
    x = as_logits(owner, "logits", logits)
    if measure not in MEASURES:
        raise v.fail(owner, "measure", _MEASURE_RULE, measure)
    t = v.positive(owner, "temperature", temperature)
    logp = log_softmax(x, t)
    with np.errstate(under="ignore"):  # probabilities far below the top one underflow to 0
        if measure == "max_softmax":
            out = np.exp(logp.max(axis=1))
        elif measure == "margin":
            top2 = np.partition(logp, -2, axis=1)[:, -2:]
            out = np.exp(top2[:, 1]) - np.exp(top2[:, 0])
        else:
            p = np.exp(logp)
            plogp = p * np.where(p > 0.0, logp, 0.0)  # 0 log 0 = 0
            out = 1.0 + plogp.sum(axis=1) / math.log(x.shape[1])
    return np.clip(out, 0.0, 1.0)


def log_softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise log-softmax of ``x / temperature``, stable for any finite logits.

    The row maximum is subtracted before dividing, so neither a huge logit nor a
    tiny temperature overflows; entries far below the maximum may become -inf
    (probability 0), the maximum's entry stays finite.
    """
    with np.errstate(over="ignore", under="ignore"):
        z = (x - x.max(axis=1, keepdims=True)) / temperature
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def fit_temperature(logits: object, labels: object) -> float:
    """The T > 0 minimising the mean negative log-likelihood of ``softmax(logits / T)``.

    A bounded 1-D search over log T in :data:`TEMPERATURE_BOUNDS`; the negative
    log-likelihood is convex in 1/T, so it has a single minimum along log T.
    """
    x = as_logits("fit_temperature", "logits", logits)
    y = as_labels("fit_temperature", "labels", labels, x.shape)
    return _fit(x, y)


def fit_temperatures(per_exit_logits: Sequence[object], labels: object) -> np.ndarray:
    """One fitted temperature per exit, ``[E]``, from a list of per-exit logits ``[N, C]``."""
    xs = as_exit_logits("fit_temperatures", per_exit_logits)
    y = as_labels("fit_temperatures", "labels", labels, xs[0].shape)
    return np.array([_fit(x, y) for x in xs])


def _fit(x: np.ndarray, y: np.ndarray) -> float:
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return float(-log_softmax(x, math.exp(log_t))[rows, y].mean())

    lo, hi = (math.log(b) for b in TEMPERATURE_BOUNDS)
    result = minimize_scalar(nll, bounds=(lo, hi), method="bounded",
                             options={"xatol": 1e-6})
    best = min((float(result.x), lo, hi), key=nll)  # the bounds themselves, too
    return math.exp(best)


def expected_calibration_error(confidence: object, correct: object, bins: int = 15) -> float:
    """Expected calibration error (ECE) of confidences against correctness.

    The confidences are put in ``bins`` equal-width bins over [0, 1]: sample n
    goes to bin ``min(floor(confidence[n] * bins), bins - 1)`` (so bin b is
    [b/bins, (b+1)/bins), the last one closed at 1). The ECE is the average over
    bins of |accuracy in the bin - mean confidence in the bin|, weighted by the
    share of samples in the bin. The standard ECE (Guo et al., 2017) uses the
    max-softmax confidence; 0 is perfectly calibrated, at most 1.
    """
    owner = "expected_calibration_error"
    rule = "a non-empty 1-D array of values in [0, 1]"
    conf = v.array(owner, "confidence", _numpy(confidence), rule)
    if conf.ndim != 1 or conf.size == 0:
        raise v.fail(owner, "confidence", rule, _describe(conf))
    inside = (conf >= 0.0) & (conf <= 1.0)
    if not inside.all():
        raise v.fail(owner, "confidence", rule, float(conf[~inside][0]))
    ok = np.asarray(_numpy(correct))
    if ok.shape != conf.shape or not np.all((ok == 0) | (ok == 1)):
        raise v.fail(owner, "correct", f"{conf.size} booleans (0 or 1), one per confidence",
                     _describe(ok))
    n_bins = v.integer(owner, "bins", bins, low=1)
    which = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    gap = np.bincount(which, weights=ok.astype(float) - conf, minlength=n_bins)
    return float(np.abs(gap).sum() / conf.size)  # sum_b |sum_{n in b}(ok - conf)| / N


def as_logits(owner: str, name: str, logits: object) -> np.ndarray:
    """Logits ``[N, C]`` (N >= 1, C >= 2, finite) as float64."""
    try:
        x = np.asarray(_numpy(logits), dtype=float)
    except (TypeError, ValueError):
        raise v.fail(owner, name, "a 2-D array of logits [samples, classes]",
                     type(logits).__name__) from None
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 2:
        raise v.fail(owner, name, "a 2-D array of logits [samples, classes] with at least "
                     "one sample and two classes", f"shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise v.fail(owner, name, "finite logits", float(x[~np.isfinite(x)][0]))
    return x


def as_exit_logits(owner: str, per_exit_logits: Sequence[object]) -> list[np.ndarray]:
    """A non-empty list of per-exit logits, all ``[N, C]`` of the same shape."""
    if isinstance(per_exit_logits, (str, bytes)) or not isinstance(per_exit_logits, Sequence) \
            or len(per_exit_logits) == 0:
        raise v.fail(owner, "per_exit_logits", "a non-empty list of logits [samples, classes], "
                     "one per exit", type(per_exit_logits).__name__)
    xs = [as_logits(owner, f"per_exit_logits[{e}]", x) for e, x in enumerate(per_exit_logits)]
    for e, x in enumerate(xs):
        if x.shape != xs[0].shape:
            raise v.fail(owner, f"per_exit_logits[{e}]",
                         f"the shape of per_exit_logits[0] {xs[0].shape}", x.shape)
    return xs


def as_labels(owner: str, name: str, labels: object, shape: tuple[int, ...]) -> np.ndarray:
    """Class labels ``[N]``: ints in [0, C) for logits of ``shape`` (N, C)."""
    n, c = shape
    y = np.asarray(_numpy(labels))
    if y.shape != (n,) or y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise v.fail(owner, name, f"{n} integer class labels, one per sample", _describe(y))
    bad = (y < 0) | (y >= c)
    if bad.any():
        raise v.fail(owner, name, f"class labels in [0, {c})", int(y[bad][0]))
    return y.astype(np.int64)


def _numpy(x: object) -> object:
    """A torch tensor's values as a NumPy array; anything else unchanged."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        t = x.detach().cpu()  # type: ignore[attr-defined]
        return (t.double() if t.is_floating_point() else t).numpy()  # bfloat16 has no NumPy twin
    return x


def _describe(arr: np.ndarray) -> str:
    return f"{arr.dtype} array of shape {arr.shape}"
