"""Latency of a layer or block predicted from its configuration by regression,
as Neurosurgeon does per layer type and per tier: time a few configurations
of each kind on a machine once, then predict any model's latencies there
without profiling the model on it.

The regression (one per kind) is non-negative least squares on relative
error: latency ≈ w0 + w1·FLOPs + w2·input bytes + w3·output bytes + w4·param
bytes, all w >= 0, fitted with weights 1/latency². Why this model:

* the law is physical: a fixed dispatch overhead plus work proportional to
  arithmetic and to memory traffic, so it extrapolates sanely to larger layers
  (a log-space fit bends away from that), and non-negative weights never
  predict a negative or shrinking latency for more work;
* timings span orders of magnitude (microseconds for a ReLU, milliseconds for
  a convolution) with roughly multiplicative noise, so ordinary least squares
  would fit the big layers and ignore the small ones; weighting by 1/latency²
  minimises relative error, the figure (MAPE) we report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import _validation as v
from .._torch_state import torch_threads
from ..dists import Deterministic
from ..exceptions import NotFittedError
from ..profiling import BlockProfile, HeadProfile, LatencyStats, Profile

__all__ = ["LayerSample", "LAYER_KINDS", "time_layers", "samples_from_profile",
           "LatencyPredictor", "held_out_error", "predicted_profile"]

#: Layer kinds :func:`time_layers` knows, with the names its samples carry.
LAYER_KINDS = ("conv2d", "linear", "batchnorm2d", "relu", "maxpool2d", "avgpool2d",
               "adaptiveavgpool2d")
_FEATURES = ("intercept_s", "s_per_flop", "s_per_input_byte", "s_per_output_byte",
             "s_per_param_byte")


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerSample:
    """One layer (or block) call at batch 1: its kind, FLOPs, bytes in, out and
    of parameters, and its latency in seconds (None in a query for
    :meth:`LatencyPredictor.predict`)."""

    kind: str
    flops: int
    input_bytes: int
    output_bytes: int
    param_bytes: int = 0
    latency_s: float | None = None

    def __post_init__(self) -> None:
        v.name_string("LayerSample", "kind", self.kind)
        for name in ("flops", "input_bytes", "output_bytes", "param_bytes"):
            v.integer("LayerSample", name, getattr(self, name), low=0)
        if self.latency_s is not None:
            v.positive("LayerSample", "latency_s", self.latency_s)


# --------------------------------------------------------------------------- timing on this host


def _conv2d(rng: np.random.Generator) -> tuple[Any, tuple[int, ...], int]:
    from torch import nn

    cin, cout = int(rng.integers(3, 33)), int(rng.integers(4, 65))
    k, hw, stride = int(rng.choice([1, 3, 5])), int(rng.choice([8, 16, 24, 32])), \
        int(rng.choice([1, 2]))
    out = (hw + 2 * (k // 2) - k) // stride + 1
    flops = 2 * cin * k * k * cout * out**2
    return nn.Conv2d(cin, cout, k, stride, k // 2), (1, cin, hw, hw), flops


def _linear(rng: np.random.Generator) -> tuple[Any, tuple[int, ...], int]:
    from torch import nn

    fin, fout = int(rng.integers(16, 1025)), int(rng.integers(16, 513))
    return nn.Linear(fin, fout), (1, fin), 2 * fin * fout


def _feature_map(rng: np.random.Generator) -> tuple[int, ...]:
    return (1, int(rng.integers(4, 65)), *[int(rng.choice([8, 16, 24, 32]))] * 2)


def _elementwise(make: Callable[[int], Any], per_element: int
                 ) -> Callable[[np.random.Generator], tuple[Any, tuple[int, ...], int]]:
    """A layer over a random feature map costing ``per_element`` FLOPs per input element."""
    def config(rng: np.random.Generator) -> tuple[Any, tuple[int, ...], int]:
        shape = _feature_map(rng)
        return make(shape[1]), shape, per_element * math.prod(shape)
    return config


def _configs() -> dict[str, Callable[[np.random.Generator], tuple[Any, tuple[int, ...], int]]]:
    """Random configurations per kind; FLOPs as ``edgeperf.profiling`` counts them."""
    from torch import nn

    return {"conv2d": _conv2d, "linear": _linear,
            "batchnorm2d": _elementwise(nn.BatchNorm2d, 2),
            "relu": _elementwise(lambda c: nn.ReLU(), 1),
            "maxpool2d": _elementwise(lambda c: nn.MaxPool2d(2), 1),
            "avgpool2d": _elementwise(lambda c: nn.AvgPool2d(2), 1),
            "adaptiveavgpool2d": _elementwise(lambda c: nn.AdaptiveAvgPool2d(1), 1)}


def _median_s(call: Callable[[], Any], repetitions: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    times = np.empty(repetitions)
    for r in range(repetitions):
        start = time.perf_counter_ns()
        call()
        times[r] = time.perf_counter_ns() - start
    return max(float(np.median(times)), 1.0) * 1e-9


def time_layers(*, per_kind: int = 24, kinds: Sequence[str] = LAYER_KINDS,
                repetitions: int = 15, warmup: int = 3, seed: int = 0,
                threads: int | None = 1) -> list[LayerSample]:
    """Time ``per_kind`` random configurations of each layer kind on this host.

    Batch 1, eval mode, ``torch.inference_mode()``; each call's latency is the
    median of ``repetitions`` timings after ``warmup`` untimed calls (the median
    shrugs off bursts of load from other processes). Sizes are small (at most
    64 channels at 32x32, 1024x512 linear) so all kinds take a few seconds.
    ``threads`` as in :func:`edgeperf.profiling.measure_profile`; ``seed``
    fixes configurations, weights and inputs.
    """
    import torch

    owner = "time_layers"
    per_kind = v.integer(owner, "per_kind", per_kind, low=1)
    repetitions = v.integer(owner, "repetitions", repetitions, low=1)
    warmup = v.integer(owner, "warmup", warmup, low=0)
    seed = v.seed(owner, "seed", seed)
    if threads is not None:
        threads = v.cores(owner, "threads", threads)
    configs = _configs()
    if isinstance(kinds, str) or not kinds or any(k not in configs for k in kinds):
        raise v.fail(owner, "kinds", f"a non-empty list among {list(LAYER_KINDS)}", kinds)
    rng = np.random.default_rng(seed)
    out = []
    with torch_threads(threads), torch.random.fork_rng(), torch.inference_mode():
        torch.manual_seed(seed)
        for kind in kinds:
            for _ in range(per_kind):
                module, shape, flops = configs[kind](rng)
                module.eval()
                x = torch.randn(shape)
                y = module(x)
                out.append(LayerSample(
                    kind=kind, flops=flops, input_bytes=4 * x.numel(), output_bytes=4 * y.numel(),
                    param_bytes=sum(4 * p.numel() for p in module.parameters()),
                    latency_s=_median_s(lambda: module(x), repetitions, warmup)))
    return out


# --------------------------------------------------------------------------- profiles


def _profile_samples(profile: Profile, *, measured: bool) -> list[tuple[int, LayerSample]]:
    """(block index, sample) for each block ("block") and exit head ("head") of
    a profile whose FLOPs are known; with ``measured``, their mean latencies."""
    out = []
    inputs = 4 * math.prod(profile.input_shape)
    for i, b in enumerate(profile.blocks):
        parts: list[tuple[str, BlockProfile | HeadProfile, int, int]] = \
            [("block", b, inputs, b.output_bytes)]
        if b.exit is not None:
            parts.append(("head", b.exit, b.output_bytes, 4 * profile.num_classes))
        for kind, part, size_in, size_out in parts:
            if part.flops is not None:
                out.append((i, LayerSample(
                    kind=kind, flops=part.flops, input_bytes=size_in, output_bytes=size_out,
                    param_bytes=part.param_bytes or 0,
                    latency_s=part.latency.mean if measured else None)))
        inputs = b.output_bytes
    return out


def samples_from_profile(profile: Profile) -> list[LayerSample]:
    """Block-level samples of a profile: kind "block" for each block and "head"
    for each exit head, skipping those whose FLOPs are not known (imports).
    Input bytes are the previous block's output (one float32 input first);
    a head outputs ``num_classes`` float32 logits."""
    v.instance("samples_from_profile", "profile", profile, Profile, "a Profile")
    return [s for _, s in _profile_samples(profile, measured=True)]


def predicted_profile(profile: Profile, predictor: LatencyPredictor, *,
                      speed: float = 1.0) -> Profile:
    """``profile`` with every block and head latency predicted (deterministic
    laws), divided by ``speed``: the profile of a tier the model never ran on,
    from a predictor fitted on "block" and "head" samples timed there. Pass it
    to ``Profile.to_dnn(device_profiles={tier: ...})`` to split for that tier."""
    owner = "predicted_profile"
    v.instance(owner, "profile", profile, Profile, "a Profile")
    v.instance(owner, "predictor", predictor, LatencyPredictor, "a LatencyPredictor")
    speed = v.positive(owner, "speed", speed)
    unknown = [b.name for b in profile.blocks if b.flops is None
               or (b.exit is not None and b.exit.flops is None)]
    if unknown:
        raise v.fail(owner, "profile", "a profile with FLOPs for every block and head", unknown)
    queries = [s for _, s in _profile_samples(profile, measured=False)]
    means = iter(predictor.predict(queries) / speed)
    blocks = []
    for b in profile.blocks:
        latency = _stats(next(means))
        head = None if b.exit is None else replace(b.exit, latency=_stats(next(means)))
        blocks.append(replace(b, latency=latency, exit=head))
    return replace(profile, source=f"predicted from {profile.source}", blocks=tuple(blocks))


def _stats(mean_s: float) -> LatencyStats:
    m = float(mean_s)
    return LatencyStats(n=None, mean=m, var=0.0, p50=m, p95=m, p99=m, law=Deterministic(m))


# --------------------------------------------------------------------------- regression


def _check_samples(owner: str, samples: object, *, measured: bool) -> list[LayerSample]:
    rule = "a non-empty list of LayerSample" + (" with latency_s" if measured else "")
    items = list(samples) if isinstance(samples, (list, tuple)) else []
    if not items or not all(isinstance(s, LayerSample) for s in items) \
            or (measured and any(s.latency_s is None for s in items)):
        raise v.fail(owner, "samples", rule, samples)
    return items


def _features(samples: Sequence[LayerSample]) -> np.ndarray:
    return np.array([[1.0, s.flops, s.input_bytes, s.output_bytes, s.param_bytes]
                     for s in samples], dtype=float)


class LatencyPredictor:
    """One non-negative relative-error linear regression per kind (see the
    module docstring for why): ``fit(samples)``, then ``predict(queries)``."""

    def __init__(self) -> None:
        self._weights: dict[str, np.ndarray] = {}

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._weights))

    def fit(self, samples: Sequence[LayerSample]) -> LatencyPredictor:
        """Fit one regression per kind present in ``samples``; returns self."""
        from sklearn.linear_model import LinearRegression

        items = _check_samples("LatencyPredictor.fit", samples, measured=True)
        weights = {}
        for kind in sorted({s.kind for s in items}):
            mine = [s for s in items if s.kind == kind]
            x, y = _features(mine), np.array([s.latency_s for s in mine])
            scale = np.where(x.max(axis=0) > 0, x.max(axis=0), 1.0)  # conditions the solve
            model = LinearRegression(fit_intercept=False, positive=True)
            model.fit(x / scale, y, sample_weight=1.0 / y**2)
            weights[kind] = model.coef_ / scale
        self._weights = weights
        return self

    def predict(self, samples: Sequence[LayerSample]) -> np.ndarray:
        """Predicted latency (seconds) of each sample; their ``latency_s`` is ignored."""
        owner = "LatencyPredictor.predict"
        items = _check_samples(owner, samples, measured=False)
        self._check_fitted()
        unseen = sorted({s.kind for s in items} - set(self._weights))
        if unseen:
            raise v.fail(owner, "samples", f"samples of fitted kinds {list(self.kinds)}", unseen)
        x = _features(items)
        return np.array([x[i] @ self._weights[s.kind] for i, s in enumerate(items)])

    def coefficients(self, kind: str) -> dict[str, float]:
        """The fitted law of ``kind``: intercept and seconds per FLOP and per byte."""
        self._check_fitted()
        if not isinstance(kind, str) or kind not in self._weights:  # a list is unhashable
            raise v.fail("LatencyPredictor.coefficients", "kind", f"one of {list(self.kinds)}",
                         kind)
        return dict(zip(_FEATURES, (float(w) for w in self._weights[kind])))

    def _check_fitted(self) -> None:
        if not self._weights:
            raise NotFittedError("LatencyPredictor is not fitted: call fit(samples) first.")


def _split(owner: str, items: list[LayerSample], test_share: float,
           seed: int) -> tuple[list[LayerSample], list[LayerSample]]:
    """Train and test samples, split within each kind so every kind has both."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for kind in sorted({s.kind for s in items}):
        mine = [s for s in items if s.kind == kind]
        if len(mine) < 2:
            raise v.fail(owner, "samples", "at least 2 samples of each kind (one to fit, one "
                         "to test)", {kind: len(mine)})
        order = rng.permutation(len(mine))
        n_test = min(max(1, round(test_share * len(mine))), len(mine) - 1)
        test += [mine[i] for i in order[:n_test]]
        train += [mine[i] for i in order[n_test:]]
    return train, test


def _errors(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    return np.abs(predicted - measured) / measured


def held_out_error(samples: Sequence[LayerSample], *, test_share: float = 0.3,
                   seed: int = 0) -> dict[str, dict[str, float]]:
    """Fit on part of each kind's samples, test on the rest (``test_share``).

    Per kind and for "all": ``mape`` and ``median_ape`` (absolute percentage
    errors as fractions), ``n_test``, and ``baseline_mape``, the MAPE of the
    naive predictor Neurosurgeon improves on: one global seconds-per-FLOP ratio
    fitted on the same training samples.
    """
    owner = "held_out_error"
    items = _check_samples(owner, samples, measured=True)
    share = v.real(owner, "test_share", test_share, low=0.0, low_open=True, high=1.0)
    train, test = _split(owner, items, share, v.integer(owner, "seed", seed, low=0))
    ratio = float(np.sum([s.latency_s for s in train])) / max(sum(s.flops for s in train), 1)
    predicted = LatencyPredictor().fit(train).predict(test)
    baseline = np.array([s.flops * ratio for s in test])
    measured = np.array([s.latency_s for s in test])
    kinds = np.array([s.kind for s in test])
    out = {}
    for kind in [*sorted({s.kind for s in test}), "all"]:
        mine = np.ones(len(test), bool) if kind == "all" else kinds == kind
        ape = _errors(predicted[mine], measured[mine])
        out[kind] = {"mape": float(ape.mean()), "median_ape": float(np.median(ape)),
                     "baseline_mape": float(_errors(baseline[mine], measured[mine]).mean()),
                     "n_test": int(mine.sum())}
    return out
