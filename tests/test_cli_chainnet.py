"""``edgeperf import-chainnet``: run in-process through edgeperf.cli.main."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli_helpers import assert_one_error_line, run
from edgeperf.io import load_scenario

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "chainnet" / "val"


@pytest.mark.skipif(not (DATA / "numClasses.txt").is_file(), reason="no ChainNet data set")
def test_import_writes_the_first_samples(capsys, tmp_path):
    out = tmp_path / "scenarios"
    code, stdout, err = run(capsys, "import-chainnet", str(DATA), "--out", str(out),
                            "--samples", "3")
    assert (code, err) == (0, "")
    assert stdout == f"wrote 3 scenarios (sample_*.yaml) and labels.json to {out}\n"
    assert sorted(p.name for p in out.iterdir()) == ["labels.json", "sample_00000.yaml",
                                                     "sample_00001.yaml", "sample_00002.yaml"]
    assert len(load_scenario(out / "sample_00002.yaml").chains) == 3
    assert len(json.loads((out / "labels.json").read_text(encoding="utf-8"))) == 7


def test_import_of_a_whole_small_set(capsys, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    files = {"numNodes": "2\n", "numClasses": "1\n", "capacity": "3 4\n", "path": "2 1\n",
             "arrival": "2\n", "service": "0.5 0.25\n", "tputRatio": "1\n",
             "responseTime": "0.8\n", "throughput": "0.5\n"}
    for name, text in files.items():
        (data / f"{name}.txt").write_text(text, encoding="utf-8")
    code, stdout, err = run(capsys, "import-chainnet", str(data), "--out", str(tmp_path / "o"))
    assert (code, err) == (0, "")
    assert stdout.startswith("wrote 1 scenarios")
    assert load_scenario(tmp_path / "o" / "sample_00000.yaml").chain("c0").arrival_rate == 0.5


def test_a_missing_directory_is_one_line_and_status_2(capsys, tmp_path):
    missing = tmp_path / "nope"
    code, out, err = run(capsys, "import-chainnet", str(missing), "--out", str(tmp_path / "o"))
    assert_one_error_line(code, out, err, re.escape(f"{missing}: is not a directory") + ".*")
    assert not (tmp_path / "o").exists()


def test_bad_samples_and_missing_out(capsys, tmp_path):
    code, out, err = run(capsys, "import-chainnet", str(tmp_path), "--out", str(tmp_path / "o"),
                         "--samples", "0")
    assert_one_error_line(code, out, err, re.escape(
        "The 'samples' parameter of read_chainnet must be an int >= 1. Got 0."))
    code, out, err = run(capsys, "import-chainnet", str(tmp_path))
    assert_one_error_line(code, out, err, ".*--out.*")
