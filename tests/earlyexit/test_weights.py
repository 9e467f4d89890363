"""Weights I/O: safetensors round trips, fragments after loading, clear errors, no pickle."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors import safe_open

from edgeperf.earlyexit import EarlyExitNet, build, load, load_weights, save
from edgeperf.exceptions import InvalidParameterError


@pytest.fixture
def zoo_net(make_warm):
    torch.manual_seed(3)
    return make_warm(build("resnet32", num_classes=4, width=2), (3, 32, 32))


@pytest.fixture
def no_pickle(monkeypatch):
    """Loading must never unpickle: make every unpickling path fail loudly."""
    def boom(*args, **kwargs):
        raise AssertionError("unpickling is forbidden")
    monkeypatch.setattr(torch, "load", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)


def test_save_load_fragments_across_two_cuts_equal_the_whole_model(zoo_net, tmp_path, no_pickle):
    path = save(zoo_net, tmp_path / "net.safetensors")
    loaded = load(path)
    assert not loaded.training and loaded.config == zoo_net.config
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    cut1, cut2 = zoo_net.block_index("s2b0"), zoo_net.block_index("s3b0")
    last = len(loaded.blocks) - 1
    with torch.no_grad():
        whole = zoo_net(x)
        a, got = loaded.run_fragment(0, cut1 - 1, x)
        b, more = loaded.run_fragment(cut1, cut2 - 1, a)
        got |= more
        _, more = loaded.run_fragment(cut2, last, b)
        got |= more
    assert sorted(got) == list(range(zoo_net.n_exits))
    for k in range(zoo_net.n_exits):
        assert torch.allclose(got[k], whole[k], atol=1e-6)
    # batch-norm buffers travelled too
    assert torch.equal(loaded.blocks[0][1].running_mean, zoo_net.blocks[0][1].running_mean)


def test_file_is_plain_safetensors_with_json_metadata(zoo_net, tmp_path):
    path = save(zoo_net, str(tmp_path / "w.safetensors"))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta["format"] == "edgeperf.earlyexit/1"
    assert json.loads(meta["config"])["zoo"] == "resnet32"
    structure = json.loads(meta["structure"])
    assert structure["exit_blocks"] == list(zoo_net.exit_blocks)
    assert structure["input_shape"] == [3, 32, 32]
    assert keys == set(zoo_net.state_dict())
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temp file left behind


def test_save_overwrites_atomically(zoo_net, tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"old")
    save(zoo_net, path)
    assert load(path).n_exits == zoo_net.n_exits
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_load_weights_into_a_user_built_net(make_blocks, make_warm, tmp_path, no_pickle):
    torch.manual_seed(0)
    net = make_warm(EarlyExitNet(make_blocks(), ["a"], num_classes=3, input_shape=(1, 8, 8)), (1, 8, 8))
    path = save(net, tmp_path / "mine.safetensors")
    torch.manual_seed(1)
    other = EarlyExitNet(make_blocks(), ["a"], num_classes=3, input_shape=(1, 8, 8)).eval()
    assert load_weights(other, path) is other
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        for a, b in zip(net(x), other(x)):
            assert torch.equal(a, b)
    with pytest.raises(InvalidParameterError, match=r"'path' parameter of load must be a weights "
                       r"file of a zoo network .*load_weights\(net, path\)"):
        load(path)


def test_load_weights_lists_missing_unexpected_and_mismatched(make_blocks, tmp_path):
    net = EarlyExitNet(make_blocks(), ["a"], num_classes=3, input_shape=(1, 8, 8))
    path = save(net, tmp_path / "w.safetensors")
    fewer_exits = EarlyExitNet(make_blocks(), [], num_classes=3, input_shape=(1, 8, 8))
    with pytest.raises(InvalidParameterError, match=r"names and shapes match the network "
                       r"\(unexpected: heads\.1\.fc\.bias; heads\.1\.fc\.weight \| mismatched: "
                       r"heads\.0\.fc\.weight: file \(3, 6\) vs net \(3, 8\)\)"):
        load_weights(fewer_exits, path)
    more_classes = EarlyExitNet(make_blocks(), ["a"], num_classes=4, input_shape=(1, 8, 8))
    with pytest.raises(InvalidParameterError, match=r"mismatched: heads\.0\.fc\.bias: file \(3,\) "
                       r"vs net \(4,\)"):
        load_weights(more_classes, path)
    more_exits = EarlyExitNet(make_blocks(), ["stem", "a"], num_classes=3, input_shape=(1, 8, 8))
    with pytest.raises(InvalidParameterError, match=r"missing: heads\.2\.fc\.bias.*mismatched"):
        load_weights(more_exits, path)


def test_corrupted_files_give_clear_errors(zoo_net, tmp_path, no_pickle):
    good = save(zoo_net, tmp_path / "good.safetensors").read_bytes()
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file at all")
    with pytest.raises(InvalidParameterError, match=r"'path' parameter of load must be a valid "
                       r"safetensors weights file \(cannot be read: .*\)\. Got '.*garbage"):
        load(garbage)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good[:len(good) // 2])
    with pytest.raises(InvalidParameterError, match=r"valid safetensors weights file \(cannot be "
                       r"read: .*\)\. Got .*truncated"):
        load(truncated)
    flipped = bytearray(good)
    flipped[-10] ^= 0xFF  # inside the tensor data: only the checksum can tell
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(InvalidParameterError, match=r"do not match the SHA-256 .*corrupted.*flipped"):
        load(bad)
    with pytest.raises(InvalidParameterError, match=r"'path' parameter of load_weights .*SHA-256"):
        load_weights(zoo_net, bad)
    pickled = tmp_path / "model.pt"
    pickled.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(InvalidParameterError, match=r"cannot be read"):
        load(pickled)


def test_missing_and_foreign_files(zoo_net, tmp_path):
    with pytest.raises(InvalidParameterError, match=r"an existing safetensors weights file\. "
                       r"Got '.*nothing\.safetensors'"):
        load(tmp_path / "nothing.safetensors")
    from safetensors.torch import save_file
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(InvalidParameterError, match=r"written by edgeperf.earlyexit.save "
                       r"\(metadata 'config' missing or not JSON\)"):
        load(foreign)
    with pytest.raises(InvalidParameterError, match=r"'path' parameter of save must be a file in "
                       r"an existing folder"):
        save(zoo_net, tmp_path / "no" / "such" / "dir.safetensors")
    with pytest.raises(InvalidParameterError, match=r"'path' parameter of save must be a file, "
                       r"not a folder"):
        save(zoo_net, tmp_path)
    with pytest.raises(InvalidParameterError, match=r"'net' parameter of save must be an EarlyExitNet"):
        save(torch.nn.Linear(1, 1), tmp_path / "x.safetensors")
    with pytest.raises(InvalidParameterError, match=r"'path' parameter of load must be a file path"):
        load(3)


def test_more_weights_errors(zoo_net, make_blocks, tmp_path):
    net = EarlyExitNet(make_blocks(), [], num_classes=3, input_shape=(1, 8, 8),
                       config={"zoo": "resnet32", "not_a_build_arg": 1})
    path = save(net, tmp_path / "w.safetensors")
    with pytest.raises(InvalidParameterError, match=r"'path' parameter of load must be a weights "
                       r"file whose config fits build\(\) .*not_a_build_arg"):
        load(path)
    net.config = {"zoo": "resnet32", "width": 0}
    save(net, path)
    with pytest.raises(InvalidParameterError, match=r"config fits build\(\) .*'width' parameter"):
        load(path)
    net.config = {"bad": object()}
    with pytest.raises(InvalidParameterError, match=r"'net' parameter of save must be a network "
                       r"whose 'config' is JSON-able"):
        save(net, path)
    with pytest.raises(InvalidParameterError, match=r"'net' parameter of load_weights must be an "
                       r"EarlyExitNet\. Got 'dict'"):
        load_weights({}, path)
