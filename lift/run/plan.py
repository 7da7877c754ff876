"""The run's units (a stage or a method split, once per seed), their commands and what to do
with each: skip, resume or run (docs/run.md, "Skip, resume, rerun").

Order: seed by seed; within a seed the stages (each after what it needs), then the methods,
each split in turn. Decisions, in order:

1. ``--only`` leaves out every unit that the named stages / methods do not need;
2. upstream fingerprint or run changed, or the unit's own fingerprint changed: **run** afresh,
   the old directory moved aside to ``<dir>.stale-<n>``;
3. recorded ``done`` with the same fingerprint and every output present: **skip** (a unit named
   by ``--only`` runs afresh instead, its old directory moved aside);
4. recorded ``running`` / ``failed`` with the same fingerprint (killed or failed): **resume**:
   ``fit`` with ``--ckpt_path last`` when ``<dir>/last.ckpt`` exists (else from the start, in
   the same directory), ``predict`` as it is (the bank skips finished shards);
5. no record: **run** (a directory already there without a record is moved aside first).

A method's splits share ``predictions/<method>/seed<k>/``: when one split runs afresh, the
directory is moved aside and every split of that method and seed runs again.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lift.run.fingerprint import fingerprint, print_config
from lift.run.recipe import Recipe
from lift.run.record import RunRecord

WRITER = "lift.prediction_writer.TextureWriter"
LAST_CKPT = "last.ckpt"
SKIP, RESUME, RUN = "skip", "resume", "run"


@dataclass
class Unit:
    key: str                     # "<stage>/seed<k>" or "<method>/seed<k>/<split>"
    kind: str                    # "stage" | "method"
    name: str
    seed: int
    split: str | None
    command: str                 # "fit" | "predict"
    dir: Path                    # its trainer.default_root_dir
    lift_argv: list[str]         # `lift` arguments, without the resume flag
    outputs: dict[str, Path]
    upstream: tuple[str, ...]    # unit keys
    predictions: Path | None = None   # methods: the TextureWriter's output_dir
    resolved: str = ""
    fingerprint: str = ""
    action: str = ""
    reason: str = ""
    move_aside: bool = False
    resume_last: bool = False
    extra: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} seed{self.seed}" + (f" {self.split}" if self.split else "")

    @property
    def log(self) -> Path:
        return self.dir / "stage.log"

    @property
    def run_argv(self) -> list[str]:
        """The ``lift`` arguments of this run: ``lift_argv`` and the resume flag."""
        return [*self.lift_argv, *(["--ckpt_path=last"] if self.resume_last else [])]

    @property
    def argv(self) -> list[str]:
        """The subprocess command line."""
        return [sys.executable, "-m", "lift.cli", *self.run_argv]

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)


def cli_value(value: Any) -> str:
    """A recipe value as jsonargparse reads it on the command line."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)


def _common_argv(command: str, configs: tuple[str, ...], trainer: tuple[str, ...], root: Path,
                 seed: int, args: dict[str, Any], inputs: list[tuple[str, Path]]) -> list[str]:
    argv = [command]
    for config in [*configs, *trainer]:
        argv += ["--config", config]
    argv += [f"--trainer.default_root_dir={root}", f"--seed_everything={seed}"]
    argv += [f"--{k}={cli_value(v)}" for k, v in args.items()]
    argv += [f"--{k}={path}" for k, path in inputs]
    return argv


def build_units(recipe: Recipe, run_dir: Path) -> list[Unit]:
    units = []
    for seed in recipe.seeds:
        def output(stage: str, name: str) -> Path:
            return run_dir / "stages" / stage / f"seed{seed}" / recipe.stages[stage].outputs[name]

        for stage in recipe.stages.values():
            root = run_dir / "stages" / stage.name / f"seed{seed}"
            inputs = [(r.key, output(r.stage, r.output)) for r in stage.inputs]
            units.append(Unit(
                f"{stage.name}/seed{seed}", "stage", stage.name, seed, None, stage.command, root,
                _common_argv(stage.command, stage.configs, recipe.trainer, root, seed,
                             stage.args, inputs),
                {k: root / v for k, v in stage.outputs.items()},
                tuple(f"{u}/seed{seed}" for u in stage.upstream)))
        for method in recipe.methods.values():
            predictions = run_dir / "predictions" / method.name / f"seed{seed}"
            for split in method.splits:
                root = run_dir / "methods" / method.name / f"seed{seed}" / split
                inputs = [(r.key, output(r.stage, r.output)) for r in method.inputs]
                argv = _common_argv("predict", method.configs, recipe.trainer, root, seed,
                                    method.args, inputs)
                argv += [f"--data.init_args.predict_split={split}"]
                units.append(Unit(
                    f"{method.name}/seed{seed}/{split}", "method", method.name, seed, split,
                    "predict", root, argv, {"predictions": predictions},
                    tuple(f"{u}/seed{seed}" for u in method.upstream), predictions))
    return units


def _writer_flags(resolved: str, output_dir: Path) -> list[str]:
    """Flags that make the method's TextureWriter write to ``output_dir`` (and Lightning keep no
    predictions in memory): the config's writer gets ``output_dir`` when it is the last
    callback (jsonargparse sets a nested key on the list's last item); a config without a
    writer gets one appended; otherwise the callback list is passed whole with every
    writer's ``output_dir`` replaced."""
    callbacks = ((yaml.safe_load(resolved) or {}).get("trainer") or {}).get("callbacks") or []
    if isinstance(callbacks, dict):
        callbacks = [callbacks]
    writers = [i for i, c in enumerate(callbacks)
               if str(c.get("class_path", "")).rsplit(".", 1)[-1] == "TextureWriter"]
    tail = [f"--trainer.callbacks.output_dir={output_dir}", "--return_predictions=false"]
    if not writers:
        return [f"--trainer.callbacks+={WRITER}", *tail]
    if writers == [len(callbacks) - 1]:
        return tail
    for i in writers:
        callbacks[i].setdefault("init_args", {})["output_dir"] = str(output_dir)
    return [f"--trainer.callbacks={json.dumps(callbacks)}", "--return_predictions=false"]


def resolve(units: list[Unit], run_dir: Path) -> None:
    """Each unit's resolved config (``--print_config``) and fingerprint, upstream first.
    Raises :class:`lift.run.fingerprint.ResolveError` (the unit is in ``exc.unit``)."""
    fps: dict[str, str] = {}
    for unit in units:
        try:
            unit.resolved = print_config(unit.lift_argv)
            if unit.predictions is not None:
                unit.lift_argv += _writer_flags(unit.resolved, unit.predictions)
                unit.resolved = print_config(unit.lift_argv)
        except Exception as exc:
            exc.unit = unit  # type: ignore[attr-defined]
            raise
        unit.fingerprint = fingerprint(unit.command, unit.resolved, run_dir,
                                       {u: fps[u] for u in unit.upstream})
        fps[unit.key] = unit.fingerprint


def select(units: list[Unit], recipe: Recipe, only: list[str]) -> list[Unit]:
    """The units ``--only`` names and the stage units they need."""
    stages = recipe.closure(only)
    return [u for u in units if (u.kind == "stage" and u.name in stages)
            or (u.kind == "method" and u.name in only)]


def _missing_outputs(unit: Unit) -> list[str]:
    return [name for name, path in unit.outputs.items()
            if not path.exists() or (path.is_dir() and not any(path.iterdir()))]


def decide(units: list[Unit], record: RunRecord, forced: set[str] = frozenset()) -> None:
    """Set each unit's action / reason / move_aside / resume_last (see the module docs)."""
    by_key = {u.key: u for u in units}
    for unit in units:
        prev = record.unit(unit.key)
        rerun_up = [u for u in unit.upstream if u in by_key and by_key[u].action != SKIP]
        runs_now = {u: (record.unit(u) or {}).get("run_id") for u in unit.upstream}
        if prev is None:
            exists = unit.dir.exists() and any(unit.dir.iterdir())
            unit.action, unit.move_aside = RUN, exists
            unit.reason = ("not run yet" if not exists else
                           "its directory exists without a record: moved aside, run afresh")
        elif prev.get("fingerprint") != unit.fingerprint:
            changed = [u for u, fp in (prev.get("upstream") or {}).items()
                       if by_key.get(u) and by_key[u].fingerprint != fp]
            unit.action, unit.move_aside = RUN, True
            unit.reason = (f"upstream {', '.join(changed)} changed" if changed else
                           "its config, args or inputs changed") + " (new fingerprint)"
        elif rerun_up:
            unit.action, unit.move_aside = RUN, True
            unit.reason = f"upstream {', '.join(rerun_up)} runs again"
        elif (prev.get("upstream_runs") or {}) != runs_now:
            stale = [u for u in runs_now if runs_now[u] != (prev.get("upstream_runs") or {}).get(u)]
            unit.action, unit.move_aside = RUN, True
            unit.reason = f"upstream {', '.join(stale)} ran again since"
        elif prev.get("status") == "done":
            missing = _missing_outputs(unit)
            if missing:
                unit.action, unit.move_aside = RUN, True
                unit.reason = f"done, but output {', '.join(missing)} is missing"
            elif unit.key in forced:
                unit.action, unit.move_aside = RUN, True
                unit.reason = "done, run again: named by --only"
            else:
                unit.action, unit.reason = SKIP, "done, same fingerprint"
        else:
            unit.action = RESUME
            how = "killed" if prev.get("status") == "running" else "failed"
            if unit.command == "fit" and (unit.dir / LAST_CKPT).is_file():
                unit.resume_last = True
                unit.reason = f"{how} earlier: resume from {LAST_CKPT} (--ckpt_path last)"
            elif unit.command == "fit":
                unit.reason = f"{how} earlier before its first {LAST_CKPT}: from the start"
            else:
                unit.reason = f"{how} earlier: predict again (it resumes by itself)"
    _group_methods(units)


def _group_methods(units: list[Unit]) -> None:
    groups: dict[Path, list[Unit]] = {}
    for unit in units:
        if unit.predictions is not None:
            groups.setdefault(unit.predictions, []).append(unit)
    for members in groups.values():
        fresh = [u for u in members if u.action == RUN and u.move_aside]
        if not fresh:
            continue
        for unit in members:
            if unit.action != RUN:
                unit.action, unit.resume_last = RUN, False
                unit.reason = (f"split {fresh[0].split} runs afresh and the splits share "
                               f"{unit.predictions.name}/")
            unit.move_aside = unit.move_aside or unit.dir.exists()
