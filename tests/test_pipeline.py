"""The inference pipeline (lift/stages/pipeline.py): a tiny chain of stage checkpoints trained
here, predicted through the TextureWriter, and `lift predict --config configs/pipeline/studio.yaml`
on a folder written by `lift data synth`."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from inversion_helpers import TinyGenerator
from lift_colour.gain_bias import GainBias
from lift_gradients.operators import HighPass
from lift_resshift.autoencoder import IdentityAutoencoder
from lift_resshift.denoiser import ConvDenoiser
from lift_resshift.scheduler import ResShiftScheduler
from lift_resshift.upsampler import ResShift
from test_contracts import (DifferenceOfBox, GainTranslator, GaussianWPlus, L1Distance,
                            ResidualUpsampler, TinyDiscriminator)
from torch import nn
from torch.utils.data import DataLoader

from lift.cli import main
from lift.components import Upsampler
from lift.data import FolderSource, TextureDataModule, TextureError, read_texture, synth
from lift.prediction_writer import TextureWriter
from lift.stages.pipeline import PipelineModule
from lift.stages.translation import TranslationModule
from lift.stages.upsampling import UpsamplingModule

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "pipeline" / "studio.yaml"
R, r = 32, 16  # studio resolution, translator resolution (TinyGenerator: 16)


def _trainer(root, **kw) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False,
                      default_root_dir=root, **kw)


def _batches(size: int, n: int = 2, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        phone, studio = torch.rand(2, 1, 3, size, size, generator=g)
        out.append({"stem": [f"t{i}"], "phone": phone, "mask": torch.ones(1, 1, size, size),
                    "studio": studio, "paired_phone": phone, "paired_studio": studio})
    return out


def _fit_and_save(module, size, path) -> str:
    trainer = _trainer(path.parent, max_steps=2, limit_val_batches=0)
    trainer.fit(module, DataLoader(_batches(size), batch_size=None))
    trainer.save_checkpoint(path)
    return str(path)


class DarkerUpsampler(Upsampler):
    """Bicubic minus a (learned) offset: Î* is darker than the phone texture, so the Eq. 15
    bias is negative."""

    def __init__(self, offset: float = 0.05, scale_factor: int = 2):
        super().__init__()
        self.scale_factor, self.gradient_operator, self.loss_terms = scale_factor, None, ("l2",)
        self.offset = nn.Parameter(torch.tensor(float(offset)))

    def _up(self, low_res):
        return F.interpolate(low_res, scale_factor=self.scale_factor, mode="bicubic",
                             align_corners=False) - self.offset

    def training_losses(self, low_res, high_res, phone, *, mask=None):
        return {"l2": (self._up(low_res) - high_res).square().mean()}

    def upsample(self, low_res, phone=None, *, mask=None, generator=None, tile_size=None,
                 tile_overlap=0, num_inference_steps=None):
        return self._up(low_res).clamp(0, 1)


def _stylegan_wplus():
    from lift_stylegan2.finetune import StyleGANWPlus

    from lift.inversion.codes import WPlusCode
    from lift.inversion.schedule import ProjectorSchedule
    from lift.inversion.settings import InversionSettings

    inversion = InversionSettings(L1Distance(), WPlusCode(),
                                  ProjectorSchedule(3, 0.1, 0.0, 0.0, 0.0, 0.75), 1.0, 1.0, True,
                                  2, None, (0.9, 0.999), 1e-8, 64, 0)
    return StyleGANWPlus(None, GaussianWPlus(), L1Distance(), inversion=inversion,
                         generator=TinyGenerator(), discriminator=TinyDiscriminator(),
                         freeze_resolution=4)


def _resshift(conditioning="none", operator=None):
    torch.manual_seed(0)
    return ResShift(ConvDenoiser(hidden_channels=8, num_layers=2),
                    ResShiftScheduler(num_train_timesteps=4), IdentityAutoencoder(),
                    gradient_operator=operator, conditioning=conditioning, scale_factor=2)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Stage checkpoints of a tiny chain (each trained 2 steps) and a `lift data synth` folder."""
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("chain")
    torch.manual_seed(0)
    ckpt = {
        "wplus": _fit_and_save(TranslationModule(
            _stylegan_wplus(), {"generator": _adam(), "discriminator": _adam()},
            {"adv": 1.0, "r1": 1.0, "lpips_prior": 0.5}), r, root / "wplus.ckpt"),
        "gain": _fit_and_save(TranslationModule(GainTranslator(init_gain=0.7), {"fit": _adam()},
                                                {"l1": 1.0}), r, root / "gain.ckpt"),
        "residual": _fit_and_save(UpsamplingModule(
            ResidualUpsampler(DifferenceOfBox(), scale_factor=2), low_resolution=r, lr=1e-2,
            ema_decay=0.0, loss_weights={"l2": 1.0}), R, root / "residual.ckpt"),
        "darker": _fit_and_save(UpsamplingModule(
            DarkerUpsampler(), low_resolution=r, lr=0.0, ema_decay=0.0,
            loss_weights={"l2": 1.0}), R, root / "darker.ckpt"),
        "vanilla": _fit_and_save(UpsamplingModule(_resshift("none"), low_resolution=r, lr=1e-3,
                                                  ema_decay=0.0), R, root / "vanilla.ckpt"),
    }
    profile = synth.SynthProfile("tiny", R, r, phone_only=3, studio_only=2, paired_train=2,
                                 paired_test=2, unpaired_test=2, expressions=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(synth.PROFILES, "tiny", profile)
        assert main(["data", "synth", "--out", str(root / "bench"), "--profile", "tiny"]) == 0
    ckpt["bench"] = str(root / "bench")
    yield ckpt
    torch.set_num_threads(saved_threads)


def _adam():
    from functools import partial

    return partial(torch.optim.Adam, lr=1e-2)


def _data(root, split="paired_test", batch_size=1) -> TextureDataModule:
    return TextureDataModule(FolderSource(root), val_split=None, test_split=None,
                             predict_split=split, resolution=R, batch_size=batch_size,
                             with_expressions=True)


def test_the_chain_writes_studio_translated_maps_and_expressions(chain, tmp_path):
    module = PipelineModule(translator=chain["wplus"], upsampler=chain["residual"],
                            colour_transform=GainBias(grid_size=4))
    assert module.translator_resolution == r and module.studio_resolution == R
    assert not any(p.requires_grad for p in module.parameters())
    assert not module.translator.training and not module.upsampler.training
    writer = TextureWriter(tmp_path, formats={"gain": "exr", "bias": "exr"})
    data = _data(chain["bench"])
    preds = _trainer(tmp_path, callbacks=[writer]).predict(module, data)
    stems = FolderSource(chain["bench"]).splits()["paired_test"]
    assert [p["stem"][0] for p in preds] == stems
    for pred in preds:
        stem = pred["stem"][0]
        assert pred["translated"].shape == (1, 3, r, r) and pred["studio"].shape == (1, 3, R, R)
        assert pred["gain"].shape == pred["bias"].shape == (1, 3, 4, 4)
        studio = read_texture(tmp_path / "studio" / f"{stem}.png")  # range [0, 1] checked
        assert studio.shape == (3, R, R)
        assert (studio - pred["studio"][0]).abs().max() <= 0.5 / 65535 + 1e-7
        assert ((studio * 255) - (studio * 255).round()).abs().max() > 0.01  # not 8-bit levels
        assert read_texture(tmp_path / "translated" / f"{stem}.png").shape == (3, r, r)
        for name in ("gain", "bias"):
            back = read_texture(tmp_path / name / f"{stem}.exr", check_range=False)
            assert torch.equal(back, pred[name][0]), name
        names = sorted(pred["expressions"])
        assert len(names) == 2
        assert sorted(p.stem for p in (tmp_path / "expressions" / stem).iterdir()) == names
        for name in names:
            back = read_texture(tmp_path / "expressions" / stem / f"{name}.png")
            assert back.shape == (3, R, R)
            assert (back - pred["expressions"][name][0]).abs().max() <= 0.5 / 65535 + 1e-7
    # the upsampler ran (not bicubic)
    pred = preds[0]
    bicubic = F.interpolate(pred["translated"], size=(R, R), mode="bicubic",
                            align_corners=False).clamp(0, 1)
    assert (pred["studio"] - bicubic).abs().max() > 1e-3


def test_signed_maps_keep_negative_values_in_their_exr_files(chain, tmp_path):
    module = PipelineModule(translator=chain["gain"], upsampler=chain["darker"],
                            colour_transform=GainBias(grid_size=4), translator_resolution=r)
    writer = TextureWriter(tmp_path, keys=["bias", "gain"],
                           formats={"gain": "exr", "bias": "exr"})
    preds = _trainer(tmp_path, callbacks=[writer]).predict(module, _data(chain["bench"]))
    for pred in preds:
        assert pred["bias"].median() < -0.01  # Î* = up(I*) - 0.05: a negative bias
        back = read_texture(tmp_path / "bias" / f"{pred['stem'][0]}.exr", check_range=False)
        assert torch.equal(back, pred["bias"][0])


def _batch(chain):
    data = _data(chain["bench"])
    data.setup("predict")
    return next(iter(data.predict_dataloader()))


def test_translation_at_r_equals_the_translation_stage_and_bicubic_without_upsampler(chain):
    # without an upsampler any r works: 8 (a x4 area downsampling of the 32^2 textures)
    module = PipelineModule(translator=chain["gain"], upsampler=None, colour_transform=None,
                            translator_resolution=8)
    batch = _batch(chain)
    out = module.predict_step(batch, 0)
    assert set(out) == {"stem", "translated", "studio"} and out["translated"].shape[-1] == 8
    # I* is what the translation stage predicts from the same folder read at r
    low = TextureDataModule(FolderSource(chain["bench"]), val_split=None, test_split=None,
                            predict_split="paired_test", resolution=8, batch_size=1)
    low.setup("predict")
    low_batch = next(iter(low.predict_dataloader()))
    stage = TranslationModule(module.translator, {"fit": _adam()}, {"l1": 1.0})
    assert torch.allclose(out["translated"], stage.predict_step(low_batch, 0)["translated"],
                          atol=1e-6)
    bicubic = F.interpolate(out["translated"], size=(R, R), mode="bicubic", align_corners=False)
    assert torch.equal(out["studio"], bicubic.clamp(0, 1))


def test_eq16_on_the_neutral_texture_gives_back_the_studio_texture(chain):
    """An expression equal to the phone texture transforms to (nearly) Î* on visible texels:
    Eq. 15 fits phone -> Î*, Eq. 16 applies that fit. A k = R grid can represent any Î*."""
    module = PipelineModule(translator=chain["gain"], upsampler=chain["residual"],
                            colour_transform=GainBias(grid_size=R), translator_resolution=r)
    batch = _batch(chain)
    batch["expressions"] = {"neutral": batch["phone"].clone(), **batch["expressions"]}
    out = module.predict_step(batch, 0)
    visible = batch["mask"].expand(-1, 3, -1, -1) > 0.5
    assert visible.float().mean() < 1  # the capture has holes
    err = (out["expressions"]["neutral"] - out["studio"]).abs()[visible]
    assert err.max() < 0.02 and err.mean() < 2e-3
    assert (batch["phone"] - out["studio"]).abs()[visible].mean() > 0.05  # not trivially so
    # the other expressions are the colour transform of themselves, clamped
    ct = module.colour_transform
    params = ct.fit(batch["phone"], out["studio"], batch["mask"])
    for name, texture in batch["expressions"].items():
        assert torch.allclose(out["expressions"][name], ct.apply(params, texture).clamp(0, 1))
    # Eq. 15 sees the visible texels only: unseen phone values do not change the maps
    garbage = torch.where(batch["mask"] > 0.5, batch["phone"], torch.rand_like(batch["phone"]))
    again = module.transfer(garbage, out["studio"], batch["mask"], {})
    assert torch.allclose(again["gain"], out["gain"]) and torch.allclose(again["bias"],
                                                                         out["bias"])


def test_the_conditioning_override_samples_a_vanilla_model_with_eq14(chain):
    batch = _batch(chain)
    kw = dict(translator=chain["gain"], upsampler=chain["vanilla"], colour_transform=None,
              translator_resolution=r, num_inference_steps=2)
    vanilla = PipelineModule(**kw)
    assert vanilla.upsampler.conditioning == "none"
    with pytest.raises(ValueError, match="gradient_operator"):
        PipelineModule(**kw, conditioning="inference")
    inference = PipelineModule(**kw, conditioning="inference", gradient_operator=HighPass())
    assert inference.upsampler.conditioning == "inference"
    for a, b in zip(vanilla.upsampler.parameters(), inference.upsampler.parameters()):
        assert torch.equal(a, b)  # the same EMA weights
    a, again = vanilla.predict_step(batch, 0)["studio"], vanilla.predict_step(batch, 0)["studio"]
    assert torch.equal(a, again)  # seeded per rank and batch
    b = inference.predict_step(batch, 0)["studio"]
    assert (a - b).abs().max() > 1e-3
    # an upsampler without a conditioning argument cannot be overridden
    with pytest.raises(ValueError, match="conditioning"):
        PipelineModule(translator=chain["gain"], upsampler=chain["residual"],
                       colour_transform=None, translator_resolution=r, conditioning="inference")
    # a gradient operator is only for an upsampler trained without one
    with pytest.raises(ValueError, match="gradient_operator"):
        PipelineModule(translator=chain["gain"], upsampler=chain["residual"],
                       colour_transform=None, translator_resolution=r,
                       gradient_operator=HighPass())


def test_errors_name_the_argument(chain):
    with pytest.raises(ValueError, match="translator_resolution"):
        PipelineModule(translator=chain["gain"], upsampler=None, colour_transform=None)
    with pytest.raises(ValueError, match="translator_resolution"):
        PipelineModule(translator=chain["wplus"], upsampler=None, colour_transform=None,
                       translator_resolution=8)
    with pytest.raises(ValueError, match="conditioning"):
        PipelineModule(translator=chain["gain"], upsampler=None, colour_transform=None,
                       translator_resolution=r, conditioning="inference")
    module = PipelineModule(translator=chain["gain"], upsampler=chain["residual"],
                            colour_transform=None, translator_resolution=8)
    with pytest.raises(ValueError, match="resolution: 16"):
        module.predict_step(_batch(chain), 0)


def test_expressions_in_batches_and_the_all_split(chain, tmp_path):
    source = FolderSource(chain["bench"])
    splits = source.splits()
    dm = TextureDataModule(source, val_split=None, test_split=None, predict_split="all",
                           batch_size=4, with_expressions=True)
    with pytest.raises(TextureError, match="batch_size 1") as err:
        next(iter(dm.predict_dataloader()))
    assert splits["phone_train"][0] in str(err.value)
    with pytest.raises(ValueError, match="train_split='all'"):
        TextureDataModule(source, train_split="all")
    # a user's folder: phone/ + masks/ + expressions/, no split files, no studio/
    from lift.data.io import write_texture

    stems = splits["paired_test"] + splits["unpaired_test"]
    for stem in stems:
        write_texture(tmp_path / "phone" / f"{stem}.png", source.load(stem, "phone"))
        write_texture(tmp_path / "masks" / f"{stem}.png", source.load(stem, "mask"))
        for name, tex in source.expressions(stem).items():
            write_texture(tmp_path / "expressions" / stem / f"{name}.png", tex)
    mine = TextureDataModule(FolderSource(str(tmp_path)), val_split=None, test_split=None,
                             predict_split="all", batch_size=1, with_expressions=True)
    batches = list(mine.predict_dataloader())
    assert [b["stem"][0] for b in batches] == sorted(stems)
    assert all(set(b) == {"stem", "phone", "mask", "expressions"} for b in batches)
    assert all(len(b["expressions"]) == 2 for b in batches)


def test_lift_predict_with_the_shipped_config_on_a_synth_folder(chain, tmp_path):
    out = tmp_path / "run"
    code = main([
        "predict", "--config", str(CONFIG), "--config", str(ROOT / "configs/trainer/cpu.yaml"),
        f"--data.init_args.source.init_args.root={chain['bench']}",
        f"--model.init_args.translator={chain['wplus']}",
        f"--model.init_args.upsampler={chain['residual']}",
        "--model.init_args.colour_transform.init_args.grid_size=4",
        f"--data.init_args.resolution={R}", f"--trainer.default_root_dir={out}",
        "--trainer.enable_progress_bar=false", "--return_predictions=false"])
    assert code == 0
    source = FolderSource(chain["bench"])
    every = sorted({s for split in ("phone_train", "paired_test", "unpaired_test")
                    for s in source.splits()[split]})
    pred = out / "predictions"
    for entry, ext in (("studio", "png"), ("translated", "png"), ("gain", "exr"),
                       ("bias", "exr")):
        assert sorted(p.stem for p in (pred / entry).glob(f"*.{ext}")) == every, entry
    with_expr = sorted(s for s in every if source.expressions(s))
    assert sorted(p.name for p in (pred / "expressions").iterdir()) == with_expr
    assert read_texture(pred / "studio" / f"{every[0]}.png").shape == (3, R, R)


def test_the_shipped_config_composes_for_predict(capsys):
    import yaml

    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--config", str(CONFIG), "--print_config"])
    captured = capsys.readouterr()
    assert exit_.value.code == 0, captured.err[-3000:]
    config = yaml.safe_load(captured.out)
    model = config["model"]["init_args"]
    assert model["translator"].endswith("translate_wplus/seed0/last.ckpt")
    assert model["upsampler"].endswith("upsample_train_inference/seed0/last.ckpt")
    assert model["colour_transform"]["init_args"]["grid_size"] == 32
    writer = config["trainer"]["callbacks"][0]["init_args"]
    assert writer["format"] == "png16" and writer["formats"] == {"gain": "exr", "bias": "exr"}
    assert config["trainer"]["default_root_dir"] == "runs/predict/studio"


def test_translator_overrides_replace_recorded_arguments(tmp_path):
    """eval_banks given at prediction time: the translator looks the stems up there first."""
    from inversion_helpers import TinyGenerator
    from lift_stylegan2.finetune import StyleGANWPlus
    from test_contracts import GaussianWPlus, L1Distance, TinyDiscriminator
    from test_translation_stage import write_bank

    from lift.checkpoints import build_from_checkpoint
    from lift.spec import spec_of

    translator = StyleGANWPlus(None, GaussianWPlus(), L1Distance(), generator=TinyGenerator(),
                               discriminator=TinyDiscriminator(), freeze_resolution=4)
    torch.save({"state_dict": {f"translator.{k}": v for k, v in translator.state_dict().items()},
                "lift_components": {"translator": spec_of(translator)}}, tmp_path / "t.ckpt")

    code = torch.randn(1, translator.generator.num_ws, translator.generator.w_dim)
    bank = write_bank(tmp_path / "bank", ["known"], code)
    rebuilt = build_from_checkpoint(tmp_path / "t.ckpt", "translator", eval_banks=[bank])
    assert rebuilt.eval_banks == [bank]
    from lift.stages.pipeline import PipelineModule

    pipeline = PipelineModule(str(tmp_path / "t.ckpt"), None, None, eval_bank=bank)
    assert pipeline.translator.eval_banks == [bank]
    phone = torch.rand(1, 3, 16, 16)
    out = rebuilt.translate_batch({"phone": phone, "mask": torch.ones(1, 1, 16, 16),
                                   "stem": ["known"]})
    torch.testing.assert_close(out, rebuilt.synthesize(code))


@pytest.mark.ddp
def test_lift_predict_under_ddp_writes_what_one_process_writes(chain, tmp_path):
    """Two CPU ranks split the subjects; every file equals the single-process prediction."""
    import os
    import subprocess
    import sys

    def predict(out, *extra):
        args = [sys.executable, "-m", "lift.cli", "predict", "--config", str(CONFIG),
                "--config", str(ROOT / "configs/trainer/cpu.yaml"), *extra,
                f"--data.init_args.source.init_args.root={chain['bench']}",
                f"--model.init_args.translator={chain['gain']}",
                f"--model.init_args.translator_resolution={r}",
                f"--model.init_args.upsampler={chain['residual']}",
                "--model.init_args.colour_transform.init_args.grid_size=4",
                f"--data.init_args.resolution={R}", f"--trainer.default_root_dir={out}",
                "--trainer.enable_progress_bar=false", "--return_predictions=false"]
        tests = str(Path(__file__).parent)  # the tiny components live in the tests
        env = {**os.environ, "OMP_NUM_THREADS": "1", "LIFT_TRUSTED_MODULES": "test_contracts",
               "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return out / "predictions"

    one = predict(tmp_path / "one")
    two = predict(tmp_path / "two", "--trainer.strategy=ddp", "--trainer.devices=2")
    files = sorted(p.relative_to(one) for p in one.rglob("*.*"))
    assert files and files == sorted(p.relative_to(two) for p in two.rglob("*.*"))
    for rel in files:
        torch.testing.assert_close(read_texture(two / rel, check_range=False),
                                   read_texture(one / rel, check_range=False),
                                   atol=1e-6, rtol=0, msg=str(rel))
