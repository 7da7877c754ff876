"""SRResNetUpsampler (plugins/lift_related/srresnet.py) through the upsampling stage and the
pipeline, its shipped config under ``fast_dev_run``, and `lift plugins` listing the related
systems' components."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
import yaml
from lift_gradients.operators import HighPass
from lift_related.augmentation import RelightingAugmentation
from lift_related.completion import MirroredCompletion, SymmetricCompletion
from lift_related.srresnet import SRResNetUpsampler
from torch.utils.data import DataLoader

from lift.checkpoints import build_from_checkpoint
from lift.cli import main
from lift.stages.pipeline import PipelineModule, load_upsampler
from lift.stages.translation import TranslationModule
from lift.stages.upsampling import UpsamplingModule

ROOT = Path(__file__).resolve().parents[1]
R, r = 32, 16


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tiny(**kw) -> SRResNetUpsampler:
    torch.manual_seed(0)
    return SRResNetUpsampler(scale_factor=2, channels=4, num_blocks=1, **kw)


def test_untrained_it_is_the_bicubic_upsampling_plus_the_phone_gradient():
    low, phone = torch.rand(2, 3, r, r, generator=_seeded(0)), torch.rand(2, 3, R, R)
    bicubic = F.interpolate(low, size=(R, R), mode="bicubic", align_corners=False)
    torch.testing.assert_close(_tiny().upsample(low), bicubic.clamp(0, 1))
    op = HighPass(sigma=1.5)
    cond = _tiny(gradient_operator=op, conditioning="train+inference")
    torch.testing.assert_close(cond.upsample(low, phone), (bicubic + op(phone)).clamp(0, 1))
    inference_only = _tiny(gradient_operator=op, conditioning="inference")
    assert not inference_only.uses_gradient("train") and inference_only.uses_gradient("sample")
    with pytest.raises(ValueError, match="needs a gradient_operator"):
        _tiny(conditioning="inference")
    with pytest.raises(ValueError, match="needs the phone texture"):
        cond.upsample(low)
    # the masked option: G(I_phone) only over the seen texels, eroded by 1
    mask = torch.ones(2, 1, R, R)
    mask[..., 4:10, 4:10] = 0
    masked = _tiny(gradient_operator=op, conditioning="train+inference", gradient_mask_erosion=1)
    keep = torch.ones(2, 1, R, R)
    keep[..., 3:11, 3:11] = 0
    torch.testing.assert_close(masked.upsample(low, phone, mask=mask),
                               (bicubic + op(phone) * keep).clamp(0, 1))


def test_loss_terms_are_what_training_losses_returns():
    low, high = torch.rand(2, 3, r, r), torch.rand(2, 3, R, R)
    plain = _tiny()
    assert plain.loss_terms == ("l1",) and set(plain.training_losses(low, high, None)) == {"l1"}

    from lift.components import PerceptualDistance

    class Distance(PerceptualDistance):
        def forward(self, x, y):
            return (x - y).abs().mean(dim=(1, 2, 3))

    perceptual = _tiny(distance=Distance())
    terms = perceptual.training_losses(low, high, None)
    assert perceptual.loss_terms == ("l1", "perceptual") and set(terms) == {"l1", "perceptual"}
    sum(terms.values()).backward()
    assert perceptual.tail.weight.grad is not None


def test_tiled_inference_equals_the_whole_texture_when_the_margin_covers_the_receptive_field():
    up = _tiny()
    torch.nn.init.normal_(up.tail.weight, std=0.05)
    low = torch.rand(1, 3, r, r, generator=_seeded(1))
    whole = up.upsample(low)
    tiled = up.upsample(low, tile_size=8, tile_overlap=32)  # 4 low-res px tiles, 16 px margin
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="multiple of scale_factor"):
        up.upsample(low, tile_size=7)


def _batches(n: int = 3) -> list[dict]:
    g = _seeded(0)
    out = []
    for i in range(n):
        phone, studio = torch.rand(2, 1, 3, R, R, generator=g)
        mask = torch.ones(1, 1, R, R)
        mask[..., :4] = 0
        out.append({"stem": [f"t{i}"], "phone": phone, "mask": mask, "studio": studio})
    return out


def _translation_batches(n: int = 2) -> list[dict]:
    out = []
    for b in _batches(n):
        low = {k: F.interpolate(b[k], size=(r, r), mode="area") for k in ("phone", "studio")}
        mask = (F.interpolate(b["mask"], size=(r, r), mode="area") > 0.5).float()
        out.append({"phone": low["phone"], "mask": mask, "studio": low["studio"],
                    "paired_phone": low["phone"], "paired_mask": mask,
                    "paired_studio": low["studio"]})
    return out


def _fit(module, batches, path) -> str:
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False,
                         default_root_dir=path.parent, max_steps=2, limit_val_batches=0)
    trainer.fit(module, DataLoader(batches, batch_size=None))
    trainer.save_checkpoint(path)
    return str(path)


def test_trained_by_the_upsampling_stage_and_run_in_the_pipeline(tmp_path):
    torch.manual_seed(0)
    op = HighPass(sigma=1.0)
    stage = UpsamplingModule(_tiny(gradient_operator=op, conditioning="train+inference"),
                             low_resolution=r, lr=1e-2, ema_decay=0.0, loss_weights={"l1": 1.0})
    before = stage.upsampler.tail.weight.detach().clone()
    up_ckpt = _fit(stage, _batches(), tmp_path / "sr.ckpt")
    assert not torch.equal(stage.upsampler.tail.weight, before)  # the stage trained it
    loaded = load_upsampler(up_ckpt)
    assert isinstance(loaded, SRResNetUpsampler) and loaded.conditioning == "train+inference"
    torch.testing.assert_close(loaded.tail.weight, stage.ema_upsampler.tail.weight)
    assert load_upsampler(up_ckpt, conditioning="none").conditioning == "none"

    for cls in (MirroredCompletion, SymmetricCompletion):
        translator = cls(channels=(4, 8), augmentation=RelightingAugmentation(r, pool_size=4))
        module = TranslationModule(translator, {"generator": partial(torch.optim.Adam, lr=1e-3)},
                                   {"l1": 1.0})
        t_ckpt = _fit(module, _translation_batches(), tmp_path / f"{cls.__name__}.ckpt")
        rebuilt = build_from_checkpoint(t_ckpt, "translator")
        assert int(rebuilt.augmentation.mask_count) == 4   # 2 steps x (mask + paired_mask)
        pipeline = PipelineModule(t_ckpt, up_ckpt, None, translator_resolution=r)
        batch = _batches(1)[0]
        out = pipeline.predict_step(batch, 0)
        assert out["translated"].shape == (1, 3, r, r) and out["studio"].shape == (1, 3, R, R)
        low = {"phone": F.interpolate(batch["phone"], size=(r, r), mode="area"),
               "mask": (F.interpolate(batch["mask"], size=(r, r), mode="area") >= 0.5).float()}
        torch.testing.assert_close(out["translated"], rebuilt.translate(low["phone"],
                                                                        low["mask"]))
        torch.testing.assert_close(out["studio"], loaded.upsample(out["translated"],
                                                                  batch["phone"]))


def test_shipped_srresnet_config_trains_under_fast_dev_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overlay = tmp_path / "toy.yaml"
    overlay.write_text(yaml.safe_dump({
        "model": {"init_args": {"low_resolution": 16, "upsampler": {"init_args": {
            "channels": 8, "num_blocks": 1}}}},
        "data": {"init_args": {"resolution": 64, "crop_size": 32, "batch_size": 2}}}))
    argv = ["fit", "--config", str(ROOT / "configs/upsample/srresnet_quickstart.yaml"),
            "--config", str(ROOT / "configs/trainer/cpu.yaml"), "--config", str(overlay),
            "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path)]
    assert main(argv) == 0


def test_lift_plugins_lists_the_related_translators_and_upsampler(capsys):
    assert main(["plugins", "--kind", "translator"]) == 0
    translators = capsys.readouterr().out
    assert main(["plugins", "--kind", "upsampler"]) == 0
    upsamplers = capsys.readouterr().out
    for name in ("MirroredCompletion", "SymmetricCompletion"):
        line = next(x for x in translators.splitlines() if x.strip().startswith(name))
        assert "plugin related" in line
    line = next(x for x in upsamplers.splitlines() if x.strip().startswith("SRResNetUpsampler"))
    assert "plugin related" in line
