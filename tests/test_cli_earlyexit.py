"""`edgeperf train-exits`, `edgeperf exits` and `edgeperf profile`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import assert_one_error_line, run

CEED = Path(__file__).parents[1] / ".." / "shared" / "data" / "ceed"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    from edgeperf.cli import main
    main(["train-exits", "--out", str(folder), "--model", "resnet29", "--width", "4",
          "--epochs", "1"])
    return folder


def test_train_exits_writes_the_three_files(model_dir):
    assert {p.name for p in model_dir.iterdir()} >= {"weights.safetensors", "exit_table.npz",
                                                     "calibration.json"}


def test_exits_json_with_a_profile_has_latencies(capsys, model_dir, tmp_path):
    profile = tmp_path / "p.json"
    code, out, _ = run(capsys, "profile", str(model_dir), "--out", str(profile),
                       "--repetitions", "5")
    assert code == 0 and profile.exists()
    code, out, err = run(capsys, "exits", str(model_dir), "--profile", str(profile), "--json",
                         "--plot", str(tmp_path / "e.png"))
    assert code == 0 and err == ""
    result = json.loads(out)
    assert len(result["exits"]) == 8
    first, last = result["curve"][0], result["curve"][-1]
    assert first["exit_shares"][0] == 1.0 and first["mean_latency_s"] > 0
    assert last["threshold"] == 1.0 and last["mean_latency_s"] >= first["mean_latency_s"]
    assert (tmp_path / "e.png").exists()


def test_profile_imports_ceed(capsys, tmp_path):
    if not CEED.is_dir():
        pytest.skip("../shared/data/ceed is absent")
    code, out, _ = run(capsys, "profile", "--ceed", str(CEED), "--out", str(tmp_path / "c.json"))
    assert code == 0 and "20 blocks, 9 exits" in out


@pytest.mark.parametrize("argv, pattern", [
    (["exits", "/no/such/folder"], r"The 'directory' parameter of load_trained must be a folder "
                                   r"holding .*"),
    (["profile", "--out", "x.json"], r"edgeperf profile: give a model folder or --ceed DIR \(one\)\."),
    (["train-exits", "--out", "x", "--model", "alexnet"],
     r"The 'model' parameter of train_digits must be one of .* Got 'alexnet'\."),
    (["train-exits", "--out", "x", "--seed", str(2**32)],  # scikit-learn's split takes no more
     r"Invalid value for '--seed': .*less than or equal to 4294967295"),
])
def test_bad_input_is_one_line(capsys, argv, pattern):
    assert_one_error_line(*run(capsys, *argv), pattern)


def test_outputs_are_checked_before_the_work(capsys, model_dir, tmp_path, monkeypatch):
    """A target that cannot be written fails at once, not after training or measuring."""
    import edgeperf.earlyexit
    import edgeperf.profiling

    def not_now(*args, **kwargs):
        raise AssertionError("the work ran before its output was checked")

    monkeypatch.setattr(edgeperf.earlyexit, "train_digits", not_now)
    monkeypatch.setattr(edgeperf.profiling, "measure_profile", not_now)
    a_file = tmp_path / "file.txt"
    a_file.write_text("kept\n")
    nowhere = tmp_path / "no" / "x"
    for argv, pattern in [
        (["train-exits", "--out", str(a_file)],
         r"The '--out' parameter of train-exits must be a folder \(made if missing; no file "
         r"in its way\)\. Got '.*file\.txt'\."),
        (["profile", str(model_dir), "--out", f"{nowhere}.json"],
         r"The '--out' parameter of profile must be a file in an existing folder\. .*"),
        (["profile", str(model_dir), "--out", str(tmp_path)],
         r"The '--out' parameter of profile must be a file, not a folder\. .*"),
        (["exits", str(model_dir), "--plot", f"{nowhere}.png"],
         r"The '--plot' parameter of exits must be a file in an existing folder\. .*"),
        (["exits", str(model_dir), "--plot", str(a_file)],
         r"The '--plot' parameter of exits must be a file name ending in one of .*\.png.*"),
    ]:
        assert_one_error_line(*run(capsys, *argv), pattern)
    assert a_file.read_text() == "kept\n"


def test_a_profile_of_another_model_is_refused(capsys, model_dir, tmp_path):
    other = Path(__file__).parents[1] / "examples" / "profiles" / "resnet56_1thread.json"
    assert_one_error_line(*run(capsys, "exits", str(model_dir), "--profile", str(other)),
                          r"The profile 'resnet56' is not of this model \(resnet29\): it has "
                          r"28 blocks, the model \d+\. Profile the model itself .*")
    own = tmp_path / "p.json"
    assert run(capsys, "profile", str(model_dir), "--out", str(own), "--repetitions", "3")[0] == 0
    data = json.loads(own.read_text())
    data["blocks"][1]["name"] = "renamed"
    own.write_text(json.dumps(data))
    assert_one_error_line(*run(capsys, "exits", str(model_dir), "--profile", str(own)),
                          r"The profile .* is not of this model \(resnet29\): its block "
                          r"'renamed' is not the model's\. .*")
