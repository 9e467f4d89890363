"""Pydantic models of the file formats; each ``build()`` returns a domain object.

Domain constructors run inside ``model_validator``s so that their
InvalidParameterError (a ValueError) reaches pydantic and comes back with the
field path of the bad value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, model_validator

from .. import dists
from ..exceptions import InvalidParameterError
from ..model import (DNN, Block, Chain, Device, ErlangArrivals, Link, MMPPArrivals,
                     PiecewiseArrivals, Placement, PoissonArrivals, System, TraceArrivals,
                     Workload)

_STRICT = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class _Spec(BaseModel):
    model_config = _STRICT
    _built: object = PrivateAttr(default=None)
    #: the folder relative file references resolve against (validation context "base")
    _base: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _build_domain_object(self, info: ValidationInfo) -> _Spec:
        self._base = Path((info.context or {}).get("base", "."))
        self._built = self._make()
        return self

    def _make(self) -> object:
        raise TypeError("subclasses define _make")

    def build(self):  # noqa: ANN201 - each subclass documents its result
        return self._built


class DeterministicSpec(_Spec):
    kind: Literal["deterministic"]
    value: float

    def _make(self) -> dists.Deterministic:
        return dists.Deterministic(self.value)


class ExponentialSpec(_Spec):
    kind: Literal["exponential"]
    mean: float

    def _make(self) -> dists.Exponential:
        return dists.Exponential(self.mean)


class GammaSpec(_Spec):
    kind: Literal["gamma"]
    shape: float
    mean: float

    def _make(self) -> dists.Gamma:
        return dists.Gamma(self.shape, self.mean)


class LognormalSpec(_Spec):
    kind: Literal["lognormal"]
    mean: float
    scv: float

    def _make(self) -> dists.Lognormal:
        return dists.Lognormal(self.mean, self.scv)


class EmpiricalSpec(_Spec):
    kind: Literal["empirical"]
    samples: list[float]

    def _make(self) -> dists.Empirical:
        return dists.Empirical(tuple(self.samples))


class MixtureSpec(_Spec):
    kind: Literal["mixture"]
    weights: list[float]
    components: list[LawSpec]

    def _make(self) -> dists.Mixture:
        return dists.Mixture(tuple(c.build() for c in self.components), tuple(self.weights))


class SumSpec(_Spec):
    kind: Literal["sum"]
    components: list[LawSpec]

    def _make(self) -> dists.Sum:
        return dists.Sum(tuple(c.build() for c in self.components))


LawSpec = Annotated[
    Union[DeterministicSpec, ExponentialSpec, GammaSpec, LognormalSpec, EmpiricalSpec,
          MixtureSpec, SumSpec],
    Field(discriminator="kind"),
]
MixtureSpec.model_rebuild()
SumSpec.model_rebuild()

#: Discriminator values; pydantic puts them in error locations right after the
#: field holding the union, and the field paths we print leave them out.
TAGS = frozenset({"deterministic", "exponential", "gamma", "lognormal", "empirical", "mixture",
                  "sum", "poisson", "erlang", "mmpp", "trace", "piecewise"})
#: Fields that hold a tagged union (or a list of them); ``law`` is in profile files.
UNION_FIELDS = frozenset({"latency", "components", "arrival", "law"})
#: Fields that hold a mapping of tagged unions (device name -> law).
UNION_MAPS = frozenset({"device_latency"})
#: Domain parameter names that the file spells differently.
FILE_NAMES = {"source": "from", "target": "to", "exit_probability": "exit.probability"}


class ExitSpec(BaseModel):
    model_config = _STRICT
    probability: float


class BlockSpec(_Spec):
    """A block; ``device_latency`` gives laws measured on named devices, which
    replace ``latency`` scaled by those devices' speed."""

    name: str
    latency: LawSpec
    output_bytes: int
    exit: ExitSpec | None = None
    param_bytes: int = 0
    device_latency: dict[str, LawSpec] = {}

    def _make(self) -> Block:
        return Block(name=self.name, latency=self.latency.build(), output_bytes=self.output_bytes,
                     exit_probability=None if self.exit is None else self.exit.probability,
                     param_bytes=self.param_bytes,
                     device_latency={d: law.build() for d, law in self.device_latency.items()})


class ModelSpec(_Spec):
    """The blocks inline (``blocks``, with ``input_bytes``), or a profile
    (``profile``: a path relative to the scenario file to a JSON profile
    written by ``edgeperf.profiling``, or to a CEED profile folder) with the
    probability of each exit taken (``exits``: block name -> probability; an
    exit not listed is taken with probability 0) and, optionally, profiles of
    the same model measured on particular devices (``device_profiles``:
    device name -> path)."""

    blocks: list[BlockSpec] | None = None
    input_bytes: int | None = None
    profile: str | None = None
    exits: dict[str, float] | None = None
    device_profiles: dict[str, str] | None = None

    def _make(self) -> DNN:
        if (self.blocks is None) == (self.profile is None):
            raise ValueError("give exactly one of 'blocks' or 'profile'")
        if self.blocks is not None:
            for key in ("exits", "device_profiles"):
                if getattr(self, key) is not None:
                    raise _located(key, "is only allowed with 'profile' (inline blocks give "
                                   "'exit: {probability: ...}' and 'device_latency').")
            return DNN(blocks=tuple(b.build() for b in self.blocks),
                       input_bytes=self.input_bytes or 0)
        if self.input_bytes is not None:
            raise _located("input_bytes", "is only allowed with 'blocks' (a profile gives "
                           "its input shape).")
        profile = self._profile(self.profile, ("profile",))  # type: ignore[arg-type]
        others = {d: self._profile(path, ("device_profiles", d))
                  for d, path in (self.device_profiles or {}).items()}
        try:
            return profile.to_dnn(self.exits, others)
        except InvalidParameterError as err:
            given = getattr(err, "parameter", None)
            field = "device_profiles" if given == "device_profiles" else "exits"
            err.path = (field,)  # type: ignore[attr-defined]
            raise

    def _profile(self, path: str, where: tuple[str, ...]):  # noqa: ANN202 - a Profile
        from ..profiling import import_ceed, load_profile  # lazily: profiling imports this module

        file = self._base / path
        try:
            return import_ceed(file) if file.is_dir() else load_profile(file)
        except InvalidParameterError as err:
            err.path = where  # type: ignore[attr-defined]
            raise


class DeviceSpec(_Spec):
    name: str
    capacity: int
    speed: float = 1.0
    memory_bytes: int | None = None
    servers: int = 1

    def _make(self) -> Device:
        return Device(name=self.name, capacity=self.capacity, speed=self.speed,
                      memory_bytes=self.memory_bytes, servers=self.servers)


class LinkSpec(_Spec):
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    bandwidth_bps: float | None = None
    capacity: int | None = None
    latency_s: float = 0.0

    def _make(self) -> Link:
        return Link(source=self.source, target=self.target, bandwidth_bps=self.bandwidth_bps,
                    capacity=self.capacity, latency_s=self.latency_s)


class PoissonSpec(_Spec):
    process: Literal["poisson"]
    rate: float

    def _make(self) -> PoissonArrivals:
        return PoissonArrivals(rate=self.rate)


class ErlangSpec(_Spec):
    process: Literal["erlang"]
    rate: float
    phases: int

    def _make(self) -> ErlangArrivals:
        return ErlangArrivals(rate=self.rate, phases=self.phases)


class MMPPSpec(_Spec):
    process: Literal["mmpp"]
    rates: list[float]
    switch_rates: list[float]

    def _make(self) -> MMPPArrivals:
        return MMPPArrivals(rates=tuple(self.rates), switch_rates=tuple(self.switch_rates))


class TraceSpec(_Spec):
    """Timestamps inline (``times``) or in a text file (``path``, one per line,
    relative to the scenario file; a CSV's first column)."""

    process: Literal["trace"]
    path: str | None = None
    times: list[float] | None = None

    def _make(self) -> TraceArrivals:
        if (self.path is None) == (self.times is None):
            raise ValueError("give exactly one of 'path' or 'times'")
        if self.times is not None:
            return TraceArrivals(times=tuple(self.times))
        file = self._base / self.path
        try:
            times = np.loadtxt(file, delimiter=",", usecols=0, ndmin=1, comments="#")
        except (OSError, ValueError) as err:
            raise ValueError(f"trace file {str(file)!r} cannot be read as timestamps: {err}") from None
        return TraceArrivals(times=tuple(times), source=str(file))


class PiecewiseSpec(_Spec):
    process: Literal["piecewise"]
    rates: list[float]
    durations: list[float]

    def _make(self) -> PiecewiseArrivals:
        return PiecewiseArrivals(rates=tuple(self.rates), durations=tuple(self.durations))


ArrivalSpec = Annotated[Union[PoissonSpec, ErlangSpec, MMPPSpec, TraceSpec, PiecewiseSpec],
                        Field(discriminator="process")]


class WorkloadSpec(_Spec):
    arrival: ArrivalSpec

    def _make(self) -> Workload:
        return Workload(arrival=self.arrival.build())


def _placement(mapping: dict[str, list[str]]) -> Placement:
    try:
        return Placement.from_mapping(mapping)
    except InvalidParameterError as err:
        err.path = ("placement",)  # type: ignore[attr-defined]
        raise


class ChainSpec(_Spec):
    name: str
    workload: WorkloadSpec
    model: ModelSpec
    placement: dict[str, list[str]]
    source: str | None = None

    def _make(self) -> Chain:
        return Chain(name=self.name, model=self.model.build(), workload=self.workload.build(),
                     placement=_placement(self.placement), source=self.source)


class ScenarioSpec(BaseModel):
    """A whole scenario file: one chain (``workload``, ``model``, ``placement``
    at the top level) or several sharing the devices (``chains``).
    ``build()`` runs the cross-object checks."""

    model_config = _STRICT
    devices: list[DeviceSpec]
    links: list[LinkSpec] = []
    workload: WorkloadSpec | None = None
    model: ModelSpec | None = None
    placement: dict[str, list[str]] | None = None
    source: str | None = None
    chains: list[ChainSpec] | None = None

    def build(self) -> System:
        devices = tuple(d.build() for d in self.devices)
        links = tuple(link.build() for link in self.links)
        single = {"workload": self.workload, "model": self.model, "placement": self.placement,
                  "source": self.source}
        if self.chains is not None:
            given = [k for k, x in single.items() if x is not None]
            if given:
                raise _located(given[0], "is not allowed beside 'chains' (each chain has its own)")
            return System(devices=devices, links=links, chains=[c.build() for c in self.chains])
        for key, value in single.items():
            if value is None and key != "source":
                raise _located(key, "is required but missing (or give a list of 'chains').")
        return System(model=self.model.build(), devices=devices, links=links,  # type: ignore[union-attr]
                      workload=self.workload.build(),  # type: ignore[union-attr]
                      placement=_placement(self.placement),  # type: ignore[arg-type]
                      source=self.source)


def _located(field: str, message: str) -> InvalidParameterError:
    err = InvalidParameterError(message)
    err.path = (field,)  # type: ignore[attr-defined]
    return err
