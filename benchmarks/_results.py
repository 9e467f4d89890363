"""Where a benchmark's results go: ``benchmarks/results/<name>.json``, written
whole or not at all (a benchmark cut short leaves the previous file intact)."""

from __future__ import annotations

import json
from pathlib import Path

from edgeperf._atomic import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def save_result(name: str, result: dict) -> Path:
    """Write ``result`` as ``results/<name>.json`` (numpy scalars as floats)."""
    RESULTS.mkdir(exist_ok=True)
    return write_text_atomic(RESULTS / f"{name}.json",
                             json.dumps(result, indent=1, default=float) + "\n")
