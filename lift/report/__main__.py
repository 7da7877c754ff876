"""``python -m lift.report RUN_DIR [--recipe configs/run/<name>.yaml]``: rewrite the report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lift.report",
                                     description="Write RUN_DIR/report/index.html.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--recipe", type=Path, default=None,
                        help="the run recipe (default: the run directory's recipe.yaml or "
                             "run.json's 'recipe')")
    args = parser.parse_args(argv)
    from lift.config_compose import ConfigComposeError
    from lift.evaluation import EvaluationError, load_recipe
    from lift.report import write_report

    try:
        recipe = load_recipe(args.recipe, args.run_dir)
    except (EvaluationError, ConfigComposeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(write_report(args.run_dir, recipe))
    return 0


if __name__ == "__main__":
    sys.exit(main())
