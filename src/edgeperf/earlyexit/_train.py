"""Training and evaluating the exits of an early-exit network.

Two schemes (``train_exits(scheme=...)``):

* ``"joint"`` trains every parameter on the weighted mean of the exits'
  cross-entropies, ``sum_e w_e CE(logits_e, y) / sum_e w_e``. The default
  weights are **equal** (1 for every exit): on small data sets such as digits
  the early heads then learn as fast as the final one, and the shared features
  that early exits pull towards discriminative ones also help the last exit
  (the deep-supervision effect). Pass ``exit_weights`` to favour deep exits.
* ``"heads"`` freezes the backbone (every parameter outside
  ``head_parameters()`` gets ``requires_grad=False`` and every module outside
  ``net.heads`` stays in eval mode, so batch-norm statistics do not move) and
  trains the heads only, on the same weighted loss. The backbone comes out bit
  for bit as it went in; the ``requires_grad`` flags are restored at the end.

**Optimiser.** AdamW (decoupled weight decay) with a cosine learning-rate
decay from ``lr`` to 0 over all steps, ``lr=2e-3`` and ``weight_decay=5e-4``
by default. Adam-type steps need no per-model tuning of the step size and
reach high digits accuracy in a handful of epochs; the cosine decay makes the
last epochs settle, so a short run ends close to the accuracy of a long one.

**Determinism.** Inside the call the global torch RNG is forked (the caller's
RNG state is untouched afterwards) and seeded with ``seed``, shuffling uses a
``torch.Generator`` seeded with ``seed``, the DataLoader runs in the calling
process, and ``torch.use_deterministic_algorithms(True, warn_only=True)`` is
on (restored afterwards). On CPU, the same seed, data and thread count give
the same weights bit for bit.

The network contract (``EarlyExitNet``): ``forward(x)`` returns the logits
[B, num_classes] of every exit, first to last; ``n_exits``, ``num_classes``,
``input_shape`` (C, H, W), ``head_parameters()``, ``backbone_parameters()``,
``heads`` (a module holding the exit heads).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .._torch_state import torch_threads
from .._validation import cores, fail, integer, non_negative, step_size
from .._validation import seed as v_seed
from ._data import Shown, as_dataset, check_labels

__all__ = ["SCHEMES", "EpochRecord", "TrainReport", "train_exits", "evaluate_exits",
           "collect_logits"]

#: The training schemes of ``train_exits``.
SCHEMES = ("joint", "heads")

_NET_ATTRS = ("n_exits", "num_classes", "input_shape", "head_parameters", "heads")


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochRecord:
    """What one epoch of ``train_exits`` measured.

    ``loss`` is the mean weighted loss over the epoch's training samples;
    ``train_accuracy`` the accuracy of every exit on those samples, counted on
    the fly while the weights moved; ``validation_accuracy`` the accuracy of
    every exit on the validation set after the epoch (None without one).
    """

    epoch: int
    loss: float
    train_accuracy: tuple[float, ...]
    validation_accuracy: tuple[float, ...] | None
    wall_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainReport:
    """The settings and per-epoch history of one ``train_exits`` run."""

    scheme: str
    exit_weights: tuple[float, ...]
    seed: int
    lr: float
    weight_decay: float
    batch_size: int
    history: tuple[EpochRecord, ...]

    @property
    def loss(self) -> np.ndarray:
        """Mean training loss per epoch, shape [epochs]."""
        return np.array([r.loss for r in self.history])

    @property
    def train_accuracy(self) -> np.ndarray:
        """Training accuracy per epoch and exit, shape [epochs, exits]."""
        return np.array([r.train_accuracy for r in self.history])

    @property
    def validation_accuracy(self) -> np.ndarray | None:
        """Validation accuracy per epoch and exit, [epochs, exits], or None."""
        if self.history[0].validation_accuracy is None:
            return None
        return np.array([r.validation_accuracy for r in self.history])

    @property
    def wall_s(self) -> float:
        """Total training time in seconds (validation included)."""
        return float(sum(r.wall_s for r in self.history))


def train_exits(net: nn.Module, train: object, *, scheme: str = "joint", epochs: int = 10,
                batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 5e-4,
                exit_weights: object = None, validation: object = None, seed: int = 0,
                progress: bool = True, device: str | torch.device = "cpu",
                threads: int | None = None) -> TrainReport:
    """Train the exits of ``net`` on ``train`` and return the per-epoch history.

    ``train`` and ``validation`` are ``Dataset`` objects of (image, label)
    pairs or ``(x, y)`` array pairs (see ``as_dataset``); their images must
    have ``net.input_shape`` and their labels lie in [0, net.num_classes).
    ``net`` is moved to ``device`` and left there, in eval mode. See the module
    docstring for the schemes, the optimiser and determinism. A rich progress
    bar over epochs and batches goes to stderr unless ``progress=False``.
    ``threads``: torch's thread count while training (restored after); None
    keeps the caller's. One is steadier where other processes hold the cores.
    The last batch of an epoch is dropped when the data set holds more than
    one batch (a size-1 batch would break batch norm).
    """
    owner = "train_exits"
    _check_net(owner, net)
    if scheme not in SCHEMES:
        raise fail(owner, "scheme", f"one of {SCHEMES}", scheme)
    epochs = integer(owner, "epochs", epochs, low=1)
    batch_size = integer(owner, "batch_size", batch_size, low=1)
    lr = step_size(owner, "lr", lr)
    weight_decay = non_negative(owner, "weight_decay", weight_decay)
    seed = v_seed(owner, "seed", seed)
    if not isinstance(progress, bool):
        raise fail(owner, "progress", "a bool", progress)
    if threads is not None:
        threads = cores(owner, "threads", threads)
    weights = _exit_weights(owner, exit_weights, int(net.n_exits))
    train = _dataset(owner, "train", train, net)
    if validation is not None:
        validation = _dataset(owner, "validation", validation, net)
    dev = _device(owner, device)
    net.to(dev)
    history: list[EpochRecord] = []
    with torch_threads(threads), _deterministic(seed, dev), \
            _frozen_backbone(net, scheme) as params:
        loader = DataLoader(train, batch_size=batch_size, shuffle=True,
                            drop_last=len(train) > batch_size,  # type: ignore[arg-type]
                            generator=torch.Generator().manual_seed(seed))
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
        w = torch.tensor(weights, dtype=torch.float32, device=dev)
        with _progress_bar(progress) as bar:
            epoch_task = bar.add_task(f"{scheme} training", total=epochs)
            batch_task = bar.add_task("epoch 1", total=len(loader))
            for epoch in range(1, epochs + 1):
                start = time.perf_counter()
                bar.reset(batch_task, total=len(loader), description=f"epoch {epoch}")
                loss, acc = _epoch(owner, net, scheme, loader, opt, sched, w, dev,
                                   lambda text: bar.update(batch_task, advance=1,
                                                           description=text))
                val = None if validation is None else \
                    tuple(evaluate_exits(net, validation, batch_size=256).tolist())
                history.append(EpochRecord(epoch=epoch, loss=loss, train_accuracy=acc,
                                           validation_accuracy=val,
                                           wall_s=time.perf_counter() - start))
                bar.update(epoch_task, advance=1, description=_summary(scheme, history[-1]))
    net.eval()
    return TrainReport(scheme=scheme, exit_weights=tuple(weights.tolist()), seed=seed, lr=lr,
                       weight_decay=weight_decay, batch_size=batch_size, history=tuple(history))


def _epoch(owner: str, net: nn.Module, scheme: str, loader: DataLoader,
           opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
           w: torch.Tensor, dev: torch.device, tick) -> tuple[float, tuple[float, ...]]:
    """One pass over ``loader``; returns (mean loss, per-exit accuracy)."""
    _train_mode(net, scheme)
    n_exits = len(w)
    total_loss, seen = 0.0, 0
    correct = torch.zeros(n_exits, dtype=torch.int64)
    for x, y in loader:
        x, y = _batch(owner, "train", x, y, net, dev)
        outs = _forward(owner, net, x)
        losses = torch.stack([nn.functional.cross_entropy(o, y) for o in outs])
        loss = (w * losses).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total_loss += float(loss.detach()) * len(y)
        seen += len(y)
        correct += torch.stack([(o.detach().argmax(1) == y).sum() for o in outs]).cpu()
        tick(f"loss {float(loss.detach()):.3f}")
    return total_loss / seen, tuple((correct.double() / seen).tolist())


def evaluate_exits(net: nn.Module, data: object, *, batch_size: int = 256) -> np.ndarray:
    """Accuracy of every exit of ``net`` on ``data``, shape [n_exits].

    Runs in eval mode without gradients, on the device of ``net``'s
    parameters; the modules' train/eval modes are restored afterwards.
    """
    owner = "evaluate_exits"
    _check_net(owner, net)
    batch_size = integer(owner, "batch_size", batch_size, low=1)
    data = _dataset(owner, "data", data, net)
    correct = np.zeros(int(net.n_exits), dtype=np.int64)
    for outs, y in _eval_batches(owner, net, data, batch_size):
        correct += np.array([int((o.argmax(1) == y).sum()) for o in outs])
    return correct / len(data)  # type: ignore[arg-type]


def collect_logits(net: nn.Module, data: object, *,
                   batch_size: int = 256) -> tuple[list[np.ndarray], np.ndarray]:
    """The logits of every exit on ``data`` and the labels, in data order.

    Returns ``(logits, labels)``: ``logits[e]`` is a float32 array [N, C] of
    exit ``e`` (first to last), ``labels`` an int64 array [N]. Eval mode, no
    gradients; the modules' train/eval modes are restored afterwards.
    """
    owner = "collect_logits"
    _check_net(owner, net)
    batch_size = integer(owner, "batch_size", batch_size, low=1)
    data = _dataset(owner, "data", data, net)
    parts: list[list[np.ndarray]] = [[] for _ in range(int(net.n_exits))]
    labels: list[np.ndarray] = []
    for outs, y in _eval_batches(owner, net, data, batch_size):
        for part, o in zip(parts, outs):
            part.append(o.float().cpu().numpy())
        labels.append(y.cpu().numpy())
    return [np.concatenate(p) for p in parts], np.concatenate(labels).astype(np.int64)


def _eval_batches(owner: str, net: nn.Module, data: Dataset,
                  batch_size: int) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
    dev = next((p.device for p in net.parameters()), torch.device("cpu"))
    modes = {m: m.training for m in net.modules()}
    net.eval()
    try:
        with torch.no_grad():
            for x, y in DataLoader(data, batch_size=batch_size, shuffle=False):
                x, y = _batch(owner, "data", x, y, net, dev)
                yield _forward(owner, net, x), y
    finally:
        for module, training in modes.items():
            module.training = training


# --- checks ---------------------------------------------------------------------------

def _check_net(owner: str, net: object) -> None:
    if not isinstance(net, nn.Module) or not all(hasattr(net, a) for a in _NET_ATTRS):
        raise fail(owner, "net", "an early-exit network (an nn.Module with "
                   + ", ".join(_NET_ATTRS) + ")", Shown(type(net).__name__))


def _exit_weights(owner: str, value: object, n_exits: int) -> np.ndarray:
    if value is None:
        return np.ones(n_exits)
    rule = f"{n_exits} finite numbers >= 0 (one per exit) with a positive sum"
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise fail(owner, "exit_weights", rule, value) from None
    if arr.shape != (n_exits,) or not np.all(np.isfinite(arr)) or np.any(arr < 0) \
            or arr.sum() <= 0:
        raise fail(owner, "exit_weights", rule, value)
    return arr


def _dataset(owner: str, name: str, data: object, net: nn.Module) -> Dataset:
    """A map-style dataset whose samples have the net's input shape."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        data = as_dataset(data[0], data[1], num_classes=int(net.num_classes))
    if not isinstance(data, Dataset):
        raise fail(owner, name, "a torch Dataset or an (x, y) pair of arrays",
                   Shown(type(data).__name__))
    try:
        n = len(data)  # type: ignore[arg-type]
    except TypeError:
        raise fail(owner, name, "a map-style Dataset with a length",
                   Shown(type(data).__name__)) from None
    if n == 0:
        raise fail(owner, name, "a non-empty Dataset", Shown("an empty one"))
    sample = data[0]
    if not isinstance(sample, (tuple, list)) or len(sample) != 2:
        raise fail(owner, name, "a Dataset of (image, label) pairs",
                   Shown(f"a sample of type {type(sample).__name__}"))
    expected = tuple(int(s) for s in net.input_shape)
    shape = tuple(torch.as_tensor(sample[0]).shape)
    if shape != expected:
        raise fail(owner, name, f"a Dataset of images shaped {expected} "
                   "(the net's input_shape)", Shown(f"images shaped {shape}"))
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        check_labels(owner, name, data.tensors[1], int(net.num_classes))
    return data


def _batch(owner: str, name: str, x: torch.Tensor, y: torch.Tensor, net: nn.Module,
           dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise fail(owner, name, "a Dataset with integer labels", Shown(f"labels of {y.dtype}"))
    check_labels(owner, name, y, int(net.num_classes))
    return x.to(dev, torch.float32), y.to(dev, torch.int64)


def _forward(owner: str, net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    outs = net(x)
    if not isinstance(outs, (list, tuple)) or len(outs) != int(net.n_exits):
        got = len(outs) if isinstance(outs, (list, tuple)) else type(outs).__name__
        raise fail(owner, "net", f"a network whose forward returns a list of "
                   f"{net.n_exits} logits tensors (n_exits)", Shown(f"{got} outputs"))
    return list(outs)


def _device(owner: str, device: object) -> torch.device:
    try:
        return torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError):
        raise fail(owner, "device", "a torch device such as 'cpu' or 'cuda'",
                   device) from None


# --- modes, freezing, determinism, progress --------------------------------------------

def _train_mode(net: nn.Module, scheme: str) -> None:
    """Joint: everything trains. Heads: only ``net.heads`` trains; the rest (the
    backbone, batch-norm statistics included) stays in eval mode."""
    if scheme == "joint":
        net.train()
    else:
        net.eval()
        net.heads.train()


@contextmanager
def _frozen_backbone(net: nn.Module, scheme: str) -> Iterator[list[nn.Parameter]]:
    """Yield the parameters to optimise; for "heads", freeze all others meanwhile."""
    if scheme == "joint":
        yield [p for p in net.parameters() if p.requires_grad]
        return
    heads = list(net.head_parameters())
    head_ids = {id(p) for p in heads}
    others = [p for p in net.parameters() if id(p) not in head_ids]
    flags = [p.requires_grad for p in others]
    for p in others:
        p.requires_grad_(False)
    try:
        yield heads
    finally:
        for p, flag in zip(others, flags):
            p.requires_grad_(flag)


@contextmanager
def _deterministic(seed: int, dev: torch.device) -> Iterator[None]:
    """Seed a forked global RNG and turn deterministic algorithms on, both locally."""
    was = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cuda = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type=dev.type if cuda else "cuda"):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was, warn_only=warn_only)


def _progress_bar(enabled: bool):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled)


def _summary(scheme: str, record: EpochRecord) -> str:
    acc = record.validation_accuracy or record.train_accuracy
    which = "val" if record.validation_accuracy is not None else "train"
    return (f"{scheme} training: loss {record.loss:.3f}, {which} acc "
            + " ".join(f"{a:.2f}" for a in acc))
