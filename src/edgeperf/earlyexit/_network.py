"""Exit heads on any backbone: :class:`ExitHead` and :class:`EarlyExitNet`.

A backbone is a chain of *blocks* (the units the model is profiled and split
at). An *exit* is an intermediate classifier (IC) head after a block; the last
exit is the final classifier after the last block. The network runs in three
modes:

* ``forward(x)`` -- the logits of every exit, in exit order (training);
* ``infer(x, thresholds)`` -- threshold policy: a sample leaves at the first
  exit whose confidence >= its threshold, the last exit takes the rest;
* ``run_fragment(first, last, x)`` -- blocks ``first..last`` from the
  activation entering ``first`` (what a runtime worker runs).
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .. import _validation as v
from .._torch_state import eval_mode
from ._confidence import MEASURES, confidence

__all__ = ["ExitHead", "EarlyExitNet", "MEASURES"]


# --------------------------------------------------------------------------- heads

@dataclass(frozen=True, slots=True, kw_only=True)
class ExitHead:
    """How an IC head is built from the activation it reads.

    The head is: an optional 1x1 convolution to ``conv_channels`` (+ batch norm
    + ReLU), adaptive average pooling to ``pool_size`` per spatial dimension,
    flatten, dropout, an optional hidden linear layer of width ``hidden``
    (+ ReLU), and the linear classifier. Activations with no spatial dimension
    (``[F]`` per sample) skip the convolution and the pooling. Supported
    activations per sample: ``[F]``, ``[C, L]``, ``[C, H, W]``, ``[C, D, H, W]``.
    """

    pool_size: int = 1
    conv_channels: int | None = None
    hidden: int | None = None
    dropout: float = 0.0

    def __post_init__(self) -> None:
        v.integer("ExitHead", "pool_size", self.pool_size, low=1)
        if self.conv_channels is not None:
            v.integer("ExitHead", "conv_channels", self.conv_channels, low=1)
        if self.hidden is not None:
            v.integer("ExitHead", "hidden", self.hidden, low=1)
        v.real("ExitHead", "dropout", self.dropout, low=0.0, high=1.0)
        if self.dropout == 1.0:
            raise v.fail("ExitHead", "dropout", "a finite number >= 0 and < 1", self.dropout)

    def to_config(self) -> dict[str, Any]:
        """JSON-able fields; ``ExitHead(**config)`` rebuilds it."""
        return asdict(self)

    def build(self, in_shape: Sequence[int], num_classes: int) -> nn.Sequential:
        """The head for activations of shape ``in_shape`` (one sample, no batch dim)."""
        shape = tuple(int(s) for s in in_shape)
        spatial = len(shape) - 1
        if not 0 <= spatial <= 3:
            raise v.fail("ExitHead", "in_shape", "an activation of 1 to 4 dims per sample "
                         "([F], [C, L], [C, H, W] or [C, D, H, W])", shape)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        features = shape[0]
        if spatial:
            conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[spatial - 1]
            norm = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[spatial - 1]
            pool = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[spatial - 1]
            if self.conv_channels is not None:
                layers["conv"] = conv(features, self.conv_channels, 1, bias=False)
                layers["bn"] = norm(self.conv_channels)
                layers["conv_relu"] = nn.ReLU()
                features = self.conv_channels
            layers["pool"] = pool(self.pool_size)
            features *= self.pool_size ** spatial
        layers["flatten"] = nn.Flatten()
        if self.dropout > 0:
            layers["dropout"] = nn.Dropout(self.dropout)
        if self.hidden is not None:
            layers["hidden"] = nn.Linear(features, self.hidden)
            layers["hidden_relu"] = nn.ReLU()
            features = self.hidden
        layers["fc"] = nn.Linear(features, num_classes)
        return nn.Sequential(layers)


# -------------------------------------------------------------------------- net

def _shape_text(shape: Sequence[int]) -> str:
    return "(batch, " + ", ".join(str(s) for s in shape) + ")"


class EarlyExitNet(nn.Module):
    """A backbone split into blocks, with IC heads after chosen blocks.

    Parameters
    ----------
    blocks:
        The backbone blocks in execution order: a sequence (named ``"b0"``,
        ``"b1"``, ...), an ``nn.Sequential`` (named by its children) or a
        mapping name -> module.
    exits:
        Blocks (names or indices) after which an IC head goes. The final exit
        after the last block is added unless already listed.
    num_classes:
        Classes every exit predicts.
    input_shape:
        One input sample, no batch dimension, e.g. ``(3, 32, 32)``.
    head:
        How IC heads are built (default ``ExitHead()``); their shapes come from
        a dry run with a zero input of ``input_shape`` (in eval mode).
    final_head:
        The final classifier: a module, an :class:`ExitHead`, or ``None``: the
        identity when the last block already outputs ``[num_classes]`` logits,
        else ``head``'s configuration.
    config:
        JSON-able description that rebuilds the net (the zoo sets it).

    Call ``eval()`` before ``infer`` and ``run_fragment`` when the backbone has
    batch norm or dropout; ``infer`` never changes the mode.
    """

    def __init__(self, blocks: Sequence[nn.Module] | Mapping[str, nn.Module], exits: Sequence[str | int],
                 *, num_classes: int, input_shape: Sequence[int], head: ExitHead | None = None,
                 final_head: nn.Module | ExitHead | None = None,
                 config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        owner = "EarlyExitNet"
        names, modules = _named_blocks(blocks)
        self.blocks = nn.ModuleList(modules)
        self.block_names: tuple[str, ...] = names
        self.num_classes = v.integer(owner, "num_classes", num_classes, low=1)
        self.input_shape: tuple[int, ...] = _shape(owner, "input_shape", input_shape)
        if head is None:
            head = ExitHead()
        v.instance(owner, "head", head, ExitHead, "an ExitHead or None")
        if final_head is not None and not isinstance(final_head, (nn.Module, ExitHead)):
            raise v.fail(owner, "final_head", "a torch.nn.Module, an ExitHead or None",
                         type(final_head).__name__)
        self.head_config = head
        self.exit_blocks: tuple[int, ...] = self._exit_indices(exits)
        self.block_output_shapes: tuple[tuple[int, ...], ...] = self._dry_run()
        heads = []
        for k, b in enumerate(self.exit_blocks):
            shape = self.block_output_shapes[b]
            if k < len(self.exit_blocks) - 1:
                heads.append(head.build(shape, self.num_classes))
            elif isinstance(final_head, nn.Module):
                heads.append(final_head)
            elif isinstance(final_head, ExitHead):
                heads.append(final_head.build(shape, self.num_classes))
            elif shape == (self.num_classes,):
                heads.append(nn.Identity())
            else:
                heads.append(head.build(shape, self.num_classes))
        self.heads = nn.ModuleList(heads)
        self._exit_of_block = {b: k for k, b in enumerate(self.exit_blocks)}
        if config is not None:  # saved beside the weights, so that load can rebuild the net
            v.instance("EarlyExitNet", "config", config, Mapping, "None or a JSON-able mapping")
        self.config: dict[str, Any] = dict(config) if config is not None else {}
        self._check_heads()

    # ------------------------------------------------------------------ build

    def _exit_indices(self, exits: Sequence[str | int]) -> tuple[int, ...]:
        owner, n = "EarlyExitNet", len(self.block_names)
        if isinstance(exits, (str, bytes)) or not isinstance(exits, Sequence):
            raise v.fail(owner, "exits", "a sequence of block names or indices", exits)
        found: list[int] = []
        for e in exits:
            if isinstance(e, str):
                if e not in self.block_names:
                    known = ", ".join(repr(s) for s in self.block_names[:12])
                    more = ", ..." if n > 12 else ""
                    raise v.fail(owner, "exits", f"names of blocks (one of {known}{more})", e)
                found.append(self.block_names.index(e))
            elif isinstance(e, numbers.Integral) and not isinstance(e, bool):
                if not 0 <= int(e) < n:
                    raise v.fail(owner, "exits", f"block indices in 0..{n - 1} (an exit after the "
                                 "last block is out of range)", e)
                found.append(int(e))
            else:
                raise v.fail(owner, "exits", "block names (str) or indices (int)", e)
        if len(set(found)) != len(found):
            raise v.fail(owner, "exits", "distinct blocks", list(exits))
        return tuple(sorted(set(found) | {n - 1}))

    def _dry_run(self) -> tuple[tuple[int, ...], ...]:
        """Output shape of every block for one zero sample (eval mode, no grad)."""
        shapes = []
        with eval_mode(self), torch.no_grad():
            x = torch.zeros((1, *self.input_shape))
            for name, block in zip(self.block_names, self.blocks):
                try:
                    x = block(x)
                except Exception as exc:  # a block that cannot take its input
                    raise v.fail("EarlyExitNet", "blocks", "blocks that run in a chain from a "
                                 f"zero input of shape {_shape_text(self.input_shape)}",
                                 f"block {name!r} raised {type(exc).__name__}: {exc}") from None
                if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] != 1:
                    raise v.fail("EarlyExitNet", "blocks", "blocks that each return one "
                                 "tensor with the batch dimension first",
                                 f"block {name!r} returned {type(x).__name__}")
                shapes.append(tuple(int(s) for s in x.shape[1:]))
        return tuple(shapes)

    def _check_heads(self) -> None:
        with eval_mode(self), torch.no_grad():
            for k, b in enumerate(self.exit_blocks):
                out = self.heads[k](torch.zeros((1, *self.block_output_shapes[b])))
                if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, self.num_classes):
                    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    raise v.fail("EarlyExitNet", "final_head" if k == self.n_exits - 1 else "head",
                                 f"a head giving logits of shape (batch, {self.num_classes})",
                                 f"exit {k} gives {got}")

    @classmethod
    def from_fx(cls, model: nn.Module, cut_nodes: Sequence[str], exits: Sequence[str | int], *,
                num_classes: int, input_shape: Sequence[int], head: ExitHead | None = None,
                final_head: nn.Module | ExitHead | None = None) -> EarlyExitNet:
        """Split a ``torch.fx``-traceable model at the named nodes into blocks.

        Block ``i`` ends at ``cut_nodes[i]`` (in graph order) and is named after
        it; the last block runs to the model's output and is named after the
        node that produces it. Only straight cuts are allowed: the cut node's
        value must be the only one used after it. The blocks share the model's
        parameters. When the model's output is already ``[num_classes]``
        logits, the final exit is the model's own classifier.
        """
        names, blocks = _split_fx(model, cut_nodes)
        return cls(OrderedDict(zip(names, blocks)), exits, num_classes=num_classes,
                   input_shape=input_shape, head=head, final_head=final_head)

    # ------------------------------------------------------------- structure

    @property
    def n_exits(self) -> int:
        return len(self.exit_blocks)

    @property
    def exit_names(self) -> tuple[str, ...]:
        """Names of the blocks the exits follow, in exit order."""
        return tuple(self.block_names[b] for b in self.exit_blocks)

    def block_input_shape(self, index: int) -> tuple[int, ...]:
        """Shape (no batch dim) of the activation entering block ``index``."""
        self._block_index("block_input_shape", "index", index)
        return self.input_shape if index == 0 else self.block_output_shapes[index - 1]

    def block_index(self, name: str) -> int:
        if name not in self.block_names:
            raise v.fail("EarlyExitNet.block_index", "name", "the name of a block", name)
        return self.block_names.index(name)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.blocks.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return self.heads.parameters()

    # ------------------------------------------------------------------- run

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        """Logits ``[B, num_classes]`` of every exit, in exit order."""
        self._check_input("EarlyExitNet.forward", x, self.input_shape, 0)
        _, logits = self._run(0, len(self.blocks) - 1, x)
        return [logits[k] for k in range(self.n_exits)]

    def run_fragment(self, first: int, last: int,
                     x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Run blocks ``first..last`` (inclusive) from the activation entering ``first``.

        Returns the activation leaving ``last`` and ``{exit index: logits}`` for
        the exits whose block lies in ``first..last``.
        """
        owner = "EarlyExitNet.run_fragment"
        self._block_index(owner, "first", first)
        self._block_index(owner, "last", last)
        if last < first:
            raise v.fail(owner, "last", f"an index >= first ({first})", last)
        self._check_input(owner, x, self.block_input_shape(first), first)
        return self._run(first, last, x)

    def _run(self, first: int, last: int,
             x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        logits: dict[int, torch.Tensor] = {}
        for i in range(first, last + 1):
            x = self.blocks[i](x)
            k = self._exit_of_block.get(i)
            if k is not None:
                logits[k] = self.heads[k](x)
        return x, logits

    @torch.no_grad()
    def infer(self, x: torch.Tensor, thresholds: Sequence[float], *, measure: str = "max_softmax",
              temperatures: Sequence[float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Threshold policy: predicted class and exit index per sample.

        A sample stops at the first exit whose confidence (``measure`` of the
        logits divided by that exit's temperature) >= its threshold;
        ``len(thresholds) == n_exits - 1`` and the final exit always accepts.
        Samples that stop leave the batch: later blocks run only on the
        remaining ones, and a batch of one stops computing at its exit.
        """
        owner = "EarlyExitNet.infer"
        self._check_input(owner, x, self.input_shape, 0)
        thr = self._thresholds(thresholds)
        temps = self._temperatures(temperatures)
        if measure not in MEASURES:
            raise v.fail(owner, "measure", "one of " + ", ".join(repr(m) for m in MEASURES), measure)
        n = x.shape[0]
        pred = torch.zeros(n, dtype=torch.long)
        exit_index = torch.zeros(n, dtype=torch.long)
        remaining = torch.arange(n)
        first = 0
        for k, b in enumerate(self.exit_blocks):
            for i in range(first, b + 1):
                x = self.blocks[i](x)
            first = b + 1
            logits = self.heads[k](x)
            if k == self.n_exits - 1:
                accept = torch.ones(remaining.shape[0], dtype=torch.bool)
            else:
                # the numpy measure that built the exit table: the same number, so a
                # threshold taken from the table means the same thing here
                conf = confidence(logits.detach().cpu().numpy(), measure, float(temps[k]))
                accept = torch.from_numpy(conf >= float(thr[k]))
            done = remaining[accept]
            pred[done] = logits[accept].argmax(dim=1)
            exit_index[done] = k
            keep = ~accept
            remaining, x = remaining[keep], x[keep]
            if remaining.numel() == 0:
                break
        return pred, exit_index

    # ------------------------------------------------------------ validation

    def _block_index(self, owner: str, name: str, value: object) -> int:
        n = len(self.blocks)
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not 0 <= value < n:
            raise v.fail(owner, name, f"a block index in 0..{n - 1}", value)
        return int(value)

    def _check_input(self, owner: str, x: object, expected: tuple[int, ...], block: int) -> None:
        if not isinstance(x, torch.Tensor):
            raise v.fail(owner, "x", "a torch.Tensor", type(x).__name__)
        if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
            where = f"entering block {block} ({self.block_names[block]!r})"
            raise v.fail(owner, "x", f"a tensor of shape {_shape_text(expected)} {where}",
                         tuple(x.shape))

    def _thresholds(self, thresholds: Sequence[float]) -> list[float]:
        owner, want = "EarlyExitNet.infer", self.n_exits - 1
        rule = f"{want} numbers (one per exit but the last), none NaN"
        try:
            values = [float(t) for t in (thresholds.tolist() if hasattr(thresholds, "tolist")
                                         else thresholds)]
        except (TypeError, ValueError):
            raise v.fail(owner, "thresholds", rule, thresholds) from None
        if len(values) != want or any(math.isnan(t) for t in values):
            raise v.fail(owner, "thresholds", rule, values)
        return values

    def _temperatures(self, temperatures: Sequence[float] | None) -> list[float]:
        if temperatures is None:
            return [1.0] * self.n_exits
        owner, rule = "EarlyExitNet.infer", f"{self.n_exits} finite numbers > 0 (one per exit)"
        try:
            values = [float(t) for t in (temperatures.tolist() if hasattr(temperatures, "tolist")
                                         else temperatures)]
        except (TypeError, ValueError):
            raise v.fail(owner, "temperatures", rule, temperatures) from None
        if len(values) != self.n_exits or not all(math.isfinite(t) and t > 0 for t in values):
            raise v.fail(owner, "temperatures", rule, values)
        return values

    def extra_repr(self) -> str:
        return (f"blocks={len(self.blocks)}, exits={list(self.exit_names)}, "
                f"num_classes={self.num_classes}, input_shape={self.input_shape}")


# ------------------------------------------------------------------- helpers

def _shape(owner: str, name: str, value: object) -> tuple[int, ...]:
    rule = "a non-empty sequence of ints >= 1 (one sample, no batch dim)"
    if isinstance(value, torch.Size):
        value = tuple(value)
    if not isinstance(value, Sequence) or isinstance(value, str) or not value or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in value):
        raise v.fail(owner, name, rule, value)
    return tuple(int(s) for s in value)


def _named_blocks(blocks: object) -> tuple[tuple[str, ...], list[nn.Module]]:
    owner = "EarlyExitNet"
    if isinstance(blocks, nn.Sequential):
        pairs = list(blocks.named_children())
    elif isinstance(blocks, Mapping):
        pairs = list(blocks.items())
    elif isinstance(blocks, (Sequence, nn.ModuleList)) and not isinstance(blocks, str):
        pairs = [(f"b{i}", m) for i, m in enumerate(blocks)]
    else:
        raise v.fail(owner, "blocks", "a sequence of modules or a mapping name -> module", blocks)
    if not pairs:
        raise v.fail(owner, "blocks", "at least one block", blocks)
    for name, module in pairs:
        if not isinstance(name, str) or not name.strip():
            raise v.fail(owner, "blocks", "blocks named by non-empty strings", name)
        if not isinstance(module, nn.Module):
            raise v.fail(owner, "blocks", "torch.nn.Module blocks", f"{name}: {type(module).__name__}")
    names = [p[0] for p in pairs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise v.fail(owner, "blocks", "blocks with unique names", duplicates)
    return tuple(names), [p[1] for p in pairs]


def _split_fx(model: nn.Module, cut_nodes: Sequence[str]) -> tuple[list[str], list[nn.Module]]:
    """Trace ``model`` and cut it after each named node into sequential GraphModules."""
    import torch.fx as fx

    owner = "EarlyExitNet.from_fx"
    if not isinstance(model, nn.Module):
        raise v.fail(owner, "model", "a torch.nn.Module", type(model).__name__)
    if isinstance(cut_nodes, str) or not isinstance(cut_nodes, Sequence) or \
            not all(isinstance(c, str) for c in cut_nodes):
        raise v.fail(owner, "cut_nodes", "a sequence of node names", cut_nodes)
    try:
        gm = model if isinstance(model, fx.GraphModule) else fx.symbolic_trace(model)
    except Exception as exc:
        raise v.fail(owner, "model", "a torch.fx-traceable model",
                     f"{type(model).__name__} ({type(exc).__name__}: {exc})") from None
    nodes = list(gm.graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    by_name = {n.name: n for n in nodes}
    inputs = [n for n in nodes if n.op == "placeholder"]
    output = next(n for n in nodes if n.op == "output")
    if len(inputs) != 1:
        raise v.fail(owner, "model", "a model with one tensor input", [n.name for n in inputs])
    result = output.args[0]
    if not isinstance(result, fx.Node):
        raise v.fail(owner, "model", "a model that returns one tensor", type(result).__name__)
    computing = [n.name for n in nodes if n.op in ("call_module", "call_function", "call_method")]
    if len(set(cut_nodes)) != len(cut_nodes):
        raise v.fail(owner, "cut_nodes", "distinct node names", list(cut_nodes))
    for c in cut_nodes:
        if c not in by_name or by_name[c].op not in ("call_module", "call_function", "call_method"):
            shown = ", ".join(computing[:20]) + (", ..." if len(computing) > 20 else "")
            raise v.fail(owner, "cut_nodes", f"names of computing nodes of the traced graph ({shown})", c)
    cuts = sorted((by_name[c] for c in cut_nodes), key=pos.__getitem__)
    for c in cuts:
        p = pos[c]
        live = [n.name for n in nodes[:p + 1]
                if n.op != "get_attr" and any(pos[u] > p for u in n.users)]
        if live != [c.name]:
            raise v.fail(owner, "cut_nodes", "straight cuts: the cut node's value must be the only "
                         f"one used after it (live across {c.name!r}: {live})", c.name)
    if cuts and pos[cuts[-1]] >= pos[result]:
        raise v.fail(owner, "cut_nodes", "nodes before the one producing the model's output "
                     f"({result.name!r}), so the last block is not empty", cuts[-1].name)
    ends = [*cuts, result]
    starts = [inputs[0], *cuts]
    names, blocks = [], []
    for start, end in zip(starts, ends):
        graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {start: graph.placeholder("x")}
        for n in nodes[pos[start] + 1:pos[end] + 1]:
            if n.op in ("get_attr", "output", "placeholder"):
                continue
            for a in n.all_input_nodes:
                if a not in env:  # only parameters/buffers: the cut check rules out the rest
                    env[a] = graph.node_copy(a)
            env[n] = graph.node_copy(n, lambda a: env[a])
        graph.output(env[end])
        names.append(end.name)
        blocks.append(fx.GraphModule(gm, graph, class_name=f"Block_{end.name}"))
    return names, blocks
