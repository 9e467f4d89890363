"""Deployments the surrogate tests share: hand-built systems and where the
published ChainNet data lies (tests skip cleanly without it)."""

from __future__ import annotations

from pathlib import Path

from edgeperf.dists import Deterministic, Gamma
from edgeperf.io import parse_scenario
from edgeperf.model import (DNN, Block, Device, Link, Placement, PoissonArrivals, System,
                            Workload)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "chainnet" / "val"

#: Two chains over three devices (capacities 2, 3, 4): c0 runs d1 -> d2 with
#: services 0.5, 0.25 at rate 0.5; c1 runs d3 -> d1 -> d2 with 0.1, 0.2, 0.3 at rate 0.25.
TWO_CHAINS = {
    "devices": [{"name": "d1", "capacity": 2}, {"name": "d2", "capacity": 3},
                {"name": "d3", "capacity": 4}],
    "links": [{"from": "d1", "to": "d2"}, {"from": "d3", "to": "d1"}],
    "chains": [
        {"name": name, "workload": {"arrival": {"process": "poisson", "rate": rate}},
         "model": {"blocks": [{"name": f"f{i}", "output_bytes": 0,
                               "latency": {"kind": "deterministic", "value": s}}
                              for i, s in enumerate(services)]},
         "placement": {d: [f"f{i}"] for i, d in enumerate(path)}}
        for name, rate, services, path in (("c0", 0.5, (0.5, 0.25), ("d1", "d2")),
                                           ("c1", 0.25, (0.1, 0.2, 0.3), ("d3", "d1", "d2")))],
}
TWO_LABELS = ({"tput_ratio": 0.9, "response_time": 1.5}, {"tput_ratio": 0.8, "response_time": 1.2})


def two_chains(scale: float = 1.0) -> System:
    """TWO_CHAINS with every time multiplied by ``scale`` (rates divided by it)."""
    scenario = {**TWO_CHAINS, "chains": []}
    for chain in TWO_CHAINS["chains"]:
        rate = chain["workload"]["arrival"]["rate"] / scale
        blocks = [{**b, "latency": {"kind": "deterministic",
                                    "value": b["latency"]["value"] * scale}}
                  for b in chain["model"]["blocks"]]
        scenario["chains"].append({**chain, "workload": {"arrival": {"process": "poisson",
                                                                     "rate": rate}},
                                   "model": {"blocks": blocks}})
    return parse_scenario(scenario)


def exits_and_link(scale: float = 1.0, exit_probability: float = 0.25) -> System:
    """One chain with an early exit on a device of speed 2, a non-ideal link
    (capacity 5, 1000 bytes at 8e4 bit/s = 0.1 s) and gamma service."""
    blocks = (Block(name="a", latency=Gamma(2.0, 0.2 * scale), output_bytes=1000,
                    exit_probability=exit_probability),
              Block(name="b", latency=Deterministic(0.1 * scale), output_bytes=1000),
              Block(name="c", latency=Deterministic(0.3 * scale), output_bytes=0))
    return System(model=DNN(blocks=blocks), workload=Workload(arrival=PoissonArrivals(
        rate=2.0 / scale)), placement=Placement.from_mapping({"e": ["a", "b"], "s": ["c"]}),
        devices=[Device(name="e", capacity=3, speed=2.0), Device(name="s", capacity=6)],
        links=[Link(source="e", target="s", bandwidth_bps=8e4 / scale, capacity=5,
                    latency_s=0.05 * scale)])
