"""The errors edgeperf raises.

Each subclass also inherits the builtin it refines, so callers that catch
``ValueError`` or ``RuntimeError`` keep working. Messages name the owner, the
parameter, the rule and the value:
``The 'capacity' parameter of Station must be an int >= 1. Got 0.``
"""

from __future__ import annotations

__all__ = [
    "EdgePerfError",
    "InvalidParameterError",
    "UnsupportedModelError",
    "InfeasibleError",
    "NotFittedError",
]


class EdgePerfError(Exception):
    """Base class of every error edgeperf raises on purpose."""


class InvalidParameterError(EdgePerfError, ValueError):
    """A value breaks a documented rule (range, type, cross-object consistency)."""


class UnsupportedModelError(EdgePerfError, ValueError):
    """An evaluator cannot express the system it was given."""


class InfeasibleError(EdgePerfError, RuntimeError):
    """An optimiser found no decision that meets the constraints."""


class NotFittedError(EdgePerfError, AttributeError):
    """A learned object was used before it was trained or loaded."""
