"""measure_profile / measure_paths on a stand-in early-exit network (and on a zoo
network): exact FLOPs, parameter and output bytes, and the evidence that each
exit's measured path latency agrees with the sum of its profiled blocks."""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgeperf._validation import usable_cores  # noqa: E402
from edgeperf.exceptions import InvalidParameterError  # noqa: E402
from edgeperf.profiling import (LatencyStats, Profile, count_flops, load_profile,  # noqa: E402
                                measure_paths, measure_profile, parameter_bytes, tensor_bytes)


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


def _head(channels: int, classes: int = 10) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes))


class StandIn(nn.Module):
    """The early-exit contract of edgeperf.earlyexit: four conv blocks of
    ``c``/``2c`` channels at 32x32 and 16x16, an exit after b1, the final one after b3."""

    def __init__(self, c: int = 48) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([_cbr(3, c), _cbr(c, c), _cbr(c, 2 * c, 2), _cbr(2 * c, 2 * c)])
        self.block_names = ("b0", "b1", "b2", "b3")
        self.heads = nn.ModuleList([_head(c), _head(2 * c)])
        self.exit_blocks = (1, 3)
        self.input_shape = (3, 32, 32)
        self.num_classes = 10
        self.config = {"name": "standin"}


def _conv_bn_relu_flops(cin: int, cout: int, hw: int) -> int:
    out = cout * hw * hw
    return 2 * cin * 9 * out + 2 * out + out


def _conv_bn_bytes(cin: int, cout: int) -> int:
    # conv weight; bn weight, bias, running mean and var (float32); num_batches_tracked (int64)
    return 4 * (cin * cout * 9) + 4 * 4 * cout + 8


@pytest.fixture(scope="module")
def net() -> StandIn:
    torch.manual_seed(0)
    return StandIn(16)


@pytest.fixture(scope="module")
def profile(net) -> Profile:
    return measure_profile(net, repetitions=5, warmup=1, threads=1)


# --------------------------------------------------------------------------- FLOPs and bytes


@pytest.mark.parametrize("module, shape, flops", [
    (nn.Conv2d(3, 16, 3, stride=2, padding=1), (1, 3, 32, 32), 2 * 3 * 3 * 3 * 16 * 16 * 16),
    (nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=False), (1, 8, 10, 10),
     2 * (8 // 4) * 3 * 3 * 16 * 10 * 10),
    (nn.Conv1d(4, 6, 5), (1, 4, 20), 2 * 4 * 5 * 6 * 16),
    (nn.ConvTranspose2d(4, 2, 2, stride=2), (1, 4, 8, 8), 2 * (4 * 8 * 8) * 2 * 2 * 2),
    (nn.Linear(64, 10), (1, 64), 2 * 64 * 10),
    (nn.Linear(64, 10), (1, 7, 64), 2 * 7 * 64 * 10),
    (nn.BatchNorm2d(16), (1, 16, 8, 8), 2 * 16 * 8 * 8),
    (nn.ReLU(), (1, 16, 8, 8), 16 * 8 * 8),
    (nn.MaxPool2d(2), (1, 16, 8, 8), 16 * 8 * 8),
    (nn.AdaptiveAvgPool2d(1), (1, 16, 8, 8), 16 * 8 * 8),
    (nn.Dropout(0.5), (1, 16), 0),
    (nn.Flatten(), (1, 16, 2, 2), 0),
])
def test_flops_of_known_layers_are_exact(module, shape, flops):
    assert count_flops(module.eval(), torch.zeros(shape)) == flops


def test_flops_of_a_container_add_up_over_its_leaves():
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).eval()
    expected = 2 * 3 * 9 * 8 * 32 * 32 + 2 * 8 * 1024 + 8 * 1024 + 8 * 1024 + 2 * 8 * 10
    assert count_flops(seq, torch.zeros(1, 3, 32, 32)) == expected


def test_parameter_and_tensor_bytes():
    assert parameter_bytes(nn.Linear(64, 10)) == 4 * (64 * 10 + 10)
    assert parameter_bytes(nn.Linear(64, 10).double()) == 8 * (64 * 10 + 10)
    assert parameter_bytes(_cbr(3, 16)) == _conv_bn_bytes(3, 16)
    assert tensor_bytes(torch.zeros(1, 16, 8, 8)) == 4 * 1024
    mixed = (torch.zeros(2, dtype=torch.float16), [torch.zeros(3, dtype=torch.int64)])
    assert tensor_bytes(mixed) == 2 * 2 + 3 * 8
    assert tensor_bytes({"a": torch.zeros(5)}) == 20
    assert tensor_bytes("not a tensor") == 0


# --------------------------------------------------------------------------- the profile


def test_profile_structure(profile, net):
    assert profile.name == "standin"
    assert profile.source.startswith("measured on ")
    assert profile.input_shape == (3, 32, 32) and profile.num_classes == 10
    assert profile.names == ("b0", "b1", "b2", "b3")
    assert profile.exits == ("b1", "b3")
    assert profile.host["torch_threads"] == "1"
    assert profile.host["torch"] == torch.__version__
    stats = [b.latency for b in profile.blocks] + [b.exit.latency for b in profile.blocks if b.exit]
    assert all(isinstance(s, LatencyStats) and s.n == 5 and s.mean > 0 for s in stats)
    assert all(s.p50 <= s.p95 <= s.p99 for s in stats)
    assert all(s.law.mean == pytest.approx(s.mean) for s in stats)


def test_profile_sizes_and_flops_are_exact(profile):
    c = 16
    assert [b.output_bytes for b in profile.blocks] == [4 * c * 32 * 32, 4 * c * 32 * 32,
                                                        4 * 2 * c * 16 * 16, 4 * 2 * c * 16 * 16]
    assert [b.flops for b in profile.blocks] == [
        _conv_bn_relu_flops(3, c, 32), _conv_bn_relu_flops(c, c, 32),
        _conv_bn_relu_flops(c, 2 * c, 16), _conv_bn_relu_flops(2 * c, 2 * c, 16)]
    assert [b.param_bytes for b in profile.blocks] == [
        _conv_bn_bytes(3, c), _conv_bn_bytes(c, c), _conv_bn_bytes(c, 2 * c),
        _conv_bn_bytes(2 * c, 2 * c)]
    h1, h3 = profile.blocks[1].exit, profile.blocks[3].exit
    assert h1.flops == c * 32 * 32 + 2 * c * 10 and h1.param_bytes == 4 * (c * 10 + 10)
    assert h3.flops == 2 * c * 16 * 16 + 2 * 2 * c * 10
    assert h3.param_bytes == 4 * (2 * c * 10 + 10)


def test_measuring_restores_the_mode_and_the_thread_count(net):
    before = torch.get_num_threads()
    net.train()
    measure_profile(net, repetitions=2, warmup=0, threads=1)
    measure_paths(net, repetitions=2, warmup=0, threads=1)
    assert net.training
    assert torch.get_num_threads() == before
    net.eval()


def test_the_profile_saves_loads_and_becomes_a_dnn(profile, tmp_path):
    assert load_profile(profile.save(tmp_path / "standin.json")) == profile
    dnn = profile.to_dnn({"b1": 0.25})
    assert [b.exit_probability for b in dnn.blocks] == [None, 0.25, None, None]
    assert dnn.blocks[1].latency.mean == pytest.approx(
        profile.blocks[1].latency.mean + profile.blocks[1].exit.latency.mean)


def test_name_defaults_and_overrides(net):
    assert measure_profile(net, repetitions=2, warmup=0, threads=1, name="mine").name == "mine"
    net.config = {}
    try:
        assert measure_profile(net, repetitions=2, warmup=0, threads=1).name == "StandIn"
    finally:
        net.config = {"name": "standin"}


def test_paths_are_keyed_by_exit_block(net):
    paths = measure_paths(net, repetitions=3, warmup=0, threads=1)
    assert list(paths) == ["b1", "b3"]
    assert all(s.n == 3 for s in paths.values())


# --------------------------------------------------------------------------- bad input


class _Broken(StandIn):
    def __init__(self, **change) -> None:
        super().__init__(4)
        for key, value in change.items():
            setattr(self, key, value)


@pytest.mark.parametrize("net_, got", [
    (_Broken(exit_blocks=(1, 2)), "'block_names': 4, 'heads': 2, 'exit_blocks': [1, 2]}"),
    (_Broken(exit_blocks=(3,)), "'block_names': 4, 'heads': 2, 'exit_blocks': [3]}"),
    (_Broken(exit_blocks=(3, 3)), "'block_names': 4, 'heads': 2, 'exit_blocks': [3, 3]}"),
    (_Broken(block_names=("a",)), "'block_names': 1, 'heads': 2, 'exit_blocks': [1, 3]}"),
])
def test_inconsistent_exits_are_rejected(net_, got):
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'net' parameter of measure_profile must be a network whose 'exit_blocks' name "
            "one increasing block index per head, the last being the last block. "
            "Got {'blocks': 4, " + got + ".")):
        measure_profile(net_, repetitions=2)


@pytest.mark.parametrize("count", [count_flops, parameter_bytes])
def test_counts_need_a_module(count):
    with pytest.raises(InvalidParameterError, match=exactly(
            f"The 'module' parameter of {count.__name__} must be a torch.nn.Module. "
            "Got None.")):
        count(None)


def test_flops_need_inputs_the_module_takes():
    # torch's own reason in brackets, its wording torch's
    with pytest.raises(InvalidParameterError, match=r"^The 'inputs' parameter of count_flops "
                       r"must be inputs the module takes \(.+\)\. Got \[\(1, 5\)\]\.$"):
        count_flops(nn.Linear(3, 2), torch.zeros(1, 5))


def test_a_module_without_the_contract_is_rejected():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'net' parameter of measure_paths must be an early-exit network with 'blocks', "
            "'block_names', 'heads', 'exit_blocks', 'input_shape' and 'num_classes'. Got "
            "\"Linear without ['blocks', 'block_names', 'heads', 'exit_blocks', 'input_shape', "
            "'num_classes']\".")):
        measure_paths(nn.Linear(2, 2))


CORES = usable_cores()


@pytest.mark.parametrize("kwargs, message", [
    ({"repetitions": 1},
     "The 'repetitions' parameter of measure_profile must be an int >= 2. Got 1."),
    ({"warmup": -1}, "The 'warmup' parameter of measure_profile must be an int >= 0. Got -1."),
    *(({"threads": n}, f"The 'threads' parameter of measure_profile must be an int from 1 to "
       f"{CORES}, the cores this machine lets it use. Got {n}.") for n in (0, CORES + 1)),
])
def test_bad_counts_are_rejected(net, kwargs, message):
    with pytest.raises(InvalidParameterError, match=exactly(message)):
        measure_profile(net, **kwargs)


# --------------------------------------------------------------------------- the evidence


def _path_errors(net: nn.Module, earlier_heads: bool, repetitions: int = 150) -> dict[str, float]:
    """Per exit: median measured path latency / sum of the profiled medians - 1.

    Medians, not means: on a shared machine a few preempted calls inflate the
    means of short samples by tens of percent, the medians hardly move."""
    prof = measure_profile(net, repetitions=repetitions, warmup=15, threads=1)
    paths = measure_paths(net, repetitions=repetitions, warmup=15, threads=1,
                          earlier_heads=earlier_heads)
    errors = {}
    for name, measured in paths.items():
        upto = prof.blocks[:prof.names.index(name) + 1]
        heads = [b.exit for b in upto if b.exit is not None]
        total = sum(b.latency.p50 for b in upto) + sum(
            h.latency.p50 for h in (heads if earlier_heads else heads[-1:]))
        errors[name] = measured.p50 / total - 1.0
    return errors


@pytest.mark.slow
@pytest.mark.parametrize("earlier_heads", [False, True])
def test_each_exit_path_agrees_with_the_sum_of_its_blocks_within_15_percent(earlier_heads):
    torch.manual_seed(1)
    net = StandIn(48)
    for _ in range(3):  # a burst of load from other processes may spoil one attempt
        errors = _path_errors(net, earlier_heads)
        if all(abs(e) <= 0.15 for e in errors.values()):
            break
    assert all(abs(e) <= 0.15 for e in errors.values()), errors


# --------------------------------------------------------------------------- a zoo network


def test_a_zoo_network_profiles():
    earlyexit = pytest.importorskip("edgeperf.earlyexit")
    net = earlyexit.build("resnet29", width=4)
    prof = measure_profile(net, repetitions=3, warmup=1, threads=1)
    assert prof.names == tuple(net.block_names)
    assert prof.name == "resnet29"
    assert len(prof.exits) == len(net.heads)
    assert [b.output_bytes for b in prof.blocks] == [4 * int(np.prod(s))
                                                     for s in net.block_output_shapes]
    assert sum(b.param_bytes for b in prof.blocks) + sum(
        b.exit.param_bytes for b in prof.blocks if b.exit) == parameter_bytes(net)
    assert all(b.flops > 0 for b in prof.blocks)
    assert len(prof.to_dnn().blocks) == len(net.blocks)
