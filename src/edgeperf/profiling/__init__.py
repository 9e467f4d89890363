"""Per-block and per-head profiles of early-exit networks: measured on this
host (:func:`measure_profile`, PyTorch loaded lazily) or imported from the
CEED project's edge-device profiles (:func:`import_ceed`); saved as JSON that
a scenario's ``model: {profile: PATH}`` refers to."""

from ._ceed import import_ceed
from ._measure import count_flops, measure_paths, measure_profile, parameter_bytes, tensor_bytes
from ._profile import (DETERMINISTIC_SCV, BlockProfile, HeadProfile, LatencyStats, Profile,
                       fit_law, load_profile, profile_from_dict)

__all__ = ["Profile", "BlockProfile", "HeadProfile", "LatencyStats", "fit_law", "load_profile",
           "profile_from_dict", "DETERMINISTIC_SCV", "measure_profile", "measure_paths",
           "count_flops", "parameter_bytes", "tensor_bytes", "import_ceed"]
