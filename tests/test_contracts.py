"""Every component kind, written against its base class alone (as a third party would), runs
through its stage under ``fast_dev_run``; and every component's spec rebuilds it.

The components here import nothing from the built-in plugins: if a stage relied on anything
beyond the base class (an attribute only StyleGAN2 has, a method only ResShift has), these
tests fail. The tiny generator (tests/inversion_helpers.TinyGenerator) is such a component of
the ``generator`` kind.
"""

from __future__ import annotations

from typing import Any, Mapping

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from inversion_helpers import TinyGenerator
from torch import nn
from torch.utils.data import DataLoader

from lift.components import (
    ColourTransform,
    GradientOperator,
    IdentityEncoder,
    ImageDiscriminator,
    LatentSampler,
    Metric,
    PerceptualDistance,
    Phase,
    Translator,
    Upsampler,
)
from lift.data import SyntheticSource, TranslationDataModule
from lift.spec import SpecError, build, spec_of

RES = 16


# --- components, each from its base class only ------------------------------------------------


class TinyDiscriminator(ImageDiscriminator):
    def __init__(self, resolution: int = RES, channels: int = 4):
        super().__init__()
        self.resolution, self.img_channels = resolution, 3
        self.conv = nn.Conv2d(3, channels, 3, stride=2, padding=1)
        self.fc = nn.Linear(channels, 1)

    def forward(self, images):
        return self.fc(F.leaky_relu(self.conv(images), 0.2).mean(dim=(2, 3)))


class L1Distance(PerceptualDistance):
    def forward(self, x, y):
        return (x - y).abs().flatten(1).mean(1)


class MeanColourIdentity(IdentityEncoder):
    embedding_dim = 3

    def forward(self, texture, mask=None):
        if mask is not None:
            texture = texture * mask
        return texture.mean(dim=(2, 3))


class MeanAbsoluteError(Metric):
    name = "mae"
    higher_is_better = False
    supports_mask = True

    def __init__(self):
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, preds, target, mask=None):
        err = (preds - target).abs()
        weight = torch.ones_like(err[:, :1]) if mask is None else mask
        self.total += (err * weight).sum()
        self.count += weight.sum() * err.shape[1]

    def compute(self):
        return self.total / self.count


class GaussianWPlus(LatentSampler):
    """W+ rows drawn around the generator's w_avg (uses only the StyleGenerator contract)."""

    def __init__(self, scale: float = 0.5):
        super().__init__()
        self.scale = scale
        self._g: list = []

    def bind(self, generator):
        self._g = [generator]

    def sample(self, num, *, generator=None):
        g = self._g[0]
        noise = torch.randn(num, g.num_ws, g.w_dim, generator=generator)
        return g.w_avg.detach() + self.scale * noise


class GainTranslator(Translator):
    """Per-channel gain and bias fitted to the paired split: one phase, no discriminator."""

    def __init__(self, init_gain: float = 1.0):
        super().__init__()
        self.gain = nn.Parameter(torch.full((3,), init_gain))
        self.bias = nn.Parameter(torch.zeros(3))

    def phases(self):
        return {"fit": Phase(lambda: [self.gain, self.bias], self.losses, ("l1",))}

    def losses(self, batch, outputs, step):
        pred = self.translate(batch["paired_phone"])
        return {"l1": (pred - batch["paired_studio"]).abs().mean()}

    def translate(self, phone, mask=None):
        return phone * self.gain[:, None, None] + self.bias[:, None, None]


class DifferenceOfBox(GradientOperator):
    def forward(self, image):
        return image - F.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)


class ResidualUpsampler(Upsampler):
    """Bicubic upsampling plus a learned residual from the phone gradient (Eq. 13-14's shape)."""

    def __init__(self, gradient_operator: GradientOperator | None = None, scale_factor: int = 4):
        super().__init__()
        self.scale_factor = scale_factor
        self.gradient_operator = gradient_operator
        self.loss_terms = ("l2",)
        self.refine = nn.Conv2d(6, 3, 3, padding=1)

    def _forward(self, low_res, phone):
        up = F.interpolate(low_res, scale_factor=self.scale_factor, mode="bicubic",
                           align_corners=False)
        detail = self.gradient_operator(phone) if self.gradient_operator is not None \
            and phone is not None else torch.zeros_like(up)
        return up + self.refine(torch.cat([up, detail], 1))

    def training_losses(self, low_res, high_res, phone, *, mask=None):
        return {"l2": (self._forward(low_res, phone) - high_res).square().mean()}

    def upsample(self, low_res, phone=None, *, mask=None, generator=None, tile_size=None,
                 tile_overlap=0, num_inference_steps=None):
        return self._forward(low_res, phone).clamp(0, 1)


# --- helpers -----------------------------------------------------------------------------------


def _trainer(tmp_path, **kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, **kwargs)


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(profile="quickstart", seed=0)


def _adam(lr=1e-2):
    from functools import partial

    return partial(torch.optim.Adam, lr=lr)


class TextureBatches(torch.utils.data.Dataset):
    def __init__(self, n=4, size=RES, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.items = [{"stem": f"t{i}", "phone": torch.rand(3, size, size, generator=g),
                       "mask": torch.ones(1, size, size),
                       "studio": torch.rand(3, size, size, generator=g)} for i in range(n)]

    def __len__(self):
        return len(self.items)

    @property
    def stems(self):  # the inversion stage plans its bank shards from the dataset's stems
        return [item["stem"] for item in self.items]

    def __getitem__(self, i):
        return self.items[i]


# --- the stages --------------------------------------------------------------------------------


def test_generator_and_discriminator_kinds_train_in_the_prior_stage(tmp_path):
    from lift.stages.prior import PriorModule

    module = PriorModule(TinyGenerator(), TinyDiscriminator(), r1_interval=2, pl_interval=2,
                         grid_size=2)
    before = [p.clone() for p in module.generator.parameters()]
    _trainer(tmp_path, fast_dev_run=1).fit(
        module, DataLoader(TextureBatches(), batch_size=2), DataLoader(TextureBatches(), batch_size=2))
    assert any(not torch.equal(a, b) for a, b in zip(before, module.generator.parameters()))
    # No path-length term: TinyGenerator offers no such regulariser.
    assert not module.pl_active and "path_length" not in TinyGenerator.regularizers


def test_translator_metric_and_identity_encoder_kinds_in_the_translation_stage(tmp_path, source):
    from lift.stages.translation import TranslationModule

    translator = GainTranslator(init_gain=0.5)
    module = TranslationModule(translator, {"fit": _adam()}, {"l1": 1.0},
                               metrics=[MeanAbsoluteError()],
                               identity_metrics=[FaceIDLike(MeanColourIdentity())])
    dm = TranslationDataModule(source, resolution=RES, batch_size=4, paired_batch_size=2,
                               phone_split=None, val_split="paired_test")
    before = translator.gain.detach().clone()
    _trainer(tmp_path, fast_dev_run=1).fit(module, dm)
    assert not torch.equal(before, translator.gain)
    assert module.phase_steps.tolist() == [1]
    results = _trainer(tmp_path).test(module, dm)
    assert {"paired_test/mae", "paired_test/faceid_like"} <= set(results[0])
    assert "unpaired_test/faceid_like" in results[1] and "unpaired_test/mae" not in results[1]


class FaceIDLike(Metric):
    """Squared embedding distance of an identity encoder (the shape of Table 2's FaceID)."""

    name = "faceid_like"
    higher_is_better = False
    supports_mask = True

    def __init__(self, encoder: IdentityEncoder):
        super().__init__()
        self.encoder = encoder
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, preds, target, mask=None):
        d = (self.encoder(preds, mask=mask) - self.encoder(target, mask=mask)).square().sum(1)
        self.total += d.sum()
        self.count += d.numel()

    def compute(self):
        return self.total / self.count


def test_latent_sampler_distance_and_identity_kinds_inside_stylegan_wplus(tmp_path, source):
    """The paper's translator accepts a third party's sampler, distance and identity encoder
    and a third party's generator / discriminator (no StyleGAN2 networks involved)."""
    from lift_stylegan2.finetune import StyleGANWPlus

    from lift.stages.translation import TranslationModule

    g, d = TinyGenerator(), TinyDiscriminator()
    translator = StyleGANWPlus(None, GaussianWPlus(), L1Distance(),
                               identity_encoder=MeanColourIdentity(), generator=g,
                               discriminator=d, freeze_resolution=4)
    module = TranslationModule(translator, {"generator": _adam(), "discriminator": _adam()},
                               {"adv": 1.0, "r1": 1.0, "lpips_prior": 0.5, "faceid": 10.0})
    dm = TranslationDataModule(source, resolution=RES, batch_size=4, phone_split=None,
                               paired_split=None, val_split=None)
    _trainer(tmp_path, fast_dev_run=1).fit(module, dm)
    assert module.phase_steps.tolist() == [1, 1]


def test_perceptual_distance_kind_in_the_inversion_stage(tmp_path):
    from lift.inversion.codes import WPlusCode
    from lift.inversion.schedule import ProjectorSchedule
    from lift.inversion.settings import InversionSettings
    from lift.latent_bank import LatentBank
    from lift.stages.inversion import InversionModule

    settings = InversionSettings(
        L1Distance(), WPlusCode(), ProjectorSchedule(3, 0.1, 0.0, 0.0, 0.0, 0.75), 1.0, 1.0,
        True, 2, None, (0.9, 0.999), 1e-8, 64, 0)
    module = InversionModule(None, settings, str(tmp_path / "bank"), shard_size=2,
                             generator=TinyGenerator())
    trainer = _trainer(tmp_path, use_distributed_sampler=False)
    trainer.predict(module, DataLoader(TextureBatches(4), batch_size=2), return_predictions=False)
    bank = LatentBank.open(tmp_path / "bank")
    bank.check_complete()
    # the manifest records the settings; they rebuild (what test-time inversion does)
    rebuilt = build(bank.manifest["config"]["settings"])
    assert isinstance(rebuilt.distance, L1Distance) and rebuilt.schedule.steps == 3


@pytest.mark.parametrize("with_gradient", [True, False])
def test_upsampler_and_gradient_operator_kinds_in_the_upsampling_stage(tmp_path, with_gradient):
    from lift.prediction_writer import TextureWriter
    from lift.stages.upsampling import UpsamplingModule

    up = ResidualUpsampler(DifferenceOfBox() if with_gradient else None)
    module = UpsamplingModule(up, low_resolution=RES // 4, lr=1e-3, loss_weights={"l2": 1.0},
                              metrics=[MeanAbsoluteError()])
    data = DataLoader(TextureBatches(2), batch_size=2)
    _trainer(tmp_path, fast_dev_run=1).fit(module, data, data)
    assert ("phone_gradient" in module.validation_images) == with_gradient
    writer = TextureWriter(tmp_path / "out", keys=["upsampled"])
    _trainer(tmp_path, callbacks=[writer]).predict(module, data)
    assert sorted(p.name for p in (tmp_path / "out" / "upsampled").iterdir()) == [
        "t0.png", "t1.png"]


# --- specs -------------------------------------------------------------------------------------


def test_every_component_records_a_spec_that_rebuilds_it():
    components = [TinyGenerator(z_dim=4, w_dim=6, seed=2), TinyDiscriminator(channels=3),
                  L1Distance(), MeanColourIdentity(), MeanAbsoluteError(),
                  GaussianWPlus(scale=0.25), GainTranslator(init_gain=0.5),
                  ResidualUpsampler(DifferenceOfBox(), scale_factor=2),
                  FaceIDLike(MeanColourIdentity())]
    for component in components:
        spec = spec_of(component)
        rebuilt = build(spec)
        assert type(rebuilt) is type(component) and spec_of(rebuilt) == spec
    assert spec_of(components[0])["init_args"] == {"z_dim": 4, "w_dim": 6, "channels": 8,
                                                   "seed": 2}
    up = spec_of(components[7])["init_args"]
    assert up["gradient_operator"]["class_path"].endswith("DifferenceOfBox")
    assert up["scale_factor"] == 2


def test_a_spec_cannot_make_lift_import_an_arbitrary_module():
    import sys

    assert "this" not in sys.modules  # the stdlib module that prints on import
    with pytest.raises(SpecError, match="not in lift or a lift plugin"):
        build({"class_path": "this.Anything"})
    assert "this" not in sys.modules


def test_a_spec_cannot_name_an_arbitrary_callable():
    with pytest.raises(SpecError, match="not a lift component"):
        build({"class_path": "os.system", "init_args": {"command": "true"}})
    with pytest.raises(SpecError, match="not a lift component"):
        build({"class_path": "torch.nn.Linear", "init_args": {"in_features": 1,
                                                             "out_features": 1}})


def test_an_unrecordable_argument_is_named():
    class Holder(Translator):
        def __init__(self, thing: Any):
            super().__init__()
            self.thing = thing

        def phases(self) -> Mapping[str, Phase]:
            return {}

        def translate(self, phone, mask=None):
            return phone

    with pytest.raises(SpecError, match=r"component\.thing.*object"):
        spec_of(Holder(object()))


def test_a_trained_translator_is_rebuilt_from_its_checkpoint_alone(tmp_path, source):
    """What the pipeline does: the translation checkpoint names the translator's spec; its
    rebuilt submodules (left out of the file) come back from the spec's own arguments."""
    from lift_stylegan2.finetune import StyleGANWPlus

    from lift.checkpoints import build_from_checkpoint
    from lift.stages.translation import TranslationModule

    translator = StyleGANWPlus(None, GaussianWPlus(), L1Distance(), generator=TinyGenerator(),
                               discriminator=TinyDiscriminator(), freeze_resolution=4)
    module = TranslationModule(translator, {"generator": _adam(), "discriminator": _adam()},
                               {"adv": 1.0, "r1": 1.0, "lpips_prior": 0.5})
    dm = TranslationDataModule(source, resolution=RES, batch_size=4, phone_split=None,
                               paired_split=None, val_split=None)
    trainer = _trainer(tmp_path, max_steps=2, enable_checkpointing=False)
    trainer.fit(module, dm)
    trainer.save_checkpoint(tmp_path / "t.ckpt")
    rebuilt = build_from_checkpoint(tmp_path / "t.ckpt", "translator")
    assert type(rebuilt) is StyleGANWPlus
    for key, value in translator.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key


class GlobalGainBias(ColourTransform):
    """One gain and bias per channel over the visible texels (Eq. 15 with k = 1)."""

    def fit(self, source, target, mask=None):
        w = torch.ones_like(source[:, :1]) if mask is None else mask
        n = w.sum(dim=(2, 3), keepdim=True)
        mx, my = (source * w).sum((2, 3), keepdim=True) / n, (target * w).sum((2, 3), keepdim=True) / n
        var = ((source - mx).square() * w).sum((2, 3), keepdim=True)
        gain = ((source - mx) * (target - my) * w).sum((2, 3), keepdim=True) / var
        return {"gain": gain, "bias": my - gain * mx}

    def apply(self, params, texture):
        return params["gain"] * texture + params["bias"]


def test_colour_transform_kind_in_the_pipeline_stage(tmp_path, source):
    """Eq. 15-16 through the pipeline with a third party's transform: the fitted maps are
    written beside the studio texture and every expression is transformed."""
    from lift.prediction_writer import TextureWriter
    from lift.stages.pipeline import PipelineModule
    from lift.stages.translation import TranslationModule

    module = TranslationModule(GainTranslator(init_gain=0.5), {"fit": _adam()}, {"l1": 1.0})
    dm = TranslationDataModule(source, resolution=RES, batch_size=4, paired_batch_size=2,
                               phone_split=None, val_split=None)
    trainer = _trainer(tmp_path, max_steps=1, enable_checkpointing=False)
    trainer.fit(module, dm)
    trainer.save_checkpoint(tmp_path / "t.ckpt")
    pipeline = PipelineModule(str(tmp_path / "t.ckpt"), None, GlobalGainBias(),
                              translator_resolution=RES)
    g = torch.Generator().manual_seed(1)
    phone = torch.rand(2, 3, RES, RES, generator=g)
    batch = {"stem": ["a", "b"], "phone": phone, "mask": torch.ones(2, 1, RES, RES),
             "expressions": {"smile": phone.clone()}}
    writer = TextureWriter(tmp_path / "out", formats={"gain": "exr", "bias": "exr"})
    _trainer(tmp_path, callbacks=[writer]).predict(pipeline, DataLoader([batch], batch_size=None))
    for entry in ("studio", "gain", "bias"):
        assert sorted(p.stem for p in (tmp_path / "out" / entry).iterdir()) == ["a", "b"]
    assert (tmp_path / "out" / "expressions" / "a" / "smile.png").is_file()
