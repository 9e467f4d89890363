"""Reading scenario files and service-law specs, with one clear message per bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from .. import _validation as v
from ..dists import ServiceLaw
from ..exceptions import InvalidParameterError
from ..model import System
from ._specs import FILE_NAMES, TAGS, UNION_FIELDS, UNION_MAPS, LawSpec, ScenarioSpec

__all__ = ["ScenarioError", "load_scenario", "parse_scenario", "law_from_spec"]

_LAW_ADAPTER: TypeAdapter = TypeAdapter(LawSpec)


class _Loader(yaml.SafeLoader):
    """YAML's safe loader with two traps removed: ``1e-3`` is a number (YAML
    1.1 wants a dot, ``1.0e-3``, and reads ``1e-3`` as text), and a key given
    twice in one mapping is an error (YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # merge keys (<<) may repeat what they merge; others are text
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(  # on a copy of SafeLoader's table, which stays as it is
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_yaml(text: str) -> Any:
    """YAML (or JSON) text as Python data, by :class:`_Loader`'s rules."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader: builds plain data only


class ScenarioError(InvalidParameterError):
    """A scenario file or spec breaks a rule; the message names where and why."""


def _is_tag(loc: tuple[Any, ...], i: int) -> bool:
    """Whether loc[i] is a union's tag (not a field of the file)."""
    if loc[i] not in TAGS:
        return False
    before = [x for x in loc[:i] if not isinstance(x, int)]
    return (not before or before[-1] in UNION_FIELDS
            or (len(before) > 1 and before[-2] in UNION_MAPS))


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for i, item in enumerate(loc):
        if isinstance(item, int):
            out += f"[{item}]"
        elif not _is_tag(loc, i):
            out += ("." if out else "") + str(item)
    return out or "(top level)"


def _domain_path(loc: tuple[Any, ...], err: object) -> str:
    """The path of a domain error raised while building the object at ``loc``."""
    nested = tuple(getattr(err, "path", ()))
    parameter = getattr(err, "parameter", None)
    inner = nested or ((parameter,) if parameter else ())
    # domain objects name fields as Python does; the file may spell them otherwise (a link's
    # source and target are 'from' and 'to'; a chain's source is 'source')
    full = loc + inner
    on_link = "links" in full
    return _path(tuple(x if not isinstance(x, str) or (x in ("source", "target") and not on_link)
                       else FILE_NAMES.get(x, x) for x in full))


def _describe(error: dict) -> str:
    """One pydantic error as 'field.path: rule. Got value.'"""
    where = _path(tuple(error["loc"]))
    kind, msg = error["type"], error["msg"]
    if kind == "value_error":  # our own domain message already names rule and value
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidParameterError):
            return f"{_domain_path(tuple(error['loc']), cause)}: {cause}"
        return f"{where}: {msg.removeprefix('Value error, ')}"
    if kind == "extra_forbidden":
        return f"{where}: is not a known field. Got {error['input']!r}."
    if kind == "missing":
        return f"{where}: is required but missing."
    return f"{where}: {msg}. Got {error['input']!r}."


def _from_validation(source: str, err: ValidationError) -> ScenarioError:
    errors = err.errors()
    extra = len(errors) - 1
    more = f" (and {extra} more problem{'s' if extra > 1 else ''})" if extra else ""
    return ScenarioError(f"{source}: {_describe(errors[0])}{more}")


def parse_scenario(data: object, source: str = "<scenario>", base: str | Path = ".") -> System:
    """Turn a parsed scenario mapping into a validated System (all or nothing).

    Files it references (a trace) are read relative to ``base``.
    """
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: (top level): must be a mapping of sections. "
                            f"Got {type(data).__name__}.")
    base = v.path("parse_scenario", "base", base, kind="folder")
    try:
        spec = ScenarioSpec.model_validate(data, context={"base": base})
    except ValidationError as err:
        raise _from_validation(source, err) from None
    try:
        return spec.build()
    except InvalidParameterError as err:
        raise ScenarioError(f"{source}: {_domain_path((), err)}: {err}") from None


def read_text(file: Path) -> str:
    """A UTF-8 file's text, or one ScenarioError line saying why it cannot be had."""
    try:
        return file.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(f"{file}: cannot be read: {err.strerror or err}.") from None
    except UnicodeDecodeError as err:
        raise ScenarioError(f"{file}: is not UTF-8 text: byte {err.start} cannot be decoded.") from None


def load_scenario(path: str | Path) -> System:
    """Read a YAML or JSON scenario file into a System."""
    file = v.path("load_scenario", "path", path)
    text = read_text(file)
    try:
        data = load_yaml(text)  # YAML is a superset of JSON
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{file}: is not valid YAML or JSON{line}: "
                            f"{getattr(err, 'problem', None) or err}.") from None
    return parse_scenario(data, str(file), base=file.parent)


def law_from_spec(spec: dict | str, source: str = "service") -> ServiceLaw:
    """A service law from its spec: a mapping, or its JSON text.

    >>> law_from_spec({"kind": "gamma", "shape": 4, "mean": 0.03}).scv
    0.25
    """
    if isinstance(spec, str):
        text = spec

        def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            keys = [key for key, _ in pairs]
            twice = [key for i, key in enumerate(keys) if key in keys[:i]]
            if twice:  # json keeps the last one silently, as YAML does
                raise ScenarioError(f"{source}: is not valid JSON: key {twice[0]!r} is given "
                                    f"twice. Got {text!r}.")
            return dict(pairs)

        try:
            spec = json.loads(spec, object_pairs_hook=unique)
        except json.JSONDecodeError as err:
            raise ScenarioError(f"{source}: is not valid JSON: {err.msg} at column {err.colno}. "
                                f"Got {spec!r}.") from None
    try:
        return _LAW_ADAPTER.validate_python(spec).build()
    except ValidationError as err:
        raise _from_validation(source, err) from None
