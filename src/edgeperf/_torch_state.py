"""Torch state for one block of work, put back afterwards, even on error: the
intra-op thread count, and a module's training mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block on ``count`` torch threads (None: as many as are set now),
    and set the count back after it. Callers check ``count`` (``v.cores``)."""
    import torch

    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def eval_mode(module: Any) -> Iterator[None]:
    """Run the block with ``module`` in eval mode, then give it back its own mode
    (a module mid-training stays in training mode)."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)
