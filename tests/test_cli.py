"""The `lift` command: top-level help, dispatch, and composition of every shipped config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from config_leaves import leaves

from lift.cli import _pop_disable_flag, main
from lift.config_compose import resolve_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("fit", "validate", "test", "predict", "plugins", "data"):
        assert f"\n  {command} " in out


def test_unknown_command_fails_with_help(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_disable_flag_is_moved_into_the_environment(monkeypatch):
    monkeypatch.delenv("LIFT_DISABLE_PLUGINS", raising=False)
    rest = _pop_disable_flag(["--disable-plugins", "a,b", "fit", "--disable-plugins=c", "-c", "x"])
    assert rest == ["fit", "-c", "x"]
    import os

    assert os.environ["LIFT_DISABLE_PLUGINS"] == "a,b,c"


def test_lightning_subcommand_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--trainer.strategy" in out and "--config" in out


def test_only_the_running_subcommands_parser_is_built(capsys):
    from lift.cli import LIGHTNING_COMMANDS, _lift_cli_class

    assert set(_lift_cli_class("predict").subcommands()) == {"predict"}
    assert set(_lift_cli_class().subcommands()) == set(LIGHTNING_COMMANDS)
    with pytest.raises(SystemExit) as exit_:  # another command than fit still parses
        main(["validate", "--help"])
    assert exit_.value.code == 0
    assert "--trainer.strategy" in capsys.readouterr().out


def test_plugins_json_lists_builtins(capsys):
    import json

    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {(r["kind"], r["name"]) for r in rows}
    assert ("gradient_operator", "HighPass") in names
    assert all(r["distribution"] == "lift" for r in rows)


# --- every shipped config composes ---------------------------------------------------------


def _is_stage_config(path: Path) -> bool:
    data = resolve_config(path)  # with its `extends:` fragments
    return "model" in data and "data" in data


def _overlay_base(path: Path) -> Path | None:
    for line in path.read_text().splitlines():
        if line.startswith("# overlay-for:"):
            return ROOT / line.split(":", 1)[1].strip()
    return None


STAGE_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml")
                       if "fragments" not in p.parts and _is_stage_config(p))
OVERLAYS = sorted(p for p in CONFIGS.rglob("*.yaml") if not _is_stage_config(p)
                  and "trainer" not in p.parts and "fragments" not in p.parts
                  and "run" not in p.parts)  # configs/run/: lift run recipes (tests/test_run.py)
FRAGMENTS = sorted((CONFIGS / "fragments").glob("*.yaml"))


def _compose(capsys, subcommand: str, *configs: Path) -> dict:
    args = [subcommand]
    for c in configs:
        args += ["--config", str(c)]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--print_config"])
    captured = capsys.readouterr()
    assert exit_.value.code == 0, captured.err[-3000:]
    return yaml.safe_load(captured.out)


def _subcommand(config: Path) -> str:
    return "predict" if "invert" in config.parts else "fit"


@pytest.mark.parametrize("config", STAGE_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_stage_config_composes(config, capsys):
    composed = _compose(capsys, _subcommand(config), config, CONFIGS / "trainer" / "cpu.yaml")
    assert composed["trainer"]["accelerator"] == "cpu"
    assert composed["model"]["class_path"]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_overlay_changes_only_its_keys(overlay, capsys):
    base = _overlay_base(overlay)
    assert base is not None, f"{overlay} must start with '# overlay-for: configs/<stage>/<x>.yaml'"
    assert base.is_file(), f"{overlay}: overlay-for names a missing file {base}"
    sub = _subcommand(base)
    plain = _compose(capsys, sub, base)
    changed = _compose(capsys, sub, base, overlay)
    assert plain != changed, f"{overlay} changes nothing"

    overlay_keys = {k for k, _ in leaves(yaml.safe_load(overlay.read_text()))}
    a, b = dict(leaves(plain)), dict(leaves(changed))
    diff = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    # Keys outside the overlay may differ only below a component whose class_path it swaps.
    swapped = {k.rsplit(".class_path", 1)[0] for k in overlay_keys if k.endswith("class_path")}
    stray = {k for k in diff - overlay_keys if not any(k.startswith(s + ".") for s in swapped)}
    assert not stray, f"{overlay} changed keys it does not hold: {sorted(stray)}"


@pytest.mark.parametrize("fragment", FRAGMENTS, ids=lambda p: p.name)
def test_every_fragment_is_used_by_a_shipped_config(fragment):
    users = [p for p in CONFIGS.rglob("*.yaml") if fragment.name in p.read_text() and p != fragment]
    assert users, f"{fragment} is extended by no config"


def test_no_stage_config_repeats_a_block_of_another():
    """Shared blocks live in configs/fragments/: no two stage configs hold the same
    component block (a class_path with its init_args) outside a fragment."""
    seen: dict[str, Path] = {}

    def blocks(node, path=""):
        if isinstance(node, dict):
            if "class_path" in node and node.get("init_args"):
                yield path, yaml.safe_dump(node, sort_keys=True)
            for k, v in node.items():
                yield from blocks(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from blocks(v, f"{path}[{i}]")

    repeated = []
    for config in STAGE_CONFIGS:
        raw = yaml.safe_load(config.read_text())
        for where, text in blocks({k: v for k, v in raw.items() if k != "extends"}):
            if len(text.splitlines()) < 6:  # a one-line choice (a sampler, a code) is no block
                continue
            if text in seen and seen[text] != config:
                repeated.append(f"{config.name}{where} repeats {seen[text].name}")
            seen.setdefault(text, config)
    assert not repeated, repeated


def test_data_check_exits_nonzero_on_a_broken_folder(tmp_path, capsys):
    (tmp_path / "phone").mkdir()
    (tmp_path / "phone" / "s1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert main(["data", "check", str(tmp_path)]) == 1
    assert "s1.png" in capsys.readouterr().out


def test_a_component_that_fails_to_build_reports_its_cause_first(tmp_path):
    """Not a 90-line jsonargparse traceback with the cause at its bottom: the cause, first."""
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "lift.cli", "predict", "--config",
         str(CONFIGS / "pipeline" / "studio.yaml"),
         f"--model.init_args.translator={tmp_path / 'missing.ckpt'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if k != "LIFT_TRACEBACK"})
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("lift:")]
    assert lines[0] == (f"lift: error: CheckpointError: checkpoint {tmp_path / 'missing.ckpt'} "
                        "does not exist")
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) < 6


def test_a_rerun_without_a_logger_saves_its_config_again(tmp_path):
    """Resuming into the same directory (the runner's kill/resume) must not stop on the
    config.yaml the first attempt saved there."""
    args = ["fit", "--config", str(CONFIGS / "translate" / "phone_texture_quickstart.yaml"),
            "--config", str(CONFIGS / "trainer" / "cpu.yaml"), "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false"]
    assert main(args) == 0
    assert (tmp_path / "config.yaml").is_file()
    assert main(args) == 0
