"""Files at the boundary: scenario files and service-law specs."""

from ._chainnet import ChainNetSample, import_chainnet, read_chainnet
from ._files import ScenarioError, law_from_spec, load_scenario, parse_scenario

__all__ = ["ScenarioError", "load_scenario", "parse_scenario", "law_from_spec", "ChainNetSample",
           "read_chainnet", "import_chainnet"]
