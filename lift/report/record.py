"""``run.json`` read defensively: every stage's (and method's) runs, whatever is recorded.

The runner (``lift/run/record.py``) writes ``{"stages": {stage: {"seed<k>": RUN}},
"methods": {method: {"seed<k>/<split>": RUN}}}`` with RUN holding ``command`` (argv) and
``command_line``, ``resolved_config``, ``fingerprint``, ``status``, ``wall_time_s``, ``log``.
This module accepts that and also the layouts ``{"stages": {stage: {"seed0": {...}}}}``, ``{"stages": {stage: {"seeds": {...}}}}``,
``{"stages": {stage: {...one run...}}}`` and ``{"stages": [{"stage": ..., "seed": ...}]}``
(the same under ``"methods"``); a key that is absent is shown as missing, never guessed.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

#: field -> the keys it may be recorded under, first found wins.
FIELDS: dict[str, tuple[str, ...]] = {
    "status": ("status", "state"),
    "wall_time_s": ("wall_time_s", "wall_time", "seconds", "duration_s"),
    "fingerprint": ("fingerprint", "sha256"),
    "command": ("command", "cmd", "argv"),
    "config": ("resolved_config", "config", "config_path", "resolved_config_path"),
    "log": ("log", "log_path", "stage_log"),
}
_RUN_KEYS = {k for keys in FIELDS.values() for k in keys} | {
    "seed", "outputs", "started", "finished", "error", "kind", "command_line"}


def load_run_json(run_dir: Path) -> tuple[dict | None, str | None]:
    """``(data, problem)``: the parsed run.json, or None and why not."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        return None, f"{path} does not exist"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"{path} is not readable JSON ({exc})"
    if not isinstance(data, dict):
        return None, f"{path} holds a {type(data).__name__}, not an object"
    return data, None


def _is_run(value: Any) -> bool:
    return isinstance(value, dict) and bool(_RUN_KEYS & set(value))


def _entry(group: str, name: str, seed: Any, run: dict) -> dict:
    out: dict[str, Any] = {"group": group, "name": str(name),
                           "seed": run.get("seed", seed), "raw": run}
    for field, keys in FIELDS.items():
        out[field] = next((run[k] for k in keys if k in run), None)
    if isinstance(run.get("command_line"), str):  # the runner's shell-quoted form
        out["command"] = run["command_line"]
    command = out["command"]
    if isinstance(command, (list, tuple)):
        out["command"] = shlex.join(str(c) for c in command)
    if run.get("split"):
        out["name"] = f"{name} ({run['split']})"
    return out


def runs(data: dict | None, group: str = "stages") -> list[dict]:
    """One entry per recorded (name, seed) of ``data[group]``: the :data:`FIELDS` (None when
    absent), ``group``, ``name``, ``seed`` and the ``raw`` record."""
    if not isinstance(data, dict):
        return []
    block = data.get(group)
    out: list[dict] = []
    if isinstance(block, list):
        for item in block:
            if isinstance(item, dict):
                out.append(_entry(group, item.get("stage", item.get("name", "?")),
                                  item.get("seed"), item))
        return out
    if not isinstance(block, dict):
        return out
    for name, value in block.items():
        if not isinstance(value, dict):
            continue
        if _is_run(value) and not isinstance(value.get("seeds"), dict):
            out.append(_entry(group, name, value.get("seed"), value))
            continue
        seeds = value.get("seeds") if isinstance(value.get("seeds"), dict) else value
        for seed, run in seeds.items():
            if isinstance(run, dict):
                out.append(_entry(group, name, seed, run))
    return out


def resolve_path(run_dir: Path, value: Any) -> Path | None:
    """A recorded path (absolute, or relative to the run directory or the working
    directory) if the file exists."""
    if not isinstance(value, str) or not value:
        return None
    path = Path(value).expanduser()
    for candidate in ([path] if path.is_absolute() else [Path(run_dir) / path, path]):
        if candidate.is_file():
            return candidate.resolve()
    return None
