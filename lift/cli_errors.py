"""The ``lift`` command's bad-input messages: the cause on the first line, naming the file or key.

* :func:`parser_error_line`: jsonargparse's parse errors (an unknown key, a wrong type, a missing
  required argument, a class that cannot be imported or is not a component of the right kind)
  arrive as a usage dump with a nested "Does not validate against any of the Union subtypes"
  report at its end. This turns one into a single line: the full dotted key, what is wrong,
  and where the key was set (the config file, or the command line).
* :func:`check_checkpoint_for_model`: a ``--ckpt_path`` checkpoint is read safely
  (``weights_only``) and must have been written by the stage that resumes from it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any


class CLIInputError(ValueError):
    """Bad input found by the ``lift`` command itself; the message is printed as it is."""


# --- parse errors ----------------------------------------------------------------------------

_NOISE = (
    re.compile(r"^Does not validate against any of the Union subtypes"),
    re.compile(r"^Subtypes: "),
    re.compile(r"^Errors:$"),
    re.compile(r"^Expected a <class 'NoneType'>"),
    re.compile(r"^Given value( type)?: "),
    re.compile(r"^Expected a path but .* either not accessible or invalid"),
    re.compile(r"^Not a valid subclass of "),
)
_KEY = re.compile(r'^Parser key "([^"]+)":\s*(.*)$')
_CLASS = re.compile(r"^Problem with given class_path '([^']+)':\s*(.*)$")
_OPTION = re.compile(
    r"(?:does not accept option|unrecognized arguments:) '?(?:--?)?([A-Za-z0-9_.]+)")


def _split_error(message: str) -> tuple[list[str], str | None, list[str]]:
    """(nested keys, innermost class_path, detail lines) of a jsonargparse error message."""
    keys: list[str] = []
    class_path: str | None = None
    details: list[str] = []
    for raw in message.splitlines():
        line = raw.strip()
        if line.startswith("- "):
            line = line[2:].strip()
        if not line or any(p.search(line) for p in _NOISE):
            continue
        if m := _KEY.match(line):
            keys.append(m.group(1))
            class_path = None  # the class of an outer key is not the one at fault
            line = m.group(2)
        elif m := _CLASS.match(line):
            class_path = m.group(1)
            line = m.group(2)
        if line and line not in details:
            details.append(line)
    return keys, class_path, details


def _dotted(keys: Sequence[str]) -> str | None:
    """``["model", "translator"]`` -> ``model.init_args.translator`` (a nested key of a
    component is one of its init_args)."""
    out: list[str] = []
    for key in keys:
        if out and key not in ("init_args", "class_path") and out[-1] not in ("init_args",):
            out.append("init_args")
        out.append(key)
    return ".".join(out) if out else None


def _has_key(data: Any, parts: Sequence[str]) -> bool:
    node = data
    for part in parts:
        if isinstance(node, list):  # e.g. trainer.callbacks: any item may hold the rest
            return any(_has_key(item, parts[parts.index(part):]) for item in node)
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def locate_key(key: str, argv: Sequence[str]) -> str | None:
    """Where ``key`` was set: "in FILE" (the last ``--config`` file holding it) or "on the
    command line"."""
    from lift.config_compose import ConfigComposeError, resolve_config

    for arg in argv:
        if arg.startswith(f"--{key}=") or arg == f"--{key}":
            return "on the command line"
    found = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        value = None
        if arg in ("--config", "-c") and i + 1 < len(argv):
            value, i = argv[i + 1], i + 1
        elif arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        i += 1
        if value is None or "\n" in value or not os.path.isfile(value):
            continue
        try:
            data = resolve_config(value)
        except ConfigComposeError:
            continue
        parts = key.split(".")
        if _has_key(data, parts) or _has_key(data, [p for p in parts if p != "init_args"]):
            found = f"in {value}"
    return found


def parser_error_line(message: str, argv: Sequence[str]) -> str:
    """One line for a jsonargparse parse error: ``KEY: what is wrong (in FILE)``."""
    keys, class_path, details = _split_error(message)
    key = _dotted(keys)
    if key is None and (m := _OPTION.search(message)):
        key = m.group(1)
    detail = "; ".join(details) or message.strip()
    if key is None and details and (m := _OPTION.search(details[0])):
        key = m.group(1)
    parts = []
    if key and not detail.startswith(key):
        parts.append(key)
    if class_path and class_path not in detail:
        parts.append(f"class_path {class_path!r}")
    parts.append(detail)
    line = ": ".join(parts)
    where = locate_key(key, argv) if key else None
    return f"{line} (set {where})" if where else line


# --- --ckpt_path -----------------------------------------------------------------------------


def check_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint, read with ``weights_only``; a :class:`CLIInputError` naming the file."""
    from lift.checkpoints import CheckpointError, read_checkpoint

    try:
        return read_checkpoint(path)
    except CheckpointError as err:
        raise CLIInputError(f"--ckpt_path: {err}") from None


def check_checkpoint_for_model(path: str | os.PathLike, model: Any,
                               data: Mapping[str, Any] | None = None) -> None:
    """A lift stage resumes only from a checkpoint of the same stage and components."""
    from lift.checkpoints import COMPONENTS_KEY

    names = tuple(getattr(model, "recorded_components", ()) or ())
    if not names:
        return  # not a lift stage that records components: Lightning checks the weights
    data = check_checkpoint_file(path) if data is None else data
    stage = getattr(model, "stage", type(model).__name__)
    recorded = data.get(COMPONENTS_KEY)
    if not isinstance(recorded, Mapping):
        raise CLIInputError(
            f"--ckpt_path: checkpoint {path} records no lift components: it was not written by "
            f"a lift stage (the {stage} stage records {list(names)})")
    if sorted(recorded) != sorted(names):
        raise CLIInputError(
            f"--ckpt_path: checkpoint {path} is another stage's: it records the components "
            f"{sorted(recorded)}, the {stage} stage's model records {sorted(names)}")
    try:
        specs = model.component_specs()
    except Exception:  # an unrecordable argument fails in setup with its own message
        return
    for name in names:
        want = (specs.get(name) or {}).get("class_path")
        have = (recorded.get(name) or {}).get("class_path") if isinstance(
            recorded.get(name), Mapping) else None
        if want and have and want != have:
            raise CLIInputError(
                f"--ckpt_path: checkpoint {path} holds a {name} {have}, but this config "
                f"builds a {want}; resume only from a checkpoint of the same config")
