"""Frozen domain objects: the DNN, the hardware, the workload, the system, and metrics."""

from .dnn import DNN, Block
from .exit_table import ExitTable
from .hardware import Device, Link
from .metrics import Kind, Metrics, StationMetrics
from .system import Chain, Fragment, Placement, System
from .workload import (ArrivalProcess, ErlangArrivals, MMPPArrivals, PiecewiseArrivals,
                       PoissonArrivals, TraceArrivals, Workload)

__all__ = ["Block", "DNN", "ExitTable", "Device", "Link", "PoissonArrivals", "ErlangArrivals",
           "MMPPArrivals", "TraceArrivals", "PiecewiseArrivals", "ArrivalProcess", "Workload",
           "Placement", "Fragment", "Chain", "System", "Kind", "Metrics", "StationMetrics"]
