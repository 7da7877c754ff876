"""Component specs: the ``class_path`` and ``init_args`` a component was built with.

A stage's output (a checkpoint, a latent bank's manifest) stores the specs of the components
it trained or used, so the next stage rebuilds them from that output alone: a downstream
config names the upstream file and never restates an architecture. Specs are plain data
(dicts, lists, strings, numbers), so checkpoints holding them still load with
``torch.load(weights_only=True)``.

Every component base class of :mod:`lift.components` (and any class that inherits
:class:`Recordable`) records the arguments of its outermost ``__init__`` call, exactly as
LightningCLI's ``class_path`` / ``init_args`` would spell them. :func:`build` rebuilds only
:class:`Recordable` classes, so a hostile spec cannot name an arbitrary callable.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from pathlib import PurePath
from typing import Any, Mapping

SPEC_ATTR = "_lift_spec"
TRUSTED_ENV = "LIFT_TRUSTED_MODULES"


class SpecError(ValueError):
    """A component cannot be recorded as plain data, or a spec cannot be rebuilt."""


def _wrap_init(cls: type) -> None:
    init = cls.__dict__["__init__"]
    if getattr(init, "_lift_records", False):
        return
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if SPEC_ATTR not in self.__dict__:  # the outermost (most derived) call records
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            values = dict(bound.arguments)
            values.pop(next(iter(signature.parameters)))  # self
            for name, param in signature.parameters.items():
                if param.kind is inspect.Parameter.VAR_KEYWORD:
                    values.update(values.pop(name, {}))
                elif param.kind is inspect.Parameter.VAR_POSITIONAL:
                    if values.pop(name, ()):
                        raise SpecError(f"{cls.__qualname__}: *args cannot be recorded")
            kind = type(self)  # a subclass without an __init__ of its own runs this one
            object.__setattr__(self, SPEC_ATTR, (f"{kind.__module__}.{kind.__qualname__}", values))
        init(self, *args, **kwargs)

    __init__._lift_records = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]


class Recordable:
    """Mixin: instances remember their constructor arguments (see :func:`spec_of`)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            _wrap_init(cls)


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): _encode(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, Recordable):
        return spec_of(value, where)
    raise SpecError(
        f"{where}: a {type(value).__module__}.{type(value).__qualname__} cannot be recorded "
        "as plain data (make its class inherit lift.spec.Recordable or a lift component "
        "base class)")


def spec_of(obj: Any, where: str = "component") -> dict[str, Any]:
    """``{"class_path": ..., "init_args": {...}}`` of a recorded object (nested specs inside)."""
    recorded = getattr(obj, "__dict__", {}).get(SPEC_ATTR)
    if recorded is None and isinstance(obj, Recordable):
        # No class of its own down to Recordable defines __init__: built without arguments.
        recorded = (f"{type(obj).__module__}.{type(obj).__qualname__}", {})
    if recorded is None:
        raise SpecError(f"{where}: {type(obj).__qualname__} did not record its arguments "
                        "(not a lift.spec.Recordable)")
    class_path, values = recorded
    return {"class_path": class_path,
            "init_args": {k: _encode(v, f"{where}.{k}") for k, v in values.items()}}


def is_spec(value: Any) -> bool:
    return isinstance(value, Mapping) and "class_path" in value and set(value) <= {
        "class_path", "init_args"}


def _importable(module_name: str) -> bool:
    """Only lift's own and its plugins' packages, modules already imported (no new import-time
    code runs), or top-level modules the user lists in ``$LIFT_TRUSTED_MODULES`` (comma
    separated: their own components that are not packaged as a plugin) may be imported to
    rebuild a spec."""
    if module_name in sys.modules:
        return True
    from lift.plugins import _entry_points

    top = module_name.split(".", 1)[0]
    trusted = {m.strip() for m in os.environ.get(TRUSTED_ENV, "").split(",") if m.strip()}
    return top == "lift" or top in trusted or top in {
        ep.value.split(":", 1)[0].split(".", 1)[0] for ep in _entry_points()}


def resolve_class(class_path: str, where: str = "spec") -> type:
    module_name, _, name = class_path.rpartition(".")
    if not _importable(module_name):
        raise SpecError(f"{where}: {class_path!r} is not in lift or a lift plugin; refusing to "
                        "import it")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as err:
        raise SpecError(f"{where}: cannot import {class_path!r} ({err})") from err
    if not (isinstance(obj, type) and issubclass(obj, Recordable)):
        raise SpecError(f"{where}: {class_path!r} is not a lift component class; refusing to "
                        "build it")
    return obj


def _decode(value: Any, where: str) -> Any:
    if is_spec(value):
        return build(value, where)
    if isinstance(value, list):
        return [_decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _decode(v, f"{where}.{k}") for k, v in value.items()}
    return value


def build(spec: Mapping[str, Any], where: str = "spec", **overrides: Any) -> Any:
    """Rebuild a component from its spec; ``overrides`` replace top-level ``init_args``."""
    if not is_spec(spec):
        raise SpecError(f"{where}: not a component spec (a mapping with class_path/init_args)")
    from lift.registry import get_registry

    get_registry()  # plugins imported, so their classes resolve (and disabled ones do not)
    cls = resolve_class(str(spec["class_path"]), where)
    args = {k: _decode(v, f"{where}.{k}") for k, v in dict(spec.get("init_args") or {}).items()}
    args.update({k: _decode(v, f"{where}.{k}") for k, v in overrides.items()})
    try:
        return cls(**args)
    except TypeError as err:
        raise SpecError(f"{where}: {spec['class_path']} does not accept the recorded "
                        f"arguments ({err})") from err
