"""``lift run``: a recipe's stages, methods, evaluation and report in one run directory.

Modules: :mod:`lift.run.recipe` (the recipe, checked up front), :mod:`lift.run.fingerprint`
(resolved configs, fingerprints), :mod:`lift.run.record` (``run.json``),
:mod:`lift.run.plan` (units and skip / resume / run), :mod:`lift.run.execute` (a stage's
subprocess and its log), :mod:`lift.run.progress` (progress lines, time left),
:mod:`lift.run.runner` (the whole run), :mod:`lift.run.command` (the options). See docs/run.md.
"""

from lift.run.recipe import Recipe, RecipeError, load_recipe

__all__ = ["Recipe", "RecipeError", "load_recipe", "run"]


def run(*args, **kwargs) -> int:
    """:func:`lift.run.runner.run` (imported lazily)."""
    from lift.run.runner import run as _run

    return _run(*args, **kwargs)
