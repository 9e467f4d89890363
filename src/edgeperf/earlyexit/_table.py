"""From per-exit logits of a held-out split to an exit table, and calibration reports.

``exit_table_from_logits`` turns the logits every exit gives N samples (as
``collect_logits`` returns them) into the :class:`~edgeperf.model.ExitTable`
the simulator and the schedulers use. ``calibrate`` fits one temperature per
exit on a calibration split and reports, on a separate test split, each exit's
accuracy and expected calibration error before and after scaling, with the
test split's exit table after scaling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import _validation as v
from ..model import ExitTable
from ._confidence import (_MEASURE_RULE, MEASURES, as_exit_logits, as_labels, confidence,
                          expected_calibration_error, fit_temperatures)

__all__ = ["exit_table_from_logits", "calibrate", "CalibrationReport"]


def exit_table_from_logits(per_exit_logits: Sequence[object], labels: object, *,
                           measure: str = "max_softmax",
                           temperatures: Sequence[float] | np.ndarray | None = None) -> ExitTable:
    """The exit table of N samples from their logits ``[N, C]`` at each of E exits.

    ``confidence[:, e]`` is the ``measure`` of ``logits[e] / temperatures[e]``
    (temperature 1 when ``temperatures`` is None), ``predicted[:, e]`` the
    arg-max class and ``correct[:, e]`` whether it equals the label.
    """
    owner = "exit_table_from_logits"
    xs = as_exit_logits(owner, per_exit_logits)
    y = as_labels(owner, "labels", labels, xs[0].shape)
    if measure not in MEASURES:
        raise v.fail(owner, "measure", _MEASURE_RULE, measure)
    temps = _temperatures(owner, temperatures, len(xs))
    conf = np.column_stack([confidence(x, measure, t) for x, t in zip(xs, temps)])
    predicted = np.column_stack([x.argmax(axis=1) for x in xs])
    return ExitTable(conf, predicted == y[:, None], predicted)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CalibrationReport:
    """Per exit (arrays ``[E]``): the fitted ``temperatures``, the test ``accuracy``,
    and the test ECE (max-softmax confidence, ``bins`` equal-width bins) before
    and after scaling; ``table`` is the test split's exit table after scaling,
    with confidences of ``measure``."""

    temperatures: np.ndarray
    accuracy: np.ndarray
    ece_before: np.ndarray
    ece_after: np.ndarray
    table: ExitTable
    measure: str
    bins: int

    @property
    def n_exits(self) -> int:
        return len(self.temperatures)

    def rows(self) -> list[dict[str, float | int]]:
        """One plain dict per exit (for printing, JSON and reports)."""
        return [{"exit": e, "temperature": float(self.temperatures[e]),
                 "accuracy": float(self.accuracy[e]), "ece_before": float(self.ece_before[e]),
                 "ece_after": float(self.ece_after[e])} for e in range(self.n_exits)]


def calibrate(per_exit_logits_calibration: Sequence[object], labels_calibration: object,
              per_exit_logits_test: Sequence[object], labels_test: object, *,
              measure: str = "max_softmax", bins: int = 15) -> CalibrationReport:
    """Fit a temperature per exit on the calibration split; report on the test split."""
    owner = "calibrate"
    cal = as_exit_logits(owner, per_exit_logits_calibration)
    test = as_exit_logits(owner, per_exit_logits_test)
    if len(test) != len(cal) or test[0].shape[1] != cal[0].shape[1]:
        raise v.fail(owner, "per_exit_logits_test", f"{len(cal)} exits of {cal[0].shape[1]} "
                     "classes, like the calibration split",
                     f"{len(test)} exits of {test[0].shape[1]} classes")
    y_cal = as_labels(owner, "labels_calibration", labels_calibration, cal[0].shape)
    y_test = as_labels(owner, "labels_test", labels_test, test[0].shape)
    if measure not in MEASURES:
        raise v.fail(owner, "measure", _MEASURE_RULE, measure)
    v.integer(owner, "bins", bins, low=1)
    temps = fit_temperatures(cal, y_cal)
    table = exit_table_from_logits(test, y_test, measure=measure, temperatures=temps)
    correct = table.correct
    before = [expected_calibration_error(confidence(x), correct[:, e], bins)
              for e, x in enumerate(test)]
    after = [expected_calibration_error(confidence(x, temperature=t), correct[:, e], bins)
             for e, (x, t) in enumerate(zip(test, temps))]
    return CalibrationReport(temperatures=temps, accuracy=table.accuracy_by_exit,
                             ece_before=np.array(before), ece_after=np.array(after),
                             table=table, measure=measure, bins=bins)


def _temperatures(owner: str, temperatures: object, n_exits: int) -> np.ndarray:
    if temperatures is None:
        return np.ones(n_exits)
    rule = f"{n_exits} finite numbers > 0, one per exit"
    try:
        temps = np.asarray(temperatures, dtype=float)
    except (TypeError, ValueError):
        raise v.fail(owner, "temperatures", rule, temperatures) from None
    if temps.shape != (n_exits,) or not np.all(np.isfinite(temps)) or np.any(temps <= 0):
        raise v.fail(owner, "temperatures", rule,
                     temps.tolist() if temps.size <= 24 else f"shape {temps.shape}")
    return temps
