"""What every placement method reads: the mean costs of one chain on the
system's devices and links, and the arithmetic of an assignment of blocks to
devices.

An *assignment* is an int array with one device index per block (indices into
``Costs.devices``). A placement is valid when each device runs one contiguous
run of blocks (a device appears in at most one fragment) and consecutive
fragments sit on devices with a link between them (radio range); inputs start
at the chain's source device, when it has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .. import _validation as v
from ..exceptions import InfeasibleError, UnsupportedModelError
from ..model import Device, Link, Placement, System

__all__ = ["Costs", "fragments_of"]


def fragments_of(assignment: Sequence[int] | np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of one device: ``(device, first block, last block)`` in order."""
    devices = v.listed("fragments_of", "assignment", assignment,
                       "a sequence of device indices (ints), one per block", v.is_int)
    out: list[tuple[int, int, int]] = []
    for b, d in enumerate(int(x) for x in devices):
        if out and out[-1][0] == d:
            out[-1] = (d, out[-1][1], b)
        else:
            out.append((d, b, b))
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Costs:
    """Mean costs of a chain (arrays indexed [block] or [block, device]).

    ``compute_s[b, d]``: mean latency of block b (and its exit head) on device
    d, measured there (``Block.device_latency``) or scaled by its speed;
    ``scv[b, d]`` its SCV. ``reach[b]``: the probability that a job runs block
    b (it did not leave at an earlier exit). ``activation_bytes[b]``: input plus
    output of block b, the working memory while it runs.
    """

    system: System
    chain: str
    devices: tuple[Device, ...]
    blocks: tuple[str, ...]
    compute_s: np.ndarray
    scv: np.ndarray
    reach: np.ndarray
    output_bytes: np.ndarray
    input_bytes: int
    param_bytes: np.ndarray
    activation_bytes: np.ndarray
    source: int | None
    arrival_rate: float

    @classmethod
    def of(cls, system: System, chain: str | None = None) -> Costs:
        """The costs of ``chain`` (default: the only one) on ``system``."""
        v.instance("Costs.of", "system", system, System, "a System")
        if chain is None and len(system.chains) > 1:
            raise UnsupportedModelError(
                "The placement methods place one chain at a time; the scenario has "
                f"{[c.name for c in system.chains]}: name one.")
        names = [c.name for c in system.chains]
        if chain is not None and chain not in names:
            raise v.fail("Costs.of", "chain", f"one of {names}", chain)
        target = system.chains[0] if chain is None else system.chain(chain)
        blocks = target.model.blocks
        laws = [[b.latency_on(d) for d in system.devices] for b in blocks]
        compute = np.array([[law.mean for law in row] for row in laws])
        scv = np.array([[law.scv for law in row] for row in laws])
        reach, passing = [], 1.0
        for b in blocks:
            reach.append(passing)
            passing *= 1.0 - (b.exit_probability or 0.0)
        out = np.array([b.output_bytes for b in blocks], dtype=np.int64)
        inputs = np.concatenate(([target.model.input_bytes], out[:-1]))
        names = [d.name for d in system.devices]
        return cls(system=system, chain=target.name, devices=system.devices,
                   blocks=target.model.names, compute_s=compute, scv=scv,
                   reach=np.array(reach), output_bytes=out,
                   input_bytes=target.model.input_bytes,
                   param_bytes=np.array([b.param_bytes for b in blocks], dtype=np.int64),
                   activation_bytes=inputs + out,
                   source=None if target.source is None else names.index(target.source),
                   arrival_rate=target.arrival_rate)

    # ------------------------------------------------------------------ sizes

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    @property
    def home(self) -> int:
        """Where requests arrive: the source, else the first fragment's device."""
        if self.source is not None:
            return self.source
        return self.device_index("Costs", "device",
                                 self.system.chain(self.chain).fragments[0].device)

    def device_index(self, owner: str, parameter: str, name: object) -> int:
        """The index of device ``name``; an unknown name is ``owner``'s bad ``parameter``."""
        names = [d.name for d in self.devices]
        if name not in names:
            raise v.fail(owner, parameter, f"one of {names}", name)
        return names.index(name)  # type: ignore[arg-type]

    def servers(self, owner: str, home: int, server: str | None) -> list[int]:
        """``server`` (a name), or every device with a link from ``home``."""
        name = self.devices[home].name
        if server is not None:
            j = self.device_index(owner, "server", server)
            if j == home:
                raise v.fail(owner, "server", f"a device other than the device tier {name!r}",
                             server)
            if self.link(home, j) is None:
                raise InfeasibleError(f"The server {server!r} is unreachable: no link "
                                      f"{name}->{server}.")
            return [j]
        linked = [j for j in range(self.n_devices) if j != home and self.link(home, j)]
        if not linked:
            raise InfeasibleError(f"No server for the device tier {name!r}: no link from it to "
                                  "any other device.")
        return linked

    def link(self, i: int, j: int) -> Link | None:
        return self.system.link_between(self.devices[i].name, self.devices[j].name)

    def transfer_s(self, i: int, j: int, size_bytes: int) -> float:
        """Mean time to move ``size_bytes`` from device i to j (transmission and
        propagation); 0 on one device, infinite without a link."""
        if i == j:
            return 0.0
        link = self.link(i, j)
        return np.inf if link is None else link.transmission_time_s(size_bytes) + link.latency_s

    def cut_bytes(self, b: int) -> int:
        """Bytes crossing a cut before block b (the input for b = 0)."""
        return self.input_bytes if b == 0 else int(self.output_bytes[b - 1])

    # ------------------------------------------------------------ assignments

    def checked(self, owner: str, assignment: object) -> np.ndarray:
        """``assignment`` as an int array, if it gives each block a device index
        (the methods below skip this check: the searches call them in loops)."""
        n, m = self.n_blocks, self.n_devices
        a = v.array(owner, "assignment", assignment,
                    f"{n} device indices from 0 to {m - 1}, one per block",
                    lambda x: x.shape == (n,) and bool(np.all(np.isin(x, np.arange(m)))))
        return a.astype(int)

    def assignment_of(self, placement: Placement) -> np.ndarray:
        names = [d.name for d in self.devices]
        device_of = {b: names.index(d) for d, blocks in placement.assignment for b in blocks}
        return np.array([device_of[b] for b in self.blocks])

    def placement_of(self, assignment: Sequence[int] | np.ndarray) -> Placement:
        return Placement.from_mapping({
            self.devices[d].name: list(self.blocks[first:last + 1])
            for d, first, last in fragments_of(assignment)})

    def placed(self, assignment: Sequence[int] | np.ndarray) -> System:
        """The system with this chain placed by ``assignment`` (and its source
        set, when these costs have one)."""
        source = None if self.source is None else self.devices[self.source].name
        return self.system.with_placement(self.placement_of(assignment), self.chain,
                                          source=source)

    def with_source(self, device: int) -> Costs:
        """These costs with requests arriving at ``device`` (an index): a
        placement starting elsewhere uploads each input over a link."""
        return replace(self, source=int(device))

    def latency_s(self, assignment: Sequence[int] | np.ndarray) -> float:
        """Mean end-to-end latency without queueing: each block's compute on its
        device and each cut's transfer, weighted by the share of jobs doing them."""
        a = np.asarray(assignment)
        total = float((self.reach * self.compute_s[np.arange(self.n_blocks), a]).sum())
        if self.source is not None:
            total += self.transfer_s(self.source, int(a[0]), self.input_bytes)
        for b in range(1, self.n_blocks):
            if a[b] != a[b - 1]:
                total += self.reach[b] * self.transfer_s(int(a[b - 1]), int(a[b]),
                                                         self.cut_bytes(b))
        return total

    def utilisation(self, assignment: Sequence[int] | np.ndarray) -> np.ndarray:
        """Offered load (busy seconds per second, before any loss) of each device."""
        a = np.asarray(assignment)
        load = np.zeros(self.n_devices)
        np.add.at(load, a, self.reach * self.compute_s[np.arange(self.n_blocks), a])
        return self.arrival_rate * load / np.array([d.servers for d in self.devices])

    def memory_bytes(self, assignment: Sequence[int] | np.ndarray) -> np.ndarray:
        """Memory each device needs: its blocks' weights and their largest activation."""
        a = np.asarray(assignment)
        need = np.zeros(self.n_devices)
        np.add.at(need, a, self.param_bytes)
        peak = np.zeros(self.n_devices)
        np.maximum.at(peak, a, self.activation_bytes)
        return need + peak

    def memory_limits(self) -> np.ndarray:
        return np.array([np.inf if d.memory_bytes is None else d.memory_bytes
                         for d in self.devices])

    def violation(self, assignment: Sequence[int] | np.ndarray) -> str | None:
        """The first rule ``assignment`` breaks, in words, or None when valid."""
        a = np.asarray(assignment)
        runs = fragments_of(a)
        devices = [d for d, _, _ in runs]
        if len(set(devices)) != len(devices):
            return "each device runs one contiguous fragment"
        hops = ([(self.source, runs[0][0])] if self.source is not None else []) \
            + [(x[0], y[0]) for x, y in zip(runs, runs[1:])]
        starts = ([0] if self.source is not None else []) + [first for _, first, _ in runs[1:]]
        for (i, j), b in zip(hops, starts):
            if i == j:
                continue
            link = self.link(i, j)
            if link is None:
                return f"no link {self.devices[i].name}->{self.devices[j].name}"
            if not link.ideal and self.cut_bytes(b) <= 0:  # the System would refuse it
                what = "input_bytes" if b == 0 else f"output_bytes of {self.blocks[b - 1]!r}"
                return f"{what} is 0: nothing to send over {link.name}"
        over = np.flatnonzero(self.memory_bytes(a) > self.memory_limits())
        if len(over):
            d = int(over[0])
            return (f"memory of {self.devices[d].name}: {int(self.memory_bytes(a)[d])} bytes "
                    f"needed > {self.devices[d].memory_bytes}")
        return None

    def check_fits(self) -> None:
        """Raise InfeasibleError when no placement can exist: a block fits in no
        device's memory."""
        limits = self.memory_limits()
        need = self.param_bytes + self.activation_bytes
        for b in range(self.n_blocks):
            if not np.any(need[b] <= limits):
                raise InfeasibleError(
                    f"Block {self.blocks[b]!r} needs {int(need[b])} bytes (weights and "
                    f"activations); no device has that much memory (largest: "
                    f"{int(limits.max())}).")
