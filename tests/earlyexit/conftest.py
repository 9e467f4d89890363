"""Shared fixtures for the early-exit tests: one thread (the CI machine has two
cores shared by everything) and tiny networks so each file runs in seconds."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from edgeperf.earlyexit import EarlyExitNet

torch.set_num_threads(1)


def tiny_blocks() -> OrderedDict[str, nn.Module]:
    """Four conv blocks on [1, 8, 8] inputs: 8x8 -> 8x8 -> 4x4 -> 4x4 -> 2x2."""
    def conv(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU())
    return OrderedDict(stem=conv(1, 4, 1), a=conv(4, 6, 2), b=conv(6, 6, 1), c=conv(6, 8, 2))


def warm_up(net: nn.Module, shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    """A few train-mode passes so batch-norm buffers are not the defaults; then eval."""
    g = torch.Generator().manual_seed(seed)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn((16, *shape), generator=g) * 2 + 0.5)
    return net.eval()


@pytest.fixture
def tiny_net() -> EarlyExitNet:
    torch.manual_seed(0)
    net = EarlyExitNet(tiny_blocks(), ["stem", "a", "b"], num_classes=5, input_shape=(1, 8, 8))
    return warm_up(net, (1, 8, 8))


@pytest.fixture
def tiny_input() -> torch.Tensor:
    return torch.randn((12, 1, 8, 8), generator=torch.Generator().manual_seed(1))


@pytest.fixture
def make_blocks():
    """The tiny_blocks factory, for tests that build their own nets."""
    return tiny_blocks


@pytest.fixture
def make_warm():
    """The warm_up helper, for tests that build their own nets."""
    return warm_up
