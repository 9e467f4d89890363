"""PyTorch early-exit networks: build, train, calibrate and tabulate.

``EarlyExitNet`` wraps a backbone split into blocks and attaches IC heads after
chosen blocks; ``build(name)`` makes one of the six zoo families (``ZOO``);
``train_exits`` trains them (joint or heads-only) on ``digits_splits()`` or any
data set; ``calibrate`` fits a temperature per exit and builds the held-out
exit table; ``train_digits`` / ``save_trained`` / ``load_trained`` run and keep
the whole flow. Weights live in safetensors files (never pickle). Importing
this package imports torch.
"""

from ._confidence import (MEASURES, confidence, expected_calibration_error, fit_temperature,
                          fit_temperatures)
from ._data import Splits, as_dataset, digits_splits
from ._network import EarlyExitNet, ExitHead
from ._table import CalibrationReport, calibrate, exit_table_from_logits
from ._train import SCHEMES, EpochRecord, TrainReport, collect_logits, evaluate_exits, train_exits
from ._weights import load, load_weights, save
from ._workflow import DEFAULT_MODEL, TrainedExits, load_trained, save_trained, train_digits
from ._zoo import ZOO, ZooEntry, build, count_layers

__all__ = [
    "EarlyExitNet", "ExitHead", "MEASURES", "ZOO", "ZooEntry", "build", "count_layers",
    "save", "load", "load_weights",
    "Splits", "digits_splits", "as_dataset",
    "SCHEMES", "train_exits", "TrainReport", "EpochRecord", "evaluate_exits", "collect_logits",
    "confidence", "fit_temperature", "fit_temperatures", "expected_calibration_error",
    "exit_table_from_logits", "calibrate", "CalibrationReport",
    "DEFAULT_MODEL", "TrainedExits", "train_digits", "save_trained", "load_trained",
]
