"""``python -m lift.evaluation RUN_DIR [--recipe configs/run/<name>.yaml] [--report]
[--scores-from earlier/evaluation.json ...] [--seeds N ...]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lift.evaluation",
        description="Score a run directory's predictions and write tables/table{1..4}."
                    "{json,md,csv} (and, with --report, report/index.html).")
    parser.add_argument("run_dir", type=Path, help="the run directory (runs/<name>)")
    parser.add_argument("--recipe", type=Path, default=None,
                        help="the run recipe (default: the run directory's recipe.yaml or "
                             "run.json's 'recipe')")
    parser.add_argument("--report", action="store_true", help="also write report/index.html")
    parser.add_argument("--scores-from", type=Path, action="append", default=[], metavar="JSON",
                        help="an earlier tables/evaluation.json whose per-stem scores stand in "
                             "for the (method, seed, split)s that have no predictions in RUN_DIR "
                             "(seeds run elsewhere); repeatable")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="N",
                        help="evaluate these seeds instead of the recipe's (e.g. a shard run "
                             "here joined with seeds scored elsewhere through --scores-from)")
    args = parser.parse_args(argv)

    from lift.config_compose import ConfigComposeError
    from lift.evaluation import EvaluationError, evaluate_run, load_recipe
    from lift.evaluation.tables import ordering_summary

    try:
        recipe = load_recipe(args.recipe, args.run_dir)
        if args.seeds:
            recipe = {**recipe, "seeds": list(args.seeds)}
        tables = evaluate_run(args.run_dir, recipe, scores_from=args.scores_from)
    except (EvaluationError, ConfigComposeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for number, table in sorted(tables.items()):
        s = ordering_summary(table["orderings"])
        print(f"table {number}: {args.run_dir / 'tables' / f'table{number}.md'} "
              f"({s['reproduced']}/{s['total']} orderings reproduced)")
    if args.report:
        from lift.report import write_report

        print(f"report: {write_report(args.run_dir, recipe)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
