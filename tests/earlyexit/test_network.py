"""EarlyExitNet: construction, the three forward modes, from_fx, and bad input."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
from torch import nn

from edgeperf.earlyexit import EarlyExitNet, ExitHead
from edgeperf.exceptions import InvalidParameterError

# ------------------------------------------------------------------ construction


def test_structure_and_forward_shapes(tiny_net, tiny_input):
    net = tiny_net
    assert net.block_names == ("stem", "a", "b", "c")
    assert net.exit_blocks == (0, 1, 2, 3) and net.n_exits == 4
    assert net.exit_names == ("stem", "a", "b", "c")
    assert net.block_output_shapes == ((4, 8, 8), (6, 4, 4), (6, 4, 4), (8, 2, 2))
    assert net.block_input_shape(0) == (1, 8, 8) and net.block_input_shape(2) == (6, 4, 4)
    out = net(tiny_input)
    assert isinstance(out, list) and len(out) == 4
    assert all(o.shape == (12, 5) for o in out)


def test_exits_by_index_are_sorted_and_final_is_added(make_blocks):
    net = EarlyExitNet(make_blocks(), [2, 0], num_classes=3, input_shape=(1, 8, 8))
    assert net.exit_blocks == (0, 2, 3)
    listed = EarlyExitNet(make_blocks(), ["a", "c"], num_classes=3, input_shape=(1, 8, 8))
    assert listed.exit_blocks == (1, 3)


def test_sequence_and_sequential_blocks_are_named(make_blocks):
    mods = list(make_blocks().values())
    net = EarlyExitNet(mods, ["b1"], num_classes=3, input_shape=[1, 8, 8])
    assert net.block_names == ("b0", "b1", "b2", "b3") and net.input_shape == (1, 8, 8)
    seq = EarlyExitNet(nn.Sequential(make_blocks()), ["a"], num_classes=3, input_shape=(1, 8, 8))
    assert seq.block_names == ("stem", "a", "b", "c") and seq.exit_blocks == (1, 3)


def test_parameters_split_into_backbone_and_heads(tiny_net):
    backbone = sum(p.numel() for p in tiny_net.backbone_parameters())
    heads = sum(p.numel() for p in tiny_net.head_parameters())
    assert backbone > 0 and heads > 0
    assert backbone + heads == sum(p.numel() for p in tiny_net.parameters())


def test_exit_head_is_configurable(make_blocks):
    head = ExitHead(pool_size=2, conv_channels=3, hidden=7, dropout=0.25)
    net = EarlyExitNet(make_blocks(), ["a"], num_classes=4, input_shape=(1, 8, 8), head=head)
    ic = net.heads[0]
    assert isinstance(ic.conv, nn.Conv2d) and ic.conv.out_channels == 3
    assert isinstance(ic.pool, nn.AdaptiveAvgPool2d) and ic.pool.output_size == 2
    assert ic.hidden.in_features == 3 * 2 * 2 and ic.hidden.out_features == 7
    assert ic.dropout.p == 0.25 and ic.fc.out_features == 4
    # the final exit uses the same configuration unless told otherwise
    assert net.heads[-1].fc.in_features == 7
    assert head.to_config() == {"pool_size": 2, "conv_channels": 3, "hidden": 7, "dropout": 0.25}
    net.eval()
    assert all(o.shape == (2, 4) for o in net(torch.zeros(2, 1, 8, 8)))


def test_heads_on_flat_and_sequence_activations():
    flat = ExitHead(hidden=5).build((12,), 3)
    assert not hasattr(flat, "pool") and flat(torch.zeros(2, 12)).shape == (2, 3)
    seq = ExitHead(pool_size=2).build((4, 10), 3)
    assert isinstance(seq.pool, nn.AdaptiveAvgPool1d) and seq(torch.zeros(2, 4, 10)).shape == (2, 3)


def test_final_head_module_exit_head_or_identity(make_blocks):
    final = nn.Sequential(nn.Flatten(), nn.Linear(8 * 2 * 2, 3))
    net = EarlyExitNet(make_blocks(), ["a"], num_classes=3, input_shape=(1, 8, 8), final_head=final)
    assert net.heads[-1] is final
    net2 = EarlyExitNet(make_blocks(), ["a"], num_classes=3, input_shape=(1, 8, 8),
                        final_head=ExitHead(hidden=9))
    assert net2.heads[-1].hidden.out_features == 9
    # a backbone that already ends in logits keeps them: the final head is the identity
    blocks = make_blocks()
    blocks["fc"] = nn.Sequential(nn.Flatten(), nn.Linear(32, 3))
    net3 = EarlyExitNet(blocks, ["a"], num_classes=3, input_shape=(1, 8, 8))
    assert isinstance(net3.heads[-1], nn.Identity)


# ------------------------------------------------------------------ fragments


@pytest.mark.parametrize("cuts", [(1, 2), (0, 3), (2, 3)])
def test_fragments_across_two_cuts_reproduce_forward(tiny_net, tiny_input, cuts):
    c1, c2 = cuts
    with torch.no_grad():
        whole = tiny_net(tiny_input)
        x, got = tiny_net.run_fragment(0, c1 - 1, tiny_input) if c1 > 0 else (tiny_input, {})
        x, more = tiny_net.run_fragment(c1, c2 - 1, x) if c2 > c1 else (x, {})
        got |= more
        x, more = tiny_net.run_fragment(c2, 3, x)
        got |= more
    assert sorted(got) == [0, 1, 2, 3]
    assert x.shape == (12, 8, 2, 2)
    for k in range(4):
        assert torch.allclose(got[k], whole[k], atol=1e-6)


def test_fragment_reports_only_its_exits(make_blocks):
    net = EarlyExitNet(make_blocks(), ["stem", "b"], num_classes=3, input_shape=(1, 8, 8)).eval()
    x = torch.randn(2, 4, 8, 8)
    act, logits = net.run_fragment(1, 1, x)
    assert act.shape == (2, 6, 4, 4) and logits == {}
    _, logits = net.run_fragment(1, 3, x)
    assert sorted(logits) == [1, 2]


# ------------------------------------------------------------------ inference


def _reference(net, x, thresholds, measure="max_softmax", temperatures=None):
    """Exit and class from the all-exits forward pass, sample by sample."""
    with torch.no_grad():
        logits = net(x)
    temps = temperatures or [1.0] * net.n_exits
    exits, preds = [], []
    for i in range(x.shape[0]):
        for k in range(net.n_exits):
            z = logits[k][i] / temps[k]
            p = torch.softmax(z, 0)
            top = p.topk(2).values
            conf = {"max_softmax": top[0], "margin": top[0] - top[1],
                    "entropy": 1 + (p * torch.log_softmax(z, 0)).sum() / math.log(len(p))}[measure]
            if k == net.n_exits - 1 or conf >= thresholds[k]:
                exits.append(k)
                preds.append(int(logits[k][i].argmax()))
                break
    return torch.tensor(preds), torch.tensor(exits)


def test_threshold_zero_exits_everything_first(tiny_net, tiny_input):
    pred, exits = tiny_net.infer(tiny_input, [0.0, 0.0, 0.0])
    assert exits.tolist() == [0] * 12
    assert torch.equal(pred, tiny_net(tiny_input)[0].argmax(1))


def test_threshold_above_one_sends_everything_to_the_final_exit(tiny_net, tiny_input):
    pred, exits = tiny_net.infer(tiny_input, [1.01, 2.0, float("inf")])
    assert exits.tolist() == [3] * 12
    assert torch.equal(pred, tiny_net(tiny_input)[-1].argmax(1))


@pytest.mark.parametrize("measure", ["max_softmax", "margin", "entropy"])
def test_mixed_thresholds_batched_equals_batch_one_and_reference(tiny_net, tiny_input, measure):
    temps = [0.5, 1.0, 2.0, 1.0]
    # thresholds at the per-exit median confidence spread samples over the exits
    ref_conf = []
    with torch.no_grad():
        for k, z in enumerate(tiny_net(tiny_input)[:-1]):
            p = torch.softmax(z / temps[k], 1)
            top = p.topk(2, 1).values
            c = {"max_softmax": top[:, 0], "margin": top[:, 0] - top[:, 1],
                 "entropy": 1 + (p * torch.log_softmax(z / temps[k], 1)).sum(1) / math.log(5)}[measure]
            ref_conf.append(float(c.median()))
    thr = [ref_conf[0] + 1e-4, ref_conf[1] + 1e-4, 0.0]
    pred, exits = tiny_net.infer(tiny_input, thr, measure=measure, temperatures=temps)
    assert len(set(exits.tolist())) >= 2
    ref_pred, ref_exits = _reference(tiny_net, tiny_input, thr, measure, temps)
    assert torch.equal(exits, ref_exits) and torch.equal(pred, ref_pred)
    for i in range(tiny_input.shape[0]):
        p1, e1 = tiny_net.infer(tiny_input[i:i + 1], thr, measure=measure, temperatures=temps)
        assert (int(p1), int(e1)) == (int(pred[i]), int(exits[i]))


def test_infer_computes_only_on_remaining_samples(tiny_net, tiny_input):
    with torch.no_grad():
        conf0 = torch.softmax(tiny_net(tiny_input)[0], 1).max(1).values
    thr = [float(conf0.median()), 1.01, 1.01]  # about half leave at exit 0, the rest at the end
    seen: list[int] = []
    hook = tiny_net.blocks[1].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    try:
        _, exits = tiny_net.infer(tiny_input, thr)
        stayed = int((exits == 3).sum())
        assert 0 < stayed < 12 and set(exits.tolist()) == {0, 3}
        assert seen == [stayed]  # block 1 ran only on the samples that did not leave at exit 0
        seen.clear()
        tiny_net.infer(tiny_input[:1], [0.0, 0.0, 0.0])
        assert seen == []  # batch 1 stopped at exit 0: later blocks never ran
    finally:
        hook.remove()


def test_infer_accepts_tensor_thresholds(tiny_net, tiny_input):
    a = tiny_net.infer(tiny_input, torch.tensor([0.4, 0.4, 0.4]))
    b = tiny_net.infer(tiny_input, [0.4, 0.4, 0.4])
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# ------------------------------------------------------------------ from_fx


class _Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.fc(x.mean(dim=(2, 3)))


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.r1 = nn.Conv2d(4, 4, 3, padding=1)
        self.r2 = nn.Conv2d(4, 4, 3, padding=1)
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + self.scale * torch.relu(self.r1(x))
        x = x + torch.relu(self.r2(x))
        return self.fc(x.mean(dim=(2, 3)))


def test_from_fx_plain_model_matches_the_model():
    torch.manual_seed(0)
    model = _Plain().eval()
    net = EarlyExitNet.from_fx(model, ["relu", "relu_1"], ["relu"], num_classes=3,
                               input_shape=(1, 8, 8)).eval()
    assert net.block_names == ("relu", "relu_1", "fc")
    assert net.exit_blocks == (0, 2) and isinstance(net.heads[-1], nn.Identity)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        out = net(x)
        assert torch.allclose(out[-1], model(x), atol=1e-6)
        act, logits = net.run_fragment(0, 1, x)
        act, more = net.run_fragment(2, 2, act)
    assert torch.allclose(more[1], out[1], atol=1e-6) and torch.allclose(logits[0], out[0])
    # blocks share the model's parameters
    assert any(p is model.conv1.weight for p in net.backbone_parameters())


def test_from_fx_residual_model_cuts_between_residuals():
    torch.manual_seed(0)
    model = _Residual().eval()
    net = EarlyExitNet.from_fx(model, ["add", "relu"], ["relu", "add"], num_classes=3,
                               input_shape=(1, 6, 6)).eval()
    assert net.block_names == ("relu", "add", "fc") and net.n_exits == 3
    x = torch.randn(2, 1, 6, 6)
    with torch.no_grad():
        assert torch.allclose(net(x)[-1], model(x), atol=1e-6)
    # the parameter used inside the residual is copied into its block, not cut across
    assert any(p is model.scale for p in net.backbone_parameters())


def test_from_fx_rejects_a_cut_inside_a_residual():
    with pytest.raises(InvalidParameterError, match=r"straight cuts.*live across 'relu_1'.*'relu'"):
        EarlyExitNet.from_fx(_Residual(), ["relu_1"], [], num_classes=3, input_shape=(1, 6, 6))


def test_from_fx_rejects_unknown_and_trailing_nodes():
    with pytest.raises(InvalidParameterError, match=r"'cut_nodes' parameter .* computing nodes.*"
                       r"Got 'nope'"):
        EarlyExitNet.from_fx(_Plain(), ["nope"], [], num_classes=3, input_shape=(1, 8, 8))
    with pytest.raises(InvalidParameterError, match="last block is not empty"):
        EarlyExitNet.from_fx(_Plain(), ["fc"], [], num_classes=3, input_shape=(1, 8, 8))
    with pytest.raises(InvalidParameterError, match="distinct node names"):
        EarlyExitNet.from_fx(_Plain(), ["relu", "relu"], [], num_classes=3, input_shape=(1, 8, 8))


def test_from_fx_rejects_untraceable_models():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(InvalidParameterError, match="torch.fx-traceable model"):
        EarlyExitNet.from_fx(Branchy(), [], [], num_classes=3, input_shape=(3,))


# ------------------------------------------------------------------ errors


def test_unknown_block_name(make_blocks):
    with pytest.raises(InvalidParameterError, match=r"'exits' parameter of EarlyExitNet must be "
                       r"names of blocks \(one of 'stem', 'a', 'b', 'c'\)\. Got 'd'\."):
        EarlyExitNet(make_blocks(), ["d"], num_classes=3, input_shape=(1, 8, 8))


def test_exit_after_the_last_block(make_blocks):
    with pytest.raises(InvalidParameterError, match=r"block indices in 0\.\.3 .*out of range.*Got 4"):
        EarlyExitNet(make_blocks(), [4], num_classes=3, input_shape=(1, 8, 8))
    with pytest.raises(InvalidParameterError, match=r"block indices in 0\.\.3.*Got -1"):
        EarlyExitNet(make_blocks(), [-1], num_classes=3, input_shape=(1, 8, 8))


def test_duplicate_exits_and_bad_exit_types(make_blocks):
    with pytest.raises(InvalidParameterError, match="distinct blocks"):
        EarlyExitNet(make_blocks(), ["a", 1], num_classes=3, input_shape=(1, 8, 8))
    with pytest.raises(InvalidParameterError, match=r"names \(str\) or indices \(int\)"):
        EarlyExitNet(make_blocks(), [1.0], num_classes=3, input_shape=(1, 8, 8))
    with pytest.raises(InvalidParameterError, match="sequence of block names or indices"):
        EarlyExitNet(make_blocks(), "a", num_classes=3, input_shape=(1, 8, 8))


def test_duplicate_block_names(make_blocks):
    pairs = list(make_blocks().items())
    mapping = dict(pairs)

    class Pairs(OrderedDict):  # a mapping that repeats a key
        def items(self):
            return [*pairs, ("a", nn.Identity())]

    with pytest.raises(InvalidParameterError, match=r"blocks with unique names. Got \['a'\]"):
        EarlyExitNet(Pairs(mapping), [], num_classes=3, input_shape=(1, 8, 8))


def test_bad_blocks(make_blocks):
    with pytest.raises(InvalidParameterError, match="at least one block"):
        EarlyExitNet([], [], num_classes=3, input_shape=(1, 8, 8))
    with pytest.raises(InvalidParameterError, match=r"torch.nn.Module blocks. Got 'b1: int'"):
        EarlyExitNet([nn.Identity(), 3], [], num_classes=3, input_shape=(1, 8, 8))
    with pytest.raises(InvalidParameterError, match=r"run in a chain from a zero input of shape "
                       r"\(batch, 2, 8, 8\).*block 'stem' raised RuntimeError"):
        EarlyExitNet(make_blocks(), [], num_classes=3, input_shape=(2, 8, 8))
    with pytest.raises(InvalidParameterError, match="'input_shape' parameter .* ints >= 1"):
        EarlyExitNet(make_blocks(), [], num_classes=3, input_shape=(1, 0, 8))
    with pytest.raises(InvalidParameterError, match=r"'num_classes' parameter .* int >= 1"):
        EarlyExitNet(make_blocks(), [], num_classes=0, input_shape=(1, 8, 8))


def test_bad_heads(make_blocks):
    with pytest.raises(InvalidParameterError, match="'pool_size' parameter of ExitHead"):
        ExitHead(pool_size=0)
    with pytest.raises(InvalidParameterError, match="'dropout' parameter of ExitHead"):
        ExitHead(dropout=1.0)
    with pytest.raises(InvalidParameterError, match="'head' parameter of EarlyExitNet"):
        EarlyExitNet(make_blocks(), [], num_classes=3, input_shape=(1, 8, 8), head=nn.Linear(1, 1))
    with pytest.raises(InvalidParameterError, match=r"'final_head' .* logits of shape \(batch, 3\)"
                       r".*exit 0 gives \(1, 7\)"):
        EarlyExitNet(make_blocks(), [], num_classes=3, input_shape=(1, 8, 8),
                     final_head=nn.Sequential(nn.Flatten(), nn.Linear(32, 7)))


def test_mismatched_input_shapes(tiny_net):
    with pytest.raises(InvalidParameterError, match=r"'x' parameter of EarlyExitNet.forward must be "
                       r"a tensor of shape \(batch, 1, 8, 8\) entering block 0 \('stem'\)\. "
                       r"Got \(2, 3, 8, 8\)\."):
        tiny_net(torch.zeros(2, 3, 8, 8))
    with pytest.raises(InvalidParameterError, match=r"shape \(batch, 1, 8, 8\).*Got \(1, 8, 8\)"):
        tiny_net(torch.zeros(1, 8, 8))
    with pytest.raises(InvalidParameterError, match=r"EarlyExitNet.run_fragment must be a tensor of "
                       r"shape \(batch, 6, 4, 4\) entering block 2 \('b'\)\. Got \(2, 4, 8, 8\)"):
        tiny_net.run_fragment(2, 3, torch.zeros(2, 4, 8, 8))
    with pytest.raises(InvalidParameterError, match=r"EarlyExitNet.infer must be a tensor"):
        tiny_net.infer(torch.zeros(2, 1, 9, 8), [0.5] * 3)
    with pytest.raises(InvalidParameterError, match=r"must be a torch.Tensor. Got 'list'"):
        tiny_net([[0.0]])


def test_bad_fragment_indices(tiny_net):
    x = torch.zeros(1, 6, 4, 4)
    with pytest.raises(InvalidParameterError, match=r"'last' parameter of EarlyExitNet.run_fragment "
                       r"must be an index >= first \(2\)\. Got 1\."):
        tiny_net.run_fragment(2, 1, x)
    with pytest.raises(InvalidParameterError, match=r"'last' .* block index in 0\.\.3\. Got 4"):
        tiny_net.run_fragment(2, 4, x)
    with pytest.raises(InvalidParameterError, match=r"'index' .* block index in 0\.\.3\. Got -1"):
        tiny_net.block_input_shape(-1)


def test_bad_infer_arguments(tiny_net, tiny_input):
    with pytest.raises(InvalidParameterError, match=r"'thresholds' .* 3 numbers \(one per exit but "
                       r"the last\), none NaN\. Got \[0.5, 0.5\]"):
        tiny_net.infer(tiny_input, [0.5, 0.5])
    with pytest.raises(InvalidParameterError, match="none NaN"):
        tiny_net.infer(tiny_input, [0.5, float("nan"), 0.5])
    with pytest.raises(InvalidParameterError, match="'measure' parameter .* one of 'max_softmax'"):
        tiny_net.infer(tiny_input, [0.5] * 3, measure="energy")
    with pytest.raises(InvalidParameterError, match=r"'temperatures' .* 4 finite numbers > 0"):
        tiny_net.infer(tiny_input, [0.5] * 3, temperatures=[1.0, 0.0, 1.0, 1.0])
    with pytest.raises(InvalidParameterError, match=r"'temperatures' .* 4 finite numbers > 0"):
        tiny_net.infer(tiny_input, [0.5] * 3, temperatures=[1.0])


def test_more_construction_errors(make_blocks):
    with pytest.raises(InvalidParameterError, match=r"'in_shape' parameter of ExitHead must be an "
                       r"activation of 1 to 4 dims per sample .*Got \(1, 1, 1, 1, 1\)"):
        ExitHead().build((1, 1, 1, 1, 1), 3)
    with pytest.raises(InvalidParameterError, match="'hidden' parameter of ExitHead"):
        ExitHead(hidden=0)
    with pytest.raises(InvalidParameterError, match="'conv_channels' parameter of ExitHead"):
        ExitHead(conv_channels=1.5)

    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(InvalidParameterError, match=r"blocks that each return one tensor .*"
                       r"Got \"block 'b0' returned tuple\""):
        EarlyExitNet([Pair()], [], num_classes=3, input_shape=(3,))
    with pytest.raises(InvalidParameterError, match="sequence of modules or a mapping"):
        EarlyExitNet(nn.Linear(2, 2), [], num_classes=3, input_shape=(2,))
    with pytest.raises(InvalidParameterError, match="blocks named by non-empty strings"):
        EarlyExitNet({"": nn.Identity()}, [], num_classes=3, input_shape=(3,))
    with pytest.raises(InvalidParameterError, match="'final_head' parameter .* a torch.nn.Module"):
        EarlyExitNet(make_blocks(), [], num_classes=3, input_shape=(1, 8, 8), final_head="fc")
    with pytest.raises(InvalidParameterError, match="'input_shape' parameter"):
        EarlyExitNet(make_blocks(), [], num_classes=3, input_shape=8)
    with pytest.raises(InvalidParameterError, match=r"^The 'config' parameter of EarlyExitNet "
                       r"must be None or a JSON-able mapping\. Got 'str'\.$"):
        EarlyExitNet(make_blocks(), [], num_classes=3, input_shape=(1, 8, 8), config="x")


def test_block_index_by_name(tiny_net):
    assert tiny_net.block_index("b") == 2
    with pytest.raises(InvalidParameterError, match=r"'name' parameter of EarlyExitNet.block_index "
                       r"must be the name of a block\. Got 'zz'"):
        tiny_net.block_index("zz")


def test_more_from_fx_errors():
    class TwoInputs(nn.Module):
        def forward(self, x, y):
            return x + y

    class TwoOutputs(nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(InvalidParameterError, match=r"'model' .* one tensor input\. Got \['x', 'y'\]"):
        EarlyExitNet.from_fx(TwoInputs(), [], [], num_classes=3, input_shape=(3,))
    with pytest.raises(InvalidParameterError, match=r"'model' .* returns one tensor\. Got 'tuple'"):
        EarlyExitNet.from_fx(TwoOutputs(), [], [], num_classes=3, input_shape=(3,))
    with pytest.raises(InvalidParameterError, match=r"'model' .* a torch.nn.Module\. Got 'function'"):
        EarlyExitNet.from_fx(lambda x: x, [], [], num_classes=3, input_shape=(3,))
    with pytest.raises(InvalidParameterError, match=r"'cut_nodes' .* a sequence of node names"):
        EarlyExitNet.from_fx(_Plain(), "relu", [], num_classes=3, input_shape=(1, 8, 8))
