"""``lift run`` command-line options."""

from __future__ import annotations

import argparse
from typing import Sequence

from lift.run.execute import LAUNCHERS

DESCRIPTION = """\
Run a recipe (configs/run/<name>.yaml): every stage once per seed through `lift fit` /
`lift predict` in its own process (its output in <stage dir>/stage.log), then every method's
predictions on its test splits, then the evaluator (tables/) and the report
(report/index.html). Everything goes under the run directory; run.json records each stage
run's command, resolved config, fingerprint, status and wall time.

Rerunning the same command skips what is done (same fingerprint, outputs present), resumes
what was killed (`fit` from its last.ckpt) and reruns what changed, with everything downstream;
an old stage directory is moved aside to <dir>.stale-<n>, never deleted. See docs/run.md."""

EPILOG = """\
examples:
  lift run --config configs/run/quickstart.yaml
  lift run --config configs/run/quickstart.yaml --dry-run
  lift run --config configs/run/quickstart.yaml --only translate_wplus
exit codes: 0 done, 1 a stage (or the evaluation) failed, 2 a bad recipe or option"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lift run", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", required=True, metavar="RECIPE",
                   help="the recipe YAML (config paths in it are relative to the current "
                        "directory, the repository root)")
    p.add_argument("--out", metavar="DIR",
                   help="the run directory (default: runs/<recipe name>)")
    p.add_argument("--only", nargs="+", action="extend", default=[], metavar="NAME",
                   help="run only these stages or methods (again, even when done) and the "
                        "stages they need (only if not done); no evaluation")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (what is skipped, resumed or run, and why) and the "
                        "commands; run nothing")
    p.add_argument("--launcher", choices=LAUNCHERS, default=LAUNCHERS[0],
                   help="how stage runs start: 'warm' forks each from one process that "
                        "imported torch, Lightning and lift once (saves their start-up, "
                        "4-11 s a stage run); 'subprocess' starts a new interpreter for each "
                        "(multi-process strategies always do). Default: warm")
    stream = p.add_mutually_exclusive_group()
    stream.add_argument("--stream", dest="stream", action="store_true", default=None,
                        help="copy every stage's output to the terminal (default: when stdout "
                             "is a terminal and CI is not set)")
    stream.add_argument("--no-stream", dest="stream", action="store_false",
                        help="one line per stage run; the output only in its stage.log")
    return p


def run_command(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    from lift.run.runner import run

    return run(args.config, out=args.out, only=args.only, dry_run=args.dry_run,
               stream=args.stream, launcher=args.launcher)
