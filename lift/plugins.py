"""The one plugin manager: loads the ``lift`` entry points (built-ins included).

Built-in plugins in ``plugins/`` are registered through the same entry-point group as a
third party's, so the built-ins prove the third-party path. A plugin is disabled by its
entry-point name, with ``LIFT_DISABLE_PLUGINS=a,b`` or the CLI flag ``--disable-plugins a,b``.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Iterable

import pluggy

from lift import hookspecs

ENTRY_POINT_GROUP = "lift"
DISABLE_ENV = "LIFT_DISABLE_PLUGINS"


class PluginLoadError(RuntimeError):
    """A plugin's entry point failed to import."""


@dataclass
class PluginInfo:
    """Where a registered plugin came from."""

    name: str
    module: str
    distribution: str | None = None


@dataclass
class LiftPluginManager:
    """A pluggy PluginManager plus the provenance of each registered plugin."""

    pm: pluggy.PluginManager
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    disabled: tuple[str, ...] = ()

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.pm.hook

    def register(self, plugin: object, name: str, distribution: str | None = None) -> None:
        """Register a plugin object (usually a module) under ``name``."""
        if name in self.plugins:
            other = self.plugins[name]
            raise PluginLoadError(
                f"two lift plugins are named {name!r}: {other.module} "
                f"(distribution {other.distribution}) and {getattr(plugin, '__name__', plugin)} "
                f"(distribution {distribution})"
            )
        self.pm.register(plugin, name=name)
        module = getattr(plugin, "__name__", type(plugin).__name__)
        self.plugins[name] = PluginInfo(name=name, module=module, distribution=distribution)

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.plugins.pop(name, None)


def disabled_from_env() -> tuple[str, ...]:
    """Plugin names listed in ``$LIFT_DISABLE_PLUGINS`` (comma separated)."""
    raw = os.environ.get(DISABLE_ENV, "")
    return tuple(n.strip() for n in raw.split(",") if n.strip())


def _entry_points() -> list[metadata.EntryPoint]:
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    # An editable and a regular install of one distribution can both be visible; keep one.
    unique: dict[tuple[str, str], metadata.EntryPoint] = {}
    for ep in eps:
        unique.setdefault((ep.name, ep.value), ep)
    return sorted(unique.values(), key=lambda ep: ep.name)


def create_plugin_manager(
    *,
    load_entry_points: bool = True,
    disabled: Iterable[str] | None = None,
    distributions: Iterable[str] | None = None,
) -> LiftPluginManager:
    """Build a plugin manager and load the ``lift`` entry points.

    Args:
        load_entry_points: load installed plugins (False gives an empty manager, for tests).
        disabled: entry-point names to skip (default: ``$LIFT_DISABLE_PLUGINS``).
        distributions: if given, only load entry points of these distributions (tests use
            ``{"lift"}`` so that they never load whatever else happens to be installed).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    disabled = tuple(disabled) if disabled is not None else disabled_from_env()
    manager = LiftPluginManager(pm=pm, disabled=disabled)
    if not load_entry_points:
        return manager
    allowed = set(distributions) if distributions is not None else None
    for ep in _entry_points():
        dist = ep.dist.name if ep.dist is not None else None
        if allowed is not None and dist not in allowed:
            continue
        if ep.name in disabled:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # any import-time failure must name the entry point
            raise PluginLoadError(
                f"lift plugin entry point {ep.name!r} ({ep.value}, distribution {dist}) failed "
                f"to import: {type(exc).__name__}: {exc}. Disable it with "
                f"{DISABLE_ENV}={ep.name} or --disable-plugins {ep.name}."
            ) from exc
        manager.register(plugin, name=ep.name, distribution=dist)
    return manager


class _DisabledPackages(importlib.abc.MetaPathFinder):
    """Refuses imports of a disabled plugin's package (a config naming one of its classes by
    full path must not load the plugin anyway)."""

    def __init__(self, packages: dict[str, str]):
        self.packages = packages  # top-level package -> entry-point name

    def find_spec(self, fullname, path=None, target=None):
        name = self.packages.get(fullname.split(".", 1)[0])
        if name is not None:
            raise ImportError(
                f"{fullname} belongs to the lift plugin {name!r}, which is disabled "
                f"({DISABLE_ENV} / --disable-plugins); enable it or use another component")
        return None


def block_disabled_packages(disabled: Iterable[str] | None = None) -> dict[str, str]:
    """Make importing a disabled plugin's package an error in this process (the CLI calls it
    once, after reading ``--disable-plugins``); returns package -> plugin name."""
    disabled = set(disabled if disabled is not None else disabled_from_env())
    packages = {ep.value.split(":", 1)[0].split(".", 1)[0]: ep.name
                for ep in _entry_points() if ep.name in disabled}
    packages.pop("lift", None)  # never the core
    if packages:
        sys.meta_path.insert(0, _DisabledPackages(packages))
    return packages
