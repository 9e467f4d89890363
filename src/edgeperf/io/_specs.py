"""Pydantic models of the file formats; each ``build()`` returns a domain object.

Domain constructors run inside ``model_validator``s so that their
InvalidParameterError (a ValueError) reaches pydantic and comes back with the
field path of the bad value.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from .. import dists
from ..exceptions import InvalidParameterError
from ..model import (DNN, Block, Device, Link, Placement, PoissonArrivals, System, Workload)

_STRICT = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class _Spec(BaseModel):
    model_config = _STRICT
    _built: object = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _build_domain_object(self) -> _Spec:
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
                  "sum", "poisson"})
#: Fields that hold a tagged union (or a list of them).
UNION_FIELDS = frozenset({"latency", "components", "arrival"})
#: Domain parameter names that the file spells differently.
FILE_NAMES = {"source": "from", "target": "to", "exit_probability": "exit.probability"}


class ExitSpec(BaseModel):
    model_config = _STRICT
    probability: float


class BlockSpec(_Spec):
    name: str
    latency: LawSpec
    output_bytes: int
    exit: ExitSpec | None = None

    def _make(self) -> Block:
        return Block(name=self.name, latency=self.latency.build(), output_bytes=self.output_bytes,
                     exit_probability=None if self.exit is None else self.exit.probability)


class ModelSpec(_Spec):
    blocks: list[BlockSpec]

    def _make(self) -> DNN:
        return DNN(blocks=tuple(b.build() for b in self.blocks))


class DeviceSpec(_Spec):
    name: str
    capacity: int
    speed: float = 1.0
    memory_bytes: int | None = None

    def _make(self) -> Device:
        return Device(name=self.name, capacity=self.capacity, speed=self.speed,
                      memory_bytes=self.memory_bytes)


class LinkSpec(_Spec):
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    bandwidth_bps: float
    capacity: int
    latency_s: float = 0.0

    def _make(self) -> Link:
        return Link(source=self.source, target=self.target, bandwidth_bps=self.bandwidth_bps,
                    capacity=self.capacity, latency_s=self.latency_s)


class PoissonSpec(_Spec):
    process: Literal["poisson"]
    rate: float

    def _make(self) -> PoissonArrivals:
        return PoissonArrivals(rate=self.rate)


ArrivalSpec = Annotated[Union[PoissonSpec], Field(discriminator="process")]


class WorkloadSpec(_Spec):
    arrival: ArrivalSpec

    def _make(self) -> Workload:
        return Workload(arrival=self.arrival.build())


class ScenarioSpec(BaseModel):
    """A whole scenario file. ``build()`` runs the cross-object checks."""

    model_config = _STRICT
    workload: WorkloadSpec
    model: ModelSpec
    devices: list[DeviceSpec]
    links: list[LinkSpec] = []
    placement: dict[str, list[str]]

    def build(self) -> System:
        try:
            placement = Placement.from_mapping(self.placement)
        except InvalidParameterError as err:
            err.path = ("placement",)  # type: ignore[attr-defined]
            raise
        return System(model=self.model.build(), devices=tuple(d.build() for d in self.devices),
                      links=tuple(link.build() for link in self.links),
                      workload=self.workload.build(), placement=placement)
