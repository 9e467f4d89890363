"""The surrogate's data sets: samples, an exact pickle-free .npz round trip, and the
published ChainNet deployments in the same shape."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from edgeperf.exceptions import InvalidParameterError
from edgeperf.io import parse_scenario
from edgeperf.surrogate._dataset import (LABELS, Dataset, Sample, from_chainnet, load_dataset,
                                         save_dataset)
from edgeperf.surrogate._generate import deployments

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".." / "shared" / "data" / "chainnet" / "val"

needs_data = pytest.mark.skipif(not (DATA / "numClasses.txt").is_file(),
                                reason="the ChainNet data set is not next to the project")


def labelled(scenario: dict, seed: int) -> Sample:
    """A sample with arbitrary (but awkward: tiny, huge, NaN) label values."""
    rng = np.random.default_rng(seed)
    labels = tuple({k: float(rng.lognormal(0, 5)) for k in LABELS} for _ in scenario["chains"])
    labels[0]["response_time_e2e"] = math.nan
    loss = {d["name"]: float(rng.random()) for d in scenario["devices"][::2]}
    return Sample(scenario=scenario, labels=labels, device_loss=loss)


def same(a: Sample, b: Sample) -> bool:
    """Equal, NaN equal to NaN, and every label bit for bit."""
    def bits(s: Sample) -> list:
        return [[np.float64(lab[k]).tobytes() for k in LABELS] for lab in s.labels]

    return (a.scenario == b.scenario and a.device_loss == b.device_loss
            and [sorted(lab) for lab in a.labels] == [sorted(lab) for lab in b.labels]
            and bits(a) == bits(b))


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    scenarios = deployments(4, regime="edgeperf", seed=5) + deployments(3, regime="larger", seed=1)
    return [labelled(s, i) for i, s in enumerate(scenarios)]


def test_a_round_trip_is_exact_and_needs_no_pickle(samples, tmp_path):
    path = save_dataset(samples, tmp_path / "d.npz", meta={"seed": 5, "regime": "edgeperf"})
    with np.load(path, allow_pickle=False) as npz:  # no object arrays anywhere
        assert all(npz[name].dtype != object for name in npz.files)
        assert len(npz["scenario_offsets"]) == len(samples) + 1
        assert len(npz["chain_sample"]) == sum(len(s.labels) for s in samples)
    data = load_dataset(path)
    assert isinstance(data, Dataset)
    assert data.meta == {"seed": 5, "regime": "edgeperf"}
    assert len(data.samples) == len(samples)
    assert all(same(a, b) for a, b in zip(samples, data.samples))
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]  # no temporary file left


def test_an_empty_data_set_round_trips(tmp_path):
    data = load_dataset(save_dataset([], tmp_path / "empty.npz", meta={}))
    assert data == Dataset(samples=(), meta={})


def test_the_file_is_written_atomically_whatever_its_suffix(samples, tmp_path):
    path = save_dataset(samples[:1], tmp_path / "data.bin", meta={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]
    assert same(load_dataset(path).samples[0], samples[0])


def test_sample_labels_must_match_the_chains():
    scenario = deployments(1, seed=2)[0]
    with pytest.raises(InvalidParameterError, match=r"'labels' parameter of Sample must be one "
                       r"label mapping per entry"):
        Sample(scenario=scenario, labels=())
    with pytest.raises(InvalidParameterError, match=r"mappings with the keys"):
        Sample(scenario=scenario, labels=tuple({"tput_ratio": 1.0} for _ in scenario["chains"]))
    with pytest.raises(InvalidParameterError, match=r"mappings with the keys .*Got 0\.5\.$"):
        Sample(scenario=scenario, labels=tuple(0.5 for _ in scenario["chains"]))
    with pytest.raises(InvalidParameterError, match=r"^The 'labels' parameter of Sample must be "
                       r"one label mapping per entry of scenario\['chains'\]\. Got 'NoneType'"):
        Sample(scenario=scenario, labels=None)
    with pytest.raises(InvalidParameterError, match=r"^The 'scenario' parameter of Sample must "
                       r"be a scenario mapping \(devices, links, chains\)\. Got None\.$"):
        Sample(scenario=None, labels=())
    # these were taken, and save_dataset then raised a bare ValueError
    good = {k: 1.0 for k in LABELS}
    for key, value in (("tput_ratio", "x"), ("response_time", -5.0)):
        with pytest.raises(InvalidParameterError, match=r"^The 'labels' parameter of Sample "
                           r"must be numbers >= 0 \(NaN where there is none\)\. Got "
                           + re.escape(repr({key: value})) + r"\.$"):
            Sample(scenario=scenario, labels=({**good, key: value},) * len(scenario["chains"]))
    with pytest.raises(InvalidParameterError, match=r"^The 'device_loss' parameter of Sample must "
                       r"be a mapping device name -> loss ratio\. Got 'str'\.$"):
        Sample(scenario=scenario, labels=(good,) * len(scenario["chains"]), device_loss="x")


def test_save_rejects_what_json_cannot_hold(samples, tmp_path):
    with pytest.raises(InvalidParameterError, match=r"'meta' parameter of save_dataset must be "
                       r"JSON-compatible .*Got 'TypeError"):
        save_dataset(samples, tmp_path / "d.npz", meta={"when": object()})
    with pytest.raises(InvalidParameterError, match=r"'meta' .*no NaN"):
        save_dataset(samples, tmp_path / "d.npz", meta={"x": math.nan})
    with pytest.raises(InvalidParameterError, match=r"^The 'meta' parameter of save_dataset must "
                       r"be a JSON-compatible mapping\. Got None\.$"):
        save_dataset(samples, tmp_path / "d.npz", meta=None)  # a TypeError
    stray = Sample(scenario=samples[0].scenario, labels=samples[0].labels,
                   device_loss={"nowhere": 0.5})
    with pytest.raises(InvalidParameterError, match=r"device_loss keys naming devices .*"
                       r"Got 'nowhere'"):
        save_dataset([stray], tmp_path / "d.npz", meta={})
    with pytest.raises(InvalidParameterError, match=r"'samples' parameter of save_dataset must "
                       r"be a sequence of Sample\. Got 'NoneType'\."):
        save_dataset(None, tmp_path / "d.npz", meta={})
    with pytest.raises(InvalidParameterError, match=r"'samples' parameter of save_dataset must "
                       r"be a sequence of Sample\. Got 'a list holding dict'\."):
        save_dataset([samples[0], {"scenario": {}}], tmp_path / "d.npz", meta={})
    with pytest.raises(InvalidParameterError, match=r"'path' parameter of save_dataset must be "
                       r"a file path .*Got None\."):
        save_dataset(samples, None, meta={})
    assert list(tmp_path.iterdir()) == []


def test_load_names_the_file_and_what_is_wrong(samples, tmp_path):
    rule = r"The 'path' parameter of load_dataset must be an edgeperf surrogate data set"
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(InvalidParameterError, match=rule + r".*: it is not an \.npz archive\. "
                                                           r"Got '.*notes.npz'"):
        load_dataset(text)
    with pytest.raises(InvalidParameterError, match=r"cannot be read"):
        load_dataset(tmp_path / "missing.npz")
    for bad in (None, ""):
        with pytest.raises(InvalidParameterError, match=r"'path' parameter of load_dataset must "
                           r"be a file path \(str or os\.PathLike\)"):
            load_dataset(bad)
    (tmp_path / "empty.npz").write_bytes(b"")
    np.save(tmp_path / "array.npy", np.zeros(3))
    for path in (tmp_path / "empty.npz", tmp_path / "array.npy"):
        with pytest.raises(InvalidParameterError, match=rule + r".*it is not an \.npz archive"):
            load_dataset(path)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(InvalidParameterError, match=r"the arrays \['meta', .*\] are missing"):
        load_dataset(other)
    good = save_dataset(samples, tmp_path / "d.npz", meta={})
    with np.load(good) as npz:
        arrays = dict(npz)
    arrays["meta"] = np.frombuffer(json.dumps({"format": "x", "version": 1}).encode(), np.uint8)
    np.savez(tmp_path / "f.npz", **arrays)
    with pytest.raises(InvalidParameterError, match=r"another format or version"):
        load_dataset(tmp_path / "f.npz")
    with np.load(good) as npz:
        arrays = dict(npz)
    arrays["chain_sample"] = arrays["chain_sample"] + 100
    np.savez(tmp_path / "g.npz", **arrays)
    with pytest.raises(InvalidParameterError, match=r"its arrays disagree \(IndexError"):
        load_dataset(tmp_path / "g.npz")


@needs_data
def test_the_published_deployments_become_samples(tmp_path):
    published = from_chainnet(DATA, samples=5)
    assert len(published) == 5
    first = published[0]
    assert set(first.labels[0]) == set(LABELS) and first.device_loss == {}
    assert all(math.isnan(lab["response_time_e2e"]) for s in published for lab in s.labels)
    assert all(0 < lab["tput_ratio"] <= 1 and lab["response_time"] > 0
               for s in published for lab in s.labels)
    for s in published:
        parse_scenario(s.scenario, "ChainNet sample")
    data = load_dataset(save_dataset(published, tmp_path / "c.npz", meta={"source": "chainnet"}))
    assert all(same(a, b) for a, b in zip(published, data.samples))
