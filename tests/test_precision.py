"""bf16-auto resolves by the hardware's bf16 support; bf16 autocast stays within tolerance of
fp32 on lift's networks; StepTimer records every step."""

from __future__ import annotations

import json

import lightning.pytorch as pl
import pytest
import torch

from lift.precision import cpu_has_native_bf16, resolve_precision
from lift.timing import StepTimer
from lift.trainer import LiftTrainer

WITH = frozenset({"avx2", "avx512f", "avx512_bf16"})
WITHOUT = frozenset({"avx2", "avx512f"})


def test_bf16_auto_picks_bf16_only_on_a_cpu_with_native_bf16():
    assert cpu_has_native_bf16(WITH) and cpu_has_native_bf16(frozenset({"amx_bf16"}))
    assert not cpu_has_native_bf16(WITHOUT)
    assert resolve_precision("bf16-auto", "cpu", WITH)[0] == "bf16-mixed"
    chosen, note = resolve_precision("bf16-auto", "cpu", WITHOUT)
    assert chosen == "32-true" and "no native bf16" in note and "slower" in note


def test_explicit_bf16_on_a_cpu_without_it_is_kept_but_warned_and_fp32_is_silent():
    chosen, note = resolve_precision("bf16-mixed", "cpu", WITHOUT)
    assert chosen == "bf16-mixed" and "slower" in note
    assert resolve_precision("32-true", "cpu", WITHOUT) == ("32-true", None)
    assert resolve_precision("bf16-mixed", "cpu", WITH) == ("bf16-mixed", None)


def test_lift_trainer_resolves_bf16_auto():
    trainer = LiftTrainer(precision="bf16-auto", accelerator="cpu", logger=False,
                          enable_checkpointing=False, enable_progress_bar=False)
    expected = "bf16-mixed" if cpu_has_native_bf16() else "32-true"
    assert trainer.precision == expected


def test_bf16_autocast_losses_are_within_tolerance_of_fp32():
    # The prior's G -> D pass at a toy size: bf16 keeps 8 bits of mantissa, so a score of
    # order 1 moves by ~1e-2; the tolerance the stages are held to (docs/performance.md).
    from lift_stylegan2.networks import Discriminator, Generator

    torch.manual_seed(0)
    g = Generator(z_dim=32, w_dim=32, resolution=16, channel_base=256, channel_max=32,
                  mapping_layers=2)
    d = Discriminator(resolution=16, channel_base=256, channel_max=32, mbstd_group_size=2)
    z = torch.randn(4, 32)
    with torch.no_grad():
        ref = d(g.synthesize(g.map(z), noise_mode="const"))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = d(g.synthesize(g.map(z), noise_mode="const")).float()
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, rtol=0.05, atol=0.05)
    assert not torch.equal(low, ref)  # autocast did run in bf16


class _Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.lin(batch[0]).square().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_step_timer_times_every_step_and_writes_its_summary(tmp_path):
    data = torch.utils.data.TensorDataset(torch.randn(12, 2))
    timer = StepTimer(warmup=1)
    trainer = pl.Trainer(max_steps=6, default_root_dir=tmp_path, callbacks=[timer], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(_Tiny(), torch.utils.data.DataLoader(data, batch_size=2))
    summary = json.loads((tmp_path / "step_times.json").read_text())
    assert summary["steps"] == 6 and len(summary["wall_s"]) == 6
    assert summary["median_wall_s"] > 0 and summary["median_cpu_s"] >= 0
