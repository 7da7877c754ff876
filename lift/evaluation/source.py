"""The evaluation data: a texture source named by a spec in the recipe.

``recipe["evaluation"]["source"]`` is ``{"class_path": ..., "init_args": {...}}``, the same
spelling as a data module's ``source`` in a stage config. Texture sources are not components
(:func:`lift.spec.build` refuses them), so the class is looked up in an allow-list of lift's
own sources; anything else is an error naming the key.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from lift.evaluation.metrics import EvaluationError

#: class_path -> (module, attribute) of the sources an evaluation may build.
ALLOWED_SOURCES: dict[str, tuple[str, str]] = {
    "lift.data.SyntheticSource": ("lift.data.sources", "SyntheticSource"),
    "lift.data.sources.SyntheticSource": ("lift.data.sources", "SyntheticSource"),
    "SyntheticSource": ("lift.data.sources", "SyntheticSource"),
    "lift.data.FolderSource": ("lift.data.folder", "FolderSource"),
    "lift.data.folder.FolderSource": ("lift.data.folder", "FolderSource"),
    "FolderSource": ("lift.data.folder", "FolderSource"),
}


def build_source(spec: Any, where: str = "evaluation.source"):
    """A :class:`~lift.data.TextureSource` from its spec (an instance is returned as it is)."""
    from lift.data.sources import TextureSource

    if isinstance(spec, TextureSource):
        return spec
    if not isinstance(spec, Mapping) or "class_path" not in spec:
        raise EvaluationError(f"recipe {where}: expected {{class_path: lift.data.SyntheticSource "
                              f"| lift.data.FolderSource, init_args: {{...}}}}, got {spec!r}")
    class_path = str(spec["class_path"])
    if class_path not in ALLOWED_SOURCES:
        raise EvaluationError(f"recipe {where}.class_path: {class_path!r} is not an evaluation "
                              f"source (allowed: lift.data.SyntheticSource, lift.data.FolderSource)")
    module, name = ALLOWED_SOURCES[class_path]
    cls = getattr(importlib.import_module(module), name)
    args = dict(spec.get("init_args") or {})
    try:
        return cls(**args)
    except TypeError as exc:
        raise EvaluationError(f"recipe {where}.init_args: {class_path} does not accept "
                              f"{sorted(args)} ({exc})") from exc


def recipe_source(recipe: Mapping[str, Any]):
    evaluation = recipe.get("evaluation") or {}
    if "source" not in evaluation:
        raise EvaluationError("the recipe has no evaluation.source: name the test data, e.g. "
                              "{class_path: lift.data.SyntheticSource, init_args: "
                              "{profile: quickstart, seed: 0}}")
    return build_source(evaluation["source"])
