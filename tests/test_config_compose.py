"""Config composition with ``extends:`` (lift.config_compose) and its use by the `lift` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lift.cli import main, resolve_config_args
from lift.config_compose import (
    ConfigComposeError,
    compose_files,
    deep_merge,
    has_extends,
    resolve_config,
)


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


# --- merge semantics -------------------------------------------------------------------------


def test_deep_merge_maps_recurse_lists_and_scalars_replace():
    base = {"trainer": {"max_steps": 10, "callbacks": [1, 2], "plugins": {"a": 1}},
            "seed": 0, "x": {"y": 1}}
    over = {"trainer": {"max_steps": 20, "callbacks": [3], "plugins": {"b": 2}},
            "x": None, "new": [1]}
    merged = deep_merge(base, over)
    assert merged == {"trainer": {"max_steps": 20, "callbacks": [3],
                                  "plugins": {"a": 1, "b": 2}},
                      "seed": 0, "x": None, "new": [1]}
    assert base["trainer"]["max_steps"] == 10 and base["trainer"]["callbacks"] == [1, 2]
    merged["new"].append(2)
    assert over["new"] == [1]  # no aliasing of the inputs


def test_deep_merge_a_swapped_class_path_replaces_the_component():
    base = {"model": {"class_path": "A", "init_args": {"a": 1, "shared": 1}}}
    same = deep_merge(base, {"model": {"class_path": "A", "init_args": {"shared": 2}}})
    assert same == {"model": {"class_path": "A", "init_args": {"a": 1, "shared": 2}}}
    swapped = deep_merge(base, {"model": {"class_path": "B", "init_args": {"b": 2}}})
    assert swapped == {"model": {"class_path": "B", "init_args": {"b": 2}}}
    # Without a class_path of its own the including file tunes the inherited component.
    tuned = deep_merge(base, {"model": {"init_args": {"a": 5}}})
    assert tuned["model"] == {"class_path": "A", "init_args": {"a": 5, "shared": 1}}


def test_extends_chain_relative_to_each_file(tmp_path):
    _write(tmp_path / "frags" / "base.yaml", {"trainer": {"max_steps": 1, "devices": 1},
                                                "tags": ["base"]})
    _write(tmp_path / "frags" / "mid.yaml", {"extends": "base.yaml",
                                               "trainer": {"max_steps": 2}, "tags": ["mid"]})
    stage = _write(tmp_path / "stages" / "stage.yaml",
                   {"extends": "../frags/mid.yaml", "trainer": {"accelerator": "cpu"}})
    assert has_extends(stage) and not has_extends(tmp_path / "frags" / "base.yaml")
    assert resolve_config(stage) == {"trainer": {"max_steps": 2, "devices": 1,
                                                 "accelerator": "cpu"}, "tags": ["mid"]}


def test_extends_list_merges_in_order_and_own_keys_win(tmp_path):
    _write(tmp_path / "a.yaml", {"v": "a", "only_a": 1, "m": {"k": "a"}})
    _write(tmp_path / "b.yaml", {"v": "b", "m": {"k": "b", "kb": 1}})
    _write(tmp_path / "shared.yaml", {"shared": True})
    _write(tmp_path / "c.yaml", {"extends": "shared.yaml", "v": "c"})
    top = _write(tmp_path / "top.yaml", {"extends": ["a.yaml", "b.yaml", "c.yaml"], "m": {"k": 0}})
    assert resolve_config(top) == {"v": "c", "only_a": 1, "m": {"k": 0, "kb": 1},
                                   "shared": True}
    # A diamond (two files extending the same fragment) is not a cycle.
    _write(tmp_path / "d.yaml", {"extends": "shared.yaml"})
    diamond = _write(tmp_path / "diamond.yaml", {"extends": ["c.yaml", "d.yaml"]})
    assert resolve_config(diamond) == {"shared": True, "v": "c"}


def test_float_exponents_read_as_floats(tmp_path):
    _write(tmp_path / "base.yaml", "model:\n  eps: 1e-8\n  lr: 2.0e-3\n")
    top = _write(tmp_path / "top.yaml", "extends: base.yaml\n")
    assert resolve_config(top) == {"model": {"eps": 1e-8, "lr": 2e-3}}


def test_cycle_is_an_error_naming_both_files(tmp_path):
    a = _write(tmp_path / "a.yaml", {"extends": "b.yaml", "x": 1})
    _write(tmp_path / "b.yaml", {"extends": "a.yaml", "y": 1})
    with pytest.raises(ConfigComposeError, match="cycle") as err:
        resolve_config(a)
    message = str(err.value)
    assert str(tmp_path / "a.yaml") in message and str(tmp_path / "b.yaml") in message
    self_ref = _write(tmp_path / "self.yaml", {"extends": "self.yaml"})
    with pytest.raises(ConfigComposeError, match="cycle"):
        resolve_config(self_ref)


def test_missing_file_is_an_error_naming_the_chain(tmp_path):
    top = _write(tmp_path / "top.yaml", {"extends": "mid.yaml"})
    _write(tmp_path / "mid.yaml", {"extends": "nowhere/missing.yaml"})
    with pytest.raises(ConfigComposeError) as err:
        resolve_config(top)
    message = str(err.value)
    assert "missing.yaml" in message and str(tmp_path / "mid.yaml") in message
    assert str(tmp_path / "top.yaml") in message
    with pytest.raises(ConfigComposeError, match="not found"):
        resolve_config(tmp_path / "absent.yaml")


def test_malformed_files_are_errors_naming_the_file(tmp_path):
    bad_value = _write(tmp_path / "bad_value.yaml", {"extends": {"not": "a path"}})
    with pytest.raises(ConfigComposeError, match="bad_value.yaml.*path or a list"):
        resolve_config(bad_value)
    _write(tmp_path / "list.yaml", "- 1\n- 2\n")
    top = _write(tmp_path / "top.yaml", {"extends": "list.yaml"})
    with pytest.raises(ConfigComposeError, match="list.yaml: a config must be a YAML mapping"):
        resolve_config(top)
    _write(tmp_path / "broken.yaml", "a: [1, 2\n")
    top = _write(tmp_path / "top2.yaml", {"extends": "broken.yaml"})
    with pytest.raises(ConfigComposeError, match="broken.yaml: cannot read YAML"):
        resolve_config(top)


# --- the CLI -----------------------------------------------------------------------------------


def _toy_stage(tmp_path: Path) -> Path:
    """stage.yaml (model, data) extending fragments/trainer.yaml (the trainer block)."""
    _write(tmp_path / "fragments" / "trainer.yaml", {"trainer": {
        "accelerator": "cpu", "devices": 1, "max_steps": 3, "enable_progress_bar": False,
        "default_root_dir": str(tmp_path / "run"),
        "callbacks": [{"class_path": "lift.callbacks.StageCheckpoint"}]}})
    return _write(tmp_path / "stage.yaml", {
        "extends": "fragments/trainer.yaml",
        "trainer": {"max_steps": 4},
        "model": {"class_path": "toy_stage.TinyRegressor", "init_args": {"lr": 0.05}},
        "data": {"class_path": "toy_stage.TinyData", "init_args": {"n": 4}},
    })


def test_resolve_config_args_replaces_only_files_with_extends(tmp_path):
    stage = _toy_stage(tmp_path)
    plain = _write(tmp_path / "plain.yaml", {"trainer": {"max_steps": 9}})
    argv = ["fit", "--config", str(stage), "-c", str(plain), f"--config={stage}",
            "--trainer.max_steps=2", "--", "--config", str(stage)]
    out, composed = resolve_config_args(argv)
    assert composed == [str(stage), str(stage)]
    assert out[2].startswith(f"# composed from {stage}\n")
    assert yaml.safe_load(out[2])["trainer"]["callbacks"][0]["class_path"].endswith(
        "StageCheckpoint")
    assert out[3:5] == ["-c", str(plain)]
    assert out[5].startswith(f"--config=# composed from {stage}")
    assert out[6:] == ["--trainer.max_steps=2", "--", "--config", str(stage)]


def test_cli_print_config_and_fast_dev_run_with_extends(tmp_path, capsys, monkeypatch):
    stage = _toy_stage(tmp_path)
    monkeypatch.chdir(tmp_path / "fragments")  # extends is relative to the file, not the cwd
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(stage), "--print_config"])
    captured = capsys.readouterr()
    assert exit_.value.code == 0, captured.err[-3000:]
    config = yaml.safe_load(captured.out)
    assert config["trainer"]["accelerator"] == "cpu"  # from the fragment
    assert config["trainer"]["max_steps"] == 4  # the including file wins
    assert config["model"]["init_args"]["lr"] == 0.05
    assert "extends" not in config
    assert main(["fit", "--config", str(stage), "--trainer.fast_dev_run=true"]) == 0
    run = tmp_path / "run"
    assert not run.exists() or not any(run.rglob("*"))  # fast_dev_run: no checkpoint, no logs


def test_cli_compose_error_names_the_original_file(tmp_path, capsys):
    stage = _write(tmp_path / "stage.yaml", {"extends": "gone.yaml"})
    assert main(["fit", "--config", str(stage)]) == 2
    err = capsys.readouterr().err
    assert str(stage) in err and "gone.yaml" in err


def test_cli_parse_error_mentions_the_composed_file(tmp_path, capsys):
    stage = _toy_stage(tmp_path)
    bad = _write(tmp_path / "bad.yaml", {"extends": "stage.yaml", "trainer": {"max_stepz": 1}})
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(bad)])
    assert exit_.value.code != 0
    err = capsys.readouterr().err
    assert "max_stepz" in err and str(bad) in err


def test_lift_compose_prints_the_merged_yaml(tmp_path, capsys):
    stage = _toy_stage(tmp_path)
    overlay = _write(tmp_path / "overlay.yaml", {"trainer": {"max_steps": 7}})
    assert main(["compose", str(stage), str(overlay)]) == 0
    merged = yaml.safe_load(capsys.readouterr().out)
    assert merged == compose_files([stage, overlay])
    assert merged["trainer"]["max_steps"] == 7 and merged["trainer"]["accelerator"] == "cpu"
    assert list(merged) == ["trainer", "model", "data"]
    assert main(["compose", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_top_level_help_lists_compose(capsys):
    assert main(["--help"]) == 0
    assert "\n  compose " in capsys.readouterr().out


def test_invalid_yaml_and_a_symlink_loop_are_errors_naming_the_file(tmp_path, capsys):
    from lift.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    assert main(["fit", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lift: error: {bad}: cannot read YAML")
    loop_a, loop_b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    assert main(["fit", "--config", str(loop_a)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lift: error: {loop_a}: config file is a broken symbolic link")
    assert "symbolic links" in err
