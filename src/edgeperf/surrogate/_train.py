"""Training a learned surrogate: Adam, early stopping, one seed for everything.

The loss is the L1 distance between log predictions and log labels, on every
target the model predicts (two, or three with the end-to-end response time).
It is a relative error, like the MAPE we report, but symmetric (a MAPE loss
punishes over-prediction more than under-prediction, so it biases predictions
low) and it does not explode on the few chains with a tiny throughput ratio.
Early stopping watches the validation MAPE (mean over the targets) and
restores the best weights. The learning rate halves whenever the
validation MAPE has not improved for a third of the early-stopping patience:
at a fixed rate the validation error jumps by a tenth from epoch to epoch, so
the best epoch is partly luck; decaying the rate settles it.

Training runs on one intra-op thread by default: the batches are small, so a
second thread gains about 10% on an idle 2-core machine, but when another
process competes for the cores, OpenMP's waiting threads slow training down
more than tenfold (measured: 31 s against 2.3 s for the same run).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from .. import _validation as v
from .._torch_state import torch_threads
from ._domain import Domain
from ._graph import DeploymentGraph, collate
from ._models import SurrogateModel

__all__ = ["TrainReport", "train", "mape"]

_FLOOR = 1e-4  # smallest throughput ratio the log loss looks at


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainReport:
    """What a training run did: per-epoch losses and validation MAPE (percent),
    the best epoch (its weights are the model's), time and speed."""

    epochs: int
    best_epoch: int
    stopped_early: bool
    train_loss: tuple[float, ...]
    val_mape: tuple[dict[str, float], ...]
    best_val_mape: dict[str, float]
    seconds: float
    graphs_per_second: float
    train_graphs: int
    val_graphs: int
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NAMES = ("tput_ratio", "response_time", "response_time_e2e")


def mape(pred: object, true: object) -> dict[str, float]:
    """Mean absolute percentage error per target (columns tput_ratio, response_time
    and, when there are three, response_time_e2e) and their mean, in percent."""
    p, t = (v.array("mape", name, x, "an array [n, 2] or [n, 3] of numbers")
            for name, x in (("pred", pred), ("true", true)))
    if p.ndim != 2 or p.shape[1] not in (2, 3) or p.shape != t.shape or not len(p):
        raise v.fail("mape", "pred", f"an array [n >= 1, 2] or [n >= 1, 3] shaped like 'true' "
                     f"{t.shape}", p.shape)
    if not np.all(np.isfinite(p)):
        raise v.fail("mape", "pred", "finite values", float(p[~np.isfinite(p)][0]))
    if not np.all((t > 0) & np.isfinite(t)):
        raise v.fail("mape", "true", "finite positive values",
                     float(t[~((t > 0) & np.isfinite(t))][0]))
    return _mape(p, t)


def _mape(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """:func:`mape` unchecked: a diverging model's NaN predictions give NaN, which
    training reads as a failed epoch."""
    err = np.mean(np.abs(pred - true) / true, axis=0) * 100.0
    return {**{name: float(e) for name, e in zip(_NAMES, err)}, "mean": float(err.mean())}


def _loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    target = target[:, :pred.shape[1]]  # a model without the end-to-end target ignores it
    return (pred.clamp_min(_FLOOR).log() - target.clamp_min(_FLOOR).log()).abs().mean()


def _graphs(name: str, graphs: Sequence[DeploymentGraph], end_to_end: bool
            ) -> list[DeploymentGraph]:
    items = list(graphs) if isinstance(graphs, Sequence) else []
    if not items or not all(isinstance(g, DeploymentGraph) and g.target is not None
                            for g in items):
        raise v.fail("train", name, "a non-empty list of DeploymentGraph with labels "
                     "(encode(system, labels))", type(graphs).__name__)
    unknown = sum(bool(g.target[:, 2].isnan().any()) for g in items  # type: ignore[index]
                  ) if end_to_end else 0
    if unknown:
        raise v.fail("train", name, "deployments labelled with 'response_time_e2e' for a model "
                     "with end_to_end=True (ChainNet's published data has no such label)",
                     f"{unknown} of {len(items)} without it")
    return items


def _evaluate(model: SurrogateModel, batch: DeploymentGraph) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        pred = model(batch)
    model.train()
    true = batch.target[:, :pred.shape[1]]  # type: ignore[index]
    return _mape(pred.double().numpy(), true.double().numpy())


def _epoch(model: SurrogateModel, graphs: list[DeploymentGraph], optimizer: torch.optim.Optimizer,
           batch_size: int, rng: np.random.Generator) -> float:
    order = rng.permutation(len(graphs))
    total = 0.0
    for start in range(0, len(graphs), batch_size):
        batch = collate([graphs[i] for i in order[start:start + batch_size]])
        optimizer.zero_grad()
        loss = _loss(model(batch), batch.target)  # type: ignore[arg-type]
        loss.backward()
        optimizer.step()
        total += loss.item() * batch.num_graphs
    return total / len(graphs)


def _check(model: object, epochs: int, lr: float, batch_size: int, patience: int,
           seed: int, threads: int) -> None:
    if not isinstance(model, SurrogateModel):
        raise v.fail("train", "model", "a learned surrogate (ChainNetModel, GATModel, GCNModel, "
                     "MLPModel); AnalyticModel needs no training", type(model).__name__)
    v.integer("train", "epochs", epochs, low=1)
    v.step_size("train", "lr", lr)
    v.integer("train", "batch_size", batch_size, low=1)
    v.integer("train", "patience", patience, low=1)
    v.seed("train", "seed", seed)
    v.cores("train", "threads", threads)


def train(model: SurrogateModel, train_graphs: Sequence[DeploymentGraph],
          val_graphs: Sequence[DeploymentGraph], *, epochs: int = 100, lr: float = 1e-3,
          batch_size: int = 64, patience: int = 10, seed: int = 0,
          progress: bool = True, threads: int = 1) -> TrainReport:
    """Train ``model`` in place; it ends with its best-validation weights and fitted.

    A model not fitted yet first takes its input normalisation from
    ``train_graphs``; a fitted (loaded) one keeps its own, so training goes on.
    The model's ``domain`` becomes (or, training on, grows to hold) the ranges
    of ``train_graphs`` and ``val_graphs`` (:class:`Domain`).
    ``threads`` is torch's intra-op thread count while training (restored after).
    If no epoch ends with a finite validation MAPE (``lr`` too high: training
    diverged), the model gets its weights back and an InvalidParameterError
    names ``lr``.
    """
    _check(model, epochs, lr, batch_size, patience, seed, threads)
    train_set = _graphs("train_graphs", train_graphs, model.end_to_end)
    val_batch = collate(_graphs("val_graphs", val_graphs, model.end_to_end))
    before = {k: t.clone() for k, t in model.state_dict().items()}
    pooled = collate(train_set)  # for the normalisation and the domain
    if not bool(model.fitted):
        model.fit_normalization(pooled)
    rng = np.random.default_rng(seed)
    config = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "patience": patience,
              "seed": seed, "loss": "l1-log", "lr_patience": max(patience // 3, 1)}
    with torch.random.fork_rng(), torch_threads(threads):
        torch.manual_seed(seed)
        history = _run(model, train_set, val_batch, config, rng, progress)
    if history is None:  # diverged: no epoch to restore, so the model gets its old weights back
        model.load_state_dict(before)
        raise v.fail("train", "lr", "small enough for training to converge (the validation "
                     "MAPE was not finite after any epoch; the model keeps the weights it had)",
                     lr)
    model.fitted.fill_(True)
    seen = Domain.of(pooled).union(Domain.of(val_batch))
    model.domain = seen if model.domain is None else model.domain.union(seen)
    report = TrainReport(train_graphs=len(train_set), val_graphs=val_batch.num_graphs,
                         config=config, **history)
    model.training_report = report.to_dict()
    return report


def _run(model: SurrogateModel, train_set: list[DeploymentGraph], val_batch: DeploymentGraph,
         config: dict[str, Any], rng: np.random.Generator, progress: bool
         ) -> dict[str, Any] | None:
    """The epoch loop with early stopping; restores the best weights. None when no
    epoch had a finite validation MAPE (training diverged)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=0.5, patience=config["lr_patience"])
    losses, scores = [], []
    best, best_epoch, best_state = math.inf, 0, None
    start = time.perf_counter()
    model.train()
    with _Bar(progress, config["epochs"]) as bar:
        for epoch in range(1, config["epochs"] + 1):
            losses.append(_epoch(model, train_set, optimizer, config["batch_size"], rng))
            scores.append(_evaluate(model, val_batch))
            schedule.step(scores[-1]["mean"])
            if scores[-1]["mean"] < best:
                best, best_epoch = scores[-1]["mean"], epoch
                best_state = {k: t.clone() for k, t in model.state_dict().items()}
            bar.advance(f"loss {losses[-1]:.4f}  val MAPE {scores[-1]['mean']:.2f}% "
                        f"(best {best:.2f}% @ {best_epoch})")
            if epoch - best_epoch >= config["patience"]:
                break
    seconds = time.perf_counter() - start
    if best_state is None:
        return None
    model.load_state_dict(best_state)
    model.eval()
    return {"epochs": len(losses), "best_epoch": best_epoch,
            "stopped_early": len(losses) < config["epochs"], "train_loss": tuple(losses),
            "val_mape": tuple(scores), "best_val_mape": scores[best_epoch - 1],
            "seconds": seconds, "graphs_per_second": len(train_set) * len(losses) / seconds}


class _Bar:
    """A rich progress bar over epochs, or nothing when ``enabled`` is False."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
            from rich.progress import TimeElapsedColumn

            self._progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("{task.description}"))
            self._task = self._progress.add_task("", total=total)

    def __enter__(self) -> _Bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=text)
