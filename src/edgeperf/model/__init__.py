"""Frozen domain objects: the DNN, the hardware, the workload, the system, and metrics."""

from .dnn import DNN, Block
from .hardware import Device, Link
from .metrics import Kind, Metrics, StationMetrics
from .system import Fragment, Placement, System
from .workload import PoissonArrivals, Workload

__all__ = ["Block", "DNN", "Device", "Link", "PoissonArrivals", "Workload", "Placement",
           "Fragment", "System", "Kind", "Metrics", "StationMetrics"]
