"""Random deployments labelled by the simulator: the learned twin's own training data.

Regimes (bounds inclusive; uniform draws unless said otherwise):

``chainnet`` reproduces the published ChainNet deployments. The ranges were
read off its 10,000 validation samples (``read_chainnet`` over
``shared/data/chainnet/val``), and are hard-coded here, not read at run time:

- chains 1-3 (33/34/32%), path length 2-6 (20% each), capacity K 1-50 per
  device (2.4% each): flat histograms, so uniform integers;
- each path is an ordered draw of distinct devices from a pool of 10; the
  deployment's devices are those some path visits (every published device is
  used by a chain). This gives the published device counts: 2-10, mostly 5-8;
- mean inter-arrival time uniform in [0.1, 10] (published 0.101..9.999, flat)
  and deterministic service per hop uniform in (0, 2] (published
  9e-6..2.000, flat), independent (correlation of their logs -0.01). Poisson
  arrivals. The loads spread from light to overloaded as in the published
  data: device utilisation median 0.26, 14% of devices and 31% of deployments
  with a device above 1; 31% of the chains lose more than 10% of their jobs.

``edgeperf`` is ``chainnet`` plus what edgeperf models and ChainNet does not:
a block other than the last carries an early exit with probability 0.3 (taken
with probability 0.1-0.5); a directed device pair of a path gets, with
probability 0.3, a link station (bandwidth log-uniform 2-20 Mbit/s, capacity
1-50) carrying block outputs of 20-500 kB (log-uniform), i.e. transmissions of
0.008-2 s, the range of the service times; each block's law is
deterministic, gamma or lognormal (one in three each) with SCV 0.1-2; and a
chain gets, with probability 0.3, a source: another device of the deployment
(a camera, say), whose inputs of 20-500 kB cross a link to the chain's first
device, a link station drawn as above unless the pair already has a link.

``larger`` (and ``larger-edgeperf``) go beyond the training regime, for the
generalisation test: a pool of 16 devices, 11-16 of them used, 2-4 chains of
7-10 devices each; the other draws as in ``chainnet`` (``edgeperf``).

Deployment i of ``(n, seed)`` is drawn from child i of ``SeedSequence(seed)``
(the same whatever ``n``) and simulated by the event engine with seed
``seed + i``, 10% warm-up, on a dask cluster through
:func:`edgeperf.sim.run_sweep`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .. import _validation as v
from ..exceptions import EdgePerfError
from ._dataset import Dataset, Sample

__all__ = ["Regime", "REGIMES", "GENERATOR_VERSION", "random_deployment", "larger_deployment",
           "deployments", "generate", "generate_dataset"]

#: Bumped whenever the same (n, regime, seed) would give different data.
#: 2: ``edgeperf`` chains may have a source that uploads their inputs over a link.
GENERATOR_VERSION = 2
WARMUP = 0.1
_PATH, _DEVICE = "path:", "device:"  # sweep-row keys of the labels Metrics cannot name


@dataclass(frozen=True, slots=True, kw_only=True)
class Regime:
    """Bounds of random deployments (pairs are inclusive ranges; times in seconds)."""

    pool: int = 10
    min_devices: int = 2
    chains: tuple[int, int] = (1, 3)
    path: tuple[int, int] = (2, 6)
    capacity: tuple[int, int] = (1, 50)
    interarrival_s: tuple[float, float] = (0.1, 10.0)
    service_s: tuple[float, float] = (0.0, 2.0)  # the low end itself excluded
    #: early exits, link stations and service variability (the ``edgeperf`` regime)
    features: bool = False

    def __post_init__(self) -> None:
        for name in ("chains", "path", "capacity"):
            _range(name, getattr(self, name), 1, numbers.Integral)
        if self.capacity[1] >= 2**62:  # numpy draws it as an int64
            raise v.fail("Regime", "capacity", "a pair of integers below 2**62", self.capacity)
        v.instance("Regime", "features", self.features, bool, "True or False")
        _range("interarrival_s", self.interarrival_s, 0.0, numbers.Real, above=True)
        _range("service_s", self.service_s, 0.0, numbers.Real)
        if self.service_s[1] == self.service_s[0]:
            raise v.fail("Regime", "service_s", "a range (low, high] with high > low",
                         self.service_s)
        v.integer("Regime", "pool", self.pool, low=self.path[1])
        most = min(self.pool, self.chains[1] * self.path[1])
        if not 1 <= v.integer("Regime", "min_devices", self.min_devices, low=1) <= most:
            raise v.fail("Regime", "min_devices", f"<= min(pool, most chains x longest path) "
                         f"= {most}", self.min_devices)


def _range(name: str, pair: object, low: float, kind: type, above: bool = False) -> None:
    """``pair`` is a range (low, high) of ``kind`` numbers, its low >= (or >) ``low``."""
    ok = (isinstance(pair, tuple) and len(pair) == 2
          and all(isinstance(x, kind) and not isinstance(x, bool) and math.isfinite(x)
                  for x in pair))
    if not ok or not (pair[0] > low if above else pair[0] >= low) or pair[0] > pair[1]:
        what = "integers" if kind is numbers.Integral else "numbers"
        raise v.fail("Regime", name, f"a pair of {what} (low, high) with "
                     f"{low:g} {'<' if above else '<='} low <= high", pair)


_CHAINNET = Regime()
_LARGER = Regime(pool=16, min_devices=11, chains=(2, 4), path=(7, 10))
REGIMES = {"chainnet": _CHAINNET, "edgeperf": replace(_CHAINNET, features=True),
           "larger": _LARGER, "larger-edgeperf": replace(_LARGER, features=True)}

# The edgeperf features (see the module docstring).
_EXIT_SHARE, _EXIT_PROBABILITY = 0.3, (0.1, 0.5)
_LINK_SHARE, _BANDWIDTH_BPS, _OUTPUT_BYTES = 0.3, (2e6, 2e7), (2e4, 5e5)
_UPLOAD_SHARE = 0.3
_SCV = (0.1, 2.0)


def _regime(owner: str, regime: str | Regime) -> Regime:
    if isinstance(regime, Regime):
        return regime
    if not isinstance(regime, str) or regime not in REGIMES:
        raise v.fail(owner, "regime", f"one of {list(REGIMES)} or a Regime", regime)
    return REGIMES[regime]


def _integer(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def _paths(rng: np.random.Generator, r: Regime) -> list[list[str]]:
    """Each chain's devices in order, named d1..dn over the devices some path uses."""
    while True:
        chains = _integer(rng, r.chains)
        drawn = [rng.choice(r.pool, size=_integer(rng, r.path), replace=False)
                 for _ in range(chains)]
        used = sorted({int(d) for p in drawn for d in p})
        if len(used) >= r.min_devices:
            name = {d: f"d{k}" for k, d in enumerate(used, 1)}
            return [[name[int(d)] for d in p] for p in drawn]


def _law(rng: np.random.Generator, mean: float, variable: bool) -> dict[str, Any]:
    kind = rng.choice(("deterministic", "gamma", "lognormal")) if variable else "deterministic"
    if kind == "deterministic":
        return {"kind": "deterministic", "value": mean}
    scv = float(rng.uniform(*_SCV))
    if kind == "gamma":
        return {"kind": "gamma", "shape": 1.0 / scv, "mean": mean}
    return {"kind": "lognormal", "mean": mean, "scv": scv}


def _block(rng: np.random.Generator, r: Regime, i: int, last: bool) -> dict[str, Any]:
    low, high = r.service_s
    mean = float(high - (high - low) * rng.random())  # in (low, high]
    block = {"name": f"f{i}", "latency": _law(rng, mean, r.features),
             "output_bytes": round(_log_uniform(rng, _OUTPUT_BYTES)) if r.features else 0}
    if r.features and not last and rng.random() < _EXIT_SHARE:
        block["exit"] = {"probability": float(rng.uniform(*_EXIT_PROBABILITY))}
    return block


def _chain(rng: np.random.Generator, r: Regime, j: int, path: list[str]) -> dict[str, Any]:
    gap = float(rng.uniform(*r.interarrival_s))
    blocks = [_block(rng, r, i, i == len(path) - 1) for i in range(len(path))]
    return {"name": f"c{j}", "workload": {"arrival": {"process": "poisson", "rate": 1.0 / gap}},
            "model": {"blocks": blocks},
            "placement": {d: [f"f{i}"] for i, d in enumerate(path)}}


def _links(rng: np.random.Generator, r: Regime, paths: list[list[str]]) -> list[dict[str, Any]]:
    """One link per directed pair of consecutive devices, shared by the chains using it."""
    links: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        for a, b in zip(path, path[1:]):
            if (a, b) in links:
                continue
            links[(a, b)] = {"from": a, "to": b}
            if r.features and rng.random() < _LINK_SHARE:
                links[(a, b)].update(bandwidth_bps=_log_uniform(rng, _BANDWIDTH_BPS),
                                     capacity=_integer(rng, r.capacity))
    return list(links.values())


def _uploads(rng: np.random.Generator, r: Regime, scenario: dict[str, Any]) -> None:
    """Give some chains a source on another device, and the link their inputs cross
    to the first device (drawn last, so the rest of a deployment is as before)."""
    names = [d["name"] for d in scenario["devices"]]
    links = {(link["from"], link["to"]) for link in scenario["links"]}
    for chain in scenario["chains"]:
        if rng.random() >= _UPLOAD_SHARE:
            continue
        first = next(iter(chain["placement"]))
        source = str(rng.choice([d for d in names if d != first]))
        chain["source"] = source
        chain["model"]["input_bytes"] = round(_log_uniform(rng, _OUTPUT_BYTES))
        if (source, first) not in links:
            links.add((source, first))
            scenario["links"].append({"from": source, "to": first,
                                      "bandwidth_bps": _log_uniform(rng, _BANDWIDTH_BPS),
                                      "capacity": _integer(rng, r.capacity)})


def random_deployment(rng: np.random.Generator, regime: str | Regime = "chainnet"
                      ) -> dict[str, Any]:
    """A random multi-chain scenario mapping of ``regime`` (a name of :data:`REGIMES`)."""
    r = _regime("random_deployment", regime)
    if not isinstance(rng, np.random.Generator):
        raise v.fail("random_deployment", "rng", "a numpy.random.Generator", rng)
    paths = _paths(rng, r)
    devices = sorted({d for p in paths for d in p}, key=lambda d: int(d[1:]))
    scenario = {"devices": [{"name": d, "capacity": _integer(rng, r.capacity)} for d in devices],
                "links": _links(rng, r, paths),
                "chains": [_chain(rng, r, j, p) for j, p in enumerate(paths)]}
    if r.features:
        _uploads(rng, r, scenario)
    return scenario


def larger_deployment(rng: np.random.Generator, *, features: bool = False) -> dict[str, Any]:
    """A deployment beyond the training regime (11-16 devices, 2-4 chains of 7-10
    devices), with the ``edgeperf`` features when ``features``."""
    v.instance("larger_deployment", "features", features, bool, "True or False")
    return random_deployment(rng, "larger-edgeperf" if features else "larger")


def deployments(n: int, *, regime: str | Regime = "chainnet", seed: int = 0) -> list[dict]:
    """The ``n`` deployments :func:`generate` labels: deployment i from child i of
    ``SeedSequence(seed)``."""
    v.integer("deployments", "n", n, low=1)
    v.integer("deployments", "seed", seed, low=0)
    r = _regime("deployments", regime)
    return [random_deployment(np.random.default_rng(child), r)
            for child in np.random.SeedSequence(seed).spawn(n)]


def _label_point(system: Any, *, jobs: int, replications: int, seed: int) -> dict[str, Any]:
    """Runs on a worker: per chain its Metrics (end to end) and, as extra rows, a copy
    whose mean response time is ChainNet's per-device sum, and per device a copy
    whose loss probability is that device's (sweep rows carry Metrics fields only)."""
    from ..sim import simulate_chains

    metrics = simulate_chains(system, jobs=jobs, replications=replications, seed=seed,
                              warmup=WARMUP, engine="event")
    devices = {d.name for d in system.devices}
    offered: dict[str, float] = defaultdict(float)
    lost: dict[str, float] = defaultdict(float)
    out = {}
    for name, m in metrics.items():
        rows = [s for s in m.stations if s.name in devices]
        times = [s.mean_response_time for s in rows]
        if m.mean_response_time is None or None in times:
            raise EdgePerfError(f"chain {name!r}: no job completed or reached some device in "
                                f"the measured window, so its labels are undefined")
        out[name] = m
        out[_PATH + name] = replace(m, mean_response_time=float(sum(times)))
        for s in rows:
            offered[s.name] += s.arrival_rate
            lost[s.name] += s.arrival_rate * s.loss_probability
    first = next(iter(metrics.values()))
    for d in sorted(devices):
        loss = lost[d] / offered[d] if offered[d] > 0 else 0.0
        out[_DEVICE + d] = replace(first, loss_probability=loss)
    return out


def _samples(scenarios: list[dict], rows: tuple[dict[str, Any], ...]) -> list[Sample]:
    """The labelled samples, in deployment order, leaving out the failed points."""
    by_point: dict[int, dict[str, dict]] = defaultdict(dict)
    for row in rows:
        if not row["error"]:
            by_point[row["point"]][row["chain"]] = row
    out = []
    for i, scenario in enumerate(scenarios):
        if i not in by_point:
            continue
        got = by_point[i]
        labels = tuple({"tput_ratio": 1.0 - got[c["name"]]["loss_probability"],
                        "response_time": got[_PATH + c["name"]]["mean_response_time"],
                        "response_time_e2e": got[c["name"]]["mean_response_time"],
                        "throughput": got[c["name"]]["throughput"]} for c in scenario["chains"])
        loss = {d["name"]: got[_DEVICE + d["name"]]["loss_probability"]
                for d in scenario["devices"]}
        out.append(Sample(scenario=scenario, labels=labels, device_loss=loss))
    return out


def generate_dataset(n: int, *, regime: str | Regime = "chainnet", seed: int = 0,
                     jobs: int = 30_000, replications: int = 2, n_workers: int | None = None,
                     client: Any = None, progress: bool = True) -> Dataset:
    """``n`` deployments labelled by the event engine on dask (``client``, or a local
    cluster of ``n_workers`` processes, as :func:`edgeperf.sim.run_sweep` starts).
    A deployment whose simulation fails is left out; ``meta`` says how many
    (``skipped``) and why (``failures``, the first 10).
    If every one fails there is no data set: an EdgePerfError says why."""
    from ..sim import run_sweep

    v.integer("generate", "jobs", jobs, low=100)  # what simulate needs: fail here, not per point
    scenarios = deployments(n, regime=regime, seed=seed)
    result = run_sweep(scenarios, evaluate=_label_point, client=client, n_workers=n_workers,
                       jobs=jobs, replications=replications, seed=seed, progress=progress,
                       source=f"generated deployments (seed {seed})")
    if len(result.failed) == n:
        raise EdgePerfError(f"generate: all {n} deployments failed to simulate, so there is no "
                            f"data set; first: deployment {result.failed[0].index}: "
                            f"{result.failed[0].error}")
    name = regime if isinstance(regime, str) else asdict(regime)
    meta = {"generator": "edgeperf.surrogate.generate", "generator_version": GENERATOR_VERSION,
            "regime": name, "seed": seed, "jobs": jobs, "replications": replications,
            "engine": "event", "warmup": WARMUP, "requested": n, "skipped": len(result.failed),
            "failures": [f"deployment {f.index}: {f.error}" for f in result.failed[:10]]}
    return Dataset(samples=tuple(_samples(scenarios, result.rows)), meta=meta)


def generate(n: int, *, regime: str | Regime = "chainnet", seed: int = 0, jobs: int = 30_000,
             replications: int = 2, n_workers: int | None = None, client: Any = None,
             progress: bool = True) -> list[Sample]:
    """The samples of :func:`generate_dataset`; skipped deployments raise a
    RuntimeWarning that says how many."""
    data = generate_dataset(n, regime=regime, seed=seed, jobs=jobs, replications=replications,
                            n_workers=n_workers, client=client, progress=progress)
    if data.meta["skipped"]:
        warnings.warn(f"{data.meta['skipped']} of {n} deployments failed to simulate and were "
                      f"skipped; first: {data.meta['failures'][0]}", RuntimeWarning, stacklevel=2)
    return list(data.samples)
