"""Plugin manager and registry: loading, provenance, duplicate names, import failures,
disabling by name."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import types
from importlib import metadata
from pathlib import Path

import pytest

from lift import hookimpl
from lift.components import GradientOperator, Translator
from lift.plugins import PluginLoadError, create_plugin_manager
from lift.registry import Registry, RegistryError

ROOT = Path(__file__).resolve().parents[1]


def _plugin(name: str, hook: str, classes: list[type]) -> types.ModuleType:
    module = types.ModuleType(name)
    setattr(module, hook, hookimpl(lambda: classes))
    return module


def _translator(name: str) -> type:
    cls = type(name, (Translator,), {"__module__": f"pkg_{name.lower()}"})
    cls.__abstractmethods__ = frozenset()
    return cls


def test_builtins_come_through_the_entry_point_group(builtin_registry):
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["lift"]
    loaded = builtin_registry.manager.plugins
    assert set(declared) == set(loaded)
    for name, info in loaded.items():
        assert info.distribution == "lift"
        assert info.module == declared[name]
    ops = {c.name for c in builtin_registry.components("gradient_operator")}
    assert {"HighPass", "Laplacian", "SobelMagnitude"} <= ops


def test_duplicate_component_names_name_both_plugins(fresh_manager):
    fresh_manager.register(_plugin("a", "lift_register_translators", [_translator("Dup")]), "alpha")
    fresh_manager.register(_plugin("b", "lift_register_translators", [_translator("Dup")]), "beta")
    with pytest.raises(RegistryError) as err:
        Registry(fresh_manager)
    msg = str(err.value)
    assert "'Dup'" in msg and "alpha" in msg and "beta" in msg
    assert "pkg_dup.Dup" in msg


def test_registering_a_non_component_is_an_error(fresh_manager):
    fresh_manager.register(_plugin("w", "lift_register_translators", [GradientOperator]), "wrong")
    with pytest.raises(RegistryError, match="wrong.*not a subclass of lift.components"):
        Registry(fresh_manager)


def test_unknown_component_lists_what_is_registered(builtin_registry):
    with pytest.raises(KeyError, match="HighPass"):
        builtin_registry.get("gradient_operator", "Sobel")


def _fake_entry_points(monkeypatch, eps):
    monkeypatch.setattr("lift.plugins._entry_points", lambda: eps)


def test_plugin_failing_to_import_names_its_entry_point(monkeypatch):
    bad = metadata.EntryPoint("broken", "lift_no_such_module.hooks", "lift")
    _fake_entry_points(monkeypatch, [bad])
    with pytest.raises(PluginLoadError) as err:
        create_plugin_manager(disabled=())
    msg = str(err.value)
    assert "'broken'" in msg and "lift_no_such_module.hooks" in msg
    assert "LIFT_DISABLE_PLUGINS=broken" in msg


def test_disabled_plugin_is_not_imported(monkeypatch):
    bad = metadata.EntryPoint("broken", "lift_no_such_module.hooks", "lift")
    good = metadata.EntryPoint("gradients", "lift_gradients.hooks", "lift")
    _fake_entry_points(monkeypatch, [bad, good])
    monkeypatch.setenv("LIFT_DISABLE_PLUGINS", "broken, other")
    manager = create_plugin_manager()
    assert list(manager.plugins) == ["gradients"]
    assert manager.disabled == ("broken", "other")


def test_distribution_filter_skips_other_distributions(monkeypatch):
    foreign = metadata.EntryPoint("foreign", "lift_no_such_module.hooks", "lift")  # dist None
    _fake_entry_points(monkeypatch, [foreign])
    assert create_plugin_manager(distributions={"lift"}).plugins == {}


def test_two_plugins_with_one_name_are_an_error(fresh_manager):
    fresh_manager.register(types.ModuleType("m1"), "same")
    with pytest.raises(PluginLoadError, match="'same'"):
        fresh_manager.register(types.ModuleType("m2"), "same")


def _lift(*args: str, disable: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LIFT_DISABLE_PLUGINS"}
    if disable is not None:
        env["LIFT_DISABLE_PLUGINS"] = disable
    return subprocess.run([sys.executable, "-m", "lift.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_cli_flag_and_environment_disable_plugins():
    shown = _lift("plugins", "--kind", "gradient_operator")
    assert shown.returncode == 0, shown.stderr
    assert "HighPass" in shown.stdout and "plugin gradients (lift)" in shown.stdout
    flag = _lift("--disable-plugins", "gradients", "plugins")
    assert flag.returncode == 0, flag.stderr
    assert "HighPass" not in flag.stdout and "gradients        disabled" in flag.stdout
    env = _lift("plugins", disable="gradients")
    assert env.returncode == 0 and "HighPass" not in env.stdout


# --- the core stands without its built-in plugins --------------------------------------------


def test_nothing_under_lift_imports_a_builtin_plugin():
    import ast

    root = Path(__file__).resolve().parents[1] / "lift"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(root.parent)}: {n}" for n in names
                          if n.split(".")[0].startswith("lift_")]
    assert not offenders, offenders


def test_disabling_the_stylegan2_plugin_leaves_help_and_plugins_working():
    help_ = _lift("--disable-plugins", "stylegan2", "--help")
    assert help_.returncode == 0 and "fit" in help_.stdout
    listed = _lift("--disable-plugins", "stylegan2", "plugins")
    assert listed.returncode == 0, listed.stderr
    assert "stylegan2        disabled" in listed.stdout and "StyleGANWPlus" not in listed.stdout
    assert "CUT" in listed.stdout  # the other plugins still load


def test_a_config_naming_a_disabled_plugins_class_by_full_path_is_refused():
    config = Path(__file__).resolve().parents[1] / "configs" / "prior" / "stylegan2_quickstart.yaml"
    out = _lift("--disable-plugins", "stylegan2", "fit", "--config", str(config),
                "--print_config")
    assert out.returncode != 0
    assert "lift plugin 'stylegan2', which is disabled" in out.stderr
