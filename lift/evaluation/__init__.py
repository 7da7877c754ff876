"""Evaluation of a run directory: the paper's Tables 1-4 (see docs/run.md, "Evaluation").

``evaluate_run(run_dir, recipe)`` scores every method's studio textures with the registered
metric components and writes ``run_dir/tables/``; ``python -m lift.evaluation RUN_DIR
--recipe configs/run/<name>.yaml`` does the same from the command line.
"""

from __future__ import annotations

from lift.evaluation.metrics import EvaluationError
from lift.evaluation.run import evaluate_run, prediction_path

__all__ = ["EvaluationError", "evaluate_run", "prediction_path", "load_recipe"]


def load_recipe(path, run_dir=None) -> dict:
    """The recipe: a YAML file (``extends`` resolved), else the run directory's own copy
    (``recipe.yaml``, or the ``recipe`` entry of ``run.json``: the recipe or its path)."""
    import json
    from pathlib import Path

    from lift.config_compose import resolve_config

    if path is not None:
        return resolve_config(path)
    if run_dir is not None:
        run_dir = Path(run_dir)
        for name in ("recipe.yaml", "recipe.yml"):
            if (run_dir / name).is_file():
                return resolve_config(run_dir / name)
        record = run_dir / "run.json"
        if record.is_file():
            data = json.loads(record.read_text())
            recipe = data.get("recipe") if isinstance(data, dict) else None
            if isinstance(recipe, dict):
                return recipe
            if isinstance(recipe, str) and Path(recipe).is_file():  # lift run records its path
                return resolve_config(recipe)
    raise EvaluationError("no recipe: pass --recipe configs/run/<name>.yaml (the run directory "
                          "holds neither recipe.yaml nor a 'recipe' entry in run.json)")
