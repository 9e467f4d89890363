"""The training domain a learned surrogate keeps, and what lies outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeperf.exceptions import InvalidParameterError
from edgeperf.io import load_scenario
from edgeperf.model import Placement
from edgeperf.surrogate._domain import QUANTITIES, Domain
from edgeperf.surrogate._graph import collate, encode
from surrogate_cases import exits_and_link, two_chains

REPO = Path(__file__).resolve().parents[2]

# two_chains(): c0 on d1 -> d2, c1 on d3 -> d1 -> d2; capacities 2, 3, 4; offered
# loads d1 0.5*0.5 + 0.25*0.2 = 0.3, d2 0.5*0.25 + 0.25*0.3 = 0.2, d3 0.25*0.1 = 0.025
# (the domain bounds loads above only: an idler station than any seen queues less)
TWO_CHAINS = {"chains": (2, 2), "stations": (3, 3), "link_stations": (0, 0), "hops": (2, 3),
              "capacity": (2, 4), "load": (0, 0.3), "scv": (0, 0),
              "exit_probability": (0, 0)}


def test_the_domain_of_a_hand_built_deployment():
    domain = Domain.of(encode(two_chains()))
    assert set(domain.ranges) == set(QUANTITIES)
    for name, pair in TWO_CHAINS.items():
        assert domain.ranges[name] == pytest.approx(pair, rel=1e-6), name


def test_gaps_name_each_quantity_outside_per_deployment():
    domain = Domain.of(encode(two_chains()))
    # exits_and_link(): e (capacity 3, speed 2) -> link (capacity 5) -> s (capacity 6),
    # an exit of probability 0.25 on e; at rate 2, s is offered 2 * 0.75 * 0.3 = 0.45;
    # e serves a (gamma, mean 0.1, variance 0.005), then b (0.05) with probability 0.75:
    # SCV (0.005 + 0.05^2 * 0.75 * 0.25) / 0.1375^2 = 0.289; of its no-wait time, 0.1375 at
    # e, 0.75 * 0.3 at s and 0.75 * (0.1 + 0.05) on the link: a share of 0.1125 / 0.475
    gaps = domain.gaps(collate([encode(two_chains()), encode(exits_and_link()),
                                encode(two_chains(10.0))]))
    assert gaps[0] == gaps[2] == ()  # every feature is scale-free, so is the domain
    assert gaps[1] == ("chains: 1 (trained on 2 only)", "link stations: 1 (trained on 0 only)",
                       "capacity of a station: 6 (trained on 2 to 4)",
                       "offered load of a station: 0.45 (trained on 0 to 0.3)",
                       "service SCV of a hop: 0.289 (trained on 0 only)",
                       "exit probability of a hop: 0.25 (trained on 0 only)",
                       "share of a chain's time on links: 0.237 (trained on 0 only)")


def test_a_chain_that_starts_at_a_link_is_outside_a_domain_without_one():
    cameras = load_scenario(REPO / "examples" / "scenarios" / "two_cameras.yaml")
    assert Domain.of(encode(cameras)).ranges["upload_links"] == (0.0, 0.0)  # on their boards
    # the door camera's network on the server: its frames go up the camera's link first
    door = Placement.from_mapping({"server": ["door_stem", "door_mid", "door_head"]})
    graph = encode(cameras.with_placement(door, "door"))
    assert Domain.of(graph).ranges["upload_links"] == (1.0, 1.0)
    assert Domain.of(encode(exits_and_link())).gaps(graph)[0][-1] == \
        "chains that start at a link: 1 (trained on 0 only)"


def test_a_domain_saved_before_a_quantity_was_bounded_leaves_it_unbounded():
    old = {k: v for k, v in Domain.of(encode(two_chains())).to_dict().items()
           if k not in ("link_share", "upload_links")}
    domain = Domain.from_dict(old)
    assert domain.gaps(encode(exits_and_link()))[0][-1].startswith("exit probability")
    assert set(domain.union(Domain.of(encode(exits_and_link()))).ranges) == set(old)


def test_union_holds_both_and_the_dict_round_trip_is_exact():
    a, b = Domain.of(encode(two_chains())), Domain.of(encode(exits_and_link()))
    both = a.union(b)
    assert both == b.union(a) and both.gaps(collate([encode(two_chains()),
                                                      encode(exits_and_link())])) == [(), ()]
    assert both.ranges["chains"] == (1.0, 2.0) and both.ranges["hops"] == (2.0, 3.0)
    assert b.ranges["scv"] == (0.0, 0.29)  # 0.289 (above), rounded up to three figures
    assert Domain.from_dict(both.to_dict()) == both


@pytest.mark.parametrize("call, match", [
    (lambda: Domain({"chain_count": (1, 2)}), r"'ranges' parameter of Domain must be a mapping "
     r"of some of \['chains', .*'upload_links'\] to their \(low, high\)\. Got \['chain_count'\]"),
    (lambda: Domain({}), r"'ranges' parameter of Domain must be a mapping .*Got \{\}\."),
    (lambda: Domain({**TWO_CHAINS, "hops": (3, 2)}), r"'ranges\[hops\]' parameter of Domain "
     r"must be a \(low, high\) pair of finite numbers, low <= high\. Got \(3, 2\)\."),
    (lambda: Domain({**TWO_CHAINS, "load": (0, float("nan"))}), r"'ranges\[load\]'"),
    (lambda: Domain({**TWO_CHAINS, "scv": "low"}), r"'ranges\[scv\]'"),
    (lambda: Domain.from_dict([1, 2]), r"'data' parameter of Domain.from_dict must be a "
     r"mapping.*Got 'list'"),
    (lambda: Domain.of(two_chains()), r"'graph' parameter of Domain.of must be a "
     r"DeploymentGraph.*Got 'System'"),
    (lambda: Domain(TWO_CHAINS).gaps(None), r"'graph' parameter of Domain.gaps"),
    (lambda: Domain(TWO_CHAINS).union(TWO_CHAINS), r"'other' parameter of Domain.union"),
])
def test_errors(call, match):
    with pytest.raises(InvalidParameterError, match=match):
        call()
