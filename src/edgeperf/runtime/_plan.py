"""Turn a scenario and a trained model folder into a Deployment on this host.

One worker per fragment of the chain, in chain order, each bound to a free
loopback port; a non-ideal link between consecutive devices becomes the
:class:`LinkStage` in front of the next hop, the chain's upload link the one
the load generator emulates. Ideal links (no bandwidth) carry no stage: the
runtime hands activations over directly, so an ideal link's ``latency_s`` is
not emulated (the twin's predictions include it; keep it small or give the
link a bandwidth). Device speeds above 1 and several servers per device
cannot be emulated by one worker on this host and are refused.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

from .. import _validation as v
from ..exceptions import UnsupportedModelError
from ..model import Chain, Link, System
from ._deployment import Deployment, ExitPolicySpec, LinkStage, WorkerSpec

__all__ = ["plan_deployment", "model_structure", "free_ports", "DEFAULT_THRESHOLD"]

#: The shared threshold of every non-final exit when none is given.
DEFAULT_THRESHOLD = 0.9
_WEIGHTS = "weights.safetensors"
_NEEDED = (_WEIGHTS, "exit_table.npz", "calibration.json")


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free on ``host`` now (bound to port 0, then released)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def model_structure(model_dir: str | Path) -> dict:
    """The network's ``block_names``, ``exit_blocks`` and ``input_shape``, read from
    the safetensors metadata of ``model_dir`` without loading torch."""
    folder = Path(model_dir)
    missing = [f for f in _NEEDED if not (folder / f).is_file()]
    if missing:
        raise v.fail("plan_deployment", "model_dir", f"a trained model folder holding "
                     f"{', '.join(_NEEDED)} (missing: {', '.join(missing)})", str(folder))
    try:
        with open(folder / _WEIGHTS, "rb") as f:
            size = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(min(size, 2**24)).decode("utf-8"))
        return json.loads(header["__metadata__"]["structure"])
    except (OSError, ValueError, KeyError, TypeError, struct.error) as err:
        raise v.fail("plan_deployment", "model_dir", f"a folder whose {_WEIGHTS} was written "
                     f"by edgeperf ({type(err).__name__}: {err})", str(folder)) from None


def _chain(system: System, chain: str | None) -> Chain:
    names = [c.name for c in system.chains]
    if chain is None:
        if len(names) != 1:
            raise v.fail("plan_deployment", "chain", f"one of {names} for a system with "
                         "several chains", None)
        return system.chains[0]
    if chain not in names:
        raise v.fail("plan_deployment", "chain", f"one of {names}", chain)
    return system.chain(chain)


def _check_model(chain: Chain, structure: dict, model_dir: Path) -> None:
    """The folder's network must be the scenario's model: same blocks, same exits."""
    names = list(structure.get("block_names", []))
    if names != list(chain.model.names):
        raise v.fail("plan_deployment", "model_dir", f"a model with the scenario's blocks "
                     f"{list(chain.model.names)} (its network has {names})", str(model_dir))
    exits = [b.name for b in chain.model.blocks if b.exit_probability is not None]
    exits.append(chain.model.blocks[-1].name)
    net_exits = [names[i] for i in structure.get("exit_blocks", [])]
    if net_exits != exits:
        raise v.fail("plan_deployment", "model_dir", f"a model with exits after {exits} "
                     f"(the scenario's; its network has {net_exits})", str(model_dir))


def _check_devices(system: System, chain: Chain) -> None:
    for fragment in chain.fragments:
        device = system.device(fragment.device)
        if device.speed > 1.0:
            raise UnsupportedModelError(
                f"The runtime emulates devices no faster than this host (speed <= 1): device "
                f"{device.name!r} has speed {device.speed:g}. Scale the scenario's speeds "
                "so that the fastest device is 1.")
        if device.servers > 1:
            raise UnsupportedModelError(
                f"The runtime runs one single-server worker per device: device "
                f"{device.name!r} has {device.servers} servers.")


def _stage(link: Link | None) -> LinkStage | None:
    if link is None or link.ideal:
        return None
    bandwidth, capacity = float(link.bandwidth_bps or 0), int(link.capacity or 0)
    return LinkStage(name=link.name, bandwidth_bps=bandwidth, capacity=capacity,
                     latency_s=link.latency_s)


def _policy(thresholds: object, n_exits: int, workers: int) -> ExitPolicySpec:
    """An ExitPolicySpec from a spec, one shared threshold, a vector, or None."""
    if isinstance(thresholds, ExitPolicySpec):
        policy = thresholds
    else:
        shared = DEFAULT_THRESHOLD if thresholds is None else thresholds
        if isinstance(shared, (int, float)):
            v.real("plan_deployment", "thresholds", shared, low=0.0)
            shared = [float(shared)] * (n_exits - 1)
        policy = ExitPolicySpec(thresholds=tuple(shared))  # type: ignore[arg-type]
    if policy.kind == "thresholds" and len(policy.thresholds) != n_exits - 1:
        raise v.fail("plan_deployment", "thresholds", f"one threshold per early exit "
                     f"({n_exits - 1})", len(policy.thresholds))
    if policy.kind == "online" and workers != 1:
        raise UnsupportedModelError(
            f"An online exit policy runs in the first worker, which must hold the whole "
            f"model; the chain is split over {workers} devices.")
    return policy


def plan_deployment(system: System, model_dir: str | Path, *, scenario_path: str | Path,
                    chain: str | None = None,
                    thresholds: float | Sequence[float] | ExitPolicySpec | None = None,
                    host: str = "127.0.0.1", ports: Sequence[int] | None = None,
                    threads: int | Mapping[str, int] = 1) -> Deployment:
    """The deployment of ``system``'s chain with the network in ``model_dir``.

    ``thresholds``: one threshold shared by every non-final exit (default
    0.9), one per non-final exit, or a full :class:`ExitPolicySpec` (online
    policies need the whole model on one device). ``ports``: one per worker
    then the collector's (default: free ports picked now). ``threads``: torch
    threads of every worker, or by device name (1 for the others).
    """
    owner = "plan_deployment"
    v.instance(owner, "system", system, System, "a System")
    v.name_string(owner, "host", host)
    scenario_file = v.path(owner, "scenario_path", scenario_path)
    target = _chain(system, chain)
    folder = v.path("plan_deployment", "model_dir", model_dir, kind="folder").resolve()
    _check_model(target, model_structure(folder), folder)
    _check_devices(system, target)
    fragments = target.fragments
    n_exits = 1 + sum(b.exit_probability is not None for b in target.model.blocks)
    policy = _policy(thresholds, n_exits, len(fragments))
    rule = (f"{len(fragments) + 1} distinct ports from 1 to 65535 (one per worker, then the "
            "collector's)")
    chosen = free_ports(len(fragments) + 1, host) if ports is None else v.listed(
        owner, "ports", ports, rule, lambda p: v.is_int(p) and 1 <= p <= 65535)
    if len(chosen) != len(fragments) + 1 or len(set(chosen)) != len(chosen):
        raise v.fail(owner, "ports", rule, chosen)
    binds = [f"tcp://{host}:{p}" for p in chosen]
    workers = []
    for i, fragment in enumerate(fragments):
        device = system.device(fragment.device)
        after = fragments[i + 1].device if i + 1 < len(fragments) else None
        workers.append(WorkerSpec(
            device=device.name, bind=binds[i], first=fragment.first, last=fragment.last,
            capacity=device.capacity, speed=device.speed,
            threads=threads.get(device.name, 1) if isinstance(threads, Mapping) else threads,
            next=binds[i + 1] if after else None,
            link=_stage(system.link_between(device.name, after)) if after else None))
    upload = _stage(system.link_between(*target.upload)) if target.upload else None
    return Deployment(scenario=str(scenario_file.resolve()), model_dir=str(folder),
                      chain=target.name, collector=binds[-1], workers=tuple(workers),
                      exit_policy=policy, upload=upload)
