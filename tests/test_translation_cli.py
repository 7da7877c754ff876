"""Every shipped translation config trains under ``fast_dev_run`` on the quickstart data, with
finite losses for every term its loss weights name (a prior checkpoint and a latent bank are
replaced by a freshly built network and a bank of random codes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import translation_helpers
from lift.cli import main
from lift_stylegan2.networks import Generator
from test_translation_stage import write_bank

from lift.config_compose import resolve_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs" / "translate").glob("*.yaml"))
PRIOR = resolve_config(ROOT / "configs" / "prior" / "stylegan2_quickstart.yaml")
QUICKSTART_G = PRIOR["model"]["init_args"]["generator"]
QUICKSTART_D = PRIOR["model"]["init_args"]["discriminator"]
INVERT = resolve_config(ROOT / "configs" / "invert" / "stylegan2_quickstart.yaml")
INVERSION = INVERT["model"]["init_args"]["settings"]  # the invert config's Eq. 1, 2 steps
INVERSION["init_args"]["schedule"]["init_args"]["steps"] = 2
INVERSION["init_args"]["w_stats_samples"] = 256


def _overlay(config: Path, tmp_path: Path) -> Path:
    """No prior checkpoint, a bank of random codes, 2-step test-time inversion."""
    init = resolve_config(config)["model"]["init_args"]["translator"].get("init_args", {})
    over: dict = {}
    if "checkpoint" in init:  # the quickstart prior's networks, built in memory
        over.update(checkpoint=None, generator=QUICKSTART_G, discriminator=QUICKSTART_D)
    if init.get("sampler", {}).get("class_path", "").endswith("WPlusBankSampler"):
        g = Generator(**QUICKSTART_G["init_args"])
        stems = [f"s{i:06d}" for i in range(80)]  # every quickstart stem
        bank = write_bank(tmp_path / "bank", stems, torch.randn(len(stems), g.num_ws, g.w_dim))
        over["sampler"] = {"init_args": {"bank": bank}}
        over["paired_bank"] = bank
    if "inversion" in init:
        over["inversion"] = INVERSION
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump({"model": {"init_args": {"translator": {"init_args": over}}}}))
    return path


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_shipped_translator_trains_under_fast_dev_run(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs' relative run directories land in tmp_path
    translation_helpers.SEEN.clear()
    argv = ["fit", "--config", str(config), "--config", str(ROOT / "configs/trainer/cpu.yaml"),
            "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path),
            "--trainer.callbacks+", "translation_helpers.FiniteLossCheck",
            "--config", str(_overlay(config, tmp_path))]
    assert main(argv) == 0
    assert translation_helpers.SEEN, "no training step ran"
    weights = resolve_config(config)["model"]["init_args"]["loss_weights"]
    logged = {k.split("/")[-1] for k in translation_helpers.SEEN[-1]}
    lazy = {"r1"}  # lazily computed terms may be absent from a given step
    assert set(weights) - lazy <= logged | {n for n, w in weights.items() if w == 0}, logged


# --- DDP: 2 CPU processes --------------------------------------------------------------------


@pytest.mark.ddp
def test_stylegan_wplus_under_ddp_two_cpu_processes(tmp_path):
    """The stage under ``--trainer.strategy ddp --trainer.devices 2``: ranks finish with equal
    weights (test_prior_stage.RankConsistency), validation (with test-time inversion) and the
    image grid run on both ranks without deadlock, and a checkpoint is written."""
    import os
    import subprocess
    import sys

    tiny = {"z_dim": 32, "w_dim": 32, "resolution": 32, "channel_base": 256, "channel_max": 32,
            "mapping_layers": 2}
    g = Generator(**tiny)
    stems = [f"s{i:06d}" for i in range(80)]
    bank = write_bank(tmp_path / "bank", stems, torch.randn(len(stems), g.num_ws, g.w_dim))
    ckpt_dir = tmp_path / "ckpt"
    overlay = {
        "trainer": {
            "max_steps": 6, "check_val_every_n_epoch": 1, "limit_val_batches": 1,
            "limit_train_batches": 3, "logger": False, "default_root_dir": str(tmp_path),
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(ckpt_dir), "save_last": True}},
                {"class_path": "lift.callbacks.ImageGridLogger"},
                {"class_path": "test_prior_stage.RankConsistency"}]},
        "model": {"init_args": {
            "loss_weights": {"adv": 1.0, "r1": 10.0, "lpips_prior": 0.5, "paired": 1.0},
            "translator": {"init_args": {
                "checkpoint": None, "paired_bank": bank, "identity_encoder": None,
                "sampler": {"init_args": {"bank": bank}},
                "inversion": INVERSION,
                "generator": {"class_path": QUICKSTART_G["class_path"], "init_args": tiny},
                "discriminator": {"class_path": QUICKSTART_D["class_path"], "init_args": {
                    "resolution": 32, "channel_base": 256, "channel_max": 32,
                    "mbstd_group_size": 2}}}}}},
        "data": {"init_args": {"resolution": 32, "batch_size": 4, "paired_batch_size": 2}},
    }
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parent),
                                           os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "lift.cli", "fit",
           "--config", str(ROOT / "configs/translate/stylegan_wplus_quickstart.yaml"),
           "--config", str(path), "--config", str(ROOT / "configs/trainer/ddp_cpu.yaml")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 6
    assert list(tmp_path.rglob("*.png")), "no image grid was written"
