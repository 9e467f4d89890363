"""A small trained early-exit model and scenarios around it, shared by the runtime tests.

Training takes a few seconds (resnet32 at width 4, one epoch); tests that need
it share one folder per session (see conftest.py's ``tiny_model`` fixture).
"""

from __future__ import annotations

from pathlib import Path

import psutil
import yaml

from edgeperf.earlyexit import save_trained, train_digits
from edgeperf.profiling import measure_profile


def make_model_dir(folder: Path) -> Path:
    """Train, calibrate and profile a tiny resnet32 into ``folder``
    (weights.safetensors, exit_table.npz, calibration.json, profile.json)."""
    trained = train_digits("resnet32", width=4, epochs=1, progress=False)
    save_trained(trained, folder)
    measure_profile(trained.net, repetitions=20, warmup=5).save(folder / "profile.json")
    return folder


def write_scenario(folder: Path, model_dir: Path, *, rate: float, devices: list[dict],
                   placement: dict[str, list[str]], links: list[dict] | None = None,
                   exits: dict[str, float] | None = None, name: str = "s.yaml") -> Path:
    """A scenario over the model in ``model_dir`` (its profile), Poisson at ``rate``."""
    data = {"workload": {"arrival": {"process": "poisson", "rate": rate}},
            "model": {"profile": str((model_dir / "profile.json").resolve()),
                      **({"exits": exits} if exits else {})},
            "devices": devices, "links": links or [], "placement": placement}
    file = folder / name
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    return file


def workers_left() -> list[str]:
    """The command lines of this process's children, less multiprocessing's
    resource tracker: that one serves the whole test session once any test has
    needed it, so it is not something a run left behind."""
    left = []
    for child in psutil.Process().children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except psutil.NoSuchProcess:  # it ended while we looked
            continue
        if "multiprocessing.resource_tracker" not in line:
            left.append(line)
    return left
