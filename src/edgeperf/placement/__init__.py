"""Split and placement optimisers: where to cut a chain's model and which device
runs which fragment. Every method reads :class:`Costs` and returns a
:class:`PlacementDecision` whose ``system`` the evaluators consume unchanged."""

from ._costs import Costs, fragments_of
from ._decision import PlacementDecision

__all__ = ["Costs", "fragments_of", "PlacementDecision"]
