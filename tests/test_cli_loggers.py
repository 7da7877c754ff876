"""The `lift` CLI's default loggers: TensorBoard and CSV in one <root>/logs/version_N/, a new
version per run (reruns save their config.yaml), StageCheckpoint's fixed last.ckpt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lift.cli import LOG_VERSION_ENV, main, shared_log_version

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, **trainer) -> Path:
    data = {
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 4, "enable_progress_bar": False,
            "enable_model_summary": False, "num_sanity_val_steps": 0, "log_every_n_steps": 1,
            "default_root_dir": str(tmp_path / "run"),
            "callbacks": [{"class_path": "lift.callbacks.StageCheckpoint"},
                          {"class_path": "lift.callbacks.ImageGridLogger"}],
            **trainer,
        },
        "model": {"class_path": "toy_stage.TinyRegressor"},
        "data": {"class_path": "toy_stage.TinyData", "init_args": {"n": 4}},
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _versions(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "logs").iterdir()) if (root / "logs").is_dir() else []


def test_default_loggers_share_one_version_dir_and_reruns_get_a_new_one(tmp_path, recwarn):
    config = _config(tmp_path)
    run = tmp_path / "run"
    assert main(["fit", "--config", str(config)]) == 0
    assert _versions(run) == ["version_0"]
    v0 = run / "logs" / "version_0"
    assert list(v0.glob("events.out.tfevents.*")), "no TensorBoard events"
    assert (v0 / "metrics.csv").is_file() and "train/loss" in (v0 / "metrics.csv").read_text()
    assert (v0 / "config.yaml").is_file()  # LightningCLI's SaveConfigCallback
    assert list((v0 / "images").glob("toy_step*.png")), "no image grid in the version dir"
    assert torch.load(run / "last.ckpt", weights_only=False)["global_step"] == 4
    assert not (run / "lightning_logs").exists()
    assert not [w for w in recwarn if "exists and is not empty" in str(w.message)
                and "logs" in str(w.message) and "Checkpoint" not in str(w.message)]

    # The same command again, resuming: a new version dir, config.yaml written again.
    assert main(["fit", "--config", str(config), "--trainer.max_steps=6",
                 "--ckpt_path=last"]) == 0
    assert _versions(run) == ["version_0", "version_1"]
    assert (run / "logs" / "version_1" / "config.yaml").is_file()
    assert list((run / "logs" / "version_1").glob("events.out.tfevents.*"))
    assert torch.load(run / "last.ckpt", weights_only=False)["global_step"] == 6


def test_logger_false_stays_off(tmp_path):
    config = _config(tmp_path, logger=False)
    assert main(["fit", "--config", str(config)]) == 0
    run = tmp_path / "run"
    assert not (run / "logs").exists() and not (run / "lightning_logs").exists()
    assert (run / "last.ckpt").is_file()


def test_logger_true_gets_the_default_pair(tmp_path):
    config = _config(tmp_path, logger=True)
    assert main(["fit", "--config", str(config)]) == 0
    v0 = tmp_path / "run" / "logs" / "version_0"
    assert (v0 / "metrics.csv").is_file() and list(v0.glob("events.out.tfevents.*"))


def test_an_explicit_logger_is_kept(tmp_path):
    config = _config(tmp_path, logger={
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(tmp_path / "mine"), "name": "custom"}})
    assert main(["fit", "--config", str(config)]) == 0
    assert (tmp_path / "mine" / "custom" / "version_0" / "metrics.csv").is_file()
    assert not list((tmp_path / "mine").rglob("events.out.tfevents.*"))
    assert not (tmp_path / "run" / "logs").exists()


def test_shared_log_version_by_rank(tmp_path, monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", LOG_VERSION_ENV):
        monkeypatch.delenv(key, raising=False)
    root = tmp_path / "run"
    assert shared_log_version(root) == 0 and os.environ[LOG_VERSION_ENV] == "0"
    (root / "logs" / "version_0").mkdir(parents=True)
    (root / "logs" / "version_7").mkdir()
    (root / "logs" / "version_x").mkdir()  # not a version
    (root / "logs" / "version_9").write_text("")  # a file, not a version dir
    assert shared_log_version(root) == 8 and os.environ[LOG_VERSION_ENV] == "8"
    # A DDP rank launched by rank 0 inherits its number ...
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert shared_log_version(root) == 8
    # ... and one started by an outside launcher without it takes the latest existing one.
    monkeypatch.delenv(LOG_VERSION_ENV)
    assert shared_log_version(root) == 7
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")
    assert shared_log_version(root) == 7


@pytest.mark.ddp
def test_ddp_ranks_log_into_one_version_dir(tmp_path):
    config = _config(tmp_path, strategy="ddp", devices=2, max_steps=3)
    env = {k: v for k, v in os.environ.items() if k not in (LOG_VERSION_ENV, "LOCAL_RANK",
                                                             "NODE_RANK", "RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    run = tmp_path / "run"
    (run / "logs" / "version_0").mkdir(parents=True)  # a previous run
    cmd = [sys.executable, "-m", "lift.cli", "fit", "--config", str(config)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _versions(run) == ["version_0", "version_1"]
    v1 = run / "logs" / "version_1"
    assert (v1 / "config.yaml").is_file() and (v1 / "metrics.csv").is_file()
    assert list(v1.glob("events.out.tfevents.*"))
    assert torch.load(run / "last.ckpt", weights_only=False)["global_step"] == 3
