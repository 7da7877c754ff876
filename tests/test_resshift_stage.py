"""The upsampling stage: configs of Table 3, the LightningModule, CLI fit, DDP on 2 CPU ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
from lift.prediction_writer import TextureWriter
import torch
import yaml
from torch.utils.data import DataLoader

from lift.cli import main
from lift.stages.upsampling import UpsamplingModule
from lift_gradients.operators import HighPass
from lift_metrics.image_metrics import PSNR, SSIM
from lift_resshift.autoencoder import IdentityAutoencoder
from lift_resshift.denoiser import ConvDenoiser
from lift_resshift.scheduler import ResShiftScheduler
from lift_resshift.upsampler import ResShift

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "configs" / "upsample" / "resshift_train_inference.yaml"
OVERLAYS = {
    "none": ROOT / "configs" / "ablations" / "upsampler_vanilla.yaml",
    "inference": ROOT / "configs" / "ablations" / "upsampler_inference_only.yaml",
}
# A CPU-sized run: a tiny UNet, 2 reverse steps, batch 2, PSNR/SSIM only.
TINY = [
    "--model.init_args.upsampler.init_args.denoiser.init_args.block_out_channels=[8, 16]",
    "--model.init_args.num_inference_steps=2",
    "--model.init_args.metrics=[{class_path: lift_metrics.image_metrics.PSNR}]",
    "--data.init_args.batch_size=2",
    "--data.init_args.crop_size=64",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


def _compose(capsys, *configs: Path) -> dict:
    args = ["fit"]
    for c in configs:
        args += ["--config", str(c)]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--print_config"])
    out = capsys.readouterr()
    assert exit_.value.code == 0, out.err[-3000:]
    return yaml.safe_load(out.out)


def _leaves(d, prefix=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix, d


@pytest.mark.parametrize("mode", ["none", "inference"])
def test_table3_overlays_change_only_the_conditioning(mode, capsys):
    base = dict(_leaves(_compose(capsys, BASE)))
    changed = dict(_leaves(_compose(capsys, BASE, OVERLAYS[mode])))
    key = "model.init_args.upsampler.init_args.conditioning"
    assert base[key] == "train+inference" and changed[key] == mode
    # the conditioning, and the run directory (each Table 3 row keeps its own run)
    assert {k for k in set(base) | set(changed) if base.get(k) != changed.get(k)} == {
        key, "trainer.default_root_dir"}


def tiny_module(conditioning="train+inference", **kw) -> UpsamplingModule:
    torch.manual_seed(0)
    up = ResShift(ConvDenoiser(hidden_channels=8, num_layers=2),
                  ResShiftScheduler(num_train_timesteps=4), IdentityAutoencoder(),
                  gradient_operator=HighPass(), conditioning=conditioning, scale_factor=4)
    return UpsamplingModule(up, low_resolution=8, lr=1e-3, ema_decay=0.5,
                            metrics=[PSNR(), SSIM()], **kw)


def tiny_batches(n=2, size=32):
    g = torch.Generator().manual_seed(0)
    return [{"stem": [f"s{i}"], "phone": torch.rand(1, 3, size, size, generator=g),
             "mask": torch.ones(1, 1, size, size), "studio": torch.rand(1, 3, size, size,
                                                                          generator=g)}
            for i in range(n)]


def _trainer(tmp_path, **kw):
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False,
                      default_root_dir=tmp_path, **kw)


def test_module_trains_with_ema_tests_and_predicts(tmp_path):
    module = tiny_module()
    before = [p.clone() for p in module.ema_upsampler.parameters()]
    data = DataLoader(tiny_batches(), batch_size=None)
    _trainer(tmp_path, max_steps=3, limit_val_batches=0).fit(module, data)
    # the EMA weights moved, towards (not onto) the trained weights
    ema = list(module.ema_upsampler.parameters())
    live = list(module.upsampler.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, ema))
    assert any(not torch.equal(a, b) for a, b in zip(ema, live))
    assert all(not p.requires_grad for p in ema)

    results = _trainer(tmp_path).test(module, data)[0]
    assert set(results) == {"test/psnr", "test/ssim"} and results["test/psnr"] > 0
    writer = TextureWriter(tmp_path / "out", keys=["upsampled"])
    preds = _trainer(tmp_path, callbacks=[writer]).predict(module, data)
    assert preds[0]["upsampled"].shape == (1, 3, 32, 32)
    assert sorted(p.name for p in (tmp_path / "out" / "upsampled").iterdir()) == [
        "s0.png", "s1.png"]


def test_validation_fills_the_image_grid(tmp_path):
    module = tiny_module()
    data = DataLoader(tiny_batches(1), batch_size=None)
    _trainer(tmp_path).validate(module, data)
    images = module.validation_images
    assert list(images) == ["low_res", "upsampled", "studio", "phone_gradient"]
    assert images["low_res"].shape[-1] == 8 and images["upsampled"].shape[-1] == 32


def test_full_size_check_names_the_mismatch(tmp_path):
    module = tiny_module()
    module.low_resolution = 16
    with pytest.raises(ValueError, match="low_resolution"):
        _trainer(tmp_path).test(module, DataLoader(tiny_batches(1), batch_size=None))


def test_cli_fast_dev_run(tmp_path):
    args = ["fit", "--config", str(BASE), "--config", str(ROOT / "configs/trainer/cpu.yaml"),
            *TINY, "--trainer.fast_dev_run=true", f"--trainer.default_root_dir={tmp_path}"]
    assert main(args) == 0


@pytest.mark.ddp
def test_cli_ddp_two_cpu_processes(tmp_path):
    args = [sys.executable, "-m", "lift.cli", "fit", "--config", str(BASE),
            *TINY, "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
            "--trainer.max_steps=2", "--trainer.limit_val_batches=1",
            "--trainer.check_val_every_n_epoch=1", "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
