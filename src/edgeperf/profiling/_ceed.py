"""Importer of the per-layer profiles of the CEED project (imperial-qore, BSD-3-Clause).

A CEED profile folder holds ``model_profile.json`` (``dataset``,
``num_classes``, ``input_size``, ``early_exits_gates``) and
``system_profile.json``, measured on an edge device. What the files say, and
the mapping chosen here:

* ``layers_execution_time`` / ``layers_output_memory`` list 56 modules: the
  union of the 20 *backbone* layers (``backbone_*``, keys
  ``layer_<i>_<Module>_<k>``: a ResNet-50 for CIFAR-10 — stem conv, batch norm,
  ReLU, max pool, then 16 bottleneck blocks) and 9 exit *gates* of 4 modules
  each (``gate_*``, keys ``gate_<g>_layer_<L>_<Module>_<k>``: adaptive pool,
  dropout, linear, identity). The importer reads the structured ``backbone_*``
  and ``gate_*`` sections, since the flat ``layers_*`` ones lose which layer a
  gate follows.
* Blocks: one per backbone layer, in the order of ``i``, named ``<Module>_<k>``
  (e.g. ``ResidualBottleneck_1``).
* Exits: gate g follows backbone layer ``early_exits_gates[g]`` (the ``L`` in
  its keys, which must agree); its 4 modules form the block's exit head. The
  last gate follows the last layer (19): it is the final classifier.
* Units: times are seconds (the backbone means add up to 0.81 s against a
  whole-model ``execution_time`` mean of 0.80 s, and the path to gate g,
  ``execution_time_gate_<g>_layer_<L>``, agrees with the sum of its layers and
  gate), memory is bytes: each value is numel · 4 of the float32 activation
  plus a constant 747-byte envelope of the serialised tensor (64·32·32·4 + 747
  = 262891 for the stem). The importer keeps the file's byte counts, envelope
  included, as each block's ``output_bytes``.
* Laws: when a layer has log moments (``log_mean``, ``log_var``: the moments
  of log latency, which these files give) its law is the lognormal with those
  log moments — the maximum-likelihood lognormal, robust to the few slow
  first runs that inflate the arithmetic means (the stem's mean is 2.05 ms,
  its lognormal's 1.22 ms; with these laws every exit path's mean is within
  9 % of CEED's measured path time, against 21 % for the arithmetic means);
  otherwise the gamma matched on ``mean`` and ``var`` (deterministic when
  ``var`` is 0). A head's law is the lognormal matched on the summed means and
  variances of its modules' laws (they are tiny: under 0.1 % of the model).
* Statistics: ``mean`` and ``var`` of each :class:`LatencyStats` are the
  file's arithmetic ones (summed over a gate's modules); ``n`` is None (the
  files do not say); p50/p95/p99 are the fitted law's quantiles.
* FLOPs and parameter bytes are not in the files: None.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .. import _validation as v
from ..dists import Deterministic, Gamma, Lognormal, ServiceLaw
from ..exceptions import InvalidParameterError
from ..io._files import ScenarioError, _from_validation
from ._profile import BlockProfile, HeadProfile, LatencyStats, Profile

__all__ = ["import_ceed"]

_FILES = ("model_profile.json", "system_profile.json")
_LAYER_KEY = re.compile(r"^layer_(\d+)_(.+)$")
_GATE_KEY = re.compile(r"^gate_(\d+)_layer_(\d+)_(.+)$")
_LENIENT = ConfigDict(extra="ignore")


class _Moments(BaseModel):
    model_config = _LENIENT
    mean: float
    var: float
    log_mean: float | None = None
    log_var: float | None = None


class _ModelFile(BaseModel):
    model_config = _LENIENT
    dataset: str
    num_classes: int
    input_size: list[int]
    early_exits_gates: list[int]


class _SystemFile(BaseModel):
    model_config = _LENIENT
    backbone_execution_time: dict[str, _Moments]
    backbone_output_memory: dict[str, float]
    gate_execution_time: dict[str, _Moments]
    memory: dict[str, float] = {}


def _read(file: Path, schema: type[BaseModel]) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{file}: is missing (a CEED profile folder holds "
                            f"{' and '.join(_FILES)}).") from None
    except OSError as err:
        raise ScenarioError(f"{file}: cannot be read: {err.strerror or err}.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ScenarioError(f"{file}: is not valid JSON: {err.msg} at line {err.lineno} "
                            f"column {err.colno}.") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{file}: (top level): must be a mapping. Got {type(data).__name__}.")
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise _from_validation(str(file), err) from None


def _moment_law(m: _Moments) -> ServiceLaw:
    """Lognormal on the log moments when given, else gamma on mean and var."""
    if m.log_mean is not None and m.log_var is not None:
        if m.log_var <= 0.0:
            return Deterministic(math.exp(m.log_mean))
        return Lognormal(math.exp(m.log_mean + m.log_var / 2.0), math.expm1(m.log_var))
    if m.var <= 0.0:
        return Deterministic(m.mean)
    return Gamma(m.mean**2 / m.var, m.mean)


def _quantiles(law: ServiceLaw) -> tuple[float, float, float]:
    from scipy import stats  # lazily: scipy.stats takes half a second to import

    q = (0.50, 0.95, 0.99)
    if isinstance(law, Lognormal):
        sigma2 = math.log1p(law.scv)
        values = stats.lognorm.ppf(q, s=math.sqrt(sigma2), scale=law.mean * math.exp(-sigma2 / 2))
    elif isinstance(law, Gamma):
        values = stats.gamma.ppf(q, a=law.shape, scale=law.mean / law.shape)
    else:
        values = [law.mean] * 3
    return tuple(float(x) for x in values)  # type: ignore[return-value]


def _stats(file: Path, where: str, parts: list[_Moments]) -> LatencyStats:
    """Statistics of one layer (one part) or one gate (its modules, summed)."""
    try:
        laws = [_moment_law(m) for m in parts]
        if len(laws) == 1:
            law = laws[0]
        else:
            mean, var = sum(x.mean for x in laws), sum(x.variance for x in laws)
            law = Lognormal(mean, var / mean**2) if var > 0 else Deterministic(mean)
        p50, p95, p99 = _quantiles(law)
        return LatencyStats(n=None, mean=sum(m.mean for m in parts),
                            var=sum(max(m.var, 0.0) for m in parts),
                            p50=p50, p95=p95, p99=p99, law=law)
    except InvalidParameterError as err:
        raise ScenarioError(f"{file}: {where}: {err}") from None


def _layers(file: Path, system: _SystemFile) -> list[tuple[str, str]]:
    """(key, block name) of the backbone layers in order."""
    found: dict[int, tuple[str, str]] = {}
    for key in system.backbone_execution_time:
        match = _LAYER_KEY.match(key)
        if match is None or int(match[1]) in found:
            raise ScenarioError(f"{file}: backbone_execution_time: keys must be "
                                f"'layer_<i>_<name>' with distinct i. Got {key!r}.")
        found[int(match[1])] = (key, match[2])
    if sorted(found) != list(range(len(found))) or not found:
        raise ScenarioError(f"{file}: backbone_execution_time: layer indices must be 0..n-1 "
                            f"(n >= 1). Got {sorted(found)}.")
    layers = [found[i] for i in range(len(found))]
    names = [n for _, n in layers]
    if len(set(names)) < len(names):  # fall back on the keys, which are unique
        layers = [(k, k) for k, _ in layers]
    for key, _ in layers:
        if key not in system.backbone_output_memory:
            raise ScenarioError(f"{file}: backbone_output_memory.{key}: is required but missing.")
    return layers


def _gates(file: Path, system: _SystemFile, model: _ModelFile,
           layers: int) -> dict[int, list[_Moments]]:
    """Backbone layer index -> the moments of the modules of the gate after it."""
    gates = model.early_exits_gates
    if any(not 0 <= g < layers for g in gates) or any(b <= a for a, b in zip(gates, gates[1:])):
        raise ScenarioError(f"{file.parent / _FILES[0]}: early_exits_gates: must be increasing "
                            f"layer indices in 0..{layers - 1}. Got {gates}.")
    modules: dict[int, list[_Moments]] = {g: [] for g in range(len(gates))}
    for key, moments in system.gate_execution_time.items():
        match = _GATE_KEY.match(key)
        if match is None or int(match[1]) not in modules or int(match[2]) != gates[int(match[1])]:
            raise ScenarioError(f"{file}: gate_execution_time.{key}: must be named "
                                f"'gate_<g>_layer_<L>_<module>' with L = early_exits_gates[g] "
                                f"for g in 0..{len(gates) - 1} (early_exits_gates = {gates}).")
        modules[int(match[1])].append(moments)
    empty = [g for g, parts in modules.items() if not parts]
    if empty:
        raise ScenarioError(f"{file}: gate_execution_time: has no modules for gate(s) {empty}.")
    return {gates[g]: parts for g, parts in modules.items()}


def _bytes(file: Path, key: str, value: float) -> int:
    if not (math.isfinite(value) and value >= 0 and value == int(value)):
        raise ScenarioError(f"{file}: backbone_output_memory.{key}: must be a whole number of "
                            f"bytes >= 0. Got {value!r}.")
    return int(value)


def import_ceed(directory: str | Path, *, name: str | None = None) -> Profile:
    """The :class:`Profile` of a CEED profile folder (mapping in the module docstring).

    ``name`` defaults to ``ceed-<dataset>``. Missing files or fields, and
    inconsistent gates, raise one ScenarioError line naming file and field.
    """
    folder = v.path("import_ceed", "directory", directory, kind="folder")
    if name is not None:
        v.name_string("import_ceed", "name", name)
    model = _read(folder / _FILES[0], _ModelFile)
    file = folder / _FILES[1]
    system = _read(file, _SystemFile)
    layers = _layers(file, system)
    gates = _gates(file, system, model, len(layers))
    blocks = []
    for i, (key, block_name) in enumerate(layers):
        head = None
        if i in gates:
            where = f"gate_execution_time (gate after {key})"
            head = HeadProfile(latency=_stats(file, where, gates[i]))
        blocks.append(BlockProfile(
            name=block_name,
            latency=_stats(file, f"backbone_execution_time.{key}",
                           [system.backbone_execution_time[key]]),
            output_bytes=_bytes(file, key, system.backbone_output_memory[key]), exit=head))
    host = {"origin": "CEED system_profile.json (imperial-qore, BSD-3-Clause), "
                      "measured on an edge device", "dataset": model.dataset}
    if "model" in system.memory:
        host["model_bytes"] = str(int(system.memory["model"]))
    try:
        return Profile(name=f"ceed-{model.dataset}" if name is None else name,
                       source="CEED import", input_shape=tuple(model.input_size),
                       num_classes=model.num_classes, host=host, blocks=tuple(blocks))
    except InvalidParameterError as err:
        raise ScenarioError(f"{folder / _FILES[0]}: {err}") from None
