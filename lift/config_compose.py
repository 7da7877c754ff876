"""Config composition: a YAML config may build on other files with a top-level ``extends:``.

``extends`` holds a path or a list of paths, relative to the file that names them (``~`` is
expanded). Their contents, each resolved the same way (chains recurse), are merged in list
order, and the file's own keys are merged on top:

* mappings merge recursively;
* lists and scalars of the including file replace (a list is never concatenated; ``null``
  replaces too, so a file can unset an inherited value);
* a component mapping whose ``class_path`` differs from the inherited one replaces the
  inherited mapping as a whole (its ``init_args`` belong to another class).

A file reached twice along one chain (a cycle), a missing or unreadable file, a file that is
not a YAML mapping and a malformed ``extends`` value are a :class:`ConfigComposeError` whose
message names the file chain. Diamonds (two files extending the same fragment) are fine.

``lift fit|validate|test|predict --config FILE`` resolves ``extends`` before LightningCLI
parses (see ``lift.cli``); ``lift compose FILE [FILE ...]`` prints the merged YAML. This is a
plain YAML merge: LightningCLI's own merging of several ``--config`` files (type-aware, e.g.
for ``class_path`` changes) still applies between the resolved files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

EXTENDS_KEY = "extends"


class ConfigComposeError(ValueError):
    """A config file whose ``extends`` cannot be resolved; the message names the file chain."""


class _Loader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 floats (``1e-8`` is a float, as jsonargparse reads it)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def _chain_text(chain: Sequence[Path]) -> str:
    return " -> ".join(str(p) for p in chain)


def load_yaml(path: str | os.PathLike, chain: Sequence[Path] = ()) -> dict[str, Any]:
    """One YAML file as a mapping (empty file: ``{}``), without resolving ``extends``."""
    path = Path(path)
    where = _chain_text([*chain, path])
    if not path.is_file():
        if chain:
            raise ConfigComposeError(
                f"{chain[-1]}: extends a missing file {path} (chain: {where})")
        raise ConfigComposeError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())  # one line: the parser's message spans several
        raise ConfigComposeError(f"{path}: cannot read YAML ({detail}) (chain: {where})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigComposeError(
            f"{path}: a config must be a YAML mapping, got {type(data).__name__} "
            f"(chain: {where})")
    return data


def has_extends(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a readable YAML mapping with a top-level ``extends`` key."""
    try:
        data = yaml.load(Path(path).read_text(), Loader=_Loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
        return False
    return isinstance(data, dict) and EXTENDS_KEY in data


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` merged onto ``base`` (neither is modified); see the module docstring."""
    if not isinstance(base, Mapping) or not isinstance(override, Mapping):
        return _copy(override)
    if ("class_path" in base and "class_path" in override
            and base["class_path"] != override["class_path"]):
        return _copy(override)
    out = {k: _copy(v) for k, v in base.items()}
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if key in out else _copy(value)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _extends_list(path: Path, value: Any, chain: Sequence[Path]) -> list[Path]:
    items = [value] if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(items, list) or not all(isinstance(i, (str, os.PathLike)) for i in items):
        raise ConfigComposeError(
            f"{path}: '{EXTENDS_KEY}' must be a path or a list of paths, got {value!r} "
            f"(chain: {_chain_text(chain)})")
    out = []
    for item in items:
        p = Path(os.path.expanduser(str(item)))
        out.append(p if p.is_absolute() else path.parent / p)
    return out


def resolve_config(path: str | os.PathLike, _chain: Sequence[Path] = ()) -> dict[str, Any]:
    """The contents of ``path`` with its ``extends`` chain merged in (no ``extends`` key left)."""
    path = Path(path)
    key = Path(os.path.realpath(path))
    seen = [Path(os.path.realpath(p)) for p in _chain]
    if key in seen:
        cycle = [*_chain[seen.index(key):], path]
        raise ConfigComposeError(
            f"{_chain[-1]}: '{EXTENDS_KEY}' cycle: {_chain_text(cycle)} "
            f"(chain: {_chain_text([*_chain, path])})")
    data = load_yaml(path, _chain)
    if EXTENDS_KEY not in data:
        return data
    chain = [*_chain, path]
    merged: dict[str, Any] = {}
    for parent in _extends_list(path, data.pop(EXTENDS_KEY), chain):
        merged = deep_merge(merged, resolve_config(parent, chain))
    return deep_merge(merged, data)


def compose_files(paths: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Each file resolved, then merged left to right with :func:`deep_merge`."""
    merged: dict[str, Any] = {}
    for path in paths:
        merged = deep_merge(merged, resolve_config(path))
    return merged


def dump_yaml(data: Mapping[str, Any]) -> str:
    """YAML text for a composed config (key order kept)."""
    return yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False)
