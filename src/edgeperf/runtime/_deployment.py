"""The deployment file: what every runtime process reads (see docs/background/runtime.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import _validation as v
from .._atomic import write_text_atomic
from ..io._files import ScenarioError, read_text

__all__ = ["LinkStage", "WorkerSpec", "ExitPolicySpec", "Deployment", "load_deployment",
           "deployment_from_dict",
           "FORMAT", "VERSION", "MAX_HEADER_BYTES"]

FORMAT, VERSION = "edgeperf-deployment", 1
#: The largest header a worker reads; anything longer is malformed.
MAX_HEADER_BYTES = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkStage:
    """An emulated link in front of a hop: a FIFO of ``capacity`` messages (the
    one transmitting included), ``bytes * 8 / bandwidth_bps`` each, then
    ``latency_s`` of delay that queues nothing."""

    name: str
    bandwidth_bps: float
    capacity: int
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        v.name_string("LinkStage", "name", self.name)
        v.positive("LinkStage", "bandwidth_bps", self.bandwidth_bps)
        v.integer("LinkStage", "capacity", self.capacity, low=1)
        v.non_negative("LinkStage", "latency_s", self.latency_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """One device's worker: blocks ``first..last`` of the model, a queue of
    ``capacity`` jobs (the one in service included), ``speed`` <= 1 relative to
    this host, ``threads`` torch threads; its output goes to ``next`` (None:
    the last fragment, results go to the collector) through ``link`` (None: an
    ideal link, or none)."""

    device: str
    bind: str
    first: int
    last: int
    capacity: int
    speed: float = 1.0
    threads: int = 1
    next: str | None = None
    link: LinkStage | None = None
    curve_server_key: str | None = None   # path of this worker's secret key (z85 text)
    curve_clients: str | None = None      # folder of authorised client public keys

    def __post_init__(self) -> None:
        owner = "WorkerSpec"
        v.name_string(owner, "device", self.device)
        v.name_string(owner, "bind", self.bind)
        v.integer(owner, "first", self.first, low=0)
        v.integer(owner, "last", self.last, low=self.first)
        v.integer(owner, "capacity", self.capacity, low=1)
        v.real(owner, "speed", self.speed, low=0.0, high=1.0, low_open=True)
        v.integer(owner, "threads", self.threads, low=1)
        if (self.curve_server_key is None) != (self.curve_clients is None):
            raise v.fail(owner, "curve_clients", "set together with curve_server_key",
                         self.curve_clients)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitPolicySpec:
    """How exits are decided: ``thresholds`` (one per non-final exit, on the
    calibrated confidence of each head), or ``online`` (a scheduler's online
    policy by name, run in the first worker, which must hold the whole model),
    with its ``loss_target`` and ``options``."""

    kind: str = "thresholds"
    thresholds: tuple[float, ...] = ()
    policy: str | None = None
    loss_target: float = 0.01
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("thresholds", "online"):
            raise v.fail("ExitPolicySpec", "kind", "one of 'thresholds', 'online'", self.kind)
        if self.kind == "online" and not self.policy:
            raise v.fail("ExitPolicySpec", "policy", "a policy name for kind 'online'",
                         self.policy)
        if self.policy is not None:
            v.name_string("ExitPolicySpec", "policy", self.policy)
        rule = "confidence thresholds >= 0, one per early exit (above 1: never leave there)"
        thresholds = v.listed("ExitPolicySpec", "thresholds", self.thresholds, rule)
        object.__setattr__(self, "thresholds", tuple(
            v.real("ExitPolicySpec", "thresholds", t, low=0.0) for t in thresholds))
        v.probability("ExitPolicySpec", "loss_target", self.loss_target)
        v.instance("ExitPolicySpec", "options", self.options, Mapping,
                   "a mapping of the policy's options")


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    """Every process of a run reads this: the scenario and model, where the
    collector listens, the exit policy, the upload link (inputs cross it
    before the first worker, emulated by the load generator) and the workers
    in chain order."""

    scenario: str
    model_dir: str
    chain: str
    collector: str
    workers: tuple[WorkerSpec, ...]
    exit_policy: ExitPolicySpec = field(default_factory=ExitPolicySpec)
    upload: LinkStage | None = None
    heartbeat_s: float = 0.2
    max_message_bytes: int = 16 * 2**20

    def __post_init__(self) -> None:
        owner = "Deployment"
        for name in ("scenario", "model_dir", "chain", "collector"):
            v.name_string(owner, name, getattr(self, name))
        workers = tuple(self.workers)
        if not workers or not all(isinstance(w, WorkerSpec) for w in workers):
            raise v.fail(owner, "workers", "a non-empty list of WorkerSpec", self.workers)
        names = [w.device for w in workers]
        if len(set(names)) != len(names):
            raise v.fail(owner, "workers", "one worker per device", names)
        object.__setattr__(self, "workers", workers)
        v.positive(owner, "heartbeat_s", self.heartbeat_s)
        v.integer(owner, "max_message_bytes", self.max_message_bytes, low=1)

    def worker(self, device: str) -> WorkerSpec:
        for w in self.workers:
            if w.device == device:
                return w
        raise v.fail("Deployment.worker", "device", f"one of {[w.device for w in self.workers]}",
                     device)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        path = v.output_file("Deployment.save", "path", path)
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")


def deployment_from_dict(data: dict[str, Any], source: str = "<deployment>") -> Deployment:
    """A Deployment from its JSON mapping; a bad one raises one ScenarioError line."""
    try:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not an {FORMAT} version {VERSION} file")
        body = {k: x for k, x in data.items() if k not in ("format", "version")}
        link = body.get("upload")
        body["upload"] = None if link is None else LinkStage(**link)
        body["exit_policy"] = ExitPolicySpec(**body.get("exit_policy", {}))
        body["workers"] = tuple(
            WorkerSpec(**dict(w, link=None if w.get("link") is None else LinkStage(**w["link"])))
            for w in body["workers"])
        return Deployment(**body)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        why = f"missing {err}" if isinstance(err, KeyError) else str(err)
        raise ScenarioError(f"{source}: is not a deployment as plan_deployment writes it "
                            f"({why}).") from None


def load_deployment(path: str | Path) -> Deployment:
    file = v.path("load_deployment", "path", path)
    try:
        data = json.loads(read_text(file))
    except json.JSONDecodeError as err:
        raise ScenarioError(f"{file}: is not valid JSON: {err.msg} at line {err.lineno}.") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{file}: must be a mapping (an {FORMAT} file).")
    return deployment_from_dict(data, str(file))
