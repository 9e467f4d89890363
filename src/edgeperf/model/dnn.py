"""The DNN as a chain of blocks, with early exits after some of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import _validation as v
from ..dists import ServiceLaw

if TYPE_CHECKING:
    from .hardware import Device

__all__ = ["Block", "DNN"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """A unit the DNN is profiled and split at.

    ``latency`` is measured on the reference host (speed 1.0); ``output_bytes``
    is the size of the activation it hands to the next block;
    ``exit_probability``, when set, is the probability that a job *reaching*
    this block leaves at the exit after it.

    ``device_latency`` holds laws measured on particular devices (by device
    name, as profiles taken on several machines give them); on those devices
    they replace ``latency`` scaled by the device's ``speed``. ``param_bytes``
    is the memory its weights (and its exit head's) take.
    """

    name: str
    latency: ServiceLaw
    output_bytes: int
    exit_probability: float | None = None
    param_bytes: int = 0
    device_latency: Mapping[str, ServiceLaw] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        v.name_string("Block", "name", self.name)
        if not isinstance(self.latency, ServiceLaw):
            raise v.fail("Block", "latency", "a service law from edgeperf.dists", self.latency)
        v.integer("Block", "output_bytes", self.output_bytes, low=0)
        if self.exit_probability is not None:
            v.probability("Block", "exit_probability", self.exit_probability)
        v.integer("Block", "param_bytes", self.param_bytes, low=0)
        if not isinstance(self.device_latency, Mapping) or not all(
                isinstance(k, str) and isinstance(law, ServiceLaw)
                for k, law in self.device_latency.items()):
            raise v.fail("Block", "device_latency",
                         "a mapping from device name to a service law", self.device_latency)
        object.__setattr__(self, "device_latency", dict(self.device_latency))

    def latency_on(self, device: Device) -> ServiceLaw:
        """The block's latency law on ``device``: measured there, or scaled by its speed."""
        measured = self.device_latency.get(device.name)
        if measured is not None:
            return measured
        return self.latency if device.speed == 1.0 else self.latency.scaled(1.0 / device.speed)


@dataclass(frozen=True, slots=True, kw_only=True)
class DNN:
    """Blocks in execution order; the last block's output is the final exit.
    ``input_bytes`` is the size of one input (what uploading it sends)."""

    blocks: tuple[Block, ...]
    input_bytes: int = 0

    def __post_init__(self) -> None:
        blocks = tuple(self.blocks) if isinstance(self.blocks, (list, tuple)) else ()
        if not blocks or not all(isinstance(b, Block) for b in blocks):
            raise v.fail("DNN", "blocks", "a non-empty list of Block", self.blocks)
        names = [b.name for b in blocks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise v.fail("DNN", "blocks", "blocks with unique names", duplicates)
        if blocks[-1].exit_probability is not None:
            raise v.fail("DNN", "blocks", "a last block without 'exit_probability' "
                         "(every job reaching it leaves at the final exit)", blocks[-1].name)
        v.integer("DNN", "input_bytes", self.input_bytes, low=0)
        object.__setattr__(self, "blocks", blocks)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.blocks)

    def index(self, name: str) -> int:
        return self.names.index(name)
