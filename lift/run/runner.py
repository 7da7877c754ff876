"""``lift run``: plan, run every unit in order, then the evaluator and the report writer."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Iterator, Sequence

from lift.atomic import atomic_write_text
from lift.config_compose import dump_yaml
from lift.data.sources import SYNTH_CACHE_ENV
from lift.run import progress
from lift.run.execute import LAUNCHERS, log_tail, move_aside, run_logged, run_warm
from lift.run.fingerprint import ResolveError
from lift.run.plan import RESUME, SKIP, Unit, _missing_outputs, build_units, decide, resolve, select
from lift.run.recipe import Recipe, RecipeError, load_recipe
from lift.run.record import RunRecord, now


def default_stream() -> bool:
    """Copy the stages' output to the terminal: stdout is a terminal and not under CI."""
    ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
    return sys.stdout.isatty() and not ci


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One ``lift run`` at a time per run directory (released when the process dies)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "run.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another `lift run` is using {run_dir}") from None
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield


# glibc's malloc maps and unmaps every large tensor on every step; raising its thresholds keeps
# freed blocks for reuse (2-3x faster CPU training steps here, docs/performance.md). glibc
# reads it at process start, so it is set for the stage subprocesses; elsewhere it is inert.
GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296"


@contextlib.contextmanager
def unit_environment(run_dir: Path) -> Iterator[None]:
    """The environment every stage subprocess of a run inherits (what is set stays as given):

    - ``LIFT_SYNTH_CACHE=<run>/synth_cache``: every stage's synthetic data from one on-disk
      cache, so a run generates its data once, not once per stage and epoch;
    - ``GLIBC_TUNABLES`` (above) unless already set.
    """
    values = {SYNTH_CACHE_ENV: str(run_dir / "synth_cache"), "GLIBC_TUNABLES": GLIBC_TUNABLES}
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


def shell_command(unit: Unit) -> str:
    """The unit's command as a user pastes it into a shell here."""
    env = os.environ.get("PYTHONPATH")
    env_part = f"PYTHONPATH={shlex.quote(env)} " if env else ""
    return f"cd {shlex.quote(os.getcwd())} && {env_part}{unit.command_line}"


def _print_plan(units: list[Unit], record: RunRecord) -> None:
    width = max((len(u.label) for u in units), default=0)
    for i, unit in enumerate(units, 1):
        head = progress.prefix(i, len(units), unit.label.ljust(width)).removesuffix(" ...")
        aside = [record.rel(p) for p in (unit.dir, unit.predictions)
                 if unit.move_aside and p is not None and p.exists()]
        extra = f"; moves {' and '.join(aside)} aside" if aside else ""
        print(f"{head}  {unit.action:<6} {unit.reason}{extra}")
        if unit.action != SKIP:
            print(f"      $ {unit.command_line}")


def _fail(unit: Unit, rc: int, wall: float, missing: list[str]) -> None:
    paths = ", ".join(str(unit.outputs[m]) for m in missing)
    what = f"exit code {rc}" if rc else f"finished but wrote no {', '.join(missing)} ({paths})"
    lines = [f"lift run: FAILED: {unit.kind} {unit.label} ({what}, "
             f"after {progress.duration(wall)})",
             f"  command: {shell_command(unit)}",
             f"  log:     {unit.log}"]
    tail = log_tail(unit.log)
    if tail:
        lines.append(f"  last {len(tail)} lines of the log:")
        lines += [f"    | {line}" for line in tail]
    print("\n".join(lines), file=sys.stderr, flush=True)


_MULTI_PROCESS = ("ddp", "fsdp", "deepspeed", "spawn")


def warm_eligible(unit: Unit) -> bool:
    """Whether the warm launcher may run this unit: one process on one device (a multi-process
    strategy starts its own processes; ``--disable-plugins`` needs a fresh import)."""
    if any(a.startswith("--disable-plugins") for a in unit.lift_argv):
        return False
    import yaml

    trainer = (yaml.safe_load(unit.resolved or "") or {}).get("trainer") or {}
    strategy = trainer.get("strategy")
    strategy = str(strategy.get("class_path", "") if isinstance(strategy, dict) else strategy)
    if any(word in strategy.lower() for word in _MULTI_PROCESS):
        return False
    if int(trainer.get("num_nodes") or 1) != 1:
        return False
    devices = trainer.get("devices", "auto")
    if isinstance(devices, (list, tuple)):
        return len(devices) == 1
    if str(devices) in ("auto", "-1", "None"):
        import torch

        accelerator = str(trainer.get("accelerator") or "auto")
        return accelerator == "cpu" or torch.cuda.device_count() <= 1
    return str(devices) == "1"


class _Launch:
    """Starts each unit with the chosen launcher; the zygote is started at the first unit
    that can use it and stopped by :meth:`close`. If it cannot start, or dies, the rest of
    the run falls back to subprocesses (and says so)."""

    def __init__(self, launcher: str):
        self.launcher = launcher
        self.zygote = None

    def start(self) -> None:
        """Start the zygote now, without waiting for its imports (they overlap with resolving
        the configs); a run with nothing to run stops it unused."""
        if self.launcher == "warm" and self.zygote is None:
            from lift.run.zygote import Zygote

            self.zygote = Zygote(wait=False)

    def how(self, unit: Unit) -> str:
        return "warm" if self.launcher == "warm" and warm_eligible(unit) else "subprocess"

    def __call__(self, unit: Unit, header: str, stream: bool) -> tuple[int, str]:
        if self.how(unit) == "warm":
            from lift.run.zygote import Zygote, ZygoteError

            try:
                if self.zygote is None:
                    self.zygote = Zygote(wait=False)
                return run_warm(self.zygote, unit.run_argv, unit.log, header,
                                stream), "warm"
            except ZygoteError as exc:
                print(f"lift run: note: {exc}; the remaining stage runs start as "
                      "subprocesses", file=sys.stderr, flush=True)
                self.launcher = "subprocess"
                self.close()
        return run_logged(unit.argv, unit.log, header, stream), "subprocess"

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None


def execute_all(units: list[Unit], record: RunRecord, stream: bool,
                launcher: "str | _Launch" = "warm") -> int:
    """Run the units in order; returns 0, or 1 at the first failure (130: interrupted)."""
    launch = _Launch(launcher) if isinstance(launcher, str) else launcher
    try:
        return _execute_all(units, record, stream, launch)
    finally:
        launch.close()


def _execute_all(units: list[Unit], record: RunRecord, stream: bool, launch: _Launch) -> int:
    t0 = time.monotonic()
    walls: list[float] = []
    moved: set[Path] = set()
    total = len(units)
    for i, unit in enumerate(units, 1):
        head = progress.prefix(i, total, unit.label)
        if unit.action == SKIP:
            print(f"{head} skipped ({unit.reason})", flush=True)
            continue
        prev = record.unit(unit.key) or {}
        stale = list(prev.get("stale", []))
        if unit.move_aside:
            if unit.dir.exists():
                stale.append(record.rel(move_aside(unit.dir)))
            if (unit.predictions is not None and unit.predictions not in moved
                    and unit.predictions.exists()):
                stale.append(record.rel(move_aside(unit.predictions)))
            if unit.predictions is not None:
                moved.add(unit.predictions)
        unit.dir.mkdir(parents=True, exist_ok=True)
        resolved = unit.dir / "resolved.yaml"
        atomic_write_text(resolved, unit.resolved)
        resumed = unit.action == RESUME
        attempts = prev.get("attempts", 0) + 1 if resumed else 1
        before = (prev.get("total_wall_time_s") or 0.0) if resumed else 0.0
        record.update_unit(
            unit.key, kind=unit.kind, name=unit.name, seed=unit.seed, split=unit.split,
            subcommand=unit.command, command=unit.argv, command_line=unit.command_line,
            cwd=os.getcwd(), resume="ckpt_path last" if unit.resume_last else None,
            dir=record.rel(unit.dir), log=record.rel(unit.log),
            resolved_config=record.rel(resolved), fingerprint=unit.fingerprint,
            upstream={u: (record.unit(u) or {}).get("fingerprint") for u in unit.upstream},
            upstream_runs={u: (record.unit(u) or {}).get("run_id") for u in unit.upstream},
            status="running", returncode=None, error=None, started=now(), finished=None,
            wall_time_s=None, total_wall_time_s=before, attempts=attempts, run_id=None,
            outputs={k: record.rel(v) for k, v in unit.outputs.items()}, stale=stale,
            estimate_s=prev.get("estimate_s"), reason=unit.reason)
        header = (f"\n=== lift run {now()}: {unit.label}, attempt {attempts}: {unit.reason}\n"
                  f"$ {unit.command_line}\n")
        if stream:
            print(f"{head} {unit.action}: {unit.reason} (log: {unit.log})", flush=True)
        else:
            print(head, end=" ", flush=True)
        start = time.monotonic()
        try:
            rc, how = launch(unit, header, stream)
        except KeyboardInterrupt:
            wall = time.monotonic() - start
            record.update_unit(unit.key, status="failed", error="interrupted", finished=now(),
                               wall_time_s=wall, total_wall_time_s=before + wall)
            record.update(status="failed")
            print(f"\nlift run: interrupted during {unit.label}; rerun the same command to "
                  "resume", file=sys.stderr)
            return 130
        wall = time.monotonic() - start
        record.update_unit(unit.key, launcher=how)
        missing = _missing_outputs(unit) if rc == 0 else []
        if rc != 0 or missing:
            record.update_unit(unit.key, status="failed", returncode=rc, finished=now(),
                               wall_time_s=wall, total_wall_time_s=before + wall,
                               error=f"exit code {rc}" if rc else f"missing {missing}")
            record.update(status="failed")
            print("FAILED" if not stream else f"{head} FAILED", flush=True)
            _fail(unit, rc, wall, missing)
            return 1
        walls.append(wall)
        record.update_unit(unit.key, status="done", returncode=0, finished=now(),
                           wall_time_s=wall, total_wall_time_s=before + wall,
                           estimate_s=before + wall,
                           run_id=uuid.uuid4().hex)
        remaining = [u for u in units[i:] if u.action != SKIP]
        left = progress.time_left([record.estimate(u.key) for u in remaining], walls)
        line = (f"done in {progress.duration(wall)} "
                f"{progress.status_suffix(time.monotonic() - t0, left, len(remaining))}")
        print(f"{head} {line}" if stream else line, flush=True)
    return 0


def _import(module: str, name: str):
    """``module.name``, or None when the module (or the name) does not exist yet."""
    try:
        mod = __import__(module, fromlist=[name])
        return getattr(mod, name)
    except ImportError as exc:
        if exc.name == module:  # the module itself is missing, not something it imports
            return None
        raise
    except AttributeError:
        return None


def _evaluation_key(recipe: Recipe, record: RunRecord, units: list[Unit]) -> str:
    """What the tables and report are computed from: the recipe's evaluation keys and the
    run_id of every unit (a rerun unit gets a new one)."""
    data = recipe.to_dict()
    payload = {"recipe": {k: data.get(k) for k in ("name", "profile", "seeds", "tables",
                                                   "evaluation", "report")},
               "runs": {u.key: (record.unit(u.key) or {}).get("run_id") for u in units}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def evaluate_and_report(recipe: Recipe, run_dir: Path, record: RunRecord,
                        units: list[Unit]) -> int:
    """The evaluator (tables/) and the report writer (report/index.html) on the finished run;
    each is skipped when it is done for the same recipe keys and unit runs."""
    if not recipe.tables:
        print("lift run: the recipe has no tables: evaluation and report skipped")
        return 0
    key = _evaluation_key(recipe, record, units)
    redone = False
    for step, module, name in (("evaluation", "lift.evaluation", "evaluate_run"),
                               ("report", "lift.report", "write_report")):
        prev = record.data.get(step) or {}
        output = run_dir / (prev.get("path") or prev.get("tables") or step)
        if (not redone and prev.get("status") == "done" and prev.get("key") == key
                and output.exists()):
            print(f"lift run: {step} up to date, skipped: {output}"
                  + ("/" if output.is_dir() else ""))
            continue
        func = _import(module, name)
        if func is None:
            print(f"lift run: note: {module}.{name} is not available in this checkout: "
                  f"{step} skipped")
            record.update(**{step: {"status": "unavailable", "finished": now()}})
            continue
        print(f"lift run: {step} ...", flush=True)
        try:
            result = func(run_dir, recipe.to_dict())
        except Exception as exc:  # the run itself is complete and recorded: say what failed
            record.update(**{step: {"status": "failed", "finished": now(),
                                    "error": f"{type(exc).__name__}: {exc}"}})
            print(f"lift run: {step} failed ({module}.{name}):", file=sys.stderr)
            traceback.print_exc()
            return 1
        redone = True
        if step == "evaluation":
            record.update(evaluation={"status": "done", "finished": now(), "tables": "tables",
                                      "key": key})
            print(f"lift run: tables: {run_dir / 'tables'}/ ({len(result or {})} tables)")
        else:
            record.update(report={"status": "done", "finished": now(), "key": key,
                                  "path": record.rel(Path(result))})
            print(f"lift run: report: {result}")
    return 0


def run(recipe_path: str | os.PathLike, out: str | os.PathLike | None = None,
        only: Sequence[str] = (), dry_run: bool = False, stream: bool | None = None,
        launcher: str = "warm") -> int:
    """``lift run``; returns the exit code (0 ok, 1 a stage failed, 2 a bad recipe / usage)."""
    try:
        recipe = load_recipe(recipe_path)
    except RecipeError as exc:
        problems = str(exc).splitlines() or [str(exc)]
        print(f"lift run: error: {problems[0]}", file=sys.stderr)  # the cause, first
        if len(problems) > 1:
            print(f"lift run: the recipe cannot run: {len(problems) - 1} more problem(s):\n"
                  + "\n".join(problems[1:]), file=sys.stderr)
        return 2
    if launcher not in LAUNCHERS:
        print(f"lift run: error: launcher {launcher!r}: not one of {', '.join(LAUNCHERS)}",
              file=sys.stderr)
        return 2
    only = list(dict.fromkeys(only))
    unknown = [n for n in only if n not in recipe.stages and n not in recipe.methods]
    if unknown:
        names = ", ".join([*recipe.stages, *recipe.methods])
        print(f"lift run: error: --only {' '.join(unknown)}: not a stage or method of "
              f"{recipe.path} (names: {names})", file=sys.stderr)
        return 2
    run_dir = Path(os.path.abspath(out if out is not None else Path("runs") / recipe.name))
    stream = default_stream() if stream is None else stream
    try:
        if dry_run:
            return _plan_and_run(recipe, run_dir, only, True, stream, launcher)
        with run_lock(run_dir):
            return _plan_and_run(recipe, run_dir, only, False, stream, launcher)
    except RuntimeError as exc:
        print(f"lift run: error: {exc}", file=sys.stderr)
        return 2


def _plan_and_run(recipe: Recipe, run_dir: Path, only: list[str], dry_run: bool,
                  stream: bool, launcher: str = "warm") -> int:
    launch = _Launch(launcher)
    try:
        if not dry_run:
            with unit_environment(run_dir):
                launch.start()
        return _plan_and_execute(recipe, run_dir, only, dry_run, stream, launch)
    finally:
        launch.close()


def _plan_and_execute(recipe: Recipe, run_dir: Path, only: list[str], dry_run: bool,
                      stream: bool, launch: _Launch) -> int:
    record = RunRecord.load(run_dir)
    units = build_units(recipe, run_dir)
    if only:
        units = select(units, recipe, only)
    print(f"lift run {recipe.name}: {run_dir} ({len(units)} stage runs; resolving their "
          "configs) ...", flush=True)
    try:
        resolve(units, run_dir)
    except ResolveError as exc:
        unit: Unit = exc.unit  # type: ignore[attr-defined]
        print(f"lift run: FAILED: the configs of {unit.kind} {unit.label} do not parse "
              f"(recipe {recipe.path}, {'stages' if unit.kind == 'stage' else 'methods'}."
              f"{unit.name}):\n  command: {shell_command(unit)} --print_config\n"
              + "\n".join(f"    | {line}" for line in str(exc).splitlines()[-40:]),
              file=sys.stderr)
        return 1
    decide(units, record, {u.key for u in units if u.name in only})
    counts = {a: sum(u.action == a for u in units) for a in ("skip", "resume", "run")}
    print(f"plan: {counts['run']} to run, {counts['resume']} to resume, "
          f"{counts['skip']} to skip", flush=True)
    if dry_run:
        _print_plan(units, record)
        return 0
    atomic_write_text(run_dir / "recipe.yaml", f"# the recipe as run: {recipe.path}\n"
                      + dump_yaml(recipe.to_dict()))
    record.update(version=record.data["version"], name=recipe.name,
                  recipe=str(Path(recipe.path).resolve()), profile=recipe.profile,
                  seeds=list(recipe.seeds), status="running")
    t0 = time.monotonic()
    with unit_environment(run_dir):
        rc = execute_all(units, record, stream, launch)
    ran = sum(u.action != SKIP for u in units) if rc == 0 else None
    if rc:
        return rc
    print(f"lift run {recipe.name}: {len(units)} stage runs ({ran} run, {len(units) - ran} "
          f"skipped) in {progress.duration(time.monotonic() - t0)}; record: {record.path}")
    if only:  # the rest of the recipe may be stale now: only a full run evaluates
        record.update(status="incomplete")
        print("lift run: --only: evaluation and report skipped (run without --only for them)")
        return 0
    with unit_environment(run_dir):
        rc = evaluate_and_report(recipe, run_dir, record, units)
    record.update(status="done" if rc == 0 else "failed")
    return rc
