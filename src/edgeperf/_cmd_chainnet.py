"""``edgeperf import-chainnet``: the published ChainNet deployments as scenario files.

Kept out of cli.py; the importer (PyYAML, pydantic) loads only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["import_chainnet_command"]


def import_chainnet_command(
    directory: Annotated[Path, typer.Argument(
        help="A ChainNet data folder (numNodes.txt, path.txt, ...), e.g. chainnet/val.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the scenarios and labels.json "
                                                    "(created if needed).")],
    samples: Annotated[int | None, typer.Option("--samples",
                                                help="Import only the first N samples.")] = None,
) -> None:
    """Import ChainNet deployments: one scenario YAML per sample plus labels.json."""
    from .io import import_chainnet

    paths = import_chainnet(directory, out, samples=samples)
    print(f"wrote {len(paths) - 1} scenarios (sample_*.yaml) and labels.json to {out}")
