"""Translation stage: the data module's combined batches, TranslationModule's phases, and the
StyleGAN finetuning translators (StyleGANWPlus, Eq. 3-8; AgileGANZPlus) against hand
computations; frozen layers stay frozen."""

from __future__ import annotations

import copy
from functools import partial

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inversion_helpers import MSEDistance
from lift.components import IdentityEncoder, LatentSampler
from lift.data import SyntheticSource, TranslationDataModule, flatten_translation_batch
from lift.inversion.codes import WPlusCode
from lift.inversion.schedule import ProjectorSchedule
from lift.inversion.settings import InversionSettings
from lift.latent_bank import BankLayout, LatentBankWriter, make_manifest
from lift.stages.base import LossWeightError
from lift.spec import spec_of
from lift.stages.translation import TranslationModule
from lift_stylegan2.encoder import ZPlusEncoder, kl_to_standard_normal, zplus_to_wplus
from lift_stylegan2.finetune import AgileGANZPlus, StyleGANWPlus
from lift_stylegan2.networks import Discriminator, Generator
from lift_stylegan2.samplers import ZPlusSampler, ZSampler

RES = 16


def tiny_gd(seed: int = 0) -> tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    g = Generator(z_dim=16, w_dim=16, resolution=RES, channel_base=128, channel_max=16,
                  mapping_layers=2)
    d = Discriminator(resolution=RES, channel_base=128, channel_max=16, mbstd_group_size=2)
    return g, d


class FixedSampler(LatentSampler):
    """Returns the rows of a given tensor (so a test knows the latents)."""

    def __init__(self, ws: torch.Tensor):
        super().__init__()
        self.ws = ws

    def sample(self, num, *, generator=None):
        return self.ws[:num]


class LinearIdentity(IdentityEncoder):
    """A fixed random projection of the mean-pooled 4x4 texture (a stand-in F)."""

    embedding_dim = 8

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(48, 8)

    def forward(self, texture):
        return self.proj(F.adaptive_avg_pool2d(texture, 4).flatten(1))


def write_bank(root, stems, codes):
    layout = BankLayout.from_stems(stems, 4)
    writer = LatentBankWriter(root, make_manifest(layout, num_ws=codes.shape[1],
                                                  w_dim=codes.shape[2],
                                                  generator={}))
    writer.prepare()
    index = {s: i for i, s in enumerate(stems)}
    for k in range(layout.num_shards):
        mine = list(layout.shard_stems(k))
        n = len(mine)
        writer.write_shard(k, mine, codes[[index[s] for s in mine]],
                           {"final_loss": torch.zeros(n), "mse": torch.zeros(n),
                            "perceptual": torch.zeros(n), "steps": torch.zeros(n)})
    return str(root)


def schedule(steps: int = 3, batch_size: int = 16) -> InversionSettings:
    """Test-time inversion settings: a few constant-lr steps, MSE + MSE (Eq. 1's shape)."""
    return InversionSettings(
        distance=MSEDistance(), code=WPlusCode(),
        schedule=ProjectorSchedule(steps=steps, lr=0.1, lr_rampup=0.0, lr_rampdown=0.0,
                                   noise_strength=0.0, noise_ramp=0.75),
        mse_weight=1.0, perceptual_weight=1.0, use_mask=True, batch_size=batch_size,
        early_stop=None, adam_betas=(0.9, 0.999), adam_eps=1e-8, w_stats_samples=256, seed=0)


def wplus(g=None, d=None, sampler=None, **kwargs) -> StyleGANWPlus:
    """StyleGAN-W+ on in-memory networks (no prior checkpoint)."""
    if g is None:
        g, d = tiny_gd(0)
    return StyleGANWPlus(None, sampler or ZSampler(), MSEDistance(), generator=g,
                         discriminator=d, **kwargs)


def adam(**kwargs):
    return partial(torch.optim.Adam, **({"lr": 0.01} | kwargs))


def optimizers(**kwargs) -> dict:
    return {"generator": adam(**kwargs), "discriminator": adam(**kwargs)}


# --- data ------------------------------------------------------------------------------------


def test_flatten_translation_batch_prefixes_roles():
    batch = {"phone": {"phone": 1, "mask": 2, "stem": ["a"]},
             "studio": {"studio": 3, "stem": ["b"]},
             "paired": {"phone": 4, "mask": 5, "studio": 6, "stem": ["c"]}}
    assert flatten_translation_batch(batch) == {
        "phone": 1, "mask": 2, "phone_stem": ["a"], "studio": 3, "studio_stem": ["b"],
        "paired_phone": 4, "paired_mask": 5, "paired_studio": 6, "paired_stem": ["c"]}
    with pytest.raises(KeyError, match="unknown role 'other'"):
        flatten_translation_batch({"other": {}})


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(profile="quickstart", seed=0)


def test_translation_datamodule_yields_one_loader_per_role(source):
    dm = TranslationDataModule(source, resolution=16, batch_size=4, paired_batch_size=2)
    loaders = dm.train_dataloader()
    assert set(loaders) == {"phone", "studio", "paired"}
    assert len(loaders["phone"]) == 60 // 4 and len(loaders["paired"]) == 12 // 2
    paired = next(iter(loaders["paired"]))
    assert paired["phone"].shape == (2, 3, 16, 16) and paired["studio"].shape == (2, 3, 16, 16)
    assert set(paired["stem"]) <= set(source.splits()["paired_train"])
    tests = dm.test_dataloader()
    assert [len(t.dataset) for t in tests] == [4, 6]  # paired_test, unpaired_test
    no_phone = TranslationDataModule(source, phone_split=None, resolution=16, batch_size=4)
    assert set(no_phone.train_dataloader()) == {"studio", "paired"}


def test_translation_datamodule_errors_name_the_split(source):
    with pytest.raises(ValueError, match="studio_split='studio'"):
        TranslationDataModule(source, studio_split="studio")
    dm = TranslationDataModule(source, resolution=16, batch_size=4, paired_batch_size=20)
    with pytest.raises(ValueError, match="paired split paired_train has 12 items"):
        dm.setup("fit")


# --- StyleGANWPlus: initialisation, freezing, loss terms -------------------------------------


@pytest.fixture
def prior_ckpt(tmp_path):
    """A checkpoint as the prior stage writes it: generator.*, generator_ema.*, discriminator.*"""
    g, d = tiny_gd(0)
    ema, _ = tiny_gd(1)
    state = {**{f"generator.{k}": v for k, v in g.state_dict().items()},
             **{f"generator_ema.{k}": v for k, v in ema.state_dict().items()},
             **{f"discriminator.{k}": v for k, v in d.state_dict().items()}}
    path = tmp_path / "prior.ckpt"
    components = {"generator": spec_of(g), "discriminator": spec_of(d)}
    torch.save({"state_dict": state, "hyper_parameters": {"lr": 0.002},
                "lift_components": components}, path)
    return path, g, ema, d


def test_checkpoint_initialises_g_studio_and_d_studio(prior_ckpt):
    path, g, ema, d = prior_ckpt
    tr = StyleGANWPlus(str(path), ZSampler(), MSEDistance())  # networks from the file alone
    for name, value in ema.state_dict().items():  # use_ema: G_studio <- G_phone's EMA
        assert torch.equal(tr.generator.state_dict()[name], value), name
        assert torch.equal(tr.source_generator.state_dict()[name], value), name
    for name, value in d.state_dict().items():
        assert torch.equal(tr.discriminator.state_dict()[name], value), name
    raw = StyleGANWPlus(str(path), ZSampler(), MSEDistance(), use_ema=False)
    assert torch.equal(raw.generator.state_dict()["synthesis.blocks.0.const"],
                       g.state_dict()["synthesis.blocks.0.const"])
    assert not any(p.requires_grad for p in tr.source_generator.parameters())


def _train(translator, weights, source, steps=4, **dm_kwargs):
    optims = {name: adam(betas=(0.0, 0.99)) for name in translator.phases()}
    module = TranslationModule(translator, optims, weights)
    dm = TranslationDataModule(source, resolution=RES, batch_size=4, paired_batch_size=2,
                               val_split=None, **dm_kwargs)
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(module, dm)
    return module


@pytest.mark.parametrize("freeze", [8, 0])
def test_frozen_layers_do_not_change_and_the_others_do(source, freeze):
    tr = wplus(freeze_resolution=freeze)
    before = copy.deepcopy(tr.state_dict())
    frozen = {id(p) for p in tr.generator.synthesis.parameters_up_to(freeze)}
    _train(tr, {"adv": 1.0, "r1": 10.0, "lpips_prior": 0.5}, source, steps=6)
    for name, p in tr.generator.named_parameters():
        same = torch.equal(p, before[f"generator.{name}"])
        if id(p) in frozen or name.startswith("mapping."):
            assert same, f"{name} is frozen but changed"
        elif not name.endswith("noise_strength"):  # noise is const: its strength gets no grad
            assert not same, f"{name} is trainable but did not change"
    for name, p in tr.source_generator.named_parameters():
        assert torch.equal(p, before[f"source_generator.{name}"]), name
    assert any(not torch.equal(p, before[f"discriminator.{n}"])
               for n, p in tr.discriminator.named_parameters())
    if freeze == 8:
        assert all(b.resolution > 8 for b in tr.generator.synthesis.blocks
                   if any(p.requires_grad for p in b.parameters()))


@pytest.fixture
def wplus_setup(tmp_path):
    g, d = tiny_gd(0)
    torch.manual_seed(3)
    ws = torch.randn(4, g.num_ws, g.w_dim)
    paired_codes = torch.randn(2, g.num_ws, g.w_dim)
    bank = write_bank(tmp_path / "bank", ["p0", "p1"], paired_codes)
    tr = wplus(g, d, FixedSampler(ws), identity_encoder=LinearIdentity(), paired_bank=bank,
               r1_interval=3)
    batch = {"studio": torch.rand(4, 3, RES, RES), "paired_studio": torch.rand(2, 3, RES, RES),
             "paired_stem": ["p1", "p0"]}
    return tr, ws, paired_codes, batch


def test_wplus_terms_are_zero_where_g_studio_equals_g_phone(wplus_setup):
    tr, ws, _, batch = wplus_setup
    terms = tr.generator_losses(batch, tr.forward_step(batch))
    assert terms["lpips_prior"].item() == 0.0  # Eq. 5 at initialisation
    assert terms["faceid"].item() == 0.0       # Eq. 4 at initialisation


def test_wplus_loss_terms_match_hand_computation(wplus_setup):
    tr, ws, paired_codes, batch = wplus_setup
    with torch.no_grad():  # move G_studio away from G_phone above 8x8
        for block in tr.generator.synthesis.blocks:
            if block.resolution > 8:
                for p in block.parameters():
                    p.add_(0.05 * torch.randn_like(p))
    outputs = tr.forward_step(batch)
    assert torch.equal(outputs["ws"], ws)
    assert torch.equal(outputs["paired_ws"], paired_codes[[1, 0]])
    terms = tr.generator_losses(batch, outputs)
    g_s = tr.generator.synthesis(ws, noise_mode="const")
    g_p = tr.source_generator.synthesis(ws, noise_mode="const")
    unit_s, unit_p = (g_s + 1) / 2, (g_p + 1) / 2
    expected = {
        "adv": -tr.discriminator(g_s).mean(),                                     # Eq. 3
        "lpips_prior": (unit_s - unit_p).square().flatten(1).mean(1).mean(),      # Eq. 5
        "faceid": (tr.identity_encoder(unit_s.clamp(0, 1))
                   - tr.identity_encoder(unit_p.clamp(0, 1))).square().sum(1).mean(),  # Eq. 4
        "paired": ((tr.generator.synthesis(paired_codes[[1, 0]], noise_mode="const") + 1) / 2
                   - batch["paired_studio"]).square().flatten(1).mean(1).mean(),  # Eq. 6
    }
    assert set(terms) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(terms[name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert terms["lpips_prior"] > 0 and terms["faceid"] > 0

    d_terms = tr.discriminator_losses(batch, outputs)
    reals = batch["studio"] * 2 - 1
    d_adv = F.relu(1 - tr.discriminator(reals)).mean() + F.relu(1 + tr.discriminator(g_s)).mean()
    torch.testing.assert_close(d_terms["adv"], d_adv, rtol=1e-5, atol=1e-6)
    x = reals.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(tr.discriminator(x).sum(), x)
    r1 = 0.5 * grad.square().sum(dim=[1, 2, 3]).mean() * 3  # Eq. 7 / gamma, lazy interval 3
    torch.testing.assert_close(d_terms["r1"], r1, rtol=1e-4, atol=1e-7)


def test_lazy_r1_is_computed_every_interval(wplus_setup):
    tr, _, _, batch = wplus_setup
    outputs = tr.forward_step(batch)
    losses = tr.phases()["discriminator"].losses  # the stage passes the phase's step count
    present = ["r1" in losses(batch, outputs, step) for step in range(7)]
    assert present == [True, False, False, True, False, False, True]


def test_paired_stem_missing_from_the_bank_is_named(wplus_setup):
    tr, _, _, batch = wplus_setup
    with pytest.raises(KeyError, match=r"paired stems \['zz'\] are not in paired_bank"):
        tr.forward_step({**batch, "paired_stem": ["zz", "p0"]})


def test_a_weighted_term_nobody_computes_is_an_error(source):
    tr = wplus()  # no paired bank
    with pytest.raises(LossWeightError, match=r"\['paired'\]"):
        _train(tr, {"adv": 1.0, "lpips_prior": 0.5, "paired": 1.0}, source, steps=2)


def test_translate_batch_uses_eval_banks_and_inverts_the_rest(tmp_path, monkeypatch):
    g, d = tiny_gd(0)
    code = torch.randn(1, g.num_ws, g.w_dim)
    bank = write_bank(tmp_path / "eval", ["known"], code)
    tr = wplus(g, d, eval_banks=[bank], inversion=schedule(3, batch_size=2))
    inverted = []
    real_invert = tr.invert

    def spy(phone, mask, stems=None):
        inverted.extend(stems)
        return real_invert(phone, mask, stems)

    monkeypatch.setattr(tr, "invert", spy)
    phone = torch.rand(2, 3, RES, RES)
    batch = {"phone": phone, "mask": torch.ones(2, 1, RES, RES), "stem": ["known", "new"]}
    with torch.inference_mode():  # as Lightning's test loop runs it
        out = tr.translate_batch(batch)
    assert inverted == ["new"]
    assert out.shape == (2, 3, RES, RES) and 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(out[:1], tr.synthesize(code))
    with pytest.raises(ValueError, match="no inversion settings"):
        wplus().translate(phone)


# --- AgileGAN-Z+ -----------------------------------------------------------------------------


def test_zplus_encoder_shapes_kl_and_mapping():
    g, _ = tiny_gd(0)
    enc = ZPlusEncoder(RES, g.synthesis.ws_resolutions, z_dim=g.z_dim, channels=4)
    mu, logvar = enc(torch.rand(3, 3, RES, RES))
    assert mu.shape == logvar.shape == (3, g.num_ws, g.z_dim)
    m, lv = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 2.0]]])
    # KL per dim: 0.5 (mu^2 + e^lv - 1 - lv): dims give 0.5 and 0.5 (e^2 - 3)
    torch.testing.assert_close(kl_to_standard_normal(m, lv),
                               torch.tensor(0.5 + 0.5 * (torch.e ** 2 - 3)))
    z = torch.randn(2, g.num_ws, g.z_dim)
    ws = zplus_to_wplus(g.mapping, z, g.num_ws, g.w_dim)
    for j in range(g.num_ws):  # row j is mapping(z_j)
        torch.testing.assert_close(ws[:, j], g.mapping(z[:, j])[:, 0])


def test_agilegan_trains_its_encoder_and_has_no_identity_or_paired_terms(source):
    g, d = tiny_gd(0)
    enc = ZPlusEncoder(RES, g.synthesis.ws_resolutions, z_dim=g.z_dim, channels=8)
    tr = AgileGANZPlus(None, ZPlusSampler(), MSEDistance(), enc, generator=g, discriminator=d)
    batch = {"phone": torch.rand(4, 3, RES, RES) * 0.5 + 0.25, "mask": torch.ones(4, 1, RES, RES),
             "studio": torch.rand(4, 3, RES, RES)}
    outputs = tr.forward_step(batch)
    phases = tr.phases()
    assert list(phases) == ["discriminator", "generator", "encoder"]
    terms = {**phases["generator"].losses(batch, outputs, 0),
             **phases["encoder"].losses(batch, outputs, 0)}
    assert set(terms) == {"adv", "lpips_prior", "enc_mse", "enc_lpips", "enc_kl"}
    assert all(torch.isfinite(v) for v in terms.values())
    assert set(map(id, phases["encoder"].parameters())) == set(map(id, enc.parameters()))
    assert not set(map(id, phases["generator"].parameters())) & set(map(id, enc.parameters()))
    opt = torch.optim.Adam(enc.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        t = tr.encoder_losses(batch, outputs)  # the encoder's phase
        loss = t["enc_mse"] + 1e-3 * t["enc_kl"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first, (first, loss.item())
    out = tr.translate(batch["phone"])
    assert out.shape == (4, 3, RES, RES)


def test_a_weight_naming_no_term_is_warned_about(source):
    tr = wplus()
    with pytest.warns(UserWarning, match=r"loss_weights \['lpisp_prior'\] name no term"):
        _train(tr, {"adv": 1.0, "lpisp_prior": 0.5}, source, steps=2)


def test_checkpoints_leave_out_metric_copies_and_load_back(tmp_path, source):
    from lift_metrics.faceid import FaceID
    from lift_metrics.image_metrics import PSNR

    def module():
        tr = wplus()
        return TranslationModule(
            tr, optimizers(), {"adv": 1.0}, metrics=[PSNR()],
            identity_metrics=[FaceID(LinearIdentity())])

    m = module()
    dm = TranslationDataModule(source, resolution=RES, batch_size=4, val_split=None)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(m, dm)
    assert any(k.startswith("eval_metrics.") for k in m.state_dict())  # the encoder copies
    path = tmp_path / "t.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert not [k for k in state if k.startswith("eval_metrics.")]
    # G_phone and the frozen distance are rebuilt from the config: not stored
    assert not [k for k in state if k.startswith(("translator.source_generator.",
                                                  "translator.distance."))]
    assert any(k.startswith("translator.generator.") for k in state)
    spec = torch.load(path, map_location="cpu", weights_only=True)["lift_components"]
    assert spec["translator"]["class_path"] == "lift_stylegan2.finetune.StyleGANWPlus"
    fresh = module()
    t2 = pl.Trainer(max_steps=4, accelerator="cpu", logger=False, enable_progress_bar=False,
                    enable_model_summary=False, enable_checkpointing=False)
    t2.fit(fresh, dm, ckpt_path=path)  # resumes (strict load) although the metrics are absent
    assert t2.global_step == 4
    assert fresh.phase_steps.tolist() == [4 // 2, 4 // 2]  # phase counters resumed too
    # A G_phone that differs from the one the checkpoint was trained with is refused.
    other = module()
    with torch.no_grad():
        next(other.translator.source_generator.parameters()).add_(1.0)
    t3 = pl.Trainer(max_steps=6, accelerator="cpu", logger=False, enable_progress_bar=False,
                    enable_model_summary=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="source_generator"):
        t3.fit(other, dm, ckpt_path=path)


def test_validation_grid_shows_the_translators_training_visuals(source):
    tr = wplus(inversion=schedule(2))
    module = TranslationModule(tr, optimizers(), {"adv": 1.0})
    dm = TranslationDataModule(source, resolution=RES, batch_size=4, val_split="paired_test")
    captured = {}

    class Grab(pl.Callback):
        def on_validation_epoch_end(self, trainer, pl_module):
            captured.update(pl_module.validation_images)

    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False,
                         num_sanity_val_steps=0, limit_train_batches=1, limit_val_batches=1,
                         callbacks=[Grab()])
    trainer.fit(module, dm)
    assert {"phone", "translated", "studio", "train G_phone(w)", "train G_studio(w)"} <= set(captured)
    assert captured["train G_studio(w)"].shape == (4, 3, RES, RES)
    rng = torch.get_rng_state()
    module.training_visuals()
    assert torch.equal(rng, torch.get_rng_state())  # showing images does not move the RNG
