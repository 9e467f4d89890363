"""edgeperf: performance engineering of edge AI.

Import what you need from the subpackages (``edgeperf.dists``,
``edgeperf.queueing``, ``edgeperf.model``, ``edgeperf.io``); heavy dependencies
load lazily inside the packages that need them.
"""

from .exceptions import (EdgePerfError, InfeasibleError, InvalidParameterError, NotFittedError,
                         UnsupportedModelError)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "EdgePerfError",
    "InvalidParameterError",
    "UnsupportedModelError",
    "InfeasibleError",
    "NotFittedError",
]
