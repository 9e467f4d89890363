"""A model zoo of early-exit CNNs for 32x32 inputs, each buildable in a line.

Six families of 28 to 56 processing layers with 8 to 24 exits (the final
classifier included), reproducing the talk's setting in shape::

    net = edgeperf.earlyexit.build("resnet56", num_classes=10, width=16)

=============  ======  =====  ==================================================
name           layers  exits  backbone
=============  ======  =====  ==================================================
resnet29       29      8      bottleneck ResNet (9n+2, n=3), 9 residual blocks
resnet32       32      12     CIFAR ResNet (6n+2, n=5), 15 residual blocks
resnet44       44      16     CIFAR ResNet (6n+2, n=7), 21 residual blocks
resnet56       56      24     CIFAR ResNet (6n+2, n=9), 27 residual blocks
mobilenetv2    53      14     MobileNetV2 (CIFAR strides), 17 inverted residuals
vgg28          28      10     VGG with batch norm, 26 conv blocks in 5 stages
=============  ======  =====  ==================================================

**How layers are counted**: every convolution and linear layer of the backbone
and of the final classifier (depthwise convolutions included); the IC heads of
the intermediate exits are not counted. ResNet shortcuts are parameter-free
(option A of He et al. 2016: subsample and zero-pad channels), so the CIFAR
ResNets have exactly 6n+2 layers.

**Blocks** are the natural units: ``stem`` (conv + BN + ReLU), each residual
block ``s{stage}b{index}`` (stages from 1), for MobileNetV2 each inverted
residual ``s{stage}b{index}`` and the final 1x1 conv ``last``, for VGG each
conv + BN + ReLU ``s{stage}c{index}`` (a stage's max pooling ends its last
block). **Exits** are spread evenly over the candidate blocks (the residual
blocks; MobileNetV2's inverted residuals and ``last``; VGG's conv blocks):
exit ``k`` of ``E`` (from 0) follows candidate ``m - 1 - floor((E - 1 - k) * m / E)``
of ``m`` (from 0), so the last exit follows the last block and the candidates
left without an exit are the earliest ones. ``ZOO[name].exit_after`` lists them.

**width** is the stem's channel count; every other channel count scales with
it (ResNet stages ``w, 2w, 4w``; bottleneck outputs 4x that; VGG stages
``w, 2w, 4w, 8w, 8w``; MobileNetV2 uses the standard channels times
``width / 32``, so ``width=32`` is the standard network). Small widths give
tiny networks for tests.
"""

from __future__ import annotations

import types
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import _validation as v
from ._network import EarlyExitNet, ExitHead

__all__ = ["ZOO", "ZooEntry", "build", "count_layers"]


# ------------------------------------------------------------------ building blocks

def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout)]


def _shortcut(x: torch.Tensor, stride: int, cout: int) -> torch.Tensor:
    """Option A shortcut: subsample, then zero-pad the channels."""
    if stride != 1:
        x = x[:, :, ::stride, ::stride]
    pad = cout - x.shape[1]
    if pad:
        x = F.pad(x, (0, 0, 0, 0, pad // 2, pad - pad // 2))
    return x


class _Basic(nn.Module):
    """CIFAR ResNet basic block: two 3x3 convs (2 layers)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride, self.cout = stride, cout
        self.conv1, self.bn1 = _conv_bn(cin, cout, 3, stride)
        self.conv2, self.bn2 = _conv_bn(cout, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + _shortcut(x, self.stride, self.cout))


class _Bottleneck(nn.Module):
    """Bottleneck block: 1x1 reduce, 3x3, 1x1 expand to 4x (3 layers)."""

    def __init__(self, cin: int, mid: int, stride: int) -> None:
        super().__init__()
        self.stride, self.cout = stride, 4 * mid
        self.conv1, self.bn1 = _conv_bn(cin, mid, 1)
        self.conv2, self.bn2 = _conv_bn(mid, mid, 3, stride)
        self.conv3, self.bn3 = _conv_bn(mid, 4 * mid, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + _shortcut(x, self.stride, self.cout))


class _InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (unless t == 1), 3x3 depthwise, 1x1 project."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [*_conv_bn(cin, hidden, 1), nn.ReLU6()]
        layers += [*_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(),
                   *_conv_bn(hidden, cout, 1)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


def _stem(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(*_conv_bn(cin, cout, 3), nn.ReLU())


# ------------------------------------------------------------------------ families

def _resnet(n: int, bottleneck: bool) -> Callable[[int, int], tuple[OrderedDict, list[str], Any]]:
    def make(in_channels: int, width: int) -> tuple[OrderedDict, list[str], Any]:
        blocks: OrderedDict[str, nn.Module] = OrderedDict(stem=_stem(in_channels, width))
        cin = width
        for s, mult in enumerate((1, 2, 4), start=1):
            for b in range(n):
                stride = 2 if s > 1 and b == 0 else 1
                if bottleneck:
                    block: nn.Module = _Bottleneck(cin, width * mult, stride)
                    cin = 4 * width * mult
                else:
                    block = _Basic(cin, width * mult, stride)
                    cin = width * mult
                blocks[f"s{s}b{b}"] = block
        return blocks, [k for k in blocks if k != "stem"], None
    return make


# (expansion t, channels c, repeats n, stride s): MobileNetV2 with CIFAR strides
_MOBILENETV2 = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _mobilenetv2(in_channels: int, width: int) -> tuple[OrderedDict, list[str], Any]:
    def ch(c: int) -> int:
        return max(2, int(round(c * width / 32)))
    blocks: OrderedDict[str, nn.Module] = OrderedDict(
        stem=nn.Sequential(*_conv_bn(in_channels, ch(32), 3), nn.ReLU6()))
    cin = ch(32)
    for s, (t, c, n, stride) in enumerate(_MOBILENETV2, start=1):
        for b in range(n):
            blocks[f"s{s}b{b}"] = _InvertedResidual(cin, ch(c), stride if b == 0 else 1, t)
            cin = ch(c)
    blocks["last"] = nn.Sequential(*_conv_bn(cin, ch(1280), 1), nn.ReLU6())
    return blocks, [k for k in blocks if k != "stem"], None


_VGG28 = (4, 4, 6, 6, 6)


def _vgg28(in_channels: int, width: int) -> tuple[OrderedDict, list[str], Any]:
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    cin = in_channels
    for s, (n, mult) in enumerate(zip(_VGG28, (1, 2, 4, 8, 8)), start=1):
        for c in range(n):
            layers = [*_conv_bn(cin, width * mult, 3), nn.ReLU()]
            if c == n - 1:
                layers.append(nn.MaxPool2d(2))
            blocks[f"s{s}c{c}"] = nn.Sequential(*layers)
            cin = width * mult
    # classifier: pool + linear(8w -> 8w) + ReLU + linear (2 layers)
    return blocks, list(blocks), ExitHead(hidden=8 * width)


def _spread(candidates: Sequence[str], exits: int) -> tuple[str, ...]:
    m = len(candidates)
    return tuple(candidates[m - 1 - (exits - 1 - k) * m // exits] for k in range(exits))


# --------------------------------------------------------------------------- the zoo

@dataclass(frozen=True, slots=True, kw_only=True)
class ZooEntry:
    """One family: its processing layers, its exits and the blocks they follow."""

    name: str
    description: str
    layers: int
    exits: int
    exit_after: tuple[str, ...]
    make: Callable[[int, int], tuple[OrderedDict, list[str], Any]]


def _entry(name: str, description: str, layers: int, exits: int,
           make: Callable[[int, int], tuple[OrderedDict, list[str], Any]]) -> ZooEntry:
    _, candidates, _ = make(1, 2)  # names do not depend on the width
    return ZooEntry(name=name, description=description, layers=layers, exits=exits,
                    exit_after=_spread(candidates, exits), make=make)


ZOO: Mapping[str, ZooEntry] = types.MappingProxyType({e.name: e for e in (
    _entry("resnet29", "bottleneck ResNet (9n+2, n=3), 9 residual blocks", 29, 8, _resnet(3, True)),
    _entry("resnet32", "CIFAR ResNet (6n+2, n=5), 15 residual blocks", 32, 12, _resnet(5, False)),
    _entry("resnet44", "CIFAR ResNet (6n+2, n=7), 21 residual blocks", 44, 16, _resnet(7, False)),
    _entry("resnet56", "CIFAR ResNet (6n+2, n=9), 27 residual blocks", 56, 24, _resnet(9, False)),
    _entry("mobilenetv2", "MobileNetV2 with CIFAR strides, 17 inverted residuals", 53, 14,
           _mobilenetv2),
    _entry("vgg28", "VGG with batch norm, 26 conv blocks in 5 stages + 2 linear", 28, 10, _vgg28),
)})


def build(name: str, *, num_classes: int = 10, in_channels: int = 3, width: int = 16,
          head: ExitHead | Mapping[str, Any] | None = None,
          exits: Sequence[str] | None = None) -> EarlyExitNet:
    """Build a zoo network for ``[in_channels, 32, 32]`` inputs.

    ``head`` configures the IC heads (an :class:`ExitHead` or its fields);
    ``exits`` overrides the family's exits with block names (the final exit is
    always added). ``net.config`` records the call so ``load`` can rebuild it.
    """
    if not isinstance(name, str) or name not in ZOO:
        raise v.fail("build", "name", "one of " + ", ".join(repr(k) for k in ZOO), name)
    v.integer("build", "num_classes", num_classes, low=1)
    v.integer("build", "in_channels", in_channels, low=1)
    v.integer("build", "width", width, low=1)
    if isinstance(head, Mapping):
        try:
            head = ExitHead(**head)
        except TypeError:
            raise v.fail("build", "head", "an ExitHead or a mapping of its fields", dict(head)) from None
    if head is not None and not isinstance(head, ExitHead):
        raise v.fail("build", "head", "an ExitHead, a mapping of its fields, or None", head)
    if exits is not None and (isinstance(exits, str) or not isinstance(exits, Sequence)
                              or not all(isinstance(e, str) for e in exits)):
        raise v.fail("build", "exits", "a sequence of block names", exits)
    entry = ZOO[name]
    blocks, _, final = entry.make(in_channels, width)
    config: dict[str, Any] = {"zoo": name, "num_classes": num_classes, "in_channels": in_channels,
                              "width": width, "head": head.to_config() if head else None,
                              "exits": list(exits) if exits is not None else None}
    return EarlyExitNet(blocks, list(exits) if exits is not None else list(entry.exit_after),
                        num_classes=num_classes, input_shape=(in_channels, 32, 32), head=head,
                        final_head=final, config=config)


def count_layers(net: EarlyExitNet) -> int:
    """Processing layers as the zoo counts them: every conv and linear layer of
    the backbone and of the final classifier (intermediate IC heads excluded)."""
    v.instance("count_layers", "net", net, EarlyExitNet, "an EarlyExitNet")
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    modules = [*net.blocks.modules(), *net.heads[-1].modules()]
    return sum(isinstance(m, kinds) for m in modules)
