"""Simulation. For now the plain reference simulator of a loss chain; the
compiled kernel, event engine and sweeps come with the simulator issue."""

from ._reference import replicate_chain, simulate_chain

__all__ = ["simulate_chain", "replicate_chain"]
