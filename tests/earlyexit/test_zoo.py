"""The model zoo: six families, their layer and exit counts, tiny builds that run."""

from __future__ import annotations

import pytest
import torch

from edgeperf.earlyexit import ZOO, EarlyExitNet, ExitHead, build, count_layers
from edgeperf.exceptions import InvalidParameterError


def test_six_families_in_the_talks_range():
    assert list(ZOO) == ["resnet29", "resnet32", "resnet44", "resnet56", "mobilenetv2", "vgg28"]
    for entry in ZOO.values():
        assert 28 <= entry.layers <= 56 and 8 <= entry.exits <= 24
        assert len(entry.exit_after) == entry.exits
    assert min(e.layers for e in ZOO.values()) == 28 and max(e.layers for e in ZOO.values()) == 56
    assert min(e.exits for e in ZOO.values()) == 8 and max(e.exits for e in ZOO.values()) == 24


@pytest.mark.parametrize("name", list(ZOO))
def test_family_builds_small_and_runs(name):
    entry = ZOO[name]
    net = build(name, num_classes=7, in_channels=1, width=4)
    assert isinstance(net, EarlyExitNet)
    assert count_layers(net) == entry.layers
    assert net.n_exits == entry.exits and net.exit_names == entry.exit_after
    assert net.exit_names[-1] == net.block_names[-1]
    assert net.input_shape == (1, 32, 32) and net.num_classes == 7
    assert net.config == {"zoo": name, "num_classes": 7, "in_channels": 1, "width": 4,
                          "head": None, "exits": None}
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, 32, 32))
    assert len(out) == entry.exits and all(o.shape == (2, 7) for o in out)


def test_resnet_counts_follow_6n_plus_2():
    for name, n in (("resnet32", 5), ("resnet44", 7), ("resnet56", 9)):
        net = build(name, width=2)
        assert count_layers(net) == 6 * n + 2
        assert net.block_names[0] == "stem" and len(net.block_names) == 1 + 3 * n
        assert net.block_names[1] == "s1b0" and net.block_names[-1] == f"s3b{n - 1}"


def test_width_scales_channels():
    small = sum(p.numel() for p in build("resnet32", width=2).parameters())
    large = sum(p.numel() for p in build("resnet32", width=4).parameters())
    assert 3.0 < large / small < 4.5


def test_exits_and_head_can_be_overridden():
    net = build("resnet32", width=2, exits=["s1b0", "s2b0"], head={"pool_size": 2, "hidden": 5})
    assert net.exit_names == ("s1b0", "s2b0", "s3b4")
    assert net.heads[0].hidden.in_features == 2 * 2 * 2
    assert net.config["head"] == {"pool_size": 2, "conv_channels": None, "hidden": 5, "dropout": 0.0}
    assert net.config["exits"] == ["s1b0", "s2b0"]
    assert build("vgg28", width=2, head=ExitHead(conv_channels=3)).heads[0].conv.out_channels == 3


def test_build_errors():
    with pytest.raises(InvalidParameterError, match=r"'name' parameter of build must be one of "
                       r"'resnet29', .*'vgg28'\. Got 'resnet18'\."):
        build("resnet18")
    with pytest.raises(InvalidParameterError, match=r"'name' parameter of build must be one of "
                       r"'resnet29', .*'vgg28'\. Got \['resnet29'\]\."):
        build(["resnet29"])
    with pytest.raises(InvalidParameterError, match=r"'width' parameter of build must be an int >= 1"):
        build("resnet32", width=0)
    with pytest.raises(InvalidParameterError, match=r"'head' parameter of build must be an ExitHead "
                       r"or a mapping of its fields"):
        build("resnet32", width=2, head={"size": 2})
    with pytest.raises(InvalidParameterError, match=r"'exits' parameter of build"):
        build("resnet32", width=2, exits="s1b0")
    with pytest.raises(InvalidParameterError, match=r"names of blocks .*Got 's9b9'"):
        build("resnet32", width=2, exits=["s9b9"])
    with pytest.raises(InvalidParameterError, match=r"^The 'net' parameter of count_layers must "
                       r"be an EarlyExitNet\. Got 'str'\.$"):
        count_layers("resnet32")
