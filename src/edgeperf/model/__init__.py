"""Frozen domain objects: the DNN, the hardware, the workload, the system, and metrics."""

from .metrics import Kind, Metrics, StationMetrics

__all__ = ["Kind", "Metrics", "StationMetrics"]
