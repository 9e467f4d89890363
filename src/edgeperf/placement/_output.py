"""Writing a placement back as a scenario file that every command accepts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .. import _validation as v
from .._atomic import atomic_path
from ..io import load_scenario
from ..io._files import load_yaml, read_text
from ._decision import PlacementDecision

__all__ = ["write_placed_scenario"]


def write_placed_scenario(scenario: str | Path, decision: PlacementDecision,
                          out: str | Path) -> Path:
    """Copy the scenario file ``scenario`` to ``out`` with the placement (and
    source device) the decision gives every chain: the joint searches place
    them all, the other methods the decision's chain (the rest keep theirs).
    File references (profiles, traces) are rewritten relative to ``out``. The
    copy is read back before it replaces anything, so a bad result never lands."""
    source = v.path("write_placed_scenario", "scenario", scenario)
    target = v.path("write_placed_scenario", "out", out)
    data = load_yaml(read_text(source))
    entries = {decision.chain: data} if "chains" not in data else \
        {c["name"]: c for c in data["chains"]}
    for name, entry in entries.items():
        chain = decision.system.chain(name)
        entry["placement"] = chain.placement.as_dict()
        if chain.source is not None:
            entry["source"] = chain.source
    _rebase(data, source.parent.resolve(), target.parent.resolve())
    header = (f"# Placed by edgeperf place --method {decision.method} "
              f"(objective {decision.objective}) from {source.name}.\n")
    with atomic_path(target) as tmp:  # relative references resolve the same beside target
        tmp.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        load_scenario(tmp)
    return target


def _rebase(node: Any, old: Path, new: Path, key: str = "") -> None:
    """Rewrite relative file references found under ``node`` from ``old`` to ``new``."""
    if isinstance(node, dict):
        for k, value in node.items():
            if isinstance(value, str) and _is_file_field(key, k):
                node[k] = _moved(value, old, new)
            elif isinstance(value, dict) and k == "device_profiles":
                node[k] = {d: _moved(p, old, new) for d, p in value.items()}
            else:
                _rebase(value, old, new, k)
    elif isinstance(node, list):
        for item in node:
            _rebase(item, old, new, key)


def _is_file_field(parent: str, key: str) -> bool:
    return (parent == "model" and key == "profile") or (parent == "arrival" and key == "path")


def _moved(path: str, old: Path, new: Path) -> str:
    if Path(path).is_absolute():
        return path
    return os.path.relpath(old / path, new)
