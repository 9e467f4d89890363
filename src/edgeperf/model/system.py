"""A deployment: the DNN, devices, links, workload and placement, checked together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from .. import _validation as v
from ..exceptions import InvalidParameterError
from .dnn import DNN
from .hardware import Device, Link
from .workload import Workload

__all__ = ["Placement", "Fragment", "Chain", "System"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """Which blocks each device runs: ``((device, (block, ...)), ...)``."""

    assignment: tuple[tuple[str, tuple[str, ...]], ...]

    def __post_init__(self) -> None:
        rule = "a mapping from device name to a non-empty list of block names"
        items = self.assignment.items() if isinstance(self.assignment, Mapping) else self.assignment
        try:
            pairs = tuple((d, blocks) for d, blocks in items)
        except (TypeError, ValueError):
            raise v.fail("Placement", "assignment", rule, self.assignment) from None
        # A string is a sequence too: reject it rather than split it into characters.
        if not pairs or not all(isinstance(d, str) and isinstance(blocks, Sequence)
                                and not isinstance(blocks, str) and blocks
                                and all(isinstance(b, str) for b in blocks) for d, blocks in pairs):
            raise v.fail("Placement", "assignment", rule, self.assignment)
        pairs = tuple((d, tuple(blocks)) for d, blocks in pairs)
        object.__setattr__(self, "assignment", pairs)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Sequence[str]]) -> Placement:
        return cls(assignment=mapping)  # type: ignore[arg-type]  # normalised in __post_init__

    def as_dict(self) -> dict[str, list[str]]:
        return {d: list(blocks) for d, blocks in self.assignment}


@dataclass(frozen=True, slots=True)
class Fragment:
    """A run of consecutive blocks (indices ``first..last``) on one device."""

    device: str
    first: int
    last: int


def _named(owner: str, name: str, items: Sequence[Chain] | Sequence[Device]):  # noqa: ANN202
    """The item called ``name``."""
    found = next((x for x in items if x.name == name), None)
    if found is None:
        raise v.fail(owner, "name", f"one of {[x.name for x in items]}", name)
    return found


def _error(path: tuple[str | int, ...], err: InvalidParameterError) -> InvalidParameterError:
    err.path = path  # type: ignore[attr-defined]  # read by edgeperf.io for file paths
    return err


@dataclass(frozen=True, slots=True, kw_only=True)
class Chain:
    """One service chain: a DNN, the workload it serves and where its blocks run.

    ``source`` is the device where requests arrive; when the first fragment
    runs elsewhere, each input (``model.input_bytes``) is uploaded over the link
    from the source first. Without a source, requests arrive at the first
    fragment's device.
    """

    name: str
    model: DNN
    workload: Workload
    placement: Placement
    source: str | None = None

    def __post_init__(self) -> None:
        v.name_string("Chain", "name", self.name)
        for field, kind in (("model", DNN), ("workload", Workload), ("placement", Placement)):
            if not isinstance(getattr(self, field), kind):
                raise v.fail("Chain", field, f"a {kind.__name__}", getattr(self, field))
        if self.source is not None:
            v.name_string("Chain", "source", self.source)

    @property
    def upload(self) -> tuple[str, str] | None:
        """(source, first device) when inputs cross a link before the first fragment."""
        if self.source is None:
            return None
        first = self.fragments[0].device
        return None if self.source == first else (self.source, first)

    @property
    def fragments(self) -> tuple[Fragment, ...]:
        """Fragments in execution order."""
        order = self.model.names
        out = [Fragment(d, order.index(blocks[0]), order.index(blocks[-1]))
               for d, blocks in self.placement.assignment]
        return tuple(sorted(out, key=lambda f: f.first))

    @property
    def arrival_rate(self) -> float:
        return self.workload.arrival_rate


@dataclass(frozen=True, slots=True, init=False)
class System:
    """Devices and links shared by one or more service chains. Construction
    runs :meth:`validate`.

    ``System(model=..., workload=..., placement=..., devices=..., links=...)``
    builds the common single-chain system (its chain is named "main");
    ``System(chains=[...], devices=..., links=...)`` one with several chains
    sharing the devices (multi-class, as in ChainNet's deployments).
    """

    devices: tuple[Device, ...]
    links: tuple[Link, ...]
    chains: tuple[Chain, ...]

    def __init__(self, *, devices: Sequence[Device], links: Sequence[Link] = (),
                 chains: Sequence[Chain] | None = None, model: DNN | None = None,
                 workload: Workload | None = None, placement: Placement | None = None,
                 source: str | None = None) -> None:
        single = (model, workload, placement)
        single_form = chains is None
        if single_form:
            if any(x is None for x in single):
                raise v.fail("System", "chains", "a list of chains, or model, workload and "
                             "placement for a single chain", None)
            chains = (Chain(name="main", model=model, workload=workload,  # type: ignore[arg-type]
                            placement=placement, source=source),)  # type: ignore[arg-type]
        elif any(x is not None for x in single + (source,)):
            raise v.fail("System", "chains", "either chains or model/workload/placement, not both",
                         "both")
        for name, items, kind in (("devices", devices, Device), ("links", links, Link),
                                  ("chains", chains, Chain)):
            rule = f"a list of {kind.__name__}"
            try:
                listed = v.listed("System", name, items, rule)
            except InvalidParameterError as err:
                raise _error((name,), err) from None
            if not all(isinstance(x, kind) for x in listed):
                raise _error((name,), v.fail("System", name, rule,
                                             [v.brief(x) for x in listed]))
            object.__setattr__(self, name, tuple(listed))
        try:
            self.validate()
        except InvalidParameterError as err:
            path = tuple(getattr(err, "path", ()))
            if single_form and path[:2] == ("chains", 0):  # the caller named no chains
                err.path = path[2:]  # type: ignore[attr-defined]
            raise

    def validate(self) -> None:
        """Cross-object checks; raises InvalidParameterError naming the first broken rule.

        Errors inside chain i carry a path starting with ``("chains", i)``.
        """
        self._check_unique()
        for i, chain in enumerate(self.chains):
            try:
                self._check_placement(chain)
                self._check_links(chain)
            except InvalidParameterError as err:
                raise _error(("chains", i) + tuple(getattr(err, "path", ())), err) from None

    def _check_unique(self) -> None:
        names = [d.name for d in self.devices]
        if not names or len(set(names)) != len(names):
            raise _error(("devices",), v.fail("System", "devices",
                                              "a non-empty list of devices with unique names", names))
        pairs = [(link.source, link.target) for link in self.links]
        if len(set(pairs)) != len(pairs):
            raise _error(("links",), v.fail("System", "links", "at most one link per direction",
                                            [f"{s}->{t}" for s, t in pairs]))
        for i, link in enumerate(self.links):
            for end in ("source", "target"):
                if getattr(link, end) not in names:
                    raise _error(("links", i, end), v.fail(
                        "System", "links", f"links whose {end} is a known device {names}",
                        getattr(link, end)))
        if not self.chains:
            raise _error(("chains",), v.fail("System", "chains", "a non-empty list of Chain",
                                             self.chains))
        chain_names = [c.name for c in self.chains]
        if len(set(chain_names)) != len(chain_names):
            raise _error(("chains",), v.fail("System", "chains", "chains with unique names",
                                             chain_names))

    def _check_placement(self, chain: Chain) -> None:
        devices = {d.name for d in self.devices}
        order = chain.model.names
        seen: dict[str, str] = {}
        for device, blocks in chain.placement.assignment:
            if device not in devices:
                raise _error(("placement",), v.fail("System", "placement",
                                                    f"keys that name known devices {sorted(devices)}",
                                                    device))
            for block in blocks:
                if block not in order:
                    raise _error(("placement", device), v.fail(
                        "System", "placement", "lists of blocks of the model", block))
                if block in seen:
                    raise _error(("placement", device), v.fail(
                        "System", "placement", f"each block on one device (it is on {seen[block]!r} too)",
                        block))
                seen[block] = device
            idx = [order.index(b) for b in blocks]
            if idx != list(range(idx[0], idx[0] + len(idx))):
                raise _error(("placement", device), v.fail(
                    "System", "placement",
                    "a contiguous run of blocks in model order for each device", list(blocks)))
        missing = [b for b in order if b not in seen]
        if missing:
            raise _error(("placement",), v.fail("System", "placement",
                                                "a device for every block of the model", missing))

    def _check_links(self, chain: Chain) -> None:
        if chain.source is not None and chain.source not in {d.name for d in self.devices}:
            raise _error(("source",), v.fail("System", "source", "a known device",
                                             chain.source))
        if chain.upload is not None:
            link = self.link_between(*chain.upload)
            if link is None:
                raise _error(("links",), v.fail(
                    "System", "links", "a link from the source to the first fragment's device",
                    "no link {}->{}".format(*chain.upload)))
            if chain.model.input_bytes <= 0 and not link.ideal:
                raise _error(("model", "input_bytes"), v.fail(
                    "System", "model", "input_bytes > 0 when inputs are uploaded over a link",
                    chain.model.input_bytes))
        fragments = chain.fragments
        for before, after in zip(fragments, fragments[1:]):
            link = self.link_between(before.device, after.device)
            if link is None:
                raise _error(("links",), v.fail(
                    "System", "links",
                    "a link between the devices of consecutive fragments",
                    f"no link {before.device}->{after.device}"))
            block = chain.model.blocks[before.last]
            if block.output_bytes <= 0 and not link.ideal:
                raise _error(("model", "blocks", before.last, "output_bytes"), v.fail(
                    "System", "model", "output_bytes > 0 for a block followed by a link",
                    f"{block.name}: {block.output_bytes}"))

    def _single(self) -> Chain:
        if len(self.chains) != 1:
            raise v.fail("System", "chains", "a single chain for this single-chain accessor",
                         [c.name for c in self.chains])
        return self.chains[0]

    @property
    def model(self) -> DNN:
        return self._single().model

    @property
    def workload(self) -> Workload:
        return self._single().workload

    @property
    def placement(self) -> Placement:
        return self._single().placement

    @property
    def source(self) -> str | None:
        return self._single().source

    @property
    def fragments(self) -> tuple[Fragment, ...]:
        """Fragments of the single chain in execution order."""
        return self._single().fragments

    def with_placement(self, placement: Placement, chain: str | None = None, *,
                       source: str | None = None) -> System:
        """The same system with ``chain``'s (default: the only one's) placement
        replaced, and its source device too when ``source`` is given."""
        target = self._single() if chain is None else self.chain(chain)
        placed = replace(target, placement=placement,
                         source=target.source if source is None else source)
        chains = [placed if c is target else c for c in self.chains]
        return System(devices=self.devices, links=self.links, chains=chains)

    def chain(self, name: str) -> Chain:
        return _named("System.chain", name, self.chains)

    def device(self, name: str) -> Device:
        return _named("System.device", name, self.devices)

    def link_between(self, source: str, target: str) -> Link | None:
        return next((l for l in self.links if l.source == source and l.target == target), None)

    @property
    def arrival_rate(self) -> float:
        """The single chain's mean arrival rate."""
        return self._single().arrival_rate
