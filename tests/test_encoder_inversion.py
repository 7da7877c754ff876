"""Encoder-initialised inversion: the W+ encoder, the anchor, the stage, the manifest round trip."""

from __future__ import annotations

import pytest
import torch
from inversion_helpers import single_thread as _single_thread
from inversion_helpers import MSEDistance, TinyGenerator, TinyTextures, targets_from

from lift.inversion.codes import WCode, WPlusCode
from lift.inversion.encoder import (
    EncoderInitialisedInverter,
    EncoderInversionSettings,
    EncoderTraining,
    build_encoder,
    random_visibility_masks,
    ws_resolutions_of,
)
from lift.inversion.schedule import ProjectorSchedule

single_thread = pytest.fixture(autouse=True)(_single_thread)

ENCODER = "lift_stylegan2.wplus_encoder.ConvWPlusEncoder"
ENCODER_ARGS = {"channels": 8, "max_channels": 16, "pool": 2, "global_dim": 32}


def tiny_training(**overrides):
    args = dict(samples=128, latent_steps=60, image_steps=5, batch_size=16, image_batch_size=4,
                lr=3e-3, seed=0)
    args.update(overrides)
    return EncoderTraining(**args)


def make_settings(tmp_path, steps=8, anchor_weight=0.0, lr=0.05, code=None, **training):
    return EncoderInversionSettings(
        distance=MSEDistance(), code=code or WPlusCode(),
        schedule=ProjectorSchedule(steps=steps, lr=lr, lr_rampup=0.0, lr_rampdown=1.0,
                                   noise_strength=0.0, noise_ramp=0.75),
        mse_weight=1.0, perceptual_weight=1.0, use_mask=True, batch_size=3, early_stop=None,
        adam_betas=(0.9, 0.999), adam_eps=1e-8, w_stats_samples=500, seed=0,
        encoder=ENCODER, encoder_args=ENCODER_ARGS, training=tiny_training(**training), anchor_weight=anchor_weight,
        cache_dir=str(tmp_path / "encoders"))


def test_encoder_predicts_wplus_of_the_generators_shape():
    gen = TinyGenerator(seed=0)
    encoder = build_encoder(ENCODER, ENCODER_ARGS, gen)
    x = torch.rand(5, 3, gen.resolution, gen.resolution)
    mask = random_visibility_masks(5, gen.resolution, torch.Generator().manual_seed(0))
    assert mask.shape == (5, 1, 16, 16) and 0 < float(mask.mean()) <= 1
    assert encoder(x, mask).shape == (5, gen.num_ws, gen.w_dim)
    assert encoder(x).shape == (5, gen.num_ws, gen.w_dim)  # no mask: all visible
    # a 64x64 StyleGAN2's rows, each reading the pyramid level it modulates
    from lift_stylegan2.networks import Generator

    big = Generator(z_dim=16, w_dim=16, resolution=64, channel_base=64, channel_max=8,
                    mapping_layers=1)
    assert ws_resolutions_of(big) == [4, 8, 8, 16, 16, 32, 32, 64, 64, 64]
    enc = build_encoder(ENCODER, ENCODER_ARGS, big)
    assert enc(torch.rand(2, 3, 64, 64), torch.ones(2, 1, 64, 64)).shape == (2, big.num_ws, 16)


def test_training_improves_the_prediction_and_is_cached_by_generator(tmp_path):
    gen = TinyGenerator(seed=0)
    settings = make_settings(tmp_path)
    encoder = settings.trained_encoder(gen)
    assert settings.encoder_stats["trained"]
    stats = settings.encoder_stats
    assert {"render", "latent", "image"} <= set(stats)
    x = targets_from(gen, 8, seed=5)
    objective = settings.objective()
    with torch.no_grad():
        untrained = build_encoder(ENCODER, ENCODER_ARGS, gen)
        untrained.bind(encoder.w_avg, encoder.w_scale)  # starts at w_avg
        def loss(e):
            return objective(gen.synthesize(e(x)), x, torch.ones_like(x[:, :1]))["loss"].mean()
        assert loss(encoder) < loss(untrained)
    # the same G and recipe: loaded, not retrained; another G: another file
    again = settings.trained_encoder(gen)
    assert not settings.encoder_stats["trained"]
    assert settings.encoder_stats["path"] == stats["path"]
    for k, v in encoder.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)
    settings.trained_encoder(TinyGenerator(seed=3))
    assert settings.encoder_stats["trained"] and settings.encoder_stats["path"] != stats["path"]
    assert len(list((tmp_path / "encoders").glob("*.pt"))) == 2


def test_huge_anchor_keeps_the_encoders_prediction(tmp_path):
    gen = TinyGenerator(seed=0)
    x = targets_from(gen, 3, seed=7)
    mask = torch.ones(3, 1, 16, 16)
    stems = ["a", "b", "c"]
    free = make_settings(tmp_path, steps=15, anchor_weight=0.0).inverter(gen)
    pinned = make_settings(tmp_path, steps=15, anchor_weight=1e6).inverter(gen)
    assert isinstance(pinned, EncoderInitialisedInverter)
    start = pinned.predict(x, mask)
    moved_free = torch.stack([r.w_plus for r in free.invert(stems, x, mask)]) - start
    results = pinned.invert(stems, x, mask)
    moved_pinned = torch.stack([r.w_plus for r in results]) - start
    assert moved_free.abs().max() > 0.05
    assert moved_pinned.abs().max() < 0.05 * moved_free.abs().max()
    # the reported loss is Eq. 1 alone (the anchor is not in it)
    objective = pinned.objective
    with torch.no_grad():
        eq1 = objective(gen.synthesize(torch.stack([r.w_plus for r in results])), x, mask)["loss"]
    torch.testing.assert_close(torch.tensor([r.loss for r in results]), eq1, rtol=1e-4,
                               atol=1e-7)


def test_refinement_lowers_eq1_from_the_prediction_and_w_code_starts_at_the_row_mean(tmp_path):
    gen = TinyGenerator(seed=0)
    x = targets_from(gen, 3, seed=9)
    mask = torch.ones(3, 1, 16, 16)
    inv = make_settings(tmp_path, steps=20).inverter(gen)
    start = inv.predict(x, mask)
    with torch.no_grad():
        before = inv.objective(gen.synthesize(start), x, mask)["loss"]
    after = torch.tensor([r.loss for r in inv.invert(["a", "b", "c"], x, mask)])
    assert (after < before).all()
    w_inv = make_settings(tmp_path, steps=1, lr=0.0, code=WCode()).inverter(gen)
    (r,) = w_inv.invert(["a"], x[:1], mask[:1])
    torch.testing.assert_close(r.w_plus, start[0].mean(0, keepdim=True).expand(gen.num_ws, -1))


def test_stage_writes_a_bank_with_the_encoder_inverter_under_fast_dev_run(tmp_path):
    import lightning as L
    from inversion_helpers import TinyTextureData

    from lift.latent_bank import LatentBank
    from lift.spec import build, spec_of
    from lift.stages.inversion import InversionModule

    settings = make_settings(tmp_path, steps=4)
    module = InversionModule(checkpoint=None, generator=TinyGenerator(seed=0),
                             bank_dir=str(tmp_path / "bank"), shard_size=4, settings=settings)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False,
                        fast_dev_run=True)
    # one predict batch (fast_dev_run) holding every texture, so the bank completes
    trainer.predict(module, datamodule=TinyTextureData(num=6, batch_size=6),
                    return_predictions=False)
    bank = LatentBank.open(tmp_path / "bank")
    bank.check_complete()
    assert all(r["steps"] == 4 for r in bank.records())
    recorded = bank.manifest["config"]["settings"]
    assert recorded["class_path"] == "lift.inversion.encoder.EncoderInversionSettings"
    assert recorded == spec_of(settings, "settings")
    # round trip: the manifest's spec rebuilds an equivalent inverter (the cached encoder)
    rebuilt = build(recorded)
    assert isinstance(rebuilt, EncoderInversionSettings)
    assert spec_of(rebuilt, "settings") == recorded
    data = TinyTextures(6)
    gen = TinyGenerator(seed=0)
    inv = rebuilt.inverter(gen)
    assert not rebuilt.encoder_stats["trained"]  # loaded from cache_dir, not retrained
    results = inv.invert(data.stems[:2], data.images[:2], data.masks[:2])
    for r in results:
        torch.testing.assert_close(r.w_plus, bank.get(r.stem), atol=1e-5, rtol=0)


def test_bank_pairs_finetune_and_a_bank_changes_the_cache_key(tmp_path):
    import lightning as L
    from inversion_helpers import TinyTextureData

    from lift.stages.inversion import InversionModule

    module = InversionModule(checkpoint=None, generator=TinyGenerator(seed=0),
                             bank_dir=str(tmp_path / "bank"), shard_size=8,
                             settings=make_settings(tmp_path, steps=2))
    L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
              enable_checkpointing=False, enable_model_summary=False).predict(
        module, datamodule=TinyTextureData(num=6, batch_size=6), return_predictions=False)
    plain = make_settings(tmp_path)
    plain.trained_encoder(TinyGenerator(seed=0))
    tuned = make_settings(tmp_path, bank=str(tmp_path / "bank"), bank_steps=5)
    tuned.trained_encoder(TinyGenerator(seed=0))
    assert tuned.encoder_stats["trained"] and "bank" in tuned.encoder_stats
    assert tuned.encoder_stats["path"] != plain.encoder_stats["path"]
    with pytest.raises(ValueError, match="bank"):
        EncoderTraining(bank_steps=3)


def test_a_checkpoint_of_another_generator_is_refused(tmp_path):
    settings = make_settings(tmp_path)
    settings.trained_encoder(TinyGenerator(seed=0))
    path = settings.encoder_stats["path"]
    other = EncoderInversionSettings(**{**spec_kwargs(settings), "encoder_checkpoint": path})
    with pytest.raises(ValueError, match="another G_phone"):
        other.trained_encoder(TinyGenerator(seed=4))


def spec_kwargs(settings):
    from lift.spec import build, spec_of

    return dict(build(spec_of(settings)).__dict__["_lift_spec"][1])
