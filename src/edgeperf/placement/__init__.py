"""Split and placement optimisers: where to cut a chain's model and which device
runs which fragment. Every method reads :class:`Costs` and returns a
:class:`PlacementDecision` whose ``system`` the evaluators, the simulator and
the runtime consume unchanged; :func:`place` reaches them by name."""

from ._costs import Costs, fragments_of
from ._dag import LayerGraph, layer_graph
from ._decision import PlacementDecision
from ._enumerate import count_valid, valid_assignments
from ._ilp import bottleneck_utilisation, ilp, link_utilisation
from ._loss_aware import ExitOption, exit_options, loss_aware
from ._mincut import MinCutSolver, MinCutSplit, mincut, mincut_graph, mincut_split
from ._online import (BandwidthTrace, CoreScaling, CoresTrace, ReSplitter, ResplitComparison,
                      SplitSchedule, compare_resplitting)
from ._output import write_placed_scenario
from ._predictor import (LAYER_KINDS, LatencyPredictor, LayerSample, held_out_error,
                         predicted_profile, samples_from_profile, time_layers)
from ._registry import METHODS, place
from ._split import PowerModel, neurosurgeon, scission
from ._surrogate_search import compare_search, default_model, simulation_search, surrogate_search

__all__ = ["Costs", "fragments_of", "PlacementDecision", "place", "METHODS",
           "neurosurgeon", "scission", "PowerModel", "mincut", "mincut_split", "mincut_graph",
           "MinCutSolver", "MinCutSplit", "LayerGraph", "layer_graph", "ilp", "link_utilisation",
           "bottleneck_utilisation", "valid_assignments", "count_valid", "loss_aware",
           "ExitOption", "exit_options", "write_placed_scenario", "LatencyPredictor",
           "LayerSample", "LAYER_KINDS", "time_layers", "samples_from_profile",
           "held_out_error", "predicted_profile", "BandwidthTrace", "CoresTrace", "CoreScaling",
           "SplitSchedule", "ReSplitter", "ResplitComparison", "compare_resplitting",
           "surrogate_search", "simulation_search", "compare_search", "default_model"]
