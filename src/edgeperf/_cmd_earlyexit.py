"""``edgeperf train-exits``, ``edgeperf exits`` and ``edgeperf profile``.

Kept out of cli.py: torch loads only when one of these commands runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["train_exits_command", "exits_command", "profile_command"]

_out = Console()


def _exit_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    for col in ("exit", "after block", "accuracy", "temperature", "ECE before", "ECE after"):
        table.add_column(col, justify="left" if col == "after block" else "right")
    for r in rows:
        table.add_row(str(r["exit"]), r["block"], f"{r['accuracy']:.4f}", f"{r['temperature']:.3g}",
                      f"{r['ece_before']:.4f}", f"{r['ece_after']:.4f}")
    return table


def train_exits_command(
    out: Annotated[Path, typer.Option(help="Folder for weights, exit table and calibration.")],
    model: Annotated[str, typer.Option(help="Zoo model: resnet29, resnet32, resnet44, resnet56, "
                                            "mobilenetv2, vgg28.")] = "resnet32",
    width: Annotated[int, typer.Option(help="Channels of the stem; the rest scales with it.")] = 16,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    scheme: Annotated[str, typer.Option(help="joint (all weights) or heads (frozen backbone).")]
        = "joint",
    seed: Annotated[int, typer.Option(help="Seed: splits, initial weights and batches.",
                                      min=0, max=2**32 - 1)] = 0,
    measure: Annotated[str, typer.Option(help="Confidence in the exit table: max_softmax, "
                                              "margin or entropy.")] = "max_softmax",
) -> None:
    """Train a zoo model's exits on scikit-learn's digits, calibrate them, tabulate them."""
    from . import _validation as v
    from .earlyexit import save_trained, train_digits

    v.output_folder("train-exits", "--out", out)  # before training, not after
    trained = train_digits(model, width=width, epochs=epochs, scheme=scheme, seed=seed,
                           measure=measure, progress=sys.stderr.isatty())
    folder = save_trained(trained, out)
    _out.print(_exit_table(trained.exits, f"{model} on digits — held-out split"))
    _out.print(f"wrote {folder}/weights.safetensors, exit_table.npz and calibration.json")


def exits_command(
    model_dir: Annotated[Path, typer.Argument(help="A folder written by train-exits.")],
    plot: Annotated[Path | None, typer.Option(help="Write a plot per exit to this PNG.")] = None,
    profile: Annotated[Path | None, typer.Option(
        help="A profile of the same model: adds the mean latency of each threshold.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Accuracy and exit rates of a common threshold at every exit, from the exit table."""
    from . import _validation as v
    from .earlyexit import load_trained
    from .earlyexit._curves import plot_exits, threshold_curve

    if plot is not None:
        v.plot_file("exits", "--plot", plot)
    trained = load_trained(model_dir)
    paths = None
    if profile is not None:
        from .profiling import load_profile
        paths = _path_latencies(load_profile(profile), trained)
    curve = threshold_curve(trained.table, path_latency_s=paths)
    if plot is not None:
        plot_exits(curve, plot, [f"exit {r['exit']} ({r['block']})" for r in trained.exits])
    if as_json:
        print(json.dumps({"exits": trained.exits, "curve": [
            {"threshold": float(t), "accuracy": float(a), "exit_shares": s.tolist(),
             "mean_latency_s": None if paths is None else float(curve.mean_latency_s[i])}
            for i, (t, a, s) in enumerate(zip(curve.thresholds, curve.accuracy, curve.shares))]}))
        return
    _out.print(_exit_table(trained.exits, f"{trained.summary['model']} — held-out split"))
    table = Table(title="a common threshold at every early exit")
    for col in ("threshold", "accuracy", "left at first exit", "left at final exit",
                *(["mean latency ms"] if paths is not None else [])):
        table.add_column(col, justify="right")
    for i in range(0, len(curve.thresholds), 10):
        cells = [f"{curve.thresholds[i]:.2f}", f"{curve.accuracy[i]:.4f}",
                 f"{curve.shares[i, 0]:.3f}", f"{curve.shares[i, -1]:.3f}"]
        if paths is not None:
            cells.append(f"{curve.mean_latency_s[i] * 1e3:.3f}")
        table.add_row(*cells)
    _out.print(table)
    if plot is not None:
        _out.print(f"plot written to {plot}")


def _path_latencies(profile, trained):  # noqa: ANN001, ANN202
    """Mean latency of each exit's path: its blocks and the heads it passes."""
    import numpy as np

    from .exceptions import InvalidParameterError

    blocks, profiled = list(trained.net.block_names), [b.name for b in profile.blocks]
    if profiled != blocks:  # another model's profile would give another model's latencies
        why = (f"it has {len(profiled)} blocks, the model {len(blocks)}"
               if len(profiled) != len(blocks) else
               f"its block {next(p for p, b in zip(profiled, blocks) if p != b)!r} is not the "
               "model's")
        raise InvalidParameterError(
            f"The profile {profile.name!r} is not of this model ({trained.summary['model']}): "
            f"{why}. Profile the model itself with edgeperf profile.")
    exit_blocks = [r["block"] for r in trained.exits]
    missing = [b for b in exit_blocks if b not in profile.exits]
    if missing:
        raise InvalidParameterError(f"The profile {profile.name!r} has no exit after "
                                    f"{missing}; it profiles exits after {list(profile.exits)}.")
    return np.array([profile.path_mean_s(b, earlier_heads=True) for b in exit_blocks])


def profile_command(
    out: Annotated[Path, typer.Option(help="Profile JSON file to write.")],
    model_dir: Annotated[Path | None, typer.Argument(
        help="A folder written by train-exits, profiled on this host.")] = None,
    ceed: Annotated[Path | None, typer.Option(
        help="Import CEED's profile folder instead (model_profile.json, system_profile.json).")]
        = None,
    repetitions: Annotated[int, typer.Option(help="Timed runs per block and head.")] = 200,
    threads: Annotated[int, typer.Option(help="torch threads while measuring.")] = 1,
) -> None:
    """Profile a model on this host (latency laws, FLOPs, bytes), or import CEED's."""
    from . import _validation as v
    from .exceptions import InvalidParameterError

    if (model_dir is None) == (ceed is None):
        raise InvalidParameterError("edgeperf profile: give a model folder or --ceed DIR (one).")
    v.output_file("profile", "--out", out)  # before measuring, not after
    if ceed is not None:
        from .profiling import import_ceed
        result = import_ceed(ceed)
    else:
        from .earlyexit import load_trained
        from .profiling import measure_profile
        result = measure_profile(load_trained(model_dir).net, repetitions=repetitions,
                                 threads=threads)
    result.save(out)
    _out.print(f"{result.name}: {len(result.blocks)} blocks, {len(result.exits)} exits; "
               f"total mean latency {sum(b.latency.mean for b in result.blocks) * 1e3:.3f} ms; "
               f"wrote {out}")
