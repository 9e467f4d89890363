"""`edgeperf surrogate train` and `evaluate`: a model trained from a data file,
judged on generated and on published deployments; bad input is one line."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from cli_helpers import assert_one_error_line, run
from edgeperf.surrogate import Sample, from_chainnet, load_dataset, save_dataset
from surrogate_cases import DATA, TWO_CHAINS, TWO_LABELS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    if not (DATA / "numClasses.txt").is_file():
        pytest.skip("the ChainNet data set is not next to the project")
    path = tmp_path_factory.mktemp("surrogate") / "small.npz"
    return save_dataset(from_chainnet(DATA, 40), path, meta={"source": "published, for tests"})


def test_train_then_evaluate(capsys, data, tmp_path):
    code, out, err = run(capsys, "surrogate", "train", str(data), "--out", str(tmp_path),
                         "--epochs", "3", "--patience", "3")
    assert code == 0, err
    assert "chainnet: best epoch" in out
    model = tmp_path / "chainnet.safetensors"
    assert model.is_file() and (tmp_path / "chainnet.json").is_file()
    for source in (["--data", str(data)], ["--chainnet", str(DATA), "--samples", "10"]):
        code, out, err = run(capsys, "surrogate", "evaluate", str(model), *source, "--json")
        assert code == 0, err
        result = json.loads(out)
        assert {"mape_tput_ratio", "mape_response_time", "chains"} <= set(result)
        assert result["chains"] > 0 and result["mape_tput_ratio"] >= 0


def test_train_under_another_name_and_width(capsys, data, tmp_path):
    code, out, err = run(capsys, "surrogate", "train", str(data), "--out", str(tmp_path),
                         "--model", "mlp", "--epochs", "1", "--name", "mlp_small",
                         "--hidden", "8")
    assert code == 0, err
    assert (tmp_path / "mlp_small.safetensors").is_file()
    assert json.loads((tmp_path / "mlp_small.json").read_text())["config"]["hidden"] == 8


def test_an_end_to_end_twin_trains_and_reports_its_third_error(capsys, tmp_path):
    import numpy as np

    from edgeperf.io import parse_scenario
    from edgeperf.surrogate import AnalyticModel, random_deployment

    rng, items = np.random.default_rng(2), []
    for _ in range(24):  # our regime, labelled by the analytic baseline (cheap)
        scenario = random_deployment(rng, "edgeperf")
        rows = AnalyticModel().solve(parse_scenario(scenario))
        items.append(Sample(scenario=scenario, labels=tuple(
            {"tput_ratio": t, "response_time": r, "response_time_e2e": e, "throughput": 1.0}
            for t, r, e in rows), device_loss={}))
    ours = save_dataset(items, tmp_path / "ours.npz", meta={"source": "analytic, for tests"})
    code, out, err = run(capsys, "surrogate", "train", str(ours), "--out", str(tmp_path),
                         "--epochs", "2", "--end-to-end", "--hidden", "8")
    assert code == 0, err
    assert "%, end to end " in out
    code, out, err = run(capsys, "surrogate", "evaluate", str(tmp_path / "chainnet.safetensors"),
                         "--data", str(ours))
    assert code == 0, err
    assert "%, end to end " in out


def test_an_end_to_end_twin_needs_data_with_that_label(capsys, data, tmp_path):
    # the published deployments carry ChainNet's label only
    assert_one_error_line(*run(capsys, "surrogate", "train", str(data), "--out", str(tmp_path),
                               "--end-to-end"),
                          r"The 'train_graphs' parameter of train must be deployments labelled "
                          r"with 'response_time_e2e' .*Got '\d+ of \d+ without it'\.")
    assert not list(tmp_path.iterdir())


def test_a_width_the_network_cannot_take_is_one_line(capsys, data, tmp_path):
    assert_one_error_line(*run(capsys, "surrogate", "train", str(data), "--out", str(tmp_path),
                               "--model", "gat", "--hidden", "6"),
                          r"The 'heads' parameter of GATModel must be an int >= 1 dividing "
                          r"hidden \(6\)\. Got 4\.")
    assert not list(tmp_path.iterdir())


def test_an_out_that_is_a_file_fails_before_training(capsys, data, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    for out in (taken, taken / "sub"):
        assert_one_error_line(*run(capsys, "surrogate", "train", str(data), "--out", str(out),
                                   "--epochs", "200"),
                              r"The '--out' parameter of surrogate train must be a folder \(made "
                              r"if missing; no file in its way\)\. Got '.*taken.*'\.")
    assert taken.read_text() == "not a folder"


def test_a_label_that_cannot_be_learned_is_one_line_naming_its_sample(capsys, data, tmp_path):
    # a NaN label would otherwise show only as training that diverges
    samples = list(load_dataset(data).samples)
    bad = samples[3]
    samples[3] = replace(bad, labels=({**bad.labels[0], "tput_ratio": math.nan},
                                      *bad.labels[1:]))
    path = save_dataset(samples, tmp_path / "bad.npz", meta={})
    _train_refuses(capsys, path, tmp_path / "m",
                   r"sample 3: The 'labels' parameter of encode must be a 'tput_ratio' in "
                   r"\(0, 1\] and a finite 'response_time' > 0 for every chain\. "
                   r"Got \{'tput_ratio': nan, .*")


def test_one_deployment_is_too_few_to_hold_any_out(capsys, data, tmp_path):
    one = save_dataset(list(load_dataset(data).samples)[:1], tmp_path / "one.npz", meta={})
    _train_refuses(capsys, one, tmp_path / "m",
                   r"The 'data' parameter of surrogate train must be deployments enough to "
                   r"hold some out for early stopping: at least 2\. Got '1 deployment\(s\)'\.")


def _train_refuses(capsys, data: Path, out: Path, pattern: str) -> None:
    """One error line, and no model folder left behind."""
    assert_one_error_line(*run(capsys, "surrogate", "train", str(data), "--out", str(out)),
                          pattern)
    assert not out.exists()


def test_evaluate_draws_the_parity_plot(capsys, data, tmp_path):
    plot = tmp_path / "parity.png"
    code, out, err = run(capsys, "surrogate", "evaluate", "analytic", "--data", str(data),
                         "--plot", str(plot))
    assert code == 0, err
    assert out.splitlines()[-1] == f"plot written to {plot}"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_plot_that_cannot_be_written_fails_before_the_work(capsys, tmp_path):
    target = tmp_path / "missing" / "parity.png"
    assert_one_error_line(*run(capsys, "surrogate", "evaluate", "analytic", "--data",
                               str(tmp_path / "not-read.npz"), "--plot", str(target)),
                          r"The '--plot' parameter of surrogate evaluate must be a file in an "
                          r"existing folder\. Got '.*missing.*parity\.png'\.")


def test_evaluate_counts_the_deployments_outside_the_training_domain(capsys, tmp_path):
    """The shipped model was trained on capacities 1 to 50: a device of 80 is beyond."""
    big = {**TWO_CHAINS, "devices": [{**TWO_CHAINS["devices"][0], "capacity": 80},
                                     *TWO_CHAINS["devices"][1:]]}
    labels = tuple({**x, "response_time_e2e": math.nan, "throughput": math.nan}
                   for x in TWO_LABELS)
    path = save_dataset([Sample(scenario=s, labels=labels) for s in (TWO_CHAINS, big, big)],
                        tmp_path / "two.npz", meta={"source": "hand-built"})
    shipped = str(REPO / "models" / "surrogate" / "chainnet.safetensors")
    code, out, err = run(capsys, "surrogate", "evaluate", shipped, "--data", str(path))
    assert code == 0, err
    assert "2 of 3 deployments lie outside the model's training domain" in out
    code, out, err = run(capsys, "surrogate", "evaluate", shipped, "--data", str(path), "--json")
    assert json.loads(out)["deployments_outside_domain"] == 2
    code, out, err = run(capsys, "surrogate", "evaluate", "analytic", "--data", str(path),
                         "--json")  # no learning, so no training domain
    assert json.loads(out)["deployments_outside_domain"] is None


def test_the_analytic_baseline_needs_no_model_file(capsys):
    if not (DATA / "numClasses.txt").is_file():
        pytest.skip("the ChainNet data set is not next to the project")
    code, out, err = run(capsys, "surrogate", "evaluate", "analytic", "--chainnet", str(DATA),
                         "--samples", "10")
    assert code == 0, err
    assert out.startswith("10 deployments")


def test_predict_gives_the_twins_answer_and_says_when_it_extrapolates(capsys):
    from edgeperf.io import load_scenario
    from edgeperf.placement import default_model
    from edgeperf.surrogate import load_model

    cameras = REPO / "examples" / "scenarios" / "two_cameras.yaml"
    code, out, err = run(capsys, "surrogate", "predict", str(cameras), "--json")
    assert code == 0, err
    result = json.loads(out)
    system = load_scenario(cameras)  # gamma service and exits: the model trained on ours too
    assert result["model"] == str(default_model(system))
    expected = load_model(default_model(system)).predict(system)
    for (name, chain), (tput, response, e2e) in zip(result["chains"].items(), expected):
        assert chain == {"tput_ratio": tput, "loss": 1.0 - tput, "response_time": response,
                         "response_time_e2e": e2e}
    assert list(result["chains"]) == ["door", "yard"] and result["predict_s"] > 0
    # each chain runs on its board alone: one hop, where training always had two or more
    assert result["outside_training"] == ["hops of a chain: 1 (trained on 2 to 11)"]
    code, out, err = run(capsys, "surrogate", "predict", str(cameras))
    assert code == 0, err
    assert "learned twin chainnet_edgeperf.safetensors" in out and "│ yard" in out
    assert "end to end (s)" in out
    assert "note: this deployment lies outside the twin's training data" in out


@pytest.mark.parametrize("argv, pattern", [
    (["predict", str(REPO / "examples" / "scenarios" / "shared_edge.yaml")],
     r"edgeperf\.surrogate supports Poisson arrivals only, .* Got MMPPArrivals on chain "
     r"'camera'\."),
    (["predict", str(REPO / "examples" / "scenarios" / "pi_server.yaml"), "--model", "no.pt"],
     r"The 'path' parameter of load_model must be a saved model \(its weights file is "
     r"missing\)\. Got 'no\.safetensors'\."),
    (["evaluate", "m.safetensors"], r"The '--chainnet' parameter of surrogate evaluate must be "
                                    r"given, or --data, not both\. Got 'neither'\."),
    (["train", "missing.npz"], r".*missing\.npz.*"),
    (["train", "x.npz", "--seed", "-1"], r"Invalid value for '--seed': .*greater than or equal "
                                         r"to 0"),
    (["train", "x.npz", "--seed", str(2**64)], r"Invalid value for '--seed': .*less than or "
                                               r"equal to 18446744073709551615"),
    (["train", "x.npz", "--name", "a/b"], r"The '--name' parameter of surrogate train must be "
                                          r"a plain file name, no folder\. Got 'a/b'\."),
])
def test_bad_input_is_one_line(capsys, argv, pattern):
    assert_one_error_line(*run(capsys, "surrogate", *argv), pattern)
