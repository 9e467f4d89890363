"""torch_threads and eval_mode: the state inside the block, and back after it, even on error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeperf._torch_state import eval_mode, torch_threads


def test_sets_the_count_inside_and_restores_it_after_an_error():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(KeyError), torch_threads(1):
            raise KeyError("boom")
        assert torch.get_num_threads() == 2
        with torch_threads(None):  # leaves the count as it is
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_inside_and_the_module_s_own_mode_after_an_error(training):
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    net.train(training)
    with eval_mode(net):
        assert not net.training and not net[1].training
    assert net.training == training and net[1].training == training
    with pytest.raises(KeyError), eval_mode(net):
        raise KeyError("boom")
    assert net.training == training and net[1].training == training
