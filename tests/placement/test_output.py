"""write_placed_scenario: a scenario file every command reads back unchanged."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from edgeperf.exceptions import InvalidParameterError
from edgeperf.io import load_scenario
from edgeperf.model import Placement, System
from edgeperf.placement import PlacementDecision, place, write_placed_scenario
from edgeperf.dists import Deterministic
from edgeperf.profiling import BlockProfile, LatencyStats, Profile

REPO = Path(__file__).parents[2]


def profile() -> Profile:
    law = Deterministic(0.01)
    stats = LatencyStats(n=1, mean=0.01, var=0.0, p50=0.01, p95=0.01, p99=0.01, law=law)
    return Profile(name="p", source="test", input_shape=(3, 4, 4), num_classes=2,
                   blocks=tuple(BlockProfile(name=f"b{i}", latency=stats, output_bytes=400)
                                for i in range(3)))


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    (tmp_path / "in" / "profiles").mkdir(parents=True)
    profile().save(tmp_path / "in" / "profiles" / "p.json")
    (tmp_path / "in" / "trace.csv").write_text("0.1\n0.3\n0.4\n", encoding="utf-8")
    data = {"workload": {"arrival": {"process": "trace", "path": "trace.csv"}},
            "model": {"profile": "profiles/p.json"}, "source": "pi",
            "devices": [{"name": "pi", "capacity": 3}, {"name": "server", "capacity": 5,
                                                         "speed": 4.0}],
            "links": [{"from": "pi", "to": "server", "bandwidth_bps": 1e7, "capacity": 4}],
            "placement": {"pi": ["b0", "b1", "b2"]}}
    file = tmp_path / "in" / "s.yaml"
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    return file


def test_the_placed_scenario_reloads_with_the_decision(scenario, tmp_path):
    decision = place(load_scenario(scenario), "neurosurgeon", server="server")
    (tmp_path / "elsewhere").mkdir()
    out = write_placed_scenario(scenario, decision, tmp_path / "elsewhere" / "placed.yaml")
    placed = load_scenario(out)
    assert placed.placement == decision.placement
    assert placed.source == "pi"
    data = yaml.safe_load(out.read_text())
    assert data["model"]["profile"] == "../in/profiles/p.json"
    assert data["workload"]["arrival"]["path"] == "../in/trace.csv"
    assert out.read_text().startswith("# Placed by edgeperf place --method neurosurgeon")


def test_a_chain_of_several_keeps_the_others(tmp_path):
    data = yaml.safe_load((REPO / "examples" / "scenarios" / "shared_edge.yaml").read_text())
    file = tmp_path / "shared.yaml"
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    system = load_scenario(file)
    name = system.chains[0].name
    decision = place(system, "ilp", chain=name)
    placed = load_scenario(write_placed_scenario(file, decision, tmp_path / "out.yaml"))
    assert placed.chain(name).placement == decision.placement
    assert [c.placement for c in placed.chains[1:]] == [c.placement for c in system.chains[1:]]


def test_a_joint_placement_writes_every_chain(tmp_path):
    """The joint searches place every chain: the file must hold them all, not
    only the decision's chain (which the other methods place alone)."""
    file = REPO / "examples" / "scenarios" / "two_cameras.yaml"
    system = load_scenario(file)
    moved = {"door": Placement.from_mapping({"server": ["door_stem", "door_mid"],
                                             "door": ["door_head"]}),
             "yard": Placement.from_mapping({"server": ["yard_stem", "yard_mid", "yard_head"]})}
    both = System(devices=system.devices, links=system.links,
                  chains=[replace(c, placement=moved[c.name]) for c in system.chains])
    decision = PlacementDecision(method="surrogate", system=both, chain="door",
                                 assignment=(2, 2, 0), objective="worst_loss", value=0.0,
                                 latency_s=0.1, solve_time_s=0.1)
    placed = load_scenario(write_placed_scenario(file, decision, tmp_path / "out.yaml"))
    assert {c.name: c.placement for c in placed.chains} == moved
    assert [c.source for c in placed.chains] == ["door", "yard"]


def test_a_failed_write_leaves_the_old_file(scenario, tmp_path):
    decision = place(load_scenario(scenario), "neurosurgeon")
    out = tmp_path / "in" / "placed.yaml"
    out.write_text("old", encoding="utf-8")
    (tmp_path / "in" / "profiles" / "p.json").unlink()  # the copy cannot be read back
    with pytest.raises(InvalidParameterError, match="profile"):
        write_placed_scenario(scenario, decision, out)
    assert out.read_text() == "old"
    with pytest.raises(InvalidParameterError, match=r"'out' parameter of write_placed_scenario "
                       r"must be a file path \(str or os\.PathLike\)\. Got None\."):
        write_placed_scenario(scenario, decision, None)
    assert sorted(p.name for p in out.parent.iterdir()) == ["placed.yaml", "profiles",
                                                          "s.yaml", "trace.csv"]
