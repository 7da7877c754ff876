"""The trivial translation baselines (extra rows of Table 1) against hand computations."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lift_baselines.baselines import MeanStudioFill, PhoneTexture

from lift.checkpoints import build_from_checkpoint
from lift.data import SyntheticSource, TranslationDataModule
from lift.stages.translation import TranslationModule

RES = 16


def test_phone_texture_is_the_identity():
    phone = torch.rand(2, 3, RES, RES)
    assert torch.equal(PhoneTexture().translate(phone, torch.zeros(2, 1, RES, RES)), phone)


def test_mean_fill_matches_colours_on_visible_texels_and_fills_holes():
    t = MeanStudioFill(RES)
    mean = torch.rand(3, RES, RES) * 0.5 + 0.25
    t.studio_sum.copy_(mean.double() * 4)
    t.studio_count.fill_(4)
    gain, bias = torch.tensor([0.5, 2.0, 1.25]), torch.tensor([0.1, -0.2, 0.05])
    # A phone texture that is an exact per-channel affine image of the mean on visible texels:
    # the least-squares match inverts it, so the visible output is the mean itself.
    phone = ((mean - bias[:, None, None]) / gain[:, None, None])[None]
    mask = torch.ones(1, 1, RES, RES)
    mask[..., :5, :] = 0
    phone_with_holes = phone * mask  # holes are black in the capture
    out = t.translate(phone_with_holes, mask)
    torch.testing.assert_close(out[0], mean.clamp(0, 1), atol=1e-5, rtol=0)
    # A flat channel (zero variance) keeps gain 1 and only shifts by the mean difference.
    flat = torch.full((1, 3, RES, RES), 0.3)
    out = t.translate(flat, None)
    torch.testing.assert_close(out[0].mean(dim=(1, 2)), mean.mean(dim=(1, 2)), atol=1e-5, rtol=0)


def test_mean_fill_estimates_the_mean_studio_texture_in_lift_fit_and_reloads(tmp_path):
    source = SyntheticSource("quickstart", 0)
    module = TranslationModule(MeanStudioFill(RES), {}, {})
    dm = TranslationDataModule(source, resolution=RES, batch_size=4, phone_split=None,
                               paired_split=None, val_split=None)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(module, dm)
    dm.setup("fit")
    studio = torch.stack([item["studio"] for item in dm.dataset("studio_train")])
    torch.testing.assert_close(module.translator.mean_studio, studio.mean(0), atol=1e-6, rtol=0)
    trainer.save_checkpoint(tmp_path / "t.ckpt")
    rebuilt = build_from_checkpoint(tmp_path / "t.ckpt", "translator")
    phone = torch.rand(2, 3, RES, RES)
    assert torch.equal(rebuilt.translate(phone), module.translator.translate(phone))


def test_a_parameter_free_translator_is_rebuilt_from_its_checkpoint(tmp_path):
    module = TranslationModule(PhoneTexture(), {}, {})
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "t.ckpt")
    assert isinstance(build_from_checkpoint(tmp_path / "t.ckpt", "translator"), PhoneTexture)


def test_a_run_with_no_optimiser_step_still_leaves_its_checkpoint(tmp_path):
    """Global step 0 at the end (no phase, no optimiser): StageCheckpoint saves last.ckpt once,
    as for any other stage, so the pipeline can read the baseline."""
    from lift.callbacks import StageCheckpoint

    module = TranslationModule(MeanStudioFill(RES), {}, {})
    dm = TranslationDataModule(SyntheticSource("quickstart", 0), resolution=RES, batch_size=4,
                               phone_split=None, paired_split=None, val_split=None)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[StageCheckpoint(save_top_k=0)])
    trainer.fit(module, dm)
    assert trainer.global_step == 0 and (tmp_path / "last.ckpt").is_file()
    assert isinstance(build_from_checkpoint(tmp_path / "last.ckpt", "translator"), MeanStudioFill)
