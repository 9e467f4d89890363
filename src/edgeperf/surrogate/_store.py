"""Saving and loading learned surrogates: safetensors and JSON, never pickle.

``save_model(model, target)`` writes two files side by side: ``<stem>.safetensors``
(every parameter and buffer: the weights, the feature normalisation constants
and the ``fitted`` flag) and ``<stem>.json`` (the model's name and config, the
feature names and normalisation constants for reading, the training report,
the training domain and the data provenance). ``target`` is a folder (files
``chainnet.*`` in it) or a path whose suffix is dropped for the stem.
``load_model`` takes the same target, rebuilds the model from the JSON config
and loads the tensors, names and shapes checked. Writes are atomic.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import _validation as v
from .._atomic import atomic_path
from ._domain import Domain
from ._graph import CHAIN_FEATURES, DEVICE_FEATURES, FRAGMENT_FEATURES
from ._models import MODELS, SurrogateModel

__all__ = ["save_model", "load_model", "FORMAT"]

FORMAT = "edgeperf.surrogate/1"
_STEM = "chainnet"


def _paths(owner: str, target: object) -> tuple[Path, Path]:
    """(weights, description) for a folder or a file path."""
    path = v.path(owner, "path", target, kind="folder or file")
    if path.is_dir():
        path = path / _STEM
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


_FEATURES = {"device": DEVICE_FEATURES, "fragment": FRAGMENT_FEATURES, "chain": CHAIN_FEATURES}


def _normalization(model: SurrogateModel) -> dict[str, Any]:
    return {key: {"features": list(features),
                  "mean": getattr(model, f"{key}_mean").tolist(),
                  "std": getattr(model, f"{key}_std").tolist()}
            for key, features in _FEATURES.items()}


def save_model(model: SurrogateModel, path: str | os.PathLike[str], *,
               provenance: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write a trained (or loaded) model; returns (weights path, JSON path).

    ``provenance`` says where the training data came from (data set, generator,
    seed...); it is stored as given and must be JSON-able.
    """
    if not isinstance(model, SurrogateModel):
        raise v.fail("save_model", "model", "a learned surrogate (AnalyticModel has nothing "
                     "to save)", type(model).__name__)
    if not bool(model.fitted):
        raise v.fail("save_model", "model", "a fitted model (train or load it first)",
                     type(model).__name__)
    weights, described = _paths("save_model", path)
    if not weights.parent.is_dir():
        raise v.fail("save_model", "path", "a file or folder in an existing directory",
                     str(path))
    taken = next((p for p in (weights, described) if p.is_dir()), None)
    if taken is not None:
        raise v.fail("save_model", "path", f"a place for the model's two files ({taken.name} "
                     "is a folder)", str(path))
    if provenance is not None:
        v.instance("save_model", "provenance", provenance, Mapping, "None or a JSON-able mapping")
    text = {"format": FORMAT, "model": model.name, "config": model.config,
            "normalization": _normalization(model), "training": model.training_report,
            "domain": None if model.domain is None else model.domain.to_dict(),
            "provenance": dict(provenance or {})}
    try:
        body = json.dumps(text, indent=1, sort_keys=True)
    except (TypeError, ValueError):
        raise v.fail("save_model", "provenance", "a JSON-able mapping", provenance) from None
    from safetensors.torch import save_file

    tensors = {k: t.detach().contiguous().clone() for k, t in model.state_dict().items()}
    # both written before either replaces anything: new weights never sit beside an old JSON
    with atomic_path(weights) as tmp, atomic_path(described) as tmp_json:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "model": model.name})
        tmp_json.write_text(body + "\n", encoding="utf-8")
    return weights, described


def _description(path: Path) -> dict[str, Any]:
    try:
        text = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise v.fail("load_model", "path", "a saved model (its JSON description is missing)",
                     str(path)) from None
    except (OSError, ValueError) as err:
        raise v.fail("load_model", "path", f"a readable JSON description ({err})",
                     str(path)) from None
    if not isinstance(text, dict) or text.get("format") != FORMAT:
        raise v.fail("load_model", "path", f"a description in format {FORMAT!r}", str(path))
    if not isinstance(text.get("model"), str) or text["model"] not in MODELS \
            or text["model"] == "analytic":
        raise v.fail("load_model", "path", f"a description naming a learned model "
                     f"{sorted(set(MODELS) - {'analytic'})}", text.get("model"))
    norm = text.get("normalization")
    saved = {key: norm[key].get("features") if isinstance(norm, dict)
             and isinstance(norm.get(key), dict) else None for key in _FEATURES}
    if saved != {key: list(features) for key, features in _FEATURES.items()}:
        raise v.fail("load_model", "path", "a model trained on this version's graph features "
                     "(retrain it: edgeperf surrogate train)", str(path))
    return text


def load_model(path: str | os.PathLike[str]) -> SurrogateModel:
    """Rebuild a model written by :func:`save_model`; it is fitted and in eval mode."""
    weights, described = _paths("load_model", path)
    if not weights.is_file():
        raise v.fail("load_model", "path", "a saved model (its weights file is missing)",
                     str(weights))
    text = _description(described)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise v.fail("load_model", "path", f"a valid safetensors file ({err})",
                     str(weights)) from None
    try:
        model = MODELS[text["model"]](**text["config"])
        model.load_state_dict(tensors, strict=True)
    except (TypeError, RuntimeError) as err:
        raise v.fail("load_model", "path", f"weights that fit the described model ({err})",
                     str(weights)) from None
    model.training_report = text.get("training")
    if text.get("domain") is not None:  # models saved before domains were kept have none
        try:
            model.domain = Domain.from_dict(text["domain"])
        except ValueError as err:
            raise v.fail("load_model", "path", f"a description whose domain is valid ({err})",
                         str(described)) from None
    return model.eval()
