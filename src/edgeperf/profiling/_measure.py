"""Profiling an early-exit network on this host.

The network follows the contract of ``edgeperf.earlyexit``'s networks:
``blocks`` (an ``nn.ModuleList`` run in order), ``block_names``, ``heads`` (one
per exit, in order; the last is the final classifier after the last block),
``exit_blocks`` (the block index each head follows), ``input_shape`` (C, H, W),
``num_classes`` and a ``config`` dict.

How it measures:

* batch 1, eval mode, ``torch.inference_mode()``; the model's train/eval
  mode and torch's thread count are restored afterwards;
* ``threads``: when given, ``torch.set_num_threads(threads)`` for the whole
  measurement (latency depends strongly on it: profile with the thread count
  the deployment will use); None keeps torch's current setting, which is
  written into the profile's ``host`` either way;
* one pass of the chain on a seeded random input records the activation each
  block and head really receives; then, after ``warmup`` untimed rounds,
  ``repetitions`` rounds each time every block and every head once on its
  recorded input with ``time.perf_counter_ns``. Rounds interleave the blocks
  so a burst of load from other processes spreads over all of them instead
  of biasing one;
* each sample set becomes :class:`LatencyStats` (mean, variance, empirical
  percentiles, and the law :func:`fit_law` picks).

FLOPs, counted by forward hooks on the leaf modules during one pass (batch 1):

* convolutions: 2 · (C_in / groups) · prod(kernel) · numel(output), i.e.
  2·Cin/groups·k·k·Cout·Hout·Wout for Conv2d; transposed ones
  2 · numel(input) · (C_out / groups) · prod(kernel); biases are not counted;
* Linear: 2 · in_features · out_features per input row;
* BatchNorm / LayerNorm / GroupNorm: 2 · numel(output) (a scale and a shift);
* activations (ReLU, GELU, SiLU, ...): numel(output); pooling: numel(input);
* everything else (dropout, flatten, and tensor arithmetic written in
  ``forward``, e.g. residual additions) counts 0: the figure is a lower bound
  dominated, as usual, by the convolutions and linear layers.

Parameter bytes are Σ numel · element_size over a module's parameters *and*
buffers (e.g. BatchNorm running statistics): what a device must hold to run it.
Output bytes are numel · element_size of each block's output at batch 1.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import _validation as v
from .._torch_state import eval_mode, torch_threads
from ._profile import BlockProfile, HeadProfile, LatencyStats, Profile

__all__ = ["measure_profile", "measure_paths", "count_flops", "parameter_bytes", "tensor_bytes"]


# ---------------------------------------------------------------------- sizes and FLOPs


def tensor_bytes(value: Any) -> int:
    """Bytes of a tensor (numel · element_size), or the sum over a tuple/list/dict of them."""
    import torch

    if isinstance(value, torch.Tensor):
        return int(value.numel() * value.element_size())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(x) for x in value)
    if isinstance(value, dict):
        return sum(tensor_bytes(x) for x in value.values())
    return 0


def _module(owner: str, module: object) -> None:
    from torch import nn

    v.instance(owner, "module", module, nn.Module, "a torch.nn.Module")


def parameter_bytes(module: Any) -> int:
    """Σ numel · element_size over the module's parameters and buffers."""
    _module("parameter_bytes", module)
    tensors = list(module.parameters()) + list(module.buffers())
    return int(sum(t.numel() * t.element_size() for t in tensors))


def _leaf_flops(module: Any, inputs: tuple, output: Any) -> int:
    """FLOPs of one call of a leaf module (rules in the module docstring)."""
    from torch import nn

    x = inputs[0] if inputs else None
    n_out = int(output.numel()) if hasattr(output, "numel") else 0
    n_in = int(x.numel()) if hasattr(x, "numel") else 0
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        kernel = int(np.prod(module.kernel_size))
        return 2 * n_in * (module.out_channels // module.groups) * kernel
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = int(np.prod(module.kernel_size))
        return 2 * (module.in_channels // module.groups) * kernel * n_out
    if isinstance(module, nn.Linear):
        return 2 * module.out_features * n_in
    if isinstance(module, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
        return 2 * n_out
    if isinstance(module, (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU,
                           nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Mish,
                           nn.PReLU)):
        return n_out
    if isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                           nn.modules.pooling._AdaptiveAvgPoolNd,
                           nn.modules.pooling._AdaptiveMaxPoolNd)):
        return n_in
    return 0


def count_flops(module: Any, *inputs: Any) -> int:
    """FLOPs of one forward call ``module(*inputs)``, counted on its leaf modules."""
    import torch

    _module("count_flops", module)
    total = 0

    def hook(leaf: Any, args: tuple, output: Any) -> None:
        nonlocal total
        total += _leaf_flops(leaf, args, output)

    leaves = [m for m in module.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            module(*inputs)
    except (RuntimeError, TypeError, ValueError) as err:  # the inputs do not fit the module
        shown = [tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                 for x in inputs]
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise v.fail("count_flops", "inputs", f"inputs the module takes ({why})",
                     shown) from None
    finally:
        for handle in handles:
            handle.remove()
    return total


# ---------------------------------------------------------------------- the network


def _check_net(owner: str, net: Any) -> tuple[list[Any], list[Any], tuple[int, ...], list[str]]:
    """The blocks, heads, exit block indices and block names of an early-exit net."""
    needed = ("blocks", "block_names", "heads", "exit_blocks", "input_shape", "num_classes")
    missing = [a for a in needed if not hasattr(net, a)]
    if missing:
        raise v.fail(owner, "net", "an early-exit network with 'blocks', 'block_names', "
                     "'heads', 'exit_blocks', 'input_shape' and 'num_classes'",
                     f"{type(net).__name__} without {missing}")
    blocks, heads = list(net.blocks), list(net.heads)
    exits = tuple(int(i) for i in net.exit_blocks)
    names = [str(n) for n in net.block_names]
    rule = ("a network whose 'exit_blocks' name one increasing block index per head, "
            "the last being the last block")
    if not blocks or len(names) != len(blocks) or len(exits) != len(heads) or not exits \
            or any(b <= a for a, b in zip(exits, exits[1:])) or exits[0] < 0 \
            or exits[-1] != len(blocks) - 1:
        raise v.fail(owner, "net", rule, {"blocks": len(blocks), "block_names": len(names),
                                          "heads": len(heads), "exit_blocks": list(exits)})
    return blocks, heads, exits, names


@contextmanager
def _measuring(owner: str, net: Any, threads: int | None) -> Iterator[None]:
    """Eval mode, inference mode and the thread count, restored afterwards."""
    import torch

    if threads is not None:
        threads = v.cores(owner, "threads", threads)
    with eval_mode(net), torch_threads(threads), torch.inference_mode():
        yield


def _input(net: Any, seed: int) -> Any:
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn((1, *tuple(net.input_shape)), generator=generator)


def _time(calls: Sequence[Callable[[], Any]], repetitions: int, warmup: int) -> np.ndarray:
    """samples[r, i]: seconds of ``calls[i]`` in round r; rounds interleave the calls."""
    for _ in range(warmup):
        for call in calls:
            call()
    out = np.empty((repetitions, len(calls)), dtype=np.int64)
    clock = time.perf_counter_ns
    for r in range(repetitions):
        for i, call in enumerate(calls):
            start = clock()
            call()
            out[r, i] = clock() - start
    return np.maximum(out, 1) * 1e-9  # a zero reading would break the law fit


def _host(threads: int) -> dict[str, str]:
    import torch

    return {"node": platform.node() or "unknown", "platform": platform.platform(),
            "machine": platform.machine(), "processor": platform.processor() or "unknown",
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": str(threads), "cpu_count": str(os.cpu_count())}


def _counts(owner: str, repetitions: int, warmup: int) -> tuple[int, int]:
    return v.integer(owner, "repetitions", repetitions, low=2), v.integer(owner, "warmup", warmup,
                                                                          low=0)


def _bind(module: Any, x: Any) -> Callable[[], Any]:
    return lambda: module(x)


def _forward(blocks: list[Any], x: Any) -> list[Any]:
    """The activations of one pass: entry i is block i's input; the last, the output."""
    out = [x]
    for block in blocks:
        out.append(block(out[-1]))
    return out


def _assemble(net: Any, names: list[str], samples: np.ndarray, acts: list[Any],
              flops: list[int], exits: tuple[int, ...]) -> tuple[BlockProfile, ...]:
    """BlockProfiles from the timing columns (blocks, then heads) and FLOPs, in that order."""
    blocks, heads, n = list(net.blocks), list(net.heads), len(net.blocks)
    head_of = {e: k for k, e in enumerate(exits)}
    out = []
    for i, block in enumerate(blocks):
        k = head_of.get(i)
        head = None if k is None else HeadProfile(
            latency=LatencyStats.from_samples(samples[:, n + k]), flops=flops[n + k],
            param_bytes=parameter_bytes(heads[k]))
        out.append(BlockProfile(name=names[i], latency=LatencyStats.from_samples(samples[:, i]),
                                output_bytes=tensor_bytes(acts[i + 1]), flops=flops[i],
                                param_bytes=parameter_bytes(block), exit=head))
    return tuple(out)


def _label(net: Any, name: str | None) -> str:
    config = getattr(net, "config", None) or {}
    return name if name is not None else str(config.get("name") or config.get("zoo")
                                             or type(net).__name__)


def measure_profile(net: Any, *, repetitions: int = 200, warmup: int = 20, seed: int = 0,
                    name: str | None = None, threads: int | None = None) -> Profile:
    """Profile an early-exit network on this host (see the module docstring).

    ``name`` defaults to ``net.config["name"]`` (or ``["zoo"]``) when there is
    one, else the class name; ``seed`` fixes the random input.
    """
    import torch

    owner = "measure_profile"
    repetitions, warmup = _counts(owner, repetitions, warmup)
    blocks, heads, exits, names = _check_net(owner, net)
    with _measuring(owner, net, threads):
        acts = _forward(blocks, _input(net, seed))
        modules = [(b, acts[i]) for i, b in enumerate(blocks)]
        modules += [(h, acts[e + 1]) for h, e in zip(heads, exits)]
        samples = _time([_bind(m, x) for m, x in modules], repetitions, warmup)
        flops = [count_flops(m, x) for m, x in modules]
        host = _host(torch.get_num_threads())
    return Profile(name=_label(net, name), source=f"measured on {host['node']}",
                   input_shape=tuple(int(d) for d in net.input_shape),
                   num_classes=int(net.num_classes), host=host,
                   blocks=_assemble(net, names, samples, acts, flops, exits))


def _path_call(blocks: list[Any], heads: list[Any], exits: tuple[int, ...], k: int, x: Any,
               earlier_heads: bool) -> Callable[[], Any]:
    """Input -> blocks up to exit k -> its head (and, if asked, the heads passed)."""
    stop = exits[k]
    passed = {e: heads[j] for j, e in enumerate(exits[:k])} if earlier_heads else {}

    def run() -> Any:
        y = x
        for i in range(stop + 1):
            y = blocks[i](y)
            if i in passed:
                passed[i](y)
        return heads[k](y)

    return run


def measure_paths(net: Any, *, repetitions: int = 200, warmup: int = 20, seed: int = 0,
                  threads: int | None = None,
                  earlier_heads: bool = False) -> dict[str, LatencyStats]:
    """Measured end-to-end latency of each exit's path, keyed by the name of
    the block the exit follows: input -> blocks up to the exit -> its head
    (with ``earlier_heads``, also every head before it, as a threshold policy
    runs them). Same protocol as :func:`measure_profile`: compare with
    :meth:`Profile.path_mean_s` to check that block latencies add up."""
    owner = "measure_paths"
    repetitions, warmup = _counts(owner, repetitions, warmup)
    blocks, heads, exits, names = _check_net(owner, net)
    with _measuring(owner, net, threads):
        x = _input(net, seed)
        calls = [_path_call(blocks, heads, exits, k, x, earlier_heads) for k in range(len(exits))]
        samples = _time(calls, repetitions, warmup)
    return {names[e]: LatencyStats.from_samples(samples[:, k]) for k, e in enumerate(exits)}
