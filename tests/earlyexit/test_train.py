"""Training, evaluating and collecting the logits of early-exit networks on digits.

Most tests use ``TinyNet``, a stand-in with exactly the ``EarlyExitNet``
contract (two conv blocks, a pooled linear head after each), on 8x8 digits so
that a few epochs take about a second on one core.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

from edgeperf.earlyexit._data import digits_splits
from edgeperf.earlyexit._train import (SCHEMES, TrainReport, collect_logits, evaluate_exits,
                                       train_exits)
from edgeperf.exceptions import InvalidParameterError

torch.set_num_threads(1)

LR = 0.03  # the tiny stand-in needs a larger step than the default to learn in 3 epochs


class TinyNet(nn.Module):
    """Stand-in with the EarlyExitNet contract: 2 blocks, an exit after each."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, size: int = 8,
                 width: int = 8) -> None:
        super().__init__()
        self.num_classes, self.input_shape = num_classes, (in_channels, size, size)
        c1, c2 = width, 2 * width
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.Conv2d(in_channels, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.BatchNorm2d(c2),
                          nn.ReLU()),
        ])
        self.heads = nn.ModuleList([
            nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * c, num_classes))
            for c in (c1, c2)])

    @property
    def n_exits(self) -> int:
        return len(self.heads)

    def backbone_parameters(self):
        return self.blocks.parameters()

    def head_parameters(self):
        return self.heads.parameters()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for block, head in zip(self.blocks, self.heads):
            x = block(x)
            outs.append(head(x))
        return outs


def tiny(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet()


def same_state(a: nn.Module, b: nn.Module, keys=None) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    keys = sa.keys() if keys is None else keys
    return all(torch.equal(sa[k], sb[k]) for k in keys)


@pytest.fixture(scope="module")
def digits8():
    return digits_splits(size=8)


@pytest.fixture(scope="module")
def joint_run(digits8):
    net = tiny()
    report = train_exits(net, digits8.train, epochs=3, lr=LR, validation=digits8.calibration,
                         progress=False)
    return net, report


# --- the two schemes ------------------------------------------------------------------

def test_joint_training_reduces_the_loss_and_beats_chance(joint_run, digits8):
    net, report = joint_run
    assert isinstance(report, TrainReport) and report.scheme == "joint"
    assert report.loss[-1] < report.loss[0] < np.log(10) + 0.1
    acc = evaluate_exits(net, digits8.test)
    assert acc.shape == (2,)
    assert acc[0] > 0.5 and acc[1] > 0.8  # chance is 0.1
    assert report.validation_accuracy[-1, 1] > 0.8


def test_report_records_every_epoch(joint_run):
    _, report = joint_run
    assert [r.epoch for r in report.history] == [1, 2, 3]
    assert report.train_accuracy.shape == (3, 2) and report.validation_accuracy.shape == (3, 2)
    assert np.all((report.train_accuracy >= 0) & (report.train_accuracy <= 1))
    assert report.wall_s > 0 and all(r.wall_s > 0 for r in report.history)
    assert report.exit_weights == (1.0, 1.0) and report.seed == 0 and report.lr == LR
    assert report.batch_size == 64


def test_training_leaves_the_net_in_eval_mode(joint_run):
    net, _ = joint_run
    assert not any(m.training for m in net.modules())


def test_heads_only_trains_heads_and_leaves_the_backbone_bit_identical(joint_run, digits8):
    pretrained, _ = joint_run
    net = copy.deepcopy(pretrained)
    torch.manual_seed(1)
    for head in net.heads:  # fresh heads on the trained backbone
        head[-1].reset_parameters()
    before = copy.deepcopy(net)
    report = train_exits(net, digits8.train, scheme="heads", epochs=2, lr=LR, progress=False)
    backbone = [k for k in net.state_dict() if k.startswith("blocks.")]
    assert any("running_mean" in k for k in backbone)  # BN statistics are compared too
    assert same_state(net, before, backbone)
    assert not same_state(net, before, [k for k in net.state_dict() if k.startswith("heads.")])
    assert all(p.requires_grad for p in net.parameters())  # flags restored
    assert report.scheme == "heads" and report.loss[-1] < report.loss[0]
    assert evaluate_exits(net, digits8.test)[1] > 0.8


def test_heads_only_on_a_random_backbone_still_learns(digits8):
    net = tiny()
    report = train_exits(net, digits8.train, scheme="heads", epochs=2, lr=LR, progress=False)
    assert report.loss[-1] < report.loss[0]
    assert evaluate_exits(net, digits8.test).max() > 0.3


def test_exit_weights_change_the_training(digits8):
    small = Subset(digits8.train, range(256))
    a, b = tiny(), tiny()
    train_exits(a, small, epochs=1, lr=LR, progress=False)
    report = train_exits(b, small, epochs=1, lr=LR, exit_weights=[0.0, 2.0], progress=False)
    assert report.exit_weights == (0.0, 2.0)
    assert not same_state(a, b)


# --- determinism --------------------------------------------------------------------

@pytest.mark.parametrize("scheme", SCHEMES)
def test_same_seed_same_weights_other_seed_other_weights(digits8, scheme):
    small = Subset(digits8.train, range(300))
    nets = [tiny(), tiny(), tiny()]
    for net, seed in zip(nets, (5, 5, 6)):
        train_exits(net, small, scheme=scheme, epochs=2, batch_size=32, lr=LR, seed=seed,
                    progress=False)
    assert same_state(nets[0], nets[1])
    assert not same_state(nets[0], nets[2])


def test_training_leaves_the_global_rng_and_determinism_flag_alone(digits8):
    state = torch.random.get_rng_state()
    flag = torch.are_deterministic_algorithms_enabled()
    train_exits(tiny(), Subset(digits8.train, range(64)), epochs=1, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.are_deterministic_algorithms_enabled() == flag


def test_threads_sets_torch_threads_while_training_and_restores_them(digits8, monkeypatch):
    seen, net = [], tiny()
    forward = net.forward
    monkeypatch.setattr(net, "forward",
                        lambda x: (seen.append(torch.get_num_threads()), forward(x))[1])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the caller's own setting
        train_exits(net, Subset(digits8.train, range(64)), epochs=1, threads=1, progress=False)
        assert set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        train_exits(net, Subset(digits8.train, range(64)), epochs=1, progress=False)
        assert set(seen) == {2}  # None keeps the caller's
    finally:
        torch.set_num_threads(before)


# --- inputs -------------------------------------------------------------------------

def test_array_pairs_and_generic_datasets_are_accepted(digits8):
    x, y = digits8.train.tensors
    report = train_exits(tiny(), (x[:128].numpy(), y[:128].numpy()), epochs=1,
                         validation=(x[128:192], y[128:192]), progress=False)
    assert report.validation_accuracy.shape == (1, 2)

    class Pairs(Dataset):  # a plain map-style dataset with python int labels
        def __len__(self):
            return 100

        def __getitem__(self, i):
            return x[i], int(y[i])

    logits, labels = collect_logits(tiny(), Pairs())
    np.testing.assert_array_equal(labels, y[:100].numpy())


def test_progress_bar_goes_to_stderr(digits8, capsys):
    train_exits(tiny(), Subset(digits8.train, range(128)), epochs=1, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "joint training" in err


# --- evaluation -----------------------------------------------------------------------

def test_collect_logits_matches_evaluate_and_keeps_order(joint_run, digits8):
    net, _ = joint_run
    net.train()  # modes are restored after collecting
    logits, labels = collect_logits(net, digits8.test, batch_size=50)
    assert all(m.training for m in net.modules())
    net.eval()
    assert len(logits) == 2 and all(z.shape == (360, 10) for z in logits)
    assert all(z.dtype == np.float32 for z in logits) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, digits8.test.tensors[1].numpy())
    acc = np.array([(z.argmax(1) == labels).mean() for z in logits])
    np.testing.assert_allclose(acc, evaluate_exits(net, digits8.test, batch_size=7))
    with torch.no_grad():
        direct = net(digits8.test.tensors[0][:5])
    np.testing.assert_allclose(logits[1][:5], direct[1].numpy(), rtol=1e-5, atol=1e-6)


# --- errors -------------------------------------------------------------------------

def _labelled(labels) -> TensorDataset:
    return TensorDataset(torch.zeros(len(labels), 1, 8, 8), torch.tensor(labels))


class _BadLabels(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(1, 8, 8), (12 if i == 3 else 0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"scheme": "both"}, r"The 'scheme' parameter of train_exits must be one of "
                         r"\('joint', 'heads'\)\. Got 'both'\."),
    ({"epochs": 0}, r"The 'epochs' parameter of train_exits must be an int >= 1\. Got 0\."),
    ({"batch_size": 0}, r"'batch_size' parameter of train_exits must be an int >= 1\. Got 0\."),
    ({"lr": 0.0}, r"'lr' parameter of train_exits must be a finite number > 0 and <= "
                  r"3\.40282e\+38\. Got 0\.0\."),
    ({"lr": 1e300}, r"'lr' parameter of train_exits must be a finite number > 0 and <= "
                    r"3\.40282e\+38\. Got 1e\+300\."),  # was torch's RuntimeError
    ({"weight_decay": -1.0}, r"'weight_decay' .* must be a finite number >= 0\. Got -1\.0\."),
    ({"seed": -3}, r"'seed' parameter of train_exits must be an int from 0 to 2\*\*64 - 1\. "
                   r"Got -3\."),
    ({"seed": 2**64}, r"'seed' parameter of train_exits must be an int from 0 to 2\*\*64 - 1\. "
                      r"Got 18446744073709551616\."),
    ({"progress": "yes"}, r"'progress' parameter of train_exits must be a bool\. Got 'yes'\."),
    ({"threads": 0}, r"'threads' parameter of train_exits must be an int from 1 to \d+, the "
                     r"cores this machine lets it use\. Got 0\."),
    ({"exit_weights": [1.0]},
     r"The 'exit_weights' parameter of train_exits must be 2 finite "
     r"numbers >= 0 \(one per exit\) with a positive sum\. Got \[1\.0\]\."),
    ({"exit_weights": [1.0, -0.5]}, r"'exit_weights' .* Got \[1\.0, -0\.5\]\."),
    ({"exit_weights": [0, 0]}, r"'exit_weights' .* with a positive sum\. Got \[0, 0\]\."),
    ({"exit_weights": "ab"}, r"'exit_weights' .* Got 'ab'\."),
    ({"device": "toaster"}, r"'device' parameter of train_exits must be a torch device .* "
                            r"Got 'toaster'\."),
    ({"validation": TensorDataset(torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.int64))},
     r"The 'validation' parameter of train_exits must be a Dataset of images shaped "
     r"\(1, 8, 8\) \(the net's input_shape\)\. Got images shaped \(3, 8, 8\)\."),
])
def test_train_exits_rejects_bad_parameters(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        train_exits(tiny(), _labelled([0, 1, 2, 3]), **{"progress": False, **kwargs})


@pytest.mark.parametrize(("train", "match"), [
    (TensorDataset(torch.zeros(4, 1, 32, 32), torch.zeros(4, dtype=torch.int64)),
     r"The 'train' parameter of train_exits must be a Dataset of images shaped \(1, 8, 8\) "
     r"\(the net's input_shape\)\. Got images shaped \(1, 32, 32\)\."),
    (_labelled([0, 1, 10, 3]), r"The 'train' parameter of train_exits must be labels in "
                               r"\[0, 10\) \(num_classes=10\)\. Got a label 10\."),
    (_labelled([0, -1, 2, 3]), r"'train' .* labels in \[0, 10\) .* Got a label -1\."),
    (_BadLabels(), r"'train' .* labels in \[0, 10\) .* Got a label 12\."),
    ((np.zeros((2, 1, 8, 8)), np.array([0, 11])),
     r"'y' parameter of as_dataset must be labels in \[0, 10\) \(num_classes=10\)\. "
     r"Got a label 11\."),
    (TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.int64)),
     r"'train' parameter of train_exits must be a non-empty Dataset\. Got an empty one\."),
    (TensorDataset(torch.zeros(2, 1, 8, 8), torch.zeros(2)),
     r"'train' .* must be a Dataset with integer labels\. Got labels of torch\.float32\."),
    (TensorDataset(torch.zeros(2, 1, 8, 8)),
     r"'train' .* must be a Dataset of \(image, label\) pairs\. Got a sample of type tuple\."),
    ([1, 2, 3], r"'train' parameter of train_exits must be a torch Dataset or an \(x, y\) "
                r"pair of arrays\. Got list\."),
])
def test_train_exits_rejects_bad_data(train, match):
    with pytest.raises(InvalidParameterError, match=match):
        train_exits(tiny(), train, epochs=1, batch_size=2, progress=False)


def test_labels_beyond_num_classes_are_rejected_when_evaluating():
    with pytest.raises(InvalidParameterError,
                       match=r"The 'data' parameter of evaluate_exits must be labels in \[0, 10\)"):
        evaluate_exits(tiny(), _BadLabels())
    with pytest.raises(InvalidParameterError, match=r"'data' parameter of collect_logits .* "
                                                    r"Got images shaped \(1, 32, 32\)\."):
        collect_logits(tiny(), TensorDataset(torch.zeros(1, 1, 32, 32), torch.zeros(1).long()))


def test_a_module_without_the_contract_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"The 'net' parameter of train_exits must be "
                       r"an early-exit network \(an nn\.Module with n_exits, .*\)\. Got Linear\."):
        train_exits(nn.Linear(2, 2), _labelled([0]), progress=False)
    with pytest.raises(InvalidParameterError,
                       match=r"'net' parameter of evaluate_exits .* Got str"):
        evaluate_exits("net", _labelled([0]))


def test_a_forward_with_the_wrong_number_of_exits_is_rejected():
    net = tiny()
    net.forward = lambda x: [torch.zeros(len(x), 10)]  # type: ignore[method-assign]
    with pytest.raises(InvalidParameterError, match=r"'net' parameter of collect_logits must be a "
                       r"network whose forward returns a list of 2 logits tensors \(n_exits\)\. "
                       r"Got 1 outputs\."):
        collect_logits(net, _labelled([0, 1]))


# --- the real EarlyExitNet and the zoo ------------------------------------------------

def _first_classes(ds: TensorDataset, k: int) -> TensorDataset:
    x, y = ds.tensors
    keep = y < k
    return TensorDataset(x[keep], y[keep])


@pytest.mark.parametrize("scheme", SCHEMES)
def test_an_early_exit_net_trains_deterministically(digits8, make_blocks, scheme):
    from edgeperf.earlyexit import EarlyExitNet

    train = _first_classes(digits8.train, 5)

    def net() -> EarlyExitNet:
        torch.manual_seed(0)
        n = EarlyExitNet(make_blocks(), ["stem", "a", "b"], num_classes=5, input_shape=(1, 8, 8))
        if scheme == "heads":  # heads-only training starts from a trained backbone
            train_exits(n, train, epochs=2, lr=LR, progress=False)
            for head in n.heads:
                head.fc.reset_parameters()
        return n

    a, b, start = net(), net(), net()
    reports = [train_exits(n, train, scheme=scheme, epochs=2, lr=LR, progress=False)
               for n in (a, b)]
    assert same_state(a, b) and reports[0].loss[-1] < reports[0].loss[0]
    backbone = [k for k in a.state_dict() if k.startswith("blocks.")]
    assert same_state(a, start, backbone) == (scheme == "heads")
    acc = evaluate_exits(a, _first_classes(digits8.test, 5))
    assert acc.shape == (4,) and acc[-1] > 0.4  # chance is 0.2



def test_a_tiny_zoo_model_trains_one_epoch_on_digits():
    from edgeperf.earlyexit._zoo import build

    splits = digits_splits(size=32)
    torch.manual_seed(0)
    net = build("resnet32", num_classes=10, in_channels=1, width=4)
    train = Subset(splits.train, range(192))
    report = train_exits(net, train, epochs=1, batch_size=64, progress=False)
    assert report.train_accuracy.shape == (1, net.n_exits) and np.isfinite(report.loss[0])
    logits, labels = collect_logits(net, Subset(splits.test, range(50)))
    assert len(logits) == net.n_exits and logits[0].shape == (50, 10) and labels.shape == (50,)
    assert not net.training
