"""Simulation of deployments: a compiled kernel for one chain, an event engine
for several chains, multi-core devices and online policies, replications with
95% half-widths, per-job traces and sweeps on a dask cluster.

``simulate_chain`` / ``replicate_chain`` are the plain reference simulator the
others are tested against.
"""

from ..model import ExitTable
from ._exits import AssignedExits, ExitShares, StaticExits, ThresholdExits
from ._policy import JobOutcome, JobState, OnlinePolicy
from ._record import SimulationError
from ._reference import replicate_chain, simulate_chain
from ._simulate import SimulationEvaluator, simulate, simulate_chains, simulate_station
from ._grid import SweepError, apply_point, grid_points, parse_set
from ._sweep import run_sweep
from ._sweep_table import FailedPoint, SweepResult
from ._timevarying import Piecewise, simulate_timevarying

__all__ = ["simulate", "simulate_chains", "simulate_station", "SimulationEvaluator",
           "ExitTable", "StaticExits", "ThresholdExits", "AssignedExits", "ExitShares",
           "OnlinePolicy", "JobState", "JobOutcome", "SimulationError",
           "run_sweep", "SweepResult", "SweepError", "FailedPoint", "parse_set", "grid_points",
           "apply_point", "simulate_chain", "replicate_chain", "Piecewise",
           "simulate_timevarying"]
