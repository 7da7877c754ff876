"""SIGKILL a real run at a random moment after its first checkpoint, rerun the same command
with ``--ckpt_path last``, and compare with an uninterrupted run: weights, EMA, optimiser
states, step counters, loop progress and the data order (the loaders' states), callbacks'
states and every rank's RNG streams, bit for bit on CPU (``kill_resume_helpers``)."""

from __future__ import annotations

import json

import pytest

from kill_resume_helpers import (
    ROOT,
    checkpoint_every,
    compare_checkpoints,
    lift,
    run,
    run_killed,
)

pytestmark = pytest.mark.kill_resume

CPU = str(ROOT / "configs/trainer/cpu.yaml")
FAST = ["--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
TINY_G = {"z_dim": 16, "w_dim": 16, "mapping_layers": 2, "channel_base": 128, "channel_max": 16}
TINY_D = {"channel_base": 128, "channel_max": 16, "mbstd_group_size": 2}


def _kill_and_compare(tmp_path, cmd: list[str], *, seed: int, min_step: int,
                      max_delay: float, atol: float = 0.0, optimizer_atol: float | None = None):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run([*cmd, f"--trainer.default_root_dir={whole}"], tmp_path)
    argv = [*cmd, f"--trainer.default_root_dir={killed}"]
    run_killed(argv, tmp_path, killed / "last.ckpt", seed=seed, min_step=min_step,
               max_delay=max_delay)
    run([*argv, "--ckpt_path=last"], tmp_path)
    if optimizer_atol is not None:
        compare_checkpoints(whole / "last.ckpt", killed / "last.ckpt", atol=optimizer_atol)
        return compare_checkpoints(whole / "last.ckpt", killed / "last.ckpt", atol=atol,
                                   ignore=("optimizer_states",))
    return compare_checkpoints(whole / "last.ckpt", killed / "last.ckpt", atol=atol)


def test_toy_stage_resumes_data_order_crops_rng_and_ema_exactly(tmp_path):
    """The fastest: a 1x1 conv on random crops drawing from every RNG stream each step."""
    cmd = lift("fit", "--model=resume_toy.NoisyConv", "--data=resume_toy.ToyTextures",
               "--trainer.max_steps=250", "--trainer.accelerator=cpu", "--seed_everything=3",
               checkpoint_every(7), *FAST)
    ckpt = _kill_and_compare(tmp_path, cmd, seed=1, min_step=7, max_delay=0.5)
    assert ckpt["global_step"] == 250
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["epoch"] > 1


@pytest.mark.slow
def test_prior_resumes_exactly(tmp_path):
    cmd = lift("fit", "--config", str(ROOT / "configs/prior/stylegan2_quickstart.yaml"),
               "--config", CPU, *FAST, "--trainer.max_steps=60", checkpoint_every(6),
               "--data.init_args.batch_size=4",
               *[f"--model.init_args.generator.init_args.{k}={v}" for k, v in TINY_G.items()],
               *[f"--model.init_args.discriminator.init_args.{k}={v}"
                 for k, v in TINY_D.items()])
    ckpt = _kill_and_compare(tmp_path, cmd, seed=2, min_step=6, max_delay=2.0)
    assert ckpt["global_step"] >= 60  # G, D and lazy-regulariser steps: it may overshoot
    assert any(k.startswith("generator_ema.") for k in ckpt["state_dict"])


def _bank(tmp_path, generator: dict):
    import torch
    from lift_stylegan2.networks import Generator

    from test_translation_stage import write_bank

    g = Generator(**generator)
    stems = [f"s{i:06d}" for i in range(80)]  # every quickstart stem
    return write_bank(tmp_path / "bank", stems,
                      torch.randn(len(stems), g.num_ws, g.w_dim,
                                  generator=torch.Generator().manual_seed(0)))


@pytest.mark.slow
@pytest.mark.parametrize("cache_mb", [0.0, 256.0], ids=["no_cache", "cache"])
def test_stylegan_wplus_translator_resumes_exactly(tmp_path, cache_mb):
    """Bit for bit without the G_phone(w) cache. With it (the default): weights, EMA and
    counters to 1e-4, Adam's moments to 1e-2 (absolute). The cache is filled lazily, so a
    resumed run computes G_phone(w) of a bank code in another batch than the uninterrupted
    run did, and CPU convolutions round differently with the batch; after 40 steps the
    weights differ by ~1e-5 and the first moments (gradient averages, larger) by ~1e-3."""
    tiny = {"z_dim": 16, "w_dim": 16, "resolution": 32, "channel_base": 128, "channel_max": 16,
            "mapping_layers": 2}
    bank = _bank(tmp_path, tiny)
    import yaml

    overlay = {"model": {"init_args": {
        "loss_weights": {"adv": 1.0, "r1": 10.0, "lpips_prior": 0.5, "paired": 1.0},
        "translator": {"init_args": {
            "checkpoint": None, "paired_bank": bank, "identity_encoder": None,
            "source_cache_mb": cache_mb,
            "sampler": {"init_args": {"bank": bank}},
            "generator": {"class_path": "lift_stylegan2.networks.Generator", "init_args": tiny},
            "discriminator": {"class_path": "lift_stylegan2.networks.Discriminator",
                              "init_args": {"resolution": 32, "channel_base": 128,
                                            "channel_max": 16, "mbstd_group_size": 2}}}}}},
        "data": {"init_args": {"resolution": 32, "batch_size": 4, "paired_batch_size": 2}}}
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    cmd = lift("fit", "--config", str(ROOT / "configs/translate/stylegan_wplus_quickstart.yaml"),
               "--config", str(path), "--config", CPU, *FAST, "--trainer.max_steps=40",
               checkpoint_every(4))
    ckpt = _kill_and_compare(tmp_path, cmd, seed=3, min_step=4, max_delay=2.0,
                             atol=0.0 if cache_mb == 0 else 1e-4,
                             optimizer_atol=None if cache_mb == 0 else 1e-2)
    assert ckpt["global_step"] >= 40


I2I_TINY = ["--model.init_args.translator.init_args.ngf=8",
            "--model.init_args.translator.init_args.ndf=8"]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["cut", "cyclegan"])
def test_i2i_translator_resumes_exactly(tmp_path, family):
    extra = (["--model.init_args.translator.init_args.num_patches=16",
              "--model.init_args.translator.init_args.mlp_channels=16"] if family == "cut"
             else [])
    cmd = lift("fit", "--config", str(ROOT / f"configs/translate/{family}_quickstart.yaml"),
               "--config", CPU, *FAST, "--trainer.max_steps=40", checkpoint_every(4),
               "--data.init_args.resolution=32", *I2I_TINY, *extra)
    ckpt = _kill_and_compare(tmp_path, cmd, seed=4, min_step=4, max_delay=2.0)
    assert ckpt["global_step"] >= 40


@pytest.mark.slow
def test_upsampler_resumes_exactly(tmp_path):
    d = "--model.init_args.upsampler.init_args.denoiser.init_args"
    cmd = lift("fit", "--config", str(ROOT / "configs/upsample/resshift_train_inference.yaml"),
               "--config", CPU, *FAST, "--trainer.max_steps=40", checkpoint_every(4),
               f"{d}.block_out_channels=[8, 8, 8]", f"{d}.norm_num_groups=4",
               "--model.init_args.num_inference_steps=2", "--data.init_args.crop_size=64",
               "--data.init_args.batch_size=2")
    ckpt = _kill_and_compare(tmp_path, cmd, seed=5, min_step=4, max_delay=2.0)
    assert ckpt["global_step"] == 40
    assert any(k.startswith("ema_upsampler.") for k in ckpt["state_dict"])


@pytest.mark.slow
def test_cyclegan_with_a_full_image_pool_resumes_exactly(tmp_path):
    cmd = lift("fit", "--config", str(ROOT / "configs/translate/cyclegan_quickstart.yaml"),
               "--config", CPU, *FAST, "--trainer.max_steps=40", checkpoint_every(4),
               "--data.init_args.resolution=32", *I2I_TINY,
               "--model.init_args.translator.init_args.pool_size=2")
    _kill_and_compare(tmp_path, cmd, seed=6, min_step=8, max_delay=1.0)


@pytest.mark.slow
def test_inversion_bank_resumes_exactly(tmp_path):
    """``lift predict`` of the inversion stage, killed after its first shard, rerun as it is
    (finished shards are kept, the rest inverted): the bank equals an uninterrupted one."""
    import torch

    from lift.latent_bank import LatentBank

    generator = json.dumps({"class_path": "lift_stylegan2.networks.Generator", "init_args": {
        "z_dim": 16, "w_dim": 16, "resolution": 64, "channel_base": 128, "channel_max": 16,
        "mapping_layers": 2}})
    cmd = lift("predict", "--config", str(ROOT / "configs/invert/stylegan2_quickstart.yaml"),
               "--config", CPU, "--model.init_args.checkpoint=null",
               f"--model.init_args.generator={generator}",
               "--model.init_args.settings.init_args.schedule.init_args.steps=6",
               "--model.init_args.settings.init_args.w_stats_samples=256",
               "--model.init_args.settings.init_args.batch_size=4",
               "--model.init_args.shard_size=4", "--data.init_args.batch_size=4",
               "--trainer.enable_progress_bar=false")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run([*cmd, f"--trainer.default_root_dir={whole}"], tmp_path)
    argv = [*cmd, f"--trainer.default_root_dir={killed}"]
    run_killed(argv, tmp_path, killed / "bank" / "shard_00001.safetensors", seed=7,
               max_delay=1.0)
    partial = sorted(p.name for p in (killed / "bank").glob("shard_*.safetensors"))
    assert 0 < len(partial) < len(list((whole / "bank").glob("shard_*.safetensors")))
    run(argv, tmp_path)
    a, b = LatentBank.open(whole / "bank"), LatentBank.open(killed / "bank")
    b.check_complete()
    assert a.stems == b.stems
    assert torch.equal(a.tensor(), b.tensor())


@pytest.mark.slow
def test_lift_run_resumes_exactly(tmp_path):
    """``lift run`` (runner + stage subprocess, one process group) SIGKILLed while the prior
    trains, rerun: the prior resumes from its last.ckpt (``--ckpt_path last``), the bank is
    inverted afterwards, and both equal an uninterrupted ``lift run``'s."""
    import torch
    import yaml

    from kill_resume_helpers import run_killed as _run_killed
    from lift.latent_bank import LatentBank

    cb = [{"class_path": "lift.callbacks.StageCheckpoint",
           "init_args": {"save_top_k": 0, "last_every_n_train_steps": 4}}]
    prior_args = {"trainer.limit_val_batches": 0, "trainer.num_sanity_val_steps": 0,
                  "trainer.enable_progress_bar": False, "trainer.max_steps": 60,
                  "trainer.callbacks": cb, "data.init_args.batch_size": 4,
                  **{f"model.init_args.generator.init_args.{k}": v for k, v in TINY_G.items()},
                  **{f"model.init_args.discriminator.init_args.{k}": v
                     for k, v in TINY_D.items()}}
    invert_args = {"model.init_args.settings.init_args.schedule.init_args.steps": 2,
                   "model.init_args.settings.init_args.w_stats_samples": 256,
                   "trainer.enable_progress_bar": False}
    recipe = {"name": "kill", "seeds": [0], "trainer": ["configs/trainer/cpu.yaml"],
              "stages": {
                  "prior": {"command": "fit",
                            "configs": ["configs/prior/stylegan2_quickstart.yaml"],
                            "args": prior_args, "outputs": {"checkpoint": "last.ckpt"}},
                  "invert": {"command": "predict",
                             "configs": ["configs/invert/stylegan2_quickstart.yaml"],
                             "args": invert_args,
                             "inputs": {"model.init_args.checkpoint": "prior.checkpoint"},
                             "outputs": {"bank": "bank"}}}}
    path = tmp_path / "kill.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    cmd = lift("run", "--config", str(path), "--no-stream")
    run([*cmd, "--out", str(whole)], ROOT)
    argv = [*cmd, "--out", str(killed)]
    prior = killed / "stages" / "prior" / "seed0"
    _run_killed(argv, ROOT, prior / "last.ckpt", seed=8, min_step=4, max_delay=2.0,
                log_dir=tmp_path)
    assert not (killed / "stages" / "invert" / "seed0" / "bank").exists()
    run(argv, ROOT)
    record = json.loads((killed / "run.json").read_text())
    unit = record["stages"]["prior"]["seed0"]
    assert unit["status"] == "done" and unit["resume"] == "ckpt_path last"
    assert unit["attempts"] == 2
    ckpt = compare_checkpoints(whole / "stages/prior/seed0/last.ckpt", prior / "last.ckpt",
                               roots=(whole, killed))
    assert ckpt["global_step"] >= 60
    a = LatentBank.open(whole / "stages/invert/seed0/bank")
    b = LatentBank.open(killed / "stages/invert/seed0/bank")
    assert a.stems == b.stems and torch.equal(a.tensor(), b.tensor())
