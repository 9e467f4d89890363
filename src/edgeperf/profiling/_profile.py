"""A model's profile: per block and per exit head, latency statistics with a
fitted law, FLOPs, parameter bytes and output activation bytes; saved as JSON.

A profile is what a scenario file's ``model: {profile: PATH}`` refers to:
:meth:`Profile.to_dnn` turns it into the :class:`edgeperf.model.DNN` the
evaluators consume. Latencies are in seconds as measured on the profiling host
(the reference, speed 1.0); devices scale them by their ``speed``.

The JSON file (``format: edgeperf-profile``, ``version: 1``) holds every field
of the dataclasses below; laws are written with ``law.to_spec()`` and read back
with the scenario format's law specs, so a profile round-trips exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from .. import _validation as v
from .._atomic import write_text_atomic
from ..dists import Deterministic, Gamma, Lognormal, ServiceLaw, Sum
from ..io._files import ScenarioError, _from_validation, read_text
from ..io._specs import LawSpec, _Spec
from ..model import DNN, Block

__all__ = ["LatencyStats", "HeadProfile", "BlockProfile", "Profile", "load_profile", "fit_law",
           "profile_from_dict", "DETERMINISTIC_SCV", "FORMAT", "VERSION"]

FORMAT = "edgeperf-profile"
VERSION = 1
#: Below this sample SCV (a standard deviation under ~3 % of the mean) a
#: latency is fitted as deterministic; the analytic chain solver uses the same floor.
DETERMINISTIC_SCV = 1e-3


def fit_law(samples: Sequence[float] | np.ndarray) -> ServiceLaw:
    """A law for latency samples (seconds), matched on their mean and SCV.

    Deterministic when the sample SCV is below :data:`DETERMINISTIC_SCV` (or
    there is one sample); otherwise the gamma or the lognormal with the
    sample's mean and SCV, whichever gives the samples the larger
    log-likelihood (lognormal wins for the right-skewed, long-tailed samples
    timing usually gives; gamma for nearly symmetric ones). No maximum
    likelihood fit: the mean, which sets throughput, is always kept exactly.
    """
    from scipy import stats  # lazily: scipy.stats takes half a second to import

    rule = "a non-empty list of finite numbers > 0"
    try:
        x = np.asarray(samples, dtype=float)
    except (TypeError, ValueError):
        raise v.fail("fit_law", "samples", rule, samples) from None
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0):
        shown = [float(a) for a in x.ravel()[:5]] + (["..."] if x.size > 5 else [])
        raise v.fail("fit_law", "samples", rule, shown)
    scale = float(x.max())  # moments of x / scale: neither overflow nor underflow at extremes
    mean = float((x / scale).mean()) * scale
    scv = float((x / mean).var(ddof=1)) if x.size > 1 else 0.0
    if scv < DETERMINISTIC_SCV:
        return Deterministic(mean)
    gamma, lognormal = Gamma(1.0 / scv, mean), Lognormal(mean, scv)
    mu, sigma = math.log(mean) - math.log1p(scv) / 2.0, math.sqrt(math.log1p(scv))
    gamma_ll = stats.gamma.logpdf(x, a=1.0 / scv, scale=mean * scv).sum()
    lognormal_ll = stats.lognorm.logpdf(x, s=sigma, scale=math.exp(mu)).sum()
    return lognormal if lognormal_ll >= gamma_ll else gamma


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyStats:
    """Latency of one block or head, in seconds.

    ``n`` is the number of timed repetitions behind the statistics (None when
    they were imported as moments); ``mean`` and ``var`` the sample mean and
    variance; ``p50``/``p95``/``p99`` percentiles (empirical when measured; the
    fitted law's quantiles when imported without samples); ``law`` the service
    law the models use.
    """

    n: int | None
    mean: float
    var: float
    p50: float
    p95: float
    p99: float
    law: ServiceLaw

    def __post_init__(self) -> None:
        owner = "LatencyStats"
        if self.n is not None:
            v.integer(owner, "n", self.n, low=1)
        v.positive(owner, "mean", self.mean)
        v.non_negative(owner, "var", self.var)
        for name in ("p50", "p95", "p99"):
            v.non_negative(owner, name, getattr(self, name))
        if not self.p50 <= self.p95 <= self.p99:
            raise v.fail(owner, "p99", "percentiles with p50 <= p95 <= p99",
                         [self.p50, self.p95, self.p99], what="value")
        v.instance(owner, "law", self.law, ServiceLaw, "a service law from edgeperf.dists")

    @property
    def scv(self) -> float:
        """The sample SCV, var / mean²."""
        return self.var / self.mean**2

    @classmethod
    def from_samples(cls, samples_s: Sequence[float] | np.ndarray) -> LatencyStats:
        """Statistics of latency samples (seconds) and the law :func:`fit_law` picks."""
        law = fit_law(samples_s)
        x = np.asarray(samples_s, dtype=float)
        p50, p95, p99 = (float(p) for p in np.percentile(x, [50.0, 95.0, 99.0]))
        return cls(n=int(x.size), mean=float(x.mean()),
                   var=float(x.var(ddof=1)) if x.size > 1 else 0.0,
                   p50=p50, p95=p95, p99=p99, law=law)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "var": self.var, "p50": self.p50,
                "p95": self.p95, "p99": self.p99, "law": self.law.to_spec()}


def _optional_count(owner: str, name: str, value: object) -> None:
    if value is not None:
        v.integer(owner, name, value, low=0)


def _stats(owner: str, value: object) -> None:
    v.instance(owner, "latency", value, LatencyStats, "a LatencyStats")


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadProfile:
    """An exit head (intermediate or final classifier) run on its block's
    output; ``flops`` and ``param_bytes`` are None when not known (imports)."""

    latency: LatencyStats
    flops: int | None = None
    param_bytes: int | None = None

    def __post_init__(self) -> None:
        _stats("HeadProfile", self.latency)
        _optional_count("HeadProfile", "flops", self.flops)
        _optional_count("HeadProfile", "param_bytes", self.param_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {"latency": self.latency.to_dict(), "flops": self.flops,
                "param_bytes": self.param_bytes}


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockProfile:
    """One block: its latency, the bytes of the activation it outputs (batch
    1), FLOPs and parameter bytes (None when not known), and the exit head
    that follows it, if any."""

    name: str
    latency: LatencyStats
    output_bytes: int
    flops: int | None = None
    param_bytes: int | None = None
    exit: HeadProfile | None = None

    def __post_init__(self) -> None:
        v.name_string("BlockProfile", "name", self.name)
        _stats("BlockProfile", self.latency)
        v.integer("BlockProfile", "output_bytes", self.output_bytes, low=0)
        _optional_count("BlockProfile", "flops", self.flops)
        _optional_count("BlockProfile", "param_bytes", self.param_bytes)
        if self.exit is not None and not isinstance(self.exit, HeadProfile):
            raise v.fail("BlockProfile", "exit", "a HeadProfile or None", self.exit)

    @property
    def law(self) -> ServiceLaw:
        """The latency of a job passing this block: the block, then its exit head if any."""
        if self.exit is None:
            return self.latency.law
        return Sum((self.latency.law, self.exit.latency.law))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "latency": self.latency.to_dict(),
                "output_bytes": self.output_bytes, "flops": self.flops,
                "param_bytes": self.param_bytes,
                "exit": None if self.exit is None else self.exit.to_dict()}


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """A profiled early-exit model: blocks in execution order, each with the
    exit head after it (the last head is the final classifier).

    ``source`` says where the numbers come from ("measured on <host>", "CEED
    import"); ``host`` describes the machine and settings (strings).
    """

    name: str
    source: str
    input_shape: tuple[int, ...]
    num_classes: int
    host: dict[str, str] = field(default_factory=dict)
    blocks: tuple[BlockProfile, ...]

    def __post_init__(self) -> None:
        owner = "Profile"
        v.name_string(owner, "name", self.name)
        v.name_string(owner, "source", self.source)
        shape = tuple(self.input_shape) if isinstance(self.input_shape, (list, tuple)) else ()
        if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                                for d in shape):
            raise v.fail(owner, "input_shape", "a non-empty list of ints >= 1", self.input_shape)
        object.__setattr__(self, "input_shape", shape)
        v.integer(owner, "num_classes", self.num_classes, low=1)
        if not isinstance(self.host, Mapping) or not all(
                isinstance(k, str) and isinstance(x, str) for k, x in self.host.items()):
            raise v.fail(owner, "host", "a mapping of strings to strings", self.host)
        object.__setattr__(self, "host", dict(self.host))
        blocks = tuple(self.blocks) if isinstance(self.blocks, (list, tuple)) else ()
        if not blocks or not all(isinstance(b, BlockProfile) for b in blocks):
            raise v.fail(owner, "blocks", "a non-empty list of BlockProfile", self.blocks)
        names = [b.name for b in blocks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise v.fail(owner, "blocks", "blocks with unique names", duplicates)
        object.__setattr__(self, "blocks", blocks)

    # ------------------------------------------------------------------ views

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.blocks)

    @property
    def exits(self) -> tuple[str, ...]:
        """Names of the blocks an exit head follows, in order."""
        return tuple(b.name for b in self.blocks if b.exit is not None)

    def path_mean_s(self, exit_block: str, *, earlier_heads: bool = False) -> float:
        """Mean latency of a job leaving at the exit after ``exit_block``: the
        blocks up to it and its head; with ``earlier_heads`` also the heads it
        passed (a threshold policy runs them, and :meth:`to_dnn` charges them)."""
        if exit_block not in self.exits:
            raise v.fail("Profile.path_mean_s", "exit_block", f"one of {list(self.exits)}",
                         exit_block)
        last = self.names.index(exit_block)
        total = sum(b.latency.mean for b in self.blocks[:last + 1])
        heads = [b.exit for b in self.blocks[:last + 1] if b.exit is not None]
        return total + sum(h.latency.mean for h in (heads if earlier_heads else heads[-1:]))

    # ------------------------------------------------------------------ model

    def to_dnn(self, exit_probabilities: Mapping[str, float] | None = None,
               device_profiles: Mapping[str, Profile] | None = None) -> DNN:
        """The DNN of this profile: one Block per profiled block.

        A block followed by an exit head gets ``exit_probability`` from
        ``exit_probabilities`` (keyed by block name; 0.0 when not given: the
        exit exists but no job takes it) and the latency law ``Sum(block,
        head)``, since the head runs for every job reaching it. The last
        block's head is the final exit, which takes every job reaching it, so
        it gets no probability. ``device_profiles`` (device name -> a profile
        of the same blocks measured on that device) give each block's
        ``device_latency``. ``param_bytes`` add the block's and its head's
        (0 when not known); ``input_bytes`` is one float32 input.
        """
        owner = "Profile.to_dnn"
        for name, value in (("exit_probabilities", exit_probabilities),
                            ("device_profiles", device_profiles)):
            if value is not None and not isinstance(value, Mapping):
                raise v.fail(owner, name, "None or a mapping by name", v.brief(value))
        given = dict(exit_probabilities or {})
        allowed = [b.name for b in self.blocks[:-1] if b.exit is not None]
        unknown = sorted(k for k in given if k not in allowed)
        if unknown:
            raise v.fail(owner, "exit_probabilities",
                         f"keyed by exit blocks among {allowed} (the last block's exit takes "
                         "every job reaching it)", unknown)
        others = dict(device_profiles or {})
        for device, other in others.items():
            if not isinstance(other, Profile) or [(b.name, b.exit is None) for b in other.blocks] \
                    != [(b.name, b.exit is None) for b in self.blocks]:
                raise v.fail(owner, "device_profiles", "profiles of the same blocks and exits "
                             f"as {self.name!r}", device)
        blocks = []
        for i, b in enumerate(self.blocks):
            probability = given.get(b.name, 0.0) if b.name in allowed else None
            params = (b.param_bytes or 0) + ((b.exit.param_bytes or 0) if b.exit else 0)
            blocks.append(Block(name=b.name, latency=b.law, output_bytes=b.output_bytes,
                                exit_probability=probability, param_bytes=params,
                                device_latency={d: p.blocks[i].law for d, p in others.items()}))
        return DNN(blocks=tuple(blocks), input_bytes=4 * math.prod(self.input_shape))

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "name": self.name, "source": self.source,
                "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "host": dict(self.host), "blocks": [b.to_dict() for b in self.blocks]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write the JSON file atomically (readers never see half a file)."""
        path = v.output_file("Profile.save", "path", path)
        return write_text_atomic(path, self.to_json())


# ---------------------------------------------------------------------- reading


class _LatencySpec(_Spec):
    n: int | None
    mean: float
    var: float
    p50: float
    p95: float
    p99: float
    law: LawSpec

    def _make(self) -> LatencyStats:
        return LatencyStats(n=self.n, mean=self.mean, var=self.var, p50=self.p50, p95=self.p95,
                            p99=self.p99, law=self.law.build())


class _HeadSpec(_Spec):
    latency: _LatencySpec
    flops: int | None = None
    param_bytes: int | None = None

    def _make(self) -> HeadProfile:
        return HeadProfile(latency=self.latency.build(), flops=self.flops,
                           param_bytes=self.param_bytes)


class _BlockSpec(_Spec):
    name: str
    latency: _LatencySpec
    output_bytes: int
    flops: int | None = None
    param_bytes: int | None = None
    exit: _HeadSpec | None = None

    def _make(self) -> BlockProfile:
        return BlockProfile(name=self.name, latency=self.latency.build(),
                            output_bytes=self.output_bytes, flops=self.flops,
                            param_bytes=self.param_bytes,
                            exit=None if self.exit is None else self.exit.build())


class _ProfileSpec(_Spec):
    format: Literal["edgeperf-profile"]
    version: Literal[1]
    name: str
    source: str
    input_shape: list[int]
    num_classes: int
    host: dict[str, str] = {}
    blocks: list[_BlockSpec]

    def _make(self) -> Profile:
        return Profile(name=self.name, source=self.source, input_shape=tuple(self.input_shape),
                       num_classes=self.num_classes, host=self.host,
                       blocks=tuple(b.build() for b in self.blocks))


def profile_from_dict(data: object, source: str = "<profile>") -> Profile:
    """A Profile from a parsed JSON mapping; errors name ``source`` and the field."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: (top level): must be a mapping (an edgeperf profile). "
                            f"Got {type(data).__name__}.")
    try:
        return _ProfileSpec.model_validate(data).build()
    except ValidationError as err:
        raise _from_validation(source, err) from None


def load_profile(path: str | Path) -> Profile:
    """Read a profile JSON file; a bad file raises one ScenarioError line that
    names the file, the field path, the rule and the value."""
    file = v.path("load_profile", "path", path)
    text = read_text(file)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ScenarioError(f"{file}: is not valid JSON: {err.msg} at line {err.lineno} "
                            f"column {err.colno}.") from None
    return profile_from_dict(data, str(file))
