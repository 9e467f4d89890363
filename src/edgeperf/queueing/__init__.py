"""Analytic queueing models: the M/G/1/K and E_k/G/1/K stations and loss chains."""

from ._chain import (DecompositionEvaluator, Station, StationExit, loss_chain, stations_by_chain,
                     stations_of)
from ._ekg1k import ekg1k
from ._mg1k import departure_distribution, mg1k, mgs_loss

__all__ = ["mg1k", "ekg1k", "mgs_loss", "departure_distribution", "Station", "StationExit",
           "loss_chain", "stations_of", "stations_by_chain", "DecompositionEvaluator"]
