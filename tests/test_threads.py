"""torch_threads: the thread count inside the block, and back after it, even on error."""

from __future__ import annotations

import pytest
import torch

from edgeperf._threads import torch_threads


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
