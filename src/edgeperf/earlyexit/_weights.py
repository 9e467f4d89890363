"""Weights I/O for early-exit networks: safetensors only, never pickle.

``save(net, path)`` writes the state dict's tensors with the network's JSON
config, structure and a SHA-256 of the tensors in the safetensors metadata;
``load(path)`` rebuilds a zoo network from that config and loads the tensors;
``load_weights(net, path)`` loads into a network you built, checking names
and shapes. Writes are atomic (a temporary file, then ``os.replace``). A
missing, truncated, corrupted or foreign file gives one
``InvalidParameterError`` that names the file and says why.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .. import _validation as v
from .._atomic import atomic_path
from ..exceptions import InvalidParameterError
from ._network import EarlyExitNet

__all__ = ["save", "load", "load_weights", "FORMAT"]

FORMAT = "edgeperf.earlyexit/1"


def _digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _structure(net: EarlyExitNet) -> dict[str, Any]:
    return {"block_names": list(net.block_names), "exit_blocks": list(net.exit_blocks),
            "num_classes": net.num_classes, "input_shape": list(net.input_shape)}


def save(net: EarlyExitNet, path: str | os.PathLike[str]) -> Path:
    """Write ``net``'s weights to ``path`` (safetensors) atomically; returns the path."""
    if not isinstance(net, EarlyExitNet):
        raise v.fail("save", "net", "an EarlyExitNet", type(net).__name__)
    path = v.path("save", "path", path)
    try:
        config = json.dumps(net.config, sort_keys=True)
    except (TypeError, ValueError):
        raise v.fail("save", "net", "a network whose 'config' is JSON-able", net.config) from None
    # clone: safetensors refuses tensors that share storage (shared modules)
    tensors = {k: t.detach().cpu().contiguous().clone() for k, t in net.state_dict().items()}
    metadata = {"format": FORMAT, "config": config,
                "structure": json.dumps(_structure(net), sort_keys=True),
                "sha256": _digest(tensors)}
    from safetensors.torch import save_file

    v.output_file("save", "path", path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def _read(owner: str, path: object) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, or one clear error."""
    from safetensors import SafetensorError, safe_open

    p = v.path(owner, "path", path)
    if not p.is_file():
        raise v.fail(owner, "path", "an existing safetensors weights file", str(p))

    def bad(why: str) -> Exception:
        return v.fail(owner, "path", f"a valid safetensors weights file ({why})", str(p))

    try:
        with safe_open(str(p), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise bad(f"cannot be read: {exc}") from None
    if "sha256" in metadata and _digest(tensors) != metadata["sha256"]:
        raise bad("its tensors do not match the SHA-256 recorded when it was saved: corrupted")
    return tensors, metadata


def _json(owner: str, path: object, metadata: Mapping[str, str], key: str) -> Any:
    try:
        return json.loads(metadata[key])
    except (KeyError, TypeError, ValueError):
        raise v.fail(owner, "path", f"a weights file written by edgeperf.earlyexit.save "
                     f"(metadata {key!r} missing or not JSON)", str(path)) from None


def load_weights(net: EarlyExitNet, path: str | os.PathLike[str]) -> EarlyExitNet:
    """Load the tensors of ``path`` into ``net`` (names and shapes must match exactly)."""
    if not isinstance(net, EarlyExitNet):
        raise v.fail("load_weights", "net", "an EarlyExitNet", type(net).__name__)
    tensors, _ = _read("load_weights", path)
    _load_into("load_weights", net, tensors, path)
    return net


def _load_into(owner: str, net: EarlyExitNet, tensors: Mapping[str, torch.Tensor],
               path: object) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = sorted(f"{k}: file {tuple(tensors[k].shape)} vs net {tuple(expected[k].shape)}"
                        for k in set(expected) & set(tensors)
                        if tuple(tensors[k].shape) != tuple(expected[k].shape))
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched)):
        if items:
            shown = "; ".join(items[:8]) + (f"; ... ({len(items)} in all)" if len(items) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise v.fail(owner, "path", "a weights file whose tensor names and shapes match "
                     f"the network ({' | '.join(problems)})", str(path))
    net.load_state_dict(dict(tensors), strict=True)


def load(path: str | os.PathLike[str]) -> EarlyExitNet:
    """Rebuild a zoo network saved with :func:`save` and load its weights.

    Networks built by hand (no ``zoo`` in their config) are rebuilt by you and
    filled with :func:`load_weights`. The network is returned in eval mode.
    """
    tensors, metadata = _read("load", path)
    config = _json("load", path, metadata, "config")
    if not isinstance(config, dict) or not config.get("zoo"):
        raise v.fail("load", "path", "a weights file of a zoo network (its config names no 'zoo'; "
                     "build the network yourself and call load_weights(net, path))", str(path))
    from ._zoo import build

    kwargs = {k: val for k, val in config.items() if k != "zoo"}
    try:
        net = build(config["zoo"], **kwargs)
    except (TypeError, InvalidParameterError) as exc:
        raise v.fail("load", "path", f"a weights file whose config fits build() ({exc})",
                     str(path)) from None
    _load_into("load", net, tensors, path)
    return net.eval()
