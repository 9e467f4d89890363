"""The DNN as a chain of blocks, with early exits after some of them."""

from __future__ import annotations

from dataclasses import dataclass

from .. import _validation as v
from ..dists import ServiceLaw

__all__ = ["Block", "DNN"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """A unit the DNN is profiled and split at.

    ``latency`` is measured on the reference host (speed 1.0); ``output_bytes``
    is the size of the activation it hands to the next block;
    ``exit_probability``, when set, is the probability that a job *reaching*
    this block leaves at the exit after it.
    """

    name: str
    latency: ServiceLaw
    output_bytes: int
    exit_probability: float | None = None

    def __post_init__(self) -> None:
        v.name_string("Block", "name", self.name)
        if not isinstance(self.latency, ServiceLaw):
            raise v.fail("Block", "latency", "a service law from edgeperf.dists", self.latency)
        v.integer("Block", "output_bytes", self.output_bytes, low=0)
        if self.exit_probability is not None:
            v.probability("Block", "exit_probability", self.exit_probability)


@dataclass(frozen=True, slots=True, kw_only=True)
class DNN:
    """Blocks in execution order; the last block's output is the final exit."""

    blocks: tuple[Block, ...]

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
        object.__setattr__(self, "blocks", blocks)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.blocks)

    def index(self, name: str) -> int:
        return self.names.index(name)
