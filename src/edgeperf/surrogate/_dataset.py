"""Training data of the learned twin: deployments with per-chain labels, in one ``.npz`` file.

A :class:`Sample` is a multi-chain scenario mapping (what
:func:`edgeperf.io.parse_scenario` reads) with, per chain in the scenario's
chain order, the labels ``tput_ratio`` (completed / generated = 1 - end-to-end
loss), ``response_time`` (ChainNet's label: the sum over the chain's path of
each visited device's mean response time for that chain's jobs; link stations
are not devices and are left out), ``response_time_e2e`` (mean over completed
jobs, links and exits included) and ``throughput`` (completed jobs per second),
plus ``device_loss``: per device name, the share of the jobs offered to it (all
chains) that found it full. The attribute names match
:class:`edgeperf.io.ChainNetSample`, so the published data and ours feed the
same code.

File schema (version 1), NumPy ``.npz`` readable with ``allow_pickle=False``;
a chain row is one (sample, chain) pair, rows in sample then chain order:

=====================  =======  =========================================================
array                  dtype    content
=====================  =======  =========================================================
``meta``               uint8    UTF-8 JSON object: ``format`` ("edgeperf-surrogate-
                                dataset"), ``version`` (1) and the generator's meta
                                (seed, regime, generator version, jobs, replications, ...)
``scenario_text``      uint8    the scenarios as UTF-8 JSON texts, one after the other
``scenario_offsets``   int64    [samples + 1]: sample s is ``text[off[s]:off[s + 1]]``
``chain_sample``       int64    [chain rows]: the sample each row belongs to
``tput_ratio``, ...    float64  [chain rows]: one array per label (NaN: not known)
``device_sample``      int64    [device rows]: the sample of each device-loss entry
``device_index``       int64    [device rows]: position in that scenario's ``devices``
``device_loss``        float64  [device rows]: the loss share at that device
=====================  =======  =========================================================

Floats are stored as float64 and the scenarios as JSON (``repr`` floats), so a
save / load round trip is exact for JSON-compatible mappings.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _validation as v
from .._atomic import atomic_path
from .._npz import NotNpzError, load_npz

__all__ = ["Sample", "Dataset", "LABELS", "save_dataset", "load_dataset", "from_chainnet"]

#: The per-chain labels, in file order.
LABELS = ("tput_ratio", "response_time", "response_time_e2e", "throughput")
FORMAT, VERSION = "edgeperf-surrogate-dataset", 1
_ARRAYS = ("meta", "scenario_text", "scenario_offsets", "chain_sample", *LABELS,
           "device_sample", "device_index", "device_loss")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One labelled deployment: ``labels[j]`` belongs to ``scenario["chains"][j]``."""

    scenario: dict[str, Any]
    labels: tuple[dict[str, float], ...]
    device_loss: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        v.instance("Sample", "scenario", self.scenario, Mapping,
                   "a scenario mapping (devices, links, chains)")
        chains = self.scenario.get("chains")
        rule = "one label mapping per entry of scenario['chains']"
        labels = v.listed("Sample", "labels", self.labels, rule)
        if not isinstance(chains, list) or len(chains) != len(labels):
            raise v.fail("Sample", "labels", rule, len(labels))
        for label in labels:
            if not isinstance(label, Mapping) or set(label) != set(LABELS):
                raise v.fail("Sample", "labels", f"mappings with the keys {list(LABELS)}",
                             sorted(label) if isinstance(label, Mapping) else label)
            bad = [k for k, x in label.items() if not v.is_real(x) or x < 0]  # NaN: no label
            if bad:
                raise v.fail("Sample", "labels", "numbers >= 0 (NaN where there is none)",
                             {bad[0]: label[bad[0]]})
        if not isinstance(self.device_loss, Mapping) or not all(
                isinstance(k, str) and v.is_real(x) for k, x in self.device_loss.items()):
            raise v.fail("Sample", "device_loss", "a mapping device name -> loss ratio",
                         v.brief(self.device_loss))


@dataclass(frozen=True, slots=True, kw_only=True)
class Dataset:
    """Samples and how they were made (``meta``: a JSON-compatible mapping)."""

    samples: tuple[Sample, ...]
    meta: dict[str, Any]


def _text(parts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 texts packed into one uint8 array and int64 offsets."""
    encoded = [p.encode("utf-8") for p in parts]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    return np.frombuffer(b"".join(encoded), np.uint8), offsets


def _device_rows(samples: Sequence[Sample]) -> tuple[list[int], list[int], list[float]]:
    rows: tuple[list[int], list[int], list[float]] = ([], [], [])
    for s, sample in enumerate(samples):
        names = [d["name"] for d in sample.scenario["devices"]]
        for name, loss in sample.device_loss.items():
            if name not in names:
                raise v.fail("save_dataset", "samples", f"device_loss keys naming devices of "
                             f"their scenario (sample {s}: {names})", name)
            rows[0].append(s)
            rows[1].append(names.index(name))
            rows[2].append(loss)
    return rows


def _json(value: object, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise v.fail("save_dataset", what, "JSON-compatible (plain numbers, text, lists and "
                     "mappings; no NaN)", f"{type(err).__name__}: {err}") from None


def _arrays(samples: Sequence[Sample], meta: Mapping[str, Any]) -> dict[str, np.ndarray]:
    header = {**meta, "format": FORMAT, "version": VERSION}
    text, offsets = _text([_json(s.scenario, "samples") for s in samples])
    chain_sample = [s for s, sample in enumerate(samples) for _ in sample.labels]
    labels = {k: np.array([lab[k] for sample in samples for lab in sample.labels], np.float64)
              for k in LABELS}
    dev_sample, dev_index, dev_loss = _device_rows(samples)
    return {"meta": np.frombuffer(_json(header, "meta").encode("utf-8"), np.uint8),
            "scenario_text": text, "scenario_offsets": offsets,
            "chain_sample": np.array(chain_sample, np.int64), **labels,
            "device_sample": np.array(dev_sample, np.int64),
            "device_index": np.array(dev_index, np.int64),
            "device_loss": np.array(dev_loss, np.float64)}


def save_dataset(samples: Sequence[Sample], path: str | Path, *,
                 meta: Mapping[str, Any]) -> Path:
    """Write ``samples`` and ``meta`` to ``path`` (the schema above); the file appears
    whole or not at all."""
    rule = "a sequence of Sample"
    samples = v.listed("save_dataset", "samples", samples, rule)
    strays = [type(s).__name__ for s in samples if not isinstance(s, Sample)]
    if strays:
        raise v.fail("save_dataset", "samples", rule, f"a list holding {strays[0]}")
    target = v.path("save_dataset", "path", path)
    v.instance("save_dataset", "meta", meta, Mapping, "a JSON-compatible mapping")
    arrays = _arrays(samples, meta)
    with atomic_path(target) as tmp, tmp.open("wb") as f:  # a file: savez adds no suffix
        np.savez_compressed(f, **arrays)
    return target


def _bad(path: Path, why: str) -> Exception:
    return v.fail("load_dataset", "path", f"an edgeperf surrogate data set (.npz, {FORMAT} "
                  f"version {VERSION}): {why}", str(path))


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        with load_npz(path) as npz:
            arrays = {a: npz[a] for a in _ARRAYS if a in npz.files}
    except NotNpzError:
        raise _bad(path, "it is not an .npz archive") from None
    except (EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise _bad(path, f"it cannot be read ({' '.join(str(err).split())[:200]})") from None
    missing = [a for a in _ARRAYS if a not in arrays]
    if missing:
        raise _bad(path, f"the arrays {missing} are missing")
    return arrays


def _meta(data: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    try:
        header = json.loads(data["meta"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad(path, "its meta is not JSON text") from None
    if not isinstance(header, dict) or (header.get("format"), header.get("version")) != (
            FORMAT, VERSION):
        raise _bad(path, "its meta names another format or version")
    return {k: x for k, x in header.items() if k not in ("format", "version")}


def _samples(data: dict[str, np.ndarray]) -> list[Sample]:
    text, off = data["scenario_text"].tobytes(), data["scenario_offsets"]
    scenarios = [json.loads(text[off[s]:off[s + 1]].decode("utf-8")) for s in range(len(off) - 1)]
    labels: list[list[dict[str, float]]] = [[] for _ in scenarios]
    for row, s in enumerate(data["chain_sample"]):
        labels[s].append({k: float(data[k][row]) for k in LABELS})
    losses: list[dict[str, float]] = [{} for _ in scenarios]
    for s, d, loss in zip(data["device_sample"], data["device_index"], data["device_loss"]):
        losses[s][scenarios[s]["devices"][d]["name"]] = float(loss)
    return [Sample(scenario=sc, labels=tuple(lab), device_loss=dl)
            for sc, lab, dl in zip(scenarios, labels, losses)]


def load_dataset(path: str | Path) -> Dataset:
    """Read a file written by :func:`save_dataset` (no pickle involved)."""
    source = v.path("load_dataset", "path", path)
    data = _read(source)
    meta = _meta(data, source)
    try:
        samples = _samples(data)
    except (IndexError, KeyError, TypeError, UnicodeDecodeError, ValueError) as err:
        raise _bad(source, f"its arrays disagree ({type(err).__name__}: {err})") from None
    return Dataset(samples=tuple(samples), meta=meta)


def from_chainnet(directory: str | Path, samples: int | None = None) -> list[Sample]:
    """The published ChainNet deployments as samples: their labels, with
    ``response_time_e2e`` NaN and ``device_loss`` empty (ChainNet gives neither)."""
    from ..io import read_chainnet

    return [Sample(scenario=s.scenario,
                   labels=tuple({**lab, "response_time_e2e": math.nan} for lab in s.labels))
            for s in read_chainnet(directory, samples)]
