"""configs/invert/encoder_quickstart.yaml through `lift predict` (slow: the 60 quickstart
textures through a narrow generator; the encoder's training is shrunk to a few steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inversion_helpers import single_thread as _single_thread

single_thread = pytest.fixture(autouse=True)(_single_thread)

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = json.dumps({"class_path": "lift_stylegan2.networks.Generator", "init_args": {
    "z_dim": 32, "w_dim": 32, "resolution": 64, "channel_base": 256, "channel_max": 16,
    "mapping_layers": 2}})
S = "--model.init_args.settings.init_args"


@pytest.mark.slow
def test_encoder_config_writes_a_bank_and_records_its_settings(tmp_path):
    from lift.cli import main
    from lift.latent_bank import LatentBank

    args = ["predict", "--config", str(ROOT / "configs/invert/encoder_quickstart.yaml"),
            "--config", str(ROOT / "configs/trainer/cpu.yaml"),
            "--model.init_args.checkpoint", "null", "--model.init_args.generator", GENERATOR,
            f"{S}.schedule.init_args.steps", "2", f"{S}.training.init_args.samples", "64",
            f"{S}.training.init_args.latent_steps", "5", f"{S}.training.init_args.image_steps", "2",
            f"{S}.training.init_args.batch_size", "8",
            f"{S}.training.init_args.image_batch_size", "4",
            f"{S}.encoder_args", '{"channels": 4, "max_channels": 8, "global_dim": 16}',
            f"{S}.cache_dir", str(tmp_path / "encoders"),
            "--model.init_args.shard_size", "32", "--data.init_args.batch_size", "16",
            "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path / "run")]
    assert main(args) == 0
    bank = LatentBank.open(tmp_path / "run" / "bank")
    bank.check_complete()
    settings = bank.manifest["config"]["settings"]
    assert settings["class_path"] == "lift.inversion.encoder.EncoderInversionSettings"
    assert settings["init_args"]["encoder"] == "lift_stylegan2.wplus_encoder.ConvWPlusEncoder"
    assert len(list((tmp_path / "encoders").glob("wplus_encoder_*.pt"))) == 1
