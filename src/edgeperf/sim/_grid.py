"""Sweep grids: ``--set PATH=VALUES`` specs and the scenario variants they make.

A PATH addresses the raw scenario mapping (as read from YAML/JSON) with dots
and list indices: ``workload.arrival.rate``, ``devices[0].capacity`` (or
``devices.0.capacity``), ``chains[1].workload.arrival.rate``. It must exist in
the file (add a defaulted field such as ``servers: 1`` to the file to sweep
it). VALUES is ``start:stop:step`` (stop included when it lands on the grid),
a list ``1,2,5`` or one value; several specs make the Cartesian product.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from .. import _validation as v
from ..exceptions import InvalidParameterError

__all__ = ["SweepError", "Point", "parse_set", "grid_points", "check_paths", "apply_point",
           "point_label"]

#: A guard against a typo such as 1:1e6:1 queueing a million simulations.
MAX_POINTS = 100_000
_EXAMPLE = "e.g. workload.arrival.rate=1:20:0.5"
_SEGMENT = r"[^.\[\]=]+(?:\[\d+\])*"
_PATH = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")

Point = dict[str, Any]


class SweepError(InvalidParameterError):
    """A sweep spec, grid point, scheduler or output breaks a rule; one line says which."""


def _split(path: str) -> tuple[str | int, ...]:
    """``devices[0].capacity`` -> ('devices', 0, 'capacity'); dotted digits stay strings
    and become indices only where the scenario has a list."""
    if not _PATH.fullmatch(path):
        raise SweepError(f"--set path {path!r} is malformed: use names joined by dots, with list "
                         f"indices as [i] or .i ({_EXAMPLE}).")
    tokens: list[str | int] = []
    for segment in path.split("."):
        name, *indices = segment.replace("]", "").split("[")
        tokens += [name, *map(int, indices)]
    return tuple(tokens)


def _show(tokens: Sequence[str | int]) -> str:
    out = ""
    for t in tokens:
        out += f"[{t}]" if isinstance(t, int) else ("." if out else "") + t
    return out or "the top level"


def _scalar(text: str) -> Any:
    """One value as written: an int, a float, true/false, or else a string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _range(path: str, text: str) -> list[int | float]:
    """start:stop:step in exact decimal arithmetic, so 0.1:0.3:0.1 ends at 0.3."""
    parts = [p.strip() for p in text.split(":")]
    if len(parts) != 3:
        raise SweepError(f"--set {path}: range {text!r} must be start:stop:step ({_EXAMPLE}).")
    try:
        start, stop, step = (Decimal(p) for p in parts)
    except InvalidOperation:
        raise SweepError(f"--set {path}: range {text!r} must be three numbers "
                         f"start:stop:step ({_EXAMPLE}).") from None
    if not all(x.is_finite() for x in (start, stop, step)):
        raise SweepError(f"--set {path}: range {text!r} must have finite numbers.")
    if step <= 0:
        raise SweepError(f"--set {path}: the step of range {text!r} must be > 0. Got {parts[2]}.")
    if stop < start:
        raise SweepError(f"--set {path}: range {text!r} must have stop >= start.")
    count = int((stop - start) / step) + 1
    if count > MAX_POINTS:
        raise SweepError(f"--set {path}: range {text!r} has {count} values; at most {MAX_POINTS}.")
    integral = all(isinstance(_scalar(p), int) for p in parts)
    return [(int if integral else float)(start + i * step) for i in range(count)]


def parse_set(spec: str) -> tuple[str, tuple[Any, ...]]:
    """``'PATH=VALUES'`` -> (PATH, values).

    >>> parse_set("workload.arrival.rate=0.1:0.3:0.1")
    ('workload.arrival.rate', (0.1, 0.2, 0.3))
    """
    v.instance("parse_set", "spec", spec, str, f"a string PATH=VALUES ({_EXAMPLE})")
    path, sep, text = spec.partition("=")
    path, text = path.strip(), text.strip()
    if not sep or not path:
        raise SweepError(f"--set {spec!r} must look like PATH=VALUES ({_EXAMPLE}).")
    _split(path)
    if not text:
        raise SweepError(f"--set {path}: has no values after '=' ({_EXAMPLE}).")
    if ":" in text:
        return path, tuple(_range(path, text))
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise SweepError(f"--set {path}: list {text!r} has an empty item.")
    return path, tuple(_scalar(t) for t in items)


def grid_points(sets: Sequence[str] | Mapping[str, Sequence[Any]]) -> list[Point]:
    """The Cartesian product of ``--set`` specs (or of a mapping path -> values),
    the first parameter varying slowest."""
    rule = "a list of PATH=VALUES strings or a mapping PATH -> values"
    specs = list(sets.items()) if isinstance(sets, Mapping) else [
        parse_set(s) for s in v.listed("grid_points", "sets", sets, rule)]
    if not specs:
        raise SweepError(f"A sweep needs at least one --set PATH=VALUES ({_EXAMPLE}).")
    seen: dict[tuple, str] = {}
    for path, values in specs:
        if not isinstance(path, str):
            raise SweepError(f"A sweep's parameter must be a PATH string ({_EXAMPLE}). "
                             f"Got {path!r}.")
        key = tuple(int(t) if isinstance(t, str) and t.isdigit() else t for t in _split(path))
        if key in seen:
            raise SweepError(f"--set {path}: the same parameter is set twice "
                             f"({seen[key]!r} and {path!r}).")
        seen[key] = path
        if not isinstance(values, (Sequence, np.ndarray)) or isinstance(values, str) \
                or not len(values):
            raise SweepError(f"--set {path}: needs a non-empty list of values. Got {values!r}.")
    total = math.prod(len(values) for _, values in specs)
    if total > MAX_POINTS:
        raise SweepError(f"The grid has {total} points; at most {MAX_POINTS}.")
    paths = [p for p, _ in specs]
    return [dict(zip(paths, combo)) for combo in itertools.product(*(vals for _, vals in specs))]


def _locate(data: Any, path: str) -> tuple[Any, str | int]:
    """The container holding ``path`` and its key there; an unknown path names the
    point it fails at and what exists there."""
    tokens, node, where = _split(path), data, []
    parent, key = None, None
    for token in tokens:
        at = _show(where)
        if isinstance(node, dict):
            if token not in node:
                keys = ", ".join(map(str, node)) or "none"
                raise SweepError(f"Unknown --set path {path!r}: {at} has no key {token!r}; "
                                 f"its keys are: {keys}.")
            key = token
        elif isinstance(node, list):
            index = token if isinstance(token, int) else int(token) if token.isdigit() else None
            if index is None or index >= len(node):
                rule = f"indices 0..{len(node) - 1}" if node else "no items"
                raise SweepError(f"Unknown --set path {path!r}: {at} is a list with {rule}. "
                                 f"Got {token!r}.")
            key = index
        else:
            raise SweepError(f"Unknown --set path {path!r}: {at} is a value ({node!r}) "
                             f"with no key {token!r}.")
        parent, node = node, node[key]
        where.append(key)
    return parent, key  # type: ignore[return-value]


def check_paths(data: Any, paths: Sequence[str]) -> None:
    """Raise SweepError for the first path that does not exist in ``data``."""
    for path in paths:
        _locate(data, path)


def apply_point(data: Any, point: Point) -> Any:
    """A deep copy of ``data`` with each path of ``point`` set; ``data`` is unchanged."""
    v.instance("apply_point", "point", point, Mapping, "a mapping PATH -> value")
    out = copy.deepcopy(data)
    for path, value in point.items():
        if not isinstance(path, str):
            raise SweepError(f"A sweep's parameter must be a PATH string ({_EXAMPLE}). "
                             f"Got {path!r}.")
        parent, key = _locate(out, path)
        parent[key] = value
    return out


def point_label(point: Point) -> str:
    return ", ".join(f"{p}={x}" for p, x in point.items())
