"""The whole flow on digits, saved and loaded back."""

import numpy as np
import pytest

from edgeperf.earlyexit import load_trained, save_trained, train_digits
from edgeperf.exceptions import InvalidParameterError
from edgeperf.model import ExitTable


@pytest.fixture(scope="module")
def trained():
    return train_digits("resnet29", width=4, epochs=1, progress=False)


def test_training_reports_every_exit_and_its_block(trained):
    assert [e["exit"] for e in trained.exits] == list(range(trained.net.n_exits))
    assert [e["block"] for e in trained.exits] == [trained.net.block_names[b]
                                                   for b in trained.net.exit_blocks]
    assert trained.table.n_samples == trained.summary["splits"]["test"]
    np.testing.assert_allclose([e["accuracy"] for e in trained.exits],
                               trained.table.accuracy_by_exit)


def test_saved_folder_loads_back_the_same_model_and_table(trained, tmp_path):
    save_trained(trained, tmp_path / "m")
    back = load_trained(tmp_path / "m")
    assert back.summary == trained.summary
    np.testing.assert_array_equal(back.table.confidence, trained.table.confidence)
    x = np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)
    import torch
    with torch.no_grad():
        for a, b in zip(back.net(torch.from_numpy(x)), trained.net(torch.from_numpy(x))):
            assert torch.equal(a, b)


def test_a_folder_missing_files_is_refused(trained, tmp_path):
    with pytest.raises(InvalidParameterError, match=r"'directory' parameter of load_trained must "
                       r"be a folder holding weights\.safetensors, exit_table\.npz and "
                       r"calibration\.json \(missing: weights\.safetensors, exit_table\.npz, "
                       r"calibration\.json\)"):
        load_trained(tmp_path)
    for call in (load_trained, lambda d: save_trained(trained, d)):
        with pytest.raises(InvalidParameterError, match=r"'directory' parameter of \w+_trained "
                           r"must be a folder path \(str or os\.PathLike\)\. Got None\."):
            call(None)


def test_a_folder_whose_files_do_not_belong_together_is_refused(trained, tmp_path):
    save_trained(trained, tmp_path / "m")
    (tmp_path / "m" / "calibration.json").write_text("[1, 2]")
    with pytest.raises(InvalidParameterError, match=r"^The 'directory' parameter of load_trained "
                       r"must be a calibration\.json holding a mapping with a list 'exits'"):
        load_trained(tmp_path / "m")  # loaded, then .exits raised a TypeError
    save_trained(trained, tmp_path / "m")
    table = trained.table
    ExitTable(confidence=table.confidence[:, :2], correct=table.correct[:, :2]).save(
        tmp_path / "m" / "exit_table.npz")
    with pytest.raises(InvalidParameterError, match=r"^The 'directory' parameter of load_trained "
                       rf"must be an exit_table\.npz with the network's {trained.net.n_exits} "
                       r"exits \(it has 2\)"):
        load_trained(tmp_path / "m")  # was taken silently


def test_an_unknown_model_is_refused():
    for model in ("resnet18", ["resnet29"]):
        with pytest.raises(InvalidParameterError, match=r"'model' parameter of train_digits must "
                           r"be one of \['mobilenetv2', 'resnet29'"):
            train_digits(model)


def test_save_trained_refuses_what_is_not_trained_before_making_the_folder(tmp_path):
    with pytest.raises(InvalidParameterError, match=r"^The 'trained' parameter of save_trained "
                       r"must be a TrainedExits \(from train_digits or load_trained\)\. "
                       r"Got 'dict'\.$"):
        save_trained({}, tmp_path / "out")
    assert not list(tmp_path.iterdir())
