"""The whole early-exit flow on digits: build, train, calibrate, tabulate, save.

A trained model is a folder of three files that everything downstream reads:

- ``weights.safetensors``: the network (its zoo config in the metadata);
- ``exit_table.npz``: the held-out split's confidence, correctness and
  predictions at every exit, after temperature scaling;
- ``calibration.json``: per exit, the block it follows, its temperature,
  accuracy and ECE before and after scaling, plus the training settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .. import _validation as v
from .._atomic import write_text_atomic
from ..model import ExitTable
from ._confidence import MEASURES
from ._data import digits_splits
from ._network import EarlyExitNet
from ._table import CalibrationReport, calibrate
from ._train import TrainReport, collect_logits, train_exits
from ._weights import load, save
from ._zoo import ZOO, build

__all__ = ["TrainedExits", "train_digits", "save_trained", "load_trained", "DEFAULT_MODEL"]

#: The default zoo model: the talk's ResNet setting at a depth that trains on
#: the CPU in a few minutes.
DEFAULT_MODEL = "resnet32"
WEIGHTS, TABLE, CALIBRATION = "weights.safetensors", "exit_table.npz", "calibration.json"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class TrainedExits:
    """A trained, calibrated early-exit network and what was measured on it."""

    net: EarlyExitNet
    table: ExitTable
    summary: dict

    @property
    def exits(self) -> list[dict]:
        return self.summary["exits"]


def train_digits(model: str = DEFAULT_MODEL, *, width: int = 16, epochs: int = 10,
                 scheme: str = "joint", seed: int = 0, measure: str = "max_softmax",
                 progress: bool = True) -> TrainedExits:
    """Train a zoo model on scikit-learn's digits (32x32, one channel), fit a
    temperature per exit on the calibration split, and tabulate the test split."""
    if not isinstance(model, str) or model not in ZOO:
        raise v.fail("train_digits", "model", f"one of {sorted(ZOO)}", model)
    if measure not in MEASURES:  # before minutes of training, not after
        raise v.fail("train_digits", "measure", f"one of {list(MEASURES)}", measure)
    splits = digits_splits(size=32, channels=1, seed=seed)
    net = build(model, num_classes=splits.num_classes, in_channels=1, width=width)
    report = train_exits(net, splits.train, scheme=scheme, epochs=epochs, seed=seed,
                         progress=progress)
    calibration = calibrate(*collect_logits(net, splits.calibration),
                            *collect_logits(net, splits.test), measure=measure)
    return TrainedExits(net=net, table=calibration.table,
                        summary=_summary(model, net, report, calibration, splits))


def _summary(model: str, net: EarlyExitNet, report: TrainReport,
             calibration: CalibrationReport, splits) -> dict:  # noqa: ANN001
    names = net.block_names
    return {
        "model": model, "dataset": "digits (scikit-learn), 32x32",
        "splits": {k: len(getattr(splits, k)) for k in ("train", "calibration", "test")},
        "training": {"scheme": report.scheme, "epochs": len(report.history),
                     "seed": report.seed, "lr": report.lr, "wall_s": report.wall_s,
                     "loss": report.loss.tolist()},
        "measure": calibration.measure,
        "exits": [dict(row, block=names[net.exit_blocks[row["exit"]]])
                  for row in calibration.rows()],
    }


def save_trained(trained: TrainedExits, directory: str | Path) -> Path:
    """Write the three files into ``directory`` (created if needed)."""
    v.instance("save_trained", "trained", trained, TrainedExits,
               "a TrainedExits (from train_digits or load_trained)")
    folder = v.output_folder("save_trained", "directory",
                             v.path("save_trained", "directory", directory, kind="folder"))
    folder.mkdir(parents=True, exist_ok=True)
    save(trained.net, folder / WEIGHTS)
    trained.table.save(folder / TABLE)
    write_text_atomic(folder / CALIBRATION, json.dumps(trained.summary, indent=1) + "\n")
    return folder


def load_trained(directory: str | Path) -> TrainedExits:
    """Read a folder written by :func:`save_trained`."""
    folder = v.path("load_trained", "directory", directory, kind="folder")
    missing = [f for f in (WEIGHTS, TABLE, CALIBRATION) if not (folder / f).is_file()]
    if missing:
        raise v.fail("load_trained", "directory",
                     f"a folder holding {WEIGHTS}, {TABLE} and {CALIBRATION} "
                     f"(missing: {', '.join(missing)})", str(folder))
    try:
        summary = json.loads((folder / CALIBRATION).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise v.fail("load_trained", "directory", f"a readable {CALIBRATION} ({err})",
                     str(folder)) from None
    if not isinstance(summary, dict) or not isinstance(summary.get("exits"), list):
        raise v.fail("load_trained", "directory", f"a {CALIBRATION} holding a mapping with "
                     "a list 'exits' (as save_trained writes)", str(folder))
    net, table = load(folder / WEIGHTS), ExitTable.load(folder / TABLE)
    if table.n_exits != net.n_exits:  # the files of two trainings mixed
        raise v.fail("load_trained", "directory", f"an {TABLE} with the network's "
                     f"{net.n_exits} exits (it has {table.n_exits})", str(folder))
    return TrainedExits(net=net, table=table, summary=summary)
