"""A run recipe (``configs/run/<name>.yaml``): read and checked in full before anything runs.

Schema (docs/run.md, "Recipe"):

* ``name`` (default: the file's stem), ``seeds`` (default ``[0]``), ``profile`` (a label),
* ``trainer``: configs appended to every stage's and method's configs,
* ``stages``: an ordered mapping ``name -> {command: fit|predict, configs: [...],
  args: {dotted.key: value}, inputs: {dotted.key: "<stage>.<output>"},
  outputs: {name: path relative to the stage directory}}``,
* ``methods``: ``name -> {configs, args, inputs, splits}`` (``splits`` default
  ``[paired_test, unpaired_test]``; ``[test]``: both in one predict), each run with ``lift predict`` per split,
* ``tables``: passed through to the evaluator (their ``rows`` must name methods);
  ``evaluation`` (the evaluator's options: ``source``, the test data, ``metrics``, ``device``)
  and ``report`` (the report writer's options) are passed through as they are.

Config paths are relative to the current directory (the repository root) or absolute. Every
problem is reported at once, each line naming the recipe file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lift.config_compose import ConfigComposeError, resolve_config

COMMANDS = ("fit", "predict")
DEFAULT_SPLITS = ("paired_test", "unpaired_test")
# The predict split ``test`` is the union of these (lift.data): ``splits: [test]`` runs one
# `lift predict` a method instead of one a split (a process start-up and a model load fewer).
SPLIT_UNIONS = {"test": ("paired_test", "unpaired_test")}


def covers(splits, split: str) -> bool:
    """Whether a method predicting ``splits`` predicts ``split``."""
    return split in splits or any(split in SPLIT_UNIONS.get(s, ()) for s in splits)
TOP_KEYS = ("name", "seeds", "profile", "description", "trainer", "stages", "methods", "tables",
            "evaluation", "report")
#: passed through to the evaluator / report writer as they are
PASSTHROUGH = ("description", "evaluation", "report")
STAGE_KEYS = ("command", "configs", "args", "inputs", "outputs")
METHOD_KEYS = ("configs", "args", "inputs", "splits")
#: Keys the runner sets itself (on every stage and method).
RUNNER_KEYS = ("trainer.default_root_dir", "seed_everything", "ckpt_path", "config",
               "print_config")
#: ... and on every method run (the split, the TextureWriter, the prediction list).
METHOD_RUNNER_KEYS = ("data.init_args.predict_split", "trainer.callbacks", "return_predictions")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class RecipeError(ValueError):
    """A recipe that cannot run; the message holds one line per problem."""


@dataclass(frozen=True)
class InputRef:
    """``key`` (a dotted config key) gets the absolute path of ``stage``'s ``output``."""

    key: str
    stage: str
    output: str


@dataclass(frozen=True)
class StageSpec:
    name: str
    command: str
    configs: tuple[str, ...]
    args: dict[str, Any]
    inputs: tuple[InputRef, ...]
    outputs: dict[str, str]

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(ref.stage for ref in self.inputs))


@dataclass(frozen=True)
class MethodSpec:
    name: str
    configs: tuple[str, ...]
    args: dict[str, Any]
    inputs: tuple[InputRef, ...]
    splits: tuple[str, ...]
    command: str = "predict"

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(ref.stage for ref in self.inputs))


@dataclass
class Recipe:
    path: Path
    name: str
    seeds: tuple[int, ...]
    profile: str | None
    trainer: tuple[str, ...]
    stages: dict[str, StageSpec]          # in run order (a stage after what it needs)
    methods: dict[str, MethodSpec]
    tables: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)   # PASSTHROUGH keys

    def closure(self, names: list[str]) -> set[str]:
        """The stages ``names`` (stages or methods) need, transitively, and the stages among
        ``names`` themselves."""
        todo = []
        for name in names:
            spec = self.stages.get(name) or self.methods[name]
            todo += list(spec.upstream)
            if name in self.stages:
                todo.append(name)
        out: set[str] = set()
        while todo:
            name = todo.pop()
            if name not in out:
                out.add(name)
                todo += list(self.stages[name].upstream)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The recipe with its defaults filled in (what the evaluator and report receive)."""
        def refs(inputs):
            return {r.key: f"{r.stage}.{r.output}" for r in inputs}
        return {
            "name": self.name, "seeds": list(self.seeds),
            **({"profile": self.profile} if self.profile is not None else {}),
            "recipe": str(self.path), "trainer": list(self.trainer),
            "stages": {s.name: {"command": s.command, "configs": list(s.configs),
                                "args": dict(s.args), "inputs": refs(s.inputs),
                                "outputs": dict(s.outputs)} for s in self.stages.values()},
            "methods": {m.name: {"configs": list(m.configs), "args": dict(m.args),
                                 "inputs": refs(m.inputs), "splits": list(m.splits)}
                        for m in self.methods.values()},
            "tables": self.tables, **self.extra,
        }


class _Checker:
    def __init__(self, path: Path):
        self.path = path
        self.errors: list[str] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{self.path}: {key}: {message}" if key else f"{self.path}: {message}")

    def mapping(self, value: Any, key: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(key, f"must be a mapping, got {type(value).__name__}")
            return {}
        return value

    def unknown(self, data: dict, allowed: tuple[str, ...], key: str) -> None:
        for k in data:
            if k not in allowed:
                where = f"{key}.{k}" if key else str(k)
                self.error(where, f"unknown key (expected one of: {', '.join(allowed)})")

    def configs(self, value: Any, key: str, required: bool = True) -> tuple[str, ...]:
        if value is None:
            if required:
                self.error(key, "missing: a list of config files")
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            self.error(key, f"must be a config path or a list of them, got {value!r}")
            return ()
        if required and not items:
            self.error(key, "empty: a stage needs at least one config file")
        for i, item in enumerate(items):
            if not Path(item).expanduser().is_file():
                self.error(f"{key}[{i}]", f"config file not found: {item} (paths are relative "
                           f"to the current directory {Path.cwd()}, or absolute)")
        return tuple(str(Path(i).expanduser()) for i in items)

    def args(self, value: Any, key: str, reserved: tuple[str, ...]) -> dict[str, Any]:
        data = self.mapping(value, key)
        for k in data:
            self.dotted_key(k, f"{key}[{k}]", reserved)
        return dict(data)

    def dotted_key(self, k: Any, where: str, reserved: tuple[str, ...]) -> None:
        if not isinstance(k, str) or not _KEY.fullmatch(k):
            self.error(where, "a key must be a dotted config key such as trainer.max_steps")
        elif any(k == r or k.startswith(r + ".") or k.startswith(r + "+") for r in reserved):
            self.error(where, f"{k} is set by the runner (reserved: {', '.join(reserved)})")

    def inputs(self, value: Any, key: str, reserved: tuple[str, ...], args: dict
               ) -> tuple[InputRef, ...]:
        data = self.mapping(value, key)
        out = []
        for k, ref in data.items():
            where = f"{key}[{k}]"
            self.dotted_key(k, where, reserved)
            if k in args:
                self.error(where, "also set in args: a key is either an arg or an input")
            if not isinstance(ref, str) or ref.count(".") != 1:
                self.error(where, f"must be '<stage>.<output>', got {ref!r}")
                continue
            stage, output = ref.split(".")
            out.append(InputRef(str(k), stage, output))
        return tuple(out)


def _stage(check: _Checker, name: str, data: Any) -> StageSpec | None:
    key = f"stages.{name}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        check.error(key, "a stage name is letters, digits, '_' and '-'")
    data = check.mapping(data, key)
    check.unknown(data, STAGE_KEYS, key)
    command = data.get("command")
    if command not in COMMANDS:
        check.error(f"{key}.command", f"unknown command {command!r} (expected fit or predict)")
    configs = check.configs(data.get("configs"), f"{key}.configs")
    args = check.args(data.get("args"), f"{key}.args", RUNNER_KEYS)
    inputs = check.inputs(data.get("inputs"), f"{key}.inputs", RUNNER_KEYS, args)
    outputs = check.mapping(data.get("outputs"), f"{key}.outputs")
    for out_name, rel in outputs.items():
        where = f"{key}.outputs.{out_name}"
        if not isinstance(out_name, str) or not _NAME.fullmatch(out_name):
            check.error(where, "an output name is letters, digits, '_' and '-'")
        if (not isinstance(rel, str) or not rel or Path(rel).is_absolute()
                or ".." in Path(rel).parts):
            check.error(where, f"must be a path inside the stage directory, got {rel!r}")
    return StageSpec(str(name), str(command), configs, args, inputs,
                     {str(k): str(v) for k, v in outputs.items()})


def _method(check: _Checker, name: str, data: Any) -> MethodSpec:
    key = f"methods.{name}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        check.error(key, "a method name is letters, digits, '_' and '-'")
    data = check.mapping(data, key)
    check.unknown(data, METHOD_KEYS, key)
    reserved = RUNNER_KEYS + METHOD_RUNNER_KEYS
    configs = check.configs(data.get("configs"), f"{key}.configs")
    args = check.args(data.get("args"), f"{key}.args", reserved)
    inputs = check.inputs(data.get("inputs"), f"{key}.inputs", reserved, args)
    splits = data.get("splits", list(DEFAULT_SPLITS))
    if (not isinstance(splits, list) or not splits
            or not all(isinstance(s, str) and _NAME.fullmatch(s) for s in splits)
            or len(set(splits)) != len(splits)):
        check.error(f"{key}.splits", f"must be a non-empty list of distinct split names, "
                    f"got {splits!r}")
        splits = list(DEFAULT_SPLITS)
    return MethodSpec(str(name), configs, args, inputs, tuple(splits))


def _check_refs(check: _Checker, where: str, inputs: tuple[InputRef, ...],
                stages: dict[str, StageSpec]) -> None:
    for ref in inputs:
        key = f"{where}.inputs[{ref.key}]"
        if ref.stage not in stages:
            check.error(key, f"unknown stage {ref.stage!r} in {ref.stage}.{ref.output} "
                        f"(stages: {', '.join(stages) or 'none'})")
        elif ref.output not in stages[ref.stage].outputs:
            declared = ", ".join(stages[ref.stage].outputs) or "none"
            check.error(key, f"stage {ref.stage!r} declares no output {ref.output!r} "
                        f"(its outputs: {declared})")


def _order(check: _Checker, stages: dict[str, StageSpec]) -> dict[str, StageSpec]:
    """The stages in recipe order, moved after what they need; a cycle is an error."""
    done: dict[str, StageSpec] = {}
    pending = [s for s in stages.values()]
    while pending:
        ready = next((s for s in pending
                      if all(u in done or u not in stages for u in s.upstream)), None)
        if ready is None:
            check.error("stages", f"input cycle: {_cycle(pending, stages)}")
            return stages
        done[ready.name] = ready
        pending.remove(ready)
    return done


def _cycle(pending: list[StageSpec], stages: dict[str, StageSpec]) -> str:
    left = {s.name for s in pending}
    path = [pending[0].name]
    while True:
        nxt = next(u for u in stages[path[-1]].upstream if u in left)
        if nxt in path:
            cycle = path[path.index(nxt):] + [nxt]
            return " -> ".join(f"{b} (needs {a})" if i else b
                               for i, (a, b) in enumerate(zip([None] + cycle, cycle)))
        path.append(nxt)


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe; raises :class:`RecipeError` listing every problem."""
    path = Path(path)
    try:
        data = resolve_config(path)
    except ConfigComposeError as exc:
        raise RecipeError(str(exc)) from None
    check = _Checker(path)
    check.unknown(data, TOP_KEYS, "")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        check.error("name", f"must be a name (letters, digits, '_', '-'), got {name!r}")
    seeds = data.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
            or len(set(seeds)) != len(seeds)):
        check.error("seeds", f"must be a non-empty list of distinct integers >= 0, got {seeds!r}")
        seeds = [0]
    profile = data.get("profile")
    if profile is not None and not isinstance(profile, str):
        check.error("profile", f"must be a string, got {profile!r}")
    trainer = check.configs(data.get("trainer"), "trainer", required=False)

    stages_raw = check.mapping(data.get("stages"), "stages")
    # `name: null` removes a stage or method the recipe inherited through `extends:`.
    stages = {str(k): _stage(check, k, v) for k, v in stages_raw.items() if v is not None}
    methods_raw = check.mapping(data.get("methods"), "methods")
    methods = {str(k): _method(check, k, v) for k, v in methods_raw.items() if v is not None}
    if not stages and not methods:
        check.error("stages", "the recipe has no stages and no methods")
    for name in set(stages) & set(methods):
        check.error(f"methods.{name}", "a method cannot have a stage's name")
    for stage in stages.values():
        _check_refs(check, f"stages.{stage.name}", stage.inputs, stages)
        if stage.name in stage.upstream:
            check.error(f"stages.{stage.name}.inputs", "a stage cannot take its own output")
    for method in methods.values():
        _check_refs(check, f"methods.{method.name}", method.inputs, stages)
    ordered = _order(check, {k: v for k, v in stages.items() if k not in v.upstream})
    ordered.update({k: v for k, v in stages.items() if k not in ordered})

    tables = data.get("tables") or []
    if not isinstance(tables, list):
        check.error("tables", f"must be a list, got {type(tables).__name__}")
        tables = []
    for i, table in enumerate(tables):
        rows = table.get("rows") if isinstance(table, dict) else None
        if not isinstance(rows, dict):
            check.error(f"tables[{i}].rows", "must map row labels to method names")
            continue
        for label, method in rows.items():
            if method not in methods:
                check.error(f"tables[{i}].rows.{label}", f"unknown method {method!r} "
                            f"(methods: {', '.join(methods) or 'none'})")
            elif table.get("split") and not covers(methods[method].splits, table["split"]):
                check.error(f"tables[{i}].rows.{label}", f"method {method!r} does not predict "
                            f"split {table['split']!r} (its splits: "
                            f"{', '.join(methods[method].splits)})")
    extra = {k: data[k] for k in PASSTHROUGH if data.get(k) is not None}
    for k in ("evaluation", "report"):
        if k in extra and not isinstance(extra[k], dict):
            check.error(k, f"must be a mapping, got {type(extra[k]).__name__}")
    if check.errors:
        raise RecipeError("\n".join(check.errors))
    return Recipe(path, name, tuple(seeds), profile, trainer, ordered, methods, tables, extra)
