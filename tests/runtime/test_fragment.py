"""A fragment computes exactly what the whole network computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeperf._validation import usable_cores
from edgeperf.earlyexit import load_trained
from edgeperf.earlyexit._confidence import confidence
from edgeperf.exceptions import InvalidParameterError
from edgeperf.runtime._fragment import Fragment


@pytest.fixture(scope="module")
def whole(tiny_model):
    trained = load_trained(tiny_model)
    return trained.net.eval(), trained.summary


def sample(seed=0):
    return np.random.default_rng(seed).standard_normal((1, 1, 32, 32)).astype(np.float32)


def test_two_fragments_in_sequence_give_the_whole_networks_logits(tiny_model, whole):
    net, summary = whole
    n, split = len(net.blocks), net.exit_blocks[1]
    head, tail = Fragment.load(tiny_model, 0, split), Fragment.load(tiny_model, split + 1, n - 1)
    x = sample()
    with torch.inference_mode():
        expected = [t.numpy() for t in net(torch.tensor(x))]
    activation, first = head.run(x)
    assert activation.shape == tail.input_shape
    none, second = tail.run(activation)
    outputs = first + second
    assert none is not None and [o.exit for o in outputs] == list(range(net.n_exits))
    assert head.exits == (0, 1) and tail.is_last and not head.is_last
    for out in outputs:
        np.testing.assert_allclose(out.logits, expected[out.exit], rtol=1e-5, atol=1e-5)
        temperature = summary["exits"][out.exit]["temperature"]
        assert out.confidence == pytest.approx(
            confidence(expected[out.exit], summary["measure"], temperature)[0], abs=1e-6)
        assert out.predicted == int(np.argmax(expected[out.exit]))


def test_leave_stops_the_run_at_an_exit(tiny_model, whole):
    net, _ = whole
    fragment = Fragment.load(tiny_model, 0, len(net.blocks) - 1)
    activation, outputs = fragment.run(sample()[0], leave=lambda out: out.exit == 2)
    assert activation is None and [o.exit for o in outputs] == [0, 1, 2]


def test_bad_blocks_and_shapes_are_refused(tiny_model, whole):
    net, _ = whole
    with pytest.raises(InvalidParameterError, match="block indices 0 <= first <= last"):
        Fragment.load(tiny_model, 3, len(net.blocks))
    with pytest.raises(InvalidParameterError, match=r"'threads' parameter of Fragment.load "
                                                    r"must be an int from 1 to \d+, the cores"):
        Fragment.load(tiny_model, 0, 2, threads=usable_cores() + 1)  # its host's cores
    fragment = Fragment.load(tiny_model, 0, 2)
    with pytest.raises(InvalidParameterError, match=r"activation of shape \(1, 1, 32, 32\)"):
        fragment.run(np.zeros((2, 1, 32, 32), dtype=np.float32))
