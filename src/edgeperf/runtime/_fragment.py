"""One device's share of the trained network: blocks ``first..last`` and the
exit heads after them, with each head's calibrated confidence.

The confidence is the numpy measure that built the exit table (the head's
temperature and the model's measure from calibration.json), so a threshold
taken from the table means the same thing on a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _validation as v
from ..earlyexit._confidence import confidence

__all__ = ["Fragment", "ExitOutput"]


@dataclass(frozen=True, slots=True)
class ExitOutput:
    """What a hosted exit head said about one job."""

    exit: int
    logits: np.ndarray
    confidence: float
    predicted: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Fragment:
    """Blocks ``first..last`` of ``net`` (eval mode); ``exits`` are the exit
    indices hosted here, ``n_exits`` the model's total."""

    net: object
    first: int
    last: int
    exits: tuple[int, ...]
    n_exits: int
    temperatures: tuple[float, ...]
    measure: str

    @classmethod
    def load(cls, model_dir: str | Path, first: int, last: int, *, threads: int = 1) -> Fragment:
        """Load the trained model (safetensors) and keep only blocks ``first..last``."""
        import torch
        from torch import nn

        from ..earlyexit import load_trained

        torch.set_num_threads(v.cores("Fragment.load", "threads", threads))  # on its own host
        trained = load_trained(model_dir)
        net = trained.net.eval()
        n = len(net.blocks)
        if not (isinstance(first, int) and isinstance(last, int) and 0 <= first <= last < n):
            raise v.fail("Fragment.load", "last", f"block indices 0 <= first <= last <= {n - 1}",
                         (first, last))
        for i in range(n):  # free what other devices run
            if not first <= i <= last:
                net.blocks[i] = nn.Identity()
        hosted = tuple(k for k, b in enumerate(net.exit_blocks) if first <= b <= last)
        for k in range(net.n_exits):
            if k not in hosted:
                net.heads[k] = nn.Identity()
        temps = tuple(float(row["temperature"]) for row in trained.summary["exits"])
        return cls(net=net, first=first, last=last, exits=hosted, n_exits=net.n_exits,
                   temperatures=temps, measure=str(trained.summary.get("measure", "max_softmax")))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The activation entering ``first``, batch dimension (1) included."""
        return (1, *self.net.block_input_shape(self.first))

    @property
    def is_last(self) -> bool:
        return self.last == len(self.net.blocks) - 1

    def run(self, x: np.ndarray, leave: Callable[[ExitOutput], bool] | None = None
            ) -> tuple[np.ndarray | None, list[ExitOutput]]:
        """The activation leaving ``last`` (batch 1) and each hosted exit's output.

        ``x`` is the activation entering ``first``, with or without its batch
        dimension of 1; a wrong shape raises InvalidParameterError. When
        ``leave`` says True at an exit, the blocks after it are not run (a job
        that exits costs only the blocks up to its exit) and the activation
        returned is None.
        """
        import torch

        arr = np.asarray(x, dtype=np.float32)
        if arr.shape == self.input_shape[1:]:
            arr = arr[None]
        if arr.shape != self.input_shape:
            raise v.fail("Fragment.run", "x", f"an activation of shape {self.input_shape}",
                         arr.shape)
        outputs: list[ExitOutput] = []
        with torch.inference_mode():
            act = torch.tensor(arr)
            for start, end in self._segments():
                act, logits = self.net.run_fragment(start, end, act)
                for k, t in sorted(logits.items()):
                    outputs.append(self._exit(k, t.numpy()))
                    if leave is not None and leave(outputs[-1]):
                        return None, outputs
            return act.numpy().copy(), outputs

    def _segments(self) -> list[tuple[int, int]]:
        """Runs of blocks that each end at a hosted exit (or at ``last``)."""
        ends = [self.net.exit_blocks[k] for k in self.exits]
        ends = ends + [self.last] if not ends or ends[-1] != self.last else ends
        starts = [self.first] + [e + 1 for e in ends[:-1]]
        return list(zip(starts, ends))

    def _exit(self, k: int, logits: np.ndarray) -> ExitOutput:
        conf = float(confidence(logits, self.measure, self.temperatures[k])[0])
        return ExitOutput(exit=k, logits=logits.copy(), confidence=conf,
                          predicted=int(np.argmax(logits[0])))
