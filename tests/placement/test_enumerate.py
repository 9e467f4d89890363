"""valid_assignments / count_valid: exactly the assignments Costs.violation
accepts, each once, checked against filtering all m^n tuples."""

from __future__ import annotations

import dataclasses
import itertools
import re

import numpy as np
import pytest

from edgeperf.dists import Exponential
from edgeperf.exceptions import InvalidParameterError
from edgeperf.model import DNN, Block, Device, Link, Placement, PoissonArrivals, System, Workload
from edgeperf.placement import Costs, count_valid, valid_assignments


def random_system(seed: int, n_blocks: int = 6, n_devices: int = 4, *, radius: float = 0.6,
                  memory: float | None = 0.5, rate: float = 5.0, source: bool = True) -> System:
    """Heterogeneous devices on the unit square, linked both ways within
    ``radius`` (some links ideal); exits on some blocks; memories from
    ``memory`` to 1.2 times the whole model's need (None: unlimited)."""
    rng = np.random.default_rng(seed)
    blocks = tuple(
        Block(name=f"b{i}", latency=Exponential(float(rng.uniform(0.002, 0.02))),
              output_bytes=int(rng.integers(10_000, 500_000)),
              exit_probability=(float(rng.uniform(0.1, 0.4))
                                if i < n_blocks - 1 and rng.random() < 0.4 else None),
              param_bytes=int(rng.integers(100_000, 5_000_000))) for i in range(n_blocks))
    total = sum(b.param_bytes for b in blocks) + 1_000_000
    devices = [Device(name=f"d{j}", capacity=10, speed=float(rng.uniform(0.5, 8.0)),
                      memory_bytes=None if memory is None
                      else int(rng.uniform(memory, 1.2) * total)) for j in range(n_devices)]
    xy = rng.random((n_devices, 2))
    links = []
    for i, j in itertools.permutations(range(n_devices), 2):
        if np.hypot(*(xy[i] - xy[j])) <= radius:
            ideal = rng.random() < 0.2
            links.append(Link(source=f"d{i}", target=f"d{j}", latency_s=0.001) if ideal else
                         Link(source=f"d{i}", target=f"d{j}", capacity=10,
                              bandwidth_bps=float(rng.uniform(5e6, 100e6)),
                              latency_s=float(rng.uniform(0.0005, 0.005))))
    return System(model=DNN(blocks=blocks, input_bytes=int(rng.integers(10_000, 200_000))),
                  devices=devices, links=links,
                  workload=Workload(arrival=PoissonArrivals(rate=rate)),
                  placement=Placement.from_mapping({"d0": [b.name for b in blocks]}),
                  source="d0" if source else None)


def brute_force(costs: Costs) -> set[tuple[int, ...]]:
    return {a for a in itertools.product(range(costs.n_devices), repeat=costs.n_blocks)
            if costs.violation(np.array(a)) is None}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", [{}, {"source": False}, {"memory": None}, {"memory": 0.25}])
def test_it_yields_exactly_the_valid_assignments_once(seed, kind):
    costs = Costs.of(random_system(seed, **kind))
    got = [tuple(int(d) for d in a) for a in valid_assignments(costs)]
    assert len(got) == len(set(got))
    assert set(got) == brute_force(costs)
    assert count_valid(costs) == len(got)


def test_assignments_are_int_arrays_one_device_per_block():
    costs = Costs.of(random_system(0, n_blocks=5, n_devices=3))
    for a in valid_assignments(costs):
        assert a.shape == (5,) and a.dtype.kind == "i"


def test_without_links_or_source_each_device_runs_the_whole_chain():
    system = random_system(1, radius=0.0, memory=None, source=False)
    assert sorted(tuple(a) for a in valid_assignments(Costs.of(system))) == [
        (d,) * 6 for d in range(4)]


def test_a_chain_that_fits_nowhere_has_no_placement():
    fitting = Costs.of(random_system(2))
    costs = dataclasses.replace(fitting, param_bytes=fitting.param_bytes * 100)
    assert list(valid_assignments(costs)) == []
    assert count_valid(costs) == 0


def test_count_valid_stops_at_limit_plus_one():
    costs = Costs.of(random_system(0))
    n = count_valid(costs)
    assert n > 3
    assert count_valid(costs, limit=3) == 4
    assert count_valid(costs, limit=n) == n


def test_more_placements_than_limit_raise_before_yielding_any():
    costs = Costs.of(random_system(0))
    n = count_valid(costs)
    assert len(list(valid_assignments(costs, limit=n))) == n
    message = ("The 'limit' parameter of valid_assignments must be at least the number of valid "
               f"placements of the chain (there are more than {n - 1}); use a heuristic method "
               f"instead. Got {n - 1}.")
    with pytest.raises(InvalidParameterError, match="^" + re.escape(message) + "$"):
        valid_assignments(costs, limit=n - 1)


@pytest.mark.parametrize("limit", [-1, 1.5, True])
def test_a_bad_limit_is_rejected(limit):
    message = f"The 'limit' parameter of valid_assignments must be an int >= 0. Got {limit!r}."
    with pytest.raises(InvalidParameterError, match="^" + re.escape(message) + "$"):
        count_valid(Costs.of(random_system(0)), limit=limit)


def test_costs_must_be_costs():
    with pytest.raises(InvalidParameterError, match=re.escape(
            "The 'costs' parameter of valid_assignments must be a Costs (Costs.of(system))")):
        valid_assignments(random_system(0))  # type: ignore[arg-type]
