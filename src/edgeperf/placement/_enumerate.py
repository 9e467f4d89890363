"""Every valid placement of a chain, for exact searches on small instances.

Valid means what :meth:`Costs.violation` accepts: each device runs at most one
contiguous fragment, consecutive fragments sit on linked devices, the first
fragment runs on the source or on a device the source links to (when the
chain has a source), and every device's weights plus its largest activation
fit in its memory. The walk follows simple paths of the link graph and cuts
the blocks into fragments along them, dropping a fragment as soon as it
overflows its device's memory, so it never builds the m^n tuples it rejects.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import numpy as np

from .. import _validation as v
from ._costs import Costs

__all__ = ["valid_assignments", "count_valid"]

_Fragments = tuple[tuple[int, int, int], ...]  # (device, first block, last block)


def valid_assignments(costs: Costs, *, limit: int | None = None) -> Iterator[np.ndarray]:
    """Yield each valid assignment (one device index per block) once.

    With ``limit``, the placements are counted first and InvalidParameterError
    is raised *before anything is yielded* when there are more than ``limit``:
    a caller asking for an exhaustive search never gets a silently truncated one.
    """
    _check(costs, limit)
    if limit is not None and count_valid(costs, limit=limit) > limit:
        raise v.fail("valid_assignments", "limit",
                     "at least the number of valid placements of the chain "
                     f"(there are more than {limit}); use a heuristic method instead", limit)
    return (_as_assignment(f, costs.n_blocks) for f in _walk(costs))


def count_valid(costs: Costs, *, limit: int | None = None) -> int:
    """The number of valid assignments; with ``limit``, counting stops early and
    ``limit + 1`` means "more than ``limit``" (a cheap size check)."""
    _check(costs, limit)
    stop = None if limit is None else limit + 1
    return sum(1 for _ in islice(_walk(costs), stop))


def _check(costs: Costs, limit: int | None) -> None:
    if not isinstance(costs, Costs):
        raise v.fail("valid_assignments", "costs", "a Costs (Costs.of(system))", costs)
    if limit is not None:
        v.integer("valid_assignments", "limit", limit, low=0)


def _as_assignment(fragments: _Fragments, n_blocks: int) -> np.ndarray:
    out = np.empty(n_blocks, dtype=np.int64)
    for d, first, last in fragments:
        out[first:last + 1] = d
    return out


def _walk(costs: Costs) -> Iterator[_Fragments]:
    """Depth-first over (device, fragment) choices, in a fixed order."""
    succ = _successors(costs)
    limits = costs.memory_limits()
    params = [int(x) for x in costs.param_bytes]
    acts = [int(x) for x in costs.activation_bytes]
    n = costs.n_blocks

    def extend(done: _Fragments, used: frozenset[int], device: int,
               first: int) -> Iterator[_Fragments]:
        """Fragments ``first..last`` on ``device`` for each last block that
        fits, then every unused linked device for the rest of the chain."""
        weights, peak = 0, 0
        used = used | {device}
        for last in range(first, n):
            weights += params[last]
            peak = max(peak, acts[last])
            if weights + peak > limits[device]:  # memory only grows with the fragment
                return
            placed = done + ((device, first, last),)
            if last == n - 1:
                yield placed
                return
            for nxt in succ[device]:
                if nxt not in used:
                    yield from extend(placed, used, nxt, last + 1)

    if costs.source is None:
        starts = list(range(costs.n_devices))
    else:
        starts = [costs.source] + [d for d in succ[costs.source] if d != costs.source]
    for d in starts:
        yield from extend((), frozenset(), d, 0)


def _successors(costs: Costs) -> list[list[int]]:
    """Devices each device links to (radio range), in index order."""
    return [[j for j in range(costs.n_devices) if j != i and costs.link(i, j) is not None]
            for i in range(costs.n_devices)]
