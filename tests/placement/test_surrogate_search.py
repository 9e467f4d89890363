"""The surrogate-driven joint placement of several chains sharing devices."""

from __future__ import annotations

import itertools
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest

from edgeperf.dists import Deterministic
from edgeperf.exceptions import InvalidParameterError
from edgeperf.model import DNN, Block, Device, Link, Placement, PoissonArrivals, System, Workload
from edgeperf.model.system import Chain
from edgeperf.placement import Costs, valid_assignments
from edgeperf.placement import _surrogate_search as ss
from edgeperf.placement._surrogate_search import (compare_search, simulation_search,
                                                    surrogate_search)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "chainnet" / "val"
WEIGHT = {"a": 3.0, "b": 1.0, "c": 2.0, "d": 1.5}  # the mock's cost of a device


def _chain(name: str, rate: float, services: tuple[float, ...], device: str) -> Chain:
    blocks = tuple(Block(name=f"{name}b{i}", latency=Deterministic(s), output_bytes=0,
                         param_bytes=100) for i, s in enumerate(services))
    return Chain(name=name, model=DNN(blocks=blocks, input_bytes=0),
                 workload=Workload(arrival=PoissonArrivals(rate=rate)),
                 placement=Placement.from_mapping({device: [b.name for b in blocks]}))


def two_chains(memory_bytes: int = 400) -> System:
    """Chains of 3 and 2 blocks over 4 devices linked in a ring a-b-c-d plus a-c;
    a block needs 100 bytes of weights (its activation is 0 bytes)."""
    devices = [Device(name=n, capacity=k, speed=sp, memory_bytes=memory_bytes)
               for n, k, sp in (("a", 3, 1.0), ("b", 4, 2.0), ("c", 5, 1.5), ("d", 3, 0.8))]
    pairs = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a"), ("a", "c")]
    links = [Link(source=x, target=y) for p in pairs for x, y in (p, p[::-1])]
    return System(devices=devices, links=links, chains=[
        _chain("c0", 1.0, (0.3, 0.2, 0.4), "a"), _chain("c1", 0.8, (0.2, 0.5), "b")])


class Mock:
    """A known function of the placement: a chain loses in proportion to the
    weighted block count on its busiest device (all chains' blocks counted);
    its response time is the weight of its devices. Keeps its batch sizes."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[int] = []
        self.delay_s = delay_s

    def predict(self, systems: list[System]) -> np.ndarray:
        self.batches.append(len(systems))
        time.sleep(self.delay_s)
        return np.concatenate([mock_rows(s) for s in systems])


def mock_rows(system: System) -> np.ndarray:
    count = {d.name: 0 for d in system.devices}
    for chain in system.chains:
        for device, blocks in chain.placement.assignment:
            count[device] += len(blocks)
    rows = []
    for chain in system.chains:
        used = [device for device, _ in chain.placement.assignment]
        loss = max(0.04 * count[d] * WEIGHT[d] for d in used)
        response = sum(WEIGHT[d] * len(b) for d, b in chain.placement.assignment)
        rows.append((1.0 - min(loss, 1.0), response))
    return np.array(rows)


def brute_force(system: System, shared_memory: bool = True,
                rows_of=mock_rows) -> list[tuple[float, float]]:
    """(worst loss, mean response: the last column) of every valid joint placement,
    best first."""
    costs = [Costs.of(system, c.name) for c in system.chains]
    limits = costs[0].memory_limits()
    out = []
    for joint in itertools.product(*[list(valid_assignments(c)) for c in costs]):
        need = sum(c.memory_bytes(a) for c, a in zip(costs, joint))
        if shared_memory and np.any(need > limits):
            continue
        placed = system
        for c, a in zip(costs, joint):
            placed = placed.with_placement(c.placement_of(a), c.chain)
        rows = rows_of(placed)
        out.append((float(np.max(1.0 - rows[:, 0])), float(rows[:, -1].mean())))
    return sorted(out)


def key_of(decision) -> tuple[float, float]:
    rows = mock_rows(decision.system)
    return float(np.max(1.0 - rows[:, 0])), float(rows[:, 1].mean())


def test_finds_the_brute_force_optimum_with_batched_calls():
    system = two_chains()
    mock = Mock()
    decision = surrogate_search(system, model=mock, time_budget_s=1.0, confirm=False,
                                loss_tolerance=0.0)
    best = brute_force(system)[0]
    assert key_of(decision) == pytest.approx(best)
    assert decision.value == pytest.approx(best[0])
    assert decision.chain == "c0" and decision.method == "surrogate"
    assert decision.assignment == tuple(
        Costs.of(system, "c0").assignment_of(decision.system.chain("c0").placement))
    details = decision.details
    assert set(details["placements"]) == {"c0", "c1"} and "simulated" not in details
    assert 1 <= details["evaluated"] <= len(brute_force(system))  # each placement once
    assert sum(mock.batches) == details["evaluated"]  # each placement scored once
    assert len(mock.batches) < details["evaluated"] / 2  # a climb's neighbours in one call
    assert "steepest descent" in details["search"]


def end_to_end_rows(system: System) -> np.ndarray:
    """mock_rows with an end-to-end column that ranks placements of equal loss
    the other way round from the devices' response."""
    rows = mock_rows(system)
    return np.column_stack([rows, 10.0 - rows[:, 1]])


class EndToEnd(Mock):
    def predict(self, systems: list[System]) -> np.ndarray:
        return np.concatenate([end_to_end_rows(s) for s in systems])


def test_ties_go_to_the_end_to_end_response_when_the_scorer_gives_it():
    system = two_chains()
    decision = surrogate_search(system, model=EndToEnd(), time_budget_s=1.0, confirm=False,
                                loss_tolerance=0.0)
    rows = end_to_end_rows(decision.system)
    best = brute_force(system, rows_of=end_to_end_rows)[0]
    assert (float(np.max(1.0 - rows[:, 0])), float(rows[:, 2].mean())) == pytest.approx(best)
    # not the placement the devices' response alone would pick
    assert float(rows[:, 1].mean()) > brute_force(system)[0][1]
    assert [p["response_time_e2e"] for p in decision.details["predicted"].values()] == \
        pytest.approx(rows[:, 2])


def test_respects_shared_memory_and_links():
    system = two_chains(memory_bytes=200)  # at most two blocks per device, all chains together
    decision = surrogate_search(system, model=Mock(), time_budget_s=0.5, confirm=False,
                                loss_tolerance=0.0)
    assert key_of(decision) == pytest.approx(brute_force(system)[0])
    assert brute_force(system, shared_memory=False)[0] < brute_force(system)[0]  # it binds
    costs = [Costs.of(decision.system, c.name) for c in decision.system.chains]
    joint = [c.assignment_of(decision.system.chain(c.chain).placement) for c in costs]
    assert all(c.violation(a) is None for c, a in zip(costs, joint))  # links, fragments
    assert np.all(sum(c.memory_bytes(a) for c, a in zip(costs, joint)) <= 200)


def test_time_budget_is_respected_with_a_slow_model():
    start = time.perf_counter()
    decision = surrogate_search(two_chains(), model=Mock(delay_s=0.05), time_budget_s=0.6,
                                confirm=False)
    assert abs(time.perf_counter() - start - 0.6) < 0.5
    assert abs(decision.details["search_time_s"] - 0.6) < 0.5


def test_a_small_space_ends_the_search_before_the_budget():
    """Once restarts stop meeting new placements, the search stops: here after
    scoring every valid joint placement, long before 30 s."""
    system = two_chains(memory_bytes=200)
    decision = surrogate_search(system, model=Mock(), time_budget_s=30.0, confirm=False)
    assert decision.details["evaluated"] == len(brute_force(system))
    assert decision.details["search_time_s"] < 15.0


def test_confirm_reports_predicted_and_simulated_losses():
    decision = surrogate_search(two_chains(), model=Mock(), time_budget_s=0.3, jobs=3000,
                                replications=2, chain="c1")
    assert decision.chain == "c1" and len(decision.assignment) == 2
    for name in ("c0", "c1"):
        predicted = decision.details["predicted"][name]
        simulated = decision.details["simulated"][name]
        assert 0.0 <= predicted["loss"] <= 1.0 and predicted["response_time"] > 0
        assert 0.0 <= simulated["loss"] <= 1.0 and simulated["loss_half_width"] >= 0.0
        assert simulated["mean_response_time"] > 0


def test_errors(tmp_path, monkeypatch):
    system = two_chains()
    monkeypatch.setattr(ss, "DEFAULT_MODELS", {"chainnet": tmp_path / "chainnet.safetensors"})
    with pytest.raises(InvalidParameterError, match="'model'.*default model file is missing"):
        surrogate_search(system)
    with pytest.raises(InvalidParameterError, match="'path'.*weights file is missing"):
        surrogate_search(system, model=tmp_path / "none.safetensors")
    with pytest.raises(InvalidParameterError, match="'model'.*predict"):
        surrogate_search(system, model=object())
    with pytest.raises(InvalidParameterError, match="'objective'.*worst_loss"):
        surrogate_search(system, model=Mock(), objective="latency")
    with pytest.raises(InvalidParameterError, match="'time_budget_s'"):
        surrogate_search(system, model=Mock(), time_budget_s=0)
    with pytest.raises(InvalidParameterError, match="'chain'.*c0"):
        surrogate_search(system, model=Mock(), chain="nope")
    with pytest.raises(InvalidParameterError, match="'scoring_jobs'"):
        compare_search(system, model=Mock(), scoring_jobs=0)
    with pytest.raises(InvalidParameterError, match="'system' parameter of surrogate_search"):
        surrogate_search({"devices": []}, model=Mock())
    with pytest.raises(InvalidParameterError, match="^The 'system' parameter of default_model "
                       "must be a System. Got 'dict'.$"):
        ss.default_model({"devices": []})
    with pytest.raises(InvalidParameterError, match=r"'model' parameter of surrogate_search must "
                       r"be a model that predicts a finite throughput ratio .*Got 'NaNs'"):
        surrogate_search(system, model=NaNs(), confirm=False)
    with pytest.raises(InvalidParameterError, match=r"NaN or an infinite ratio .*Got 'Endless'"):
        surrogate_search(system, model=Endless(column=0), confirm=False)


class Endless(Mock):
    """A model that predicts infinity in ``column`` for placements using device d."""

    def __init__(self, column: int) -> None:
        super().__init__()
        self.column = column

    def predict(self, systems: list[System]) -> np.ndarray:
        rows = super().predict(systems)
        for k, system in enumerate(systems):
            for c, chain in enumerate(system.chains):
                if "d" in chain.placement.as_dict():
                    rows[k * len(system.chains) + c, self.column] = np.inf
        return rows


def test_an_infinite_response_time_ranks_last():
    """The simulator scores a placement where no job completes with an infinite
    response time: the search goes on and picks a placement with a finite one."""
    system = two_chains()
    decision = surrogate_search(system, model=Endless(column=1), time_budget_s=1.0,
                                confirm=False, loss_tolerance=0.0)
    assert all("d" not in p for p in decision.details["placements"].values())
    assert np.isfinite([p["response_time"] for p in decision.details["predicted"].values()]).all()


class Bounded(Mock):
    """The mock, with a training domain as a learned twin keeps one."""

    def __init__(self, chains: tuple[int, int]) -> None:
        from edgeperf.surrogate import Domain

        super().__init__()
        self.domain = Domain({"chains": chains, "stations": (1, 100), "link_stations": (0, 9),
                              "hops": (1, 100), "capacity": (1, 100), "load": (0, 100),
                              "scv": (0, 9), "exit_probability": (0, 1)})


def test_a_winner_outside_the_twins_training_domain_says_so():
    system = two_chains()
    decision = surrogate_search(system, model=Bounded(chains=(1, 1)), time_budget_s=0.3,
                                confirm=False)
    assert decision.details["outside_training"] == ["chains: 2 (trained on 1 only)"]
    decision = surrogate_search(system, model=Bounded(chains=(1, 3)), time_budget_s=0.3,
                                confirm=False)
    assert decision.details["outside_training"] == []
    decision = surrogate_search(system, model=Mock(), time_budget_s=0.3, confirm=False)
    assert "outside_training" not in decision.details  # a model that keeps no domain


class NaNs(Mock):
    """A broken model: NaN for every chain (as NaN weights would give)."""

    name = "NaNs"

    def predict(self, systems: list[System]) -> np.ndarray:
        return np.full_like(super().predict(systems), np.nan)


def test_default_model_follows_the_regime():
    """ChainNet's regime gets the model trained on it; an exit, a non-ideal link or
    variable service the one trained on ours too; both ship and load."""
    from dataclasses import replace

    from edgeperf.dists import Gamma

    plain = two_chains()
    assert ss.default_model(plain) == ss.DEFAULT_MODELS["chainnet"]
    c0 = plain.chains[0]
    blocks = list(c0.model.blocks)
    variants = [
        replace(blocks[0], latency=Gamma(2.0, 0.3)),
        replace(blocks[0], exit_probability=0.2),
    ]
    for block in variants:
        chain = replace(c0, model=replace(c0.model, blocks=(block, *blocks[1:])))
        system = System(devices=plain.devices, links=plain.links, chains=[chain, plain.chains[1]])
        assert ss.default_model(system) == ss.DEFAULT_MODELS["edgeperf"]
    slow = [replace(link, bandwidth_bps=1e6, capacity=5) for link in plain.links]
    spread = replace(c0, model=replace(c0.model, blocks=(
        replace(blocks[0], output_bytes=1000), *blocks[1:])),
        placement=Placement.from_mapping({"a": ["c0b0"], "b": ["c0b1", "c0b2"]}))
    linked = System(devices=plain.devices, links=slow, chains=[spread, plain.chains[1]])
    assert ss.default_model(linked) == ss.DEFAULT_MODELS["edgeperf"]
    for path in ss.DEFAULT_MODELS.values():
        assert bool(ss._model("test", path, plain).fitted)


def test_shipped_models_are_found_in_a_checkout_and_in_a_wheel_install(tmp_path):
    # a checkout (or editable install) reads the repository's models/surrogate
    assert ss._shipped_folder() == Path(__file__).resolve().parents[2] / "models" / "surrogate"
    # a wheel puts the module in site-packages and the models under
    # <prefix>/share/edgeperf (pyproject's data-files)
    module = tmp_path / "lib" / "python3" / "site-packages" / "edgeperf" / "placement" / "m.py"
    module.parent.mkdir(parents=True)
    module.touch()
    assert ss._shipped_folder(module) == (Path(sysconfig.get_path("data")) / "share"
                                          / "edgeperf" / "models" / "surrogate")


def bursty_with_cores() -> System:
    """two_chains with what the twin does not model: c0's arrivals in bursts
    (MMPP) and two servers on device b."""
    from dataclasses import replace

    from edgeperf.model import MMPPArrivals

    plain = two_chains()
    c0 = replace(plain.chains[0], workload=Workload(arrival=MMPPArrivals(
        rates=(0.2, 4.0), switch_rates=(0.5, 1.0))))
    devices = [replace(d, servers=2) if d.name == "b" else d for d in plain.devices]
    return System(devices=devices, links=plain.links, chains=[c0, plain.chains[1]])


def test_simulation_search_takes_what_the_twin_does_not():
    from edgeperf.exceptions import UnsupportedModelError
    from edgeperf.sim import simulate_chains

    system = bursty_with_cores()
    with pytest.raises(UnsupportedModelError, match="Poisson arrivals only"):
        surrogate_search(system, time_budget_s=0.5)  # the shipped twin refuses it
    decision = simulation_search(system, time_budget_s=1.0, scoring_jobs=300, jobs=2000,
                                 replications=2, seed=3)
    details = decision.details
    assert decision.method == "simulation" and set(details["simulated"]) == {"c0", "c1"}
    assert details["evaluated"] >= 2
    # its scores are the simulator's: one run of scoring_jobs with the search's seed
    again = simulate_chains(decision.system, engine="event", jobs=300, replications=1, seed=3)
    devices = {d.name for d in system.devices}
    for name, m in again.items():
        assert details["predicted"][name]["loss"] == pytest.approx(m.loss_probability)
        # the twin's label (the devices' responses) and the end-to-end time it ranks by
        assert details["predicted"][name]["response_time"] == pytest.approx(
            sum(s.mean_response_time for s in m.stations if s.name in devices))
        assert details["predicted"][name]["response_time_e2e"] == pytest.approx(
            m.mean_response_time)
    # and it never ends worse than where it started, the scenario's placement (losses
    # compare in steps of loss_tolerance, 1e-3: within one, the faster one wins)
    start = simulate_chains(system, engine="event", jobs=300, replications=1, seed=3)
    assert decision.value < max(m.loss_probability for m in start.values()) + 1e-3


def test_simulation_search_errors():
    system = two_chains()
    with pytest.raises(InvalidParameterError, match="'scoring_jobs' parameter of "
                       "simulation_search"):
        simulation_search(system, scoring_jobs=0)
    with pytest.raises(InvalidParameterError, match="'chain' parameter of simulation_search "
                       r"must be one of \['c0', 'c1'\]\. Got 'nope'\."):
        simulation_search(system, chain="nope")
    with pytest.raises(InvalidParameterError, match="'system' parameter of simulation_search"):
        simulation_search(None)
    # checked before the search, not after it by the confirming simulation
    with pytest.raises(InvalidParameterError, match=r"^The 'confirm' parameter of "
                       r"simulation_search must be True or False\. Got -1\.$"):
        simulation_search(system, confirm=-1)
    with pytest.raises(InvalidParameterError, match=r"^The 'jobs' parameter of "
                       r"simulation_search must be an int >= 100\. Got 5\.$"):
        simulation_search(system, jobs=5)
    with pytest.raises(InvalidParameterError, match=r"^The 'replications' parameter of "
                       r"compare_search must be an int >= 1\. Got 0\.$"):
        compare_search(system, replications=0)


def test_compare_search_runs_every_method():
    results = compare_search(two_chains(), model=Mock(), time_budget_s=1.0, jobs=2000,
                             replications=2, scoring_jobs=300)
    assert set(results) == {"surrogate", "simulation", "analytic", "ilp"}
    for method, r in results.items():
        assert 0.0 <= r["worst_loss"] <= 1.0 and r["worst_loss_half_width"] >= 0.0
        assert r["evaluated"] >= 1 and r["search_time_s"] < 1.5
        assert set(r["placements"]) == {"c0", "c1"}
    assert results["surrogate"]["violation"] is None
    # each chain alone runs fastest on b: together they overflow its memory
    assert "memory of b" in results["ilp"]["violation"]


@pytest.mark.skipif(not (DATA / "numClasses.txt").is_file(), reason="no ChainNet data")
def test_a_trained_chainnet_drives_the_search(tmp_path):
    from edgeperf.io import parse_scenario, read_chainnet
    from edgeperf.surrogate import build_model, encode, save_model, train

    graphs = [encode(parse_scenario(s.scenario), s.labels) for s in read_chainnet(DATA, 24)]
    model = build_model("chainnet", hidden=8, iterations=1)
    train(model, graphs[:16], graphs[16:], epochs=2, batch_size=8, progress=False)
    save_model(model, tmp_path)
    decision = surrogate_search(two_chains(), model=tmp_path, time_budget_s=0.5, jobs=2000)
    assert decision.details["evaluated"] >= 1 and set(decision.details["simulated"]) == {"c0",
                                                                                         "c1"}
