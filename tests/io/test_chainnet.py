"""The ChainNet importer: the published data decoded line for line, one clear
message per bad file, and scenario files written atomically."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from edgeperf.dists import Deterministic
from edgeperf.exceptions import InvalidParameterError
from edgeperf.io import (ChainNetSample, ScenarioError, import_chainnet, load_scenario,
                         parse_scenario, read_chainnet)
from edgeperf.model import PoissonArrivals

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".." / "shared" / "data" / "chainnet" / "val"

needs_data = pytest.mark.skipif(not (DATA / "numClasses.txt").is_file(),
                                reason="the ChainNet data set is not next to the project")

# A small hand-made set: sample 0 has 3 devices and 2 chains, sample 1 has 2 devices, 1 chain.
TINY = {
    "numNodes": "3\n2\n",
    "numClasses": "2\n1\n",
    "capacity": "2 3 4 \n5 6\n",  # ChainNet pads lines with spaces
    "path": "1 2\n3 1 2\n2 1\n",
    "arrival": "2.0\n4.0\n1.0\n",
    "service": "0.5 0.25\n0.1 0.2 0.3\n0.7 0.8\n",
    "tputRatio": "0.9\n1\n0.99\n",
    "responseTime": "1.5\n2.5\n3\n",
    "throughput": "0.45\n0.25\n0.99\n",
}


def write_set(folder: Path, **changes: str | None) -> Path:
    """TINY in ``folder``, with files replaced (text) or left out (None)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {**TINY, **changes}.items():
        if text is not None:
            (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder


def raw_lines(name: str, first: int, count: int) -> list[list[str]]:
    """Lines first..first+count-1 of a data file, split, read independently of the importer."""
    with (DATA / f"{name}.txt").open(encoding="utf-8") as file:
        lines = file.read().splitlines()
    return [line.split() for line in lines[first:first + count]]


# --------------------------------------------------------------------------- the published data


@needs_data
def test_first_samples_match_the_raw_lines():
    samples = read_chainnet(DATA, samples=4)
    assert [s.index for s in samples] == [0, 1, 2, 3]
    nodes = [int(x[0]) for x in raw_lines("numNodes", 0, 4)]
    classes = [int(x[0]) for x in raw_lines("numClasses", 0, 4)]
    capacity = raw_lines("capacity", 0, 4)
    line = 0  # first per-chain line of each sample
    for s, sample in enumerate(samples):
        sc = sample.scenario
        assert sc["devices"] == [{"name": f"d{i + 1}", "capacity": int(k)}
                                 for i, k in enumerate(capacity[s])]
        assert len(sc["devices"]) == nodes[s] and len(sc["chains"]) == classes[s]
        paths, arrivals, services, *labels = (raw_lines(f, line, classes[s]) for f in (
            "path", "arrival", "service", "tputRatio", "responseTime", "throughput"))
        for j, chain in enumerate(sc["chains"]):
            assert chain["name"] == f"c{j}"
            assert chain["workload"]["arrival"] == {"process": "poisson",
                                                    "rate": 1 / float(arrivals[j][0])}
            assert [b["latency"]["value"] for b in chain["model"]["blocks"]] == \
                [float(x) for x in services[j]]
            assert chain["placement"] == {f"d{d}": [f"f{i}"] for i, d in enumerate(paths[j])}
            assert sample.labels[j] == {"tput_ratio": float(labels[0][j][0]),
                                        "response_time": float(labels[1][j][0]),
                                        "throughput": float(labels[2][j][0])}
        line += classes[s]


@needs_data
def test_sample_one_in_full():
    sample = read_chainnet(DATA, samples=1, start=1)[0]
    assert isinstance(sample, ChainNetSample) and sample.index == 1
    system = parse_scenario(sample.scenario)
    assert [d.capacity for d in system.devices] == [48, 21, 45, 17, 5, 27, 34, 45]
    c1 = system.chain("c1")
    assert [f.device for f in c1.fragments] == ["d5", "d8", "d3", "d4", "d6"]
    assert c1.model.blocks[2].latency == Deterministic(1.87859876463035)
    assert c1.workload.arrival == PoissonArrivals(rate=1 / 7.05912656346798)
    assert sample.labels[1]["response_time"] == 7.03566093751495
    # one ideal link per directed pair of consecutive devices, over all chains
    pairs = [(link.source, link.target) for link in system.links]
    assert pairs == [("d6", "d7"), ("d5", "d8"), ("d8", "d3"), ("d3", "d4"), ("d4", "d6"),
                     ("d2", "d4"), ("d4", "d1")]
    assert all(link.ideal for link in system.links)


@needs_data
def test_every_scenario_of_a_slice_parses_and_start_is_an_offset():
    first = read_chainnet(DATA, samples=40)
    assert read_chainnet(DATA, samples=10, start=30) == first[30:]
    for sample in first:
        system = parse_scenario(sample.scenario, source=f"sample {sample.index}")
        assert len(system.chains) == len(sample.labels)


# --------------------------------------------------------------------------- reading


def test_tiny_set_is_decoded(tmp_path):
    samples = read_chainnet(write_set(tmp_path))
    assert [s.index for s in samples] == [0, 1]
    first = samples[0].scenario
    assert first["devices"] == [{"name": "d1", "capacity": 2}, {"name": "d2", "capacity": 3},
                                {"name": "d3", "capacity": 4}]
    assert first["links"] == [{"from": "d1", "to": "d2"}, {"from": "d3", "to": "d1"}]
    assert first["chains"][1]["placement"] == {"d3": ["f0"], "d1": ["f1"], "d2": ["f2"]}
    assert first["chains"][1]["workload"]["arrival"]["rate"] == 0.25
    assert samples[1].labels == ({"tput_ratio": 0.99, "response_time": 3.0, "throughput": 0.99},)
    assert read_chainnet(tmp_path, samples=1, start=1) == samples[1:]


def test_only_the_requested_samples_are_read(tmp_path):
    # sample 1's lines are broken; asking for sample 0 alone never reaches them
    write_set(tmp_path, path="1 2\n3 1 2\nbroken\n", throughput="0.45\n0.25\n")
    assert len(read_chainnet(tmp_path, samples=1)) == 1
    with pytest.raises(ScenarioError, match=r"path\.txt: line 3: must hold integers"):
        read_chainnet(tmp_path)


BAD = [  # (file, its text, the message expected after the folder)
    ("capacity", "2 3\n5 6\n", r"capacity\.txt: line 1: must hold 3 values \(a capacity K per "
     r"device \(numNodes\)\), found 2\. Got '2 3'\."),
    ("capacity", "2 0 4\n5 6\n", r"capacity\.txt: line 1: a capacity K per device \(numNodes\) "
     r"must be >= 1\. Got 0\."),
    ("numNodes", "three\n2\n", r"numNodes\.txt: line 1: must hold integers \(number of "
     r"devices\)\. Got 'three'\."),
    ("numClasses", "2 1\n1\n", r"numClasses\.txt: line 1: must hold 1 value \(number of "
     r"chains\), found 2\. Got '2 1'\."),
    ("numClasses", "2\n\n", r"numNodes\.txt: line 2: is one record too many \(numClasses\.txt "
     r"lists 1 sample with 2 chains\)\. Got '2'\."),
    ("arrival", "2.0\nfast\n1.0\n", r"arrival\.txt: line 2: must hold numbers \(mean "
     r"inter-arrival time\)\. Got 'fast'\."),
    ("arrival", "2.0\n-4\n1.0\n", r"arrival\.txt: line 2: mean inter-arrival time must be a "
     r"finite number > 0\. Got -4\.0\."),
    ("path", "1 2\n3 1 4\n2 1\n", r"path\.txt: line 2: device ids \(1-based, numNodes 3\) must "
     r"be in 1\.\.3\. Got 4\."),
    ("path", "1 2\n3 1 2\n2 0\n", r"path\.txt: line 3: device ids \(1-based, numNodes 2\) must "
     r"be in 1\.\.2\. Got 0\."),
    ("path", "1 1\n3 1 2\n2 1\n", r"path\.txt: line 1: must visit each device at most once\. "
     r"Got '1 1'\."),
    ("path", "1 2\n \n2 1\n", r"path\.txt: line 2: must hold at least one device id\. "
     r"Got ''\."),
    ("throughput", "0.45\n-0.25\n0.99\n", r"throughput\.txt: line 2: throughput must be a finite "
     r"number >= 0\. Got -0\.25\."),
    ("service", "0.5 0.25\n0.1 0.2\n0.7 0.8\n", r"service\.txt: line 2: must hold 3 values \(a "
     r"service time per hop\), found 2\. Got '0\.1 0\.2'\."),
    ("service", "0.5 0\n0.1 0.2 0.3\n0.7 0.8\n", r"service\.txt: line 1: a service time per hop "
     r"must be a finite number > 0\. Got 0\.0\."),
    ("service", "0.5 nan\n0.1 0.2 0.3\n0.7 0.8\n", r"service\.txt: line 1: a service time per "
     r"hop must be a finite number > 0\. Got nan\."),
    ("tputRatio", "0.9\n1.2\n0.99\n", r"tputRatio\.txt: line 2: throughput ratio must be <= 1\. "
     r"Got 1\.2\."),
    ("tputRatio", "0.9\n1\n", r"tputRatio\.txt: line 3: is missing: the file ends after 2 lines "
     r"but chain 0 of sample 1 needs it\."),
    ("numNodes", "3\n", r"numNodes\.txt: line 2: is missing: the file ends after 1 lines but "
     r"sample 1 needs it\."),
    ("throughput", "0.45\n0.25\n0.99\n0.5\n", r"throughput\.txt: line 4: is one record too many "
     r"\(numClasses\.txt lists 2 samples with 3 chains\)\. Got '0\.5'\."),
    ("capacity", "2 3 4\n5 6\n7 8\n", r"capacity\.txt: line 3: is one record too many "
     r"\(numClasses\.txt lists 2 samples with 3 chains\)\. Got '7 8'\."),
    ("service", None, r"service\.txt: is missing \(a ChainNet folder holds numNodes\.txt, "),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_files_get_one_line_naming_file_line_rule_and_value(tmp_path, name, text, message):
    write_set(tmp_path, **{name: text})
    with pytest.raises(ScenarioError, match=re.escape(str(tmp_path)) + "/" + message) as info:
        read_chainnet(tmp_path)
    assert "\n" not in str(info.value)


def test_blank_lines_may_end_a_file_but_not_hide_records(tmp_path):
    write_set(tmp_path, arrival="2.0\n4.0\n1.0\n\n\n", numClasses="2\n1\n\n")
    assert len(read_chainnet(tmp_path)) == 2
    write_set(tmp_path, numClasses="2\n1\n\n1\n")
    with pytest.raises(ScenarioError, match=r"numClasses\.txt: line 4: is one record too many"):
        read_chainnet(tmp_path)


def test_text_that_is_not_utf8(tmp_path):
    write_set(tmp_path)
    (tmp_path / "arrival.txt").write_bytes(b"2.0\n\xff\n1.0\n")
    with pytest.raises(ScenarioError, match=r"arrival\.txt: line \d+: is not UTF-8 text"):
        read_chainnet(tmp_path)


def test_a_data_file_that_cannot_be_read(tmp_path):
    write_set(tmp_path, path=None)
    (tmp_path / "path.txt").mkdir()
    with pytest.raises(ScenarioError, match=r"path\.txt: cannot be read: Is a directory\."):
        read_chainnet(tmp_path)


def test_start_beyond_the_end(tmp_path):
    write_set(tmp_path)
    with pytest.raises(ScenarioError, match=r"numClasses\.txt: line 3: is missing: the file ends "
                                            r"after 2 lines but sample 2 \(start=5\) needs it\."):
        read_chainnet(tmp_path, samples=1, start=5)


def test_not_a_directory(tmp_path):
    with pytest.raises(ScenarioError, match=r"nope: is not a directory \(give a ChainNet data "
                                            r"folder"):
        read_chainnet(tmp_path / "nope")
    with pytest.raises(InvalidParameterError, match=r"'directory' parameter of read_chainnet "
                       r"must be a folder path \(str or os\.PathLike\)\. Got None\."):
        read_chainnet(None)
    with pytest.raises(InvalidParameterError, match=r"'out' parameter of import_chainnet must "
                       r"be a folder path .*Got None\."):
        import_chainnet(write_set(tmp_path / "data"), None)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"samples": 0}, r"The 'samples' parameter of read_chainnet must be an int >= 1\. Got 0\."),
    ({"start": -1}, r"The 'start' parameter of read_chainnet must be an int >= 0\. Got -1\."),
    ({"samples": 2.0}, r"The 'samples' parameter of read_chainnet must be an int >= 1\. "
                       r"Got 2\.0\."),
])
def test_bad_arguments(tmp_path, kwargs, message):
    write_set(tmp_path)
    with pytest.raises(InvalidParameterError, match=message):
        read_chainnet(tmp_path, **kwargs)


# --------------------------------------------------------------------------- importing


def test_import_writes_scenarios_and_labels_that_load_back(tmp_path):
    out = tmp_path / "out" / "nested"
    paths = import_chainnet(write_set(tmp_path / "data"), out)
    assert paths == [out / "sample_00000.yaml", out / "sample_00001.yaml", out / "labels.json"]
    assert sorted(p.name for p in out.iterdir()) == ["labels.json", "sample_00000.yaml",
                                                     "sample_00001.yaml"]  # no temp files left
    for path, sample in zip(paths, read_chainnet(tmp_path / "data")):
        assert load_scenario(path) == parse_scenario(sample.scenario)
    rows = json.loads(paths[-1].read_text(encoding="utf-8"))
    assert rows[1] == {"sample": 0, "chain": 1, "tput_ratio": 1.0, "response_time": 2.5,
                       "throughput": 0.25}
    assert [(r["sample"], r["chain"]) for r in rows] == [(0, 0), (0, 1), (1, 0)]


@needs_data
def test_import_of_published_samples(tmp_path):
    paths = import_chainnet(DATA, tmp_path, samples=3)
    assert [p.name for p in paths] == ["sample_00000.yaml", "sample_00001.yaml",
                                       "sample_00002.yaml", "labels.json"]
    assert len(load_scenario(paths[1]).chains) == 3
    assert len(json.loads(paths[-1].read_text(encoding="utf-8"))) == 1 + 3 + 3


def test_each_file_goes_through_a_temporary_file_and_os_replace(tmp_path, monkeypatch):
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    paths = import_chainnet(write_set(tmp_path / "data"), tmp_path / "out")
    assert [dst for _, dst in replaced] == paths
    assert all(src.parent == dst.parent and ".tmp" in src.name for src, dst in replaced)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.json").write_text("old", encoding="utf-8")

    def refuse(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ScenarioError, match=r"sample_00000\.yaml: cannot be written: No space "
                                            r"left on device\."):
        import_chainnet(write_set(tmp_path / "data"), out)
    assert [p.name for p in out.iterdir()] == ["labels.json"]
    assert (out / "labels.json").read_text(encoding="utf-8") == "old"


def test_out_that_is_a_file(tmp_path):
    (tmp_path / "taken").write_text("", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"taken: cannot be written: File exists\."):
        import_chainnet(write_set(tmp_path / "data"), tmp_path / "taken")


def test_a_folder_where_a_file_goes_is_found_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    (out / "labels.json").mkdir(parents=True)
    with pytest.raises(ScenarioError, match=r"labels\.json: cannot be written: it is a folder\.$"):
        import_chainnet(write_set(tmp_path / "data"), out)
    assert [p.name for p in out.iterdir()] == ["labels.json"]


def test_the_data_set_folder_itself_is_refused_as_out(tmp_path):
    data = write_set(tmp_path / "data")
    before = sorted(p.name for p in data.iterdir())
    with pytest.raises(InvalidParameterError, match=re.escape(
            "The 'out' parameter of import_chainnet must be a folder other than the data set's "
            f"own. Got '{data / '.'}'.") + "$"):
        import_chainnet(data, data / ".")  # the same folder, spelled otherwise
    assert sorted(p.name for p in data.iterdir()) == before


def test_a_bad_set_writes_nothing(tmp_path):
    write_set(tmp_path / "data", path="1 2\n3 1 2\n2 9\n")
    with pytest.raises(ScenarioError, match=r"path\.txt: line 3"):
        import_chainnet(tmp_path / "data", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_smaller_import_over_a_larger_one_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    import_chainnet(write_set(tmp_path / "data"), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ScenarioError, match=re.escape(
            f"import_chainnet: out {out} holds 1 sample file(s) this import would not replace "
            "(sample_00001.yaml, ...), and its labels.json would no longer cover them; remove "
            "them or choose another folder.") + "$"):
        import_chainnet(tmp_path / "data", out, samples=1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    again = import_chainnet(tmp_path / "data", out)  # the same import again is fine
    assert sorted(again) == sorted(out.iterdir())
