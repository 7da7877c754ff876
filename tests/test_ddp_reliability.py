"""DDP (2 CPU processes, gloo) where the existing DDP tests leave gaps: a metric over an
uneven split reduced over the ranks equals the single-process value; the CUT and CycleGAN
translation stages train under DDP with equal weights on both ranks."""

from __future__ import annotations

import json

import pytest

from kill_resume_helpers import ROOT, lift, run

pytestmark = pytest.mark.ddp

DDP = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]


@pytest.mark.slow
def test_metrics_over_an_uneven_split_match_one_process(tmp_path):
    """5 validation items in batches of 2 on 2 ranks (3 + 2 items, 2 + 1 batches): every item
    once, the PSNR and the item count equal a single process's."""
    values = {}
    for name, extra in (("one", ["--trainer.devices=1", "--trainer.accelerator=cpu"]),
                        ("two", DDP)):
        out = tmp_path / f"{name}.json"
        run(lift("validate", "--model=resume_toy.MetricProbe", f"--model.out={out}",
                 "--data=resume_toy.ToyTextures", "--data.val_items=5", "--data.batch_size=2",
                 "--trainer.logger=false", "--trainer.enable_progress_bar=false",
                 f"--trainer.default_root_dir={tmp_path / name}", *extra), tmp_path)
        values[name] = json.loads(out.read_text())
    assert values["one"]["val/items"] == values["two"]["val/items"] == 5
    assert values["two"]["val/psnr"] == pytest.approx(values["one"]["val/psnr"], abs=1e-5)


class _Cfg:
    TINY = ["--model.init_args.translator.init_args.ngf=8",
            "--model.init_args.translator.init_args.ndf=8", "--data.init_args.resolution=32",
            "--trainer.max_steps=4", "--trainer.limit_val_batches=1",
            "--trainer.check_val_every_n_epoch=1", "--trainer.limit_train_batches=2",
            "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false",
            "--trainer.callbacks+=test_prior_stage.RankConsistency"]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["cut", "cyclegan"])
def test_i2i_translators_under_ddp(tmp_path, family):
    """Both ranks end with equal weights (RankConsistency all-gathers them), validation with
    the per-split metrics runs on both ranks, and last.ckpt is written."""
    import torch

    extra = (["--model.init_args.translator.init_args.num_patches=16",
              "--model.init_args.translator.init_args.mlp_channels=16"] if family == "cut"
             else [])
    root = tmp_path / "run"
    run(lift("fit", "--config", str(ROOT / f"configs/translate/{family}_quickstart.yaml"),
             *_Cfg.TINY, *extra, *DDP, f"--trainer.default_root_dir={root}"), tmp_path)
    ckpt = torch.load(root / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] >= 4
    assert len(ckpt["lift_rng"]) == 2  # both ranks' RNG streams


@pytest.mark.slow
def test_inversion_bank_under_ddp_equals_one_process(tmp_path):
    """The bank inverted by 2 ranks (disjoint shards) holds the codes one process inverts."""
    import torch

    from lift.latent_bank import LatentBank

    generator = json.dumps({"class_path": "lift_stylegan2.networks.Generator", "init_args": {
        "z_dim": 16, "w_dim": 16, "resolution": 64, "channel_base": 128, "channel_max": 16,
        "mapping_layers": 2}})
    cmd = lift("predict", "--config", str(ROOT / "configs/invert/stylegan2_quickstart.yaml"),
               "--model.init_args.checkpoint=null", f"--model.init_args.generator={generator}",
               "--model.init_args.settings.init_args.schedule.init_args.steps=3",
               "--model.init_args.settings.init_args.w_stats_samples=256",
               "--model.init_args.settings.init_args.batch_size=8",
               "--model.init_args.shard_size=8", "--data.init_args.batch_size=8",
               "--trainer.enable_progress_bar=false")
    run([*cmd, "--config", str(ROOT / "configs/trainer/cpu.yaml"),
         f"--trainer.default_root_dir={tmp_path / 'one'}"], tmp_path)
    run([*cmd, "--config", str(ROOT / "configs/trainer/ddp_cpu.yaml"),
         f"--trainer.default_root_dir={tmp_path / 'two'}"], tmp_path)
    one = LatentBank.open(tmp_path / "one" / "bank")
    two = LatentBank.open(tmp_path / "two" / "bank")
    two.check_complete()
    assert one.stems == two.stems
    assert set(two.shard_ranks().values()) == {0, 1}
    assert torch.equal(one.tensor(), two.tensor())
