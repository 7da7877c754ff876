"""CUT / FastCUT translator: loss terms by hand, PatchNCE wiring, gradients, training, inference."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import lift_i2i.cut as cut_module
from lift_i2i.cut import CUT
from lift_i2i.losses import patch_nce_loss


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

LAYERS = [0, 4, 8, 12, 16]


def tiny(**kwargs) -> CUT:
    torch.manual_seed(0)
    return CUT(ngf=8, ndf=8, n_blocks=5, num_patches=64, **kwargs)


def make_batch(b: int = 1, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"phone": torch.rand(b, 3, size, size, generator=g),
            "studio": torch.rand(b, 3, size, size, generator=g),
            "mask": torch.ones(b, 1, size, size)}


class ChannelMean(nn.Module):
    """A stand-in discriminator whose output is easy to compute by hand."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1, keepdim=True)


def test_registered_as_translators(builtin_registry):
    assert builtin_registry.get("translator", "CUT") is CUT
    from lift_i2i.cyclegan import CycleGAN

    assert builtin_registry.get("translator", "CycleGAN") is CycleGAN


def test_terms_are_named_finite_and_cut_updates_d_first():
    t = tiny()
    assert list(t.phases()) == ["discriminator", "generator"]  # the reference: D first
    batch = make_batch(2)
    out = t.forward_step(batch)
    d = t.discriminator_losses(batch, out)
    g = t.generator_losses(batch, out)
    assert set(d) == {"d_real", "d_fake"} and set(g) == {"gan", "nce", "nce_identity"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in {**d, **g}.values())
    weights = t.reference_loss_weights()
    assert set(weights) == set(d) | set(g)
    assert {k: p.terms for k, p in t.phases().items()} == {
        "generator": ("gan", "nce", "nce_identity"), "discriminator": ("d_real", "d_fake")}
    fast = tiny(nce_identity=False, flip_equivariance=True)
    assert set(fast.generator_losses(batch, fast.forward_step(batch))) == {"gan", "nce"}
    assert fast.phases()["generator"].terms == ("gan", "nce")
    assert fast.reference_loss_weights() == {"gan": 1.0, "nce": 10.0, "d_real": 0.5,
                                             "d_fake": 0.5}


def test_lsgan_terms_by_hand_with_a_known_discriminator():
    t = tiny()
    t.discriminator = ChannelMean()
    batch = make_batch(2)
    out = t.forward_step(batch)
    fake = t.generator(batch["phone"] * 2 - 1).detach()  # domain A = phone, in [-1, 1]
    real = batch["studio"] * 2 - 1                       # domain B = studio
    d = t.discriminator_losses(batch, out)
    g = t.generator_losses(batch, out)
    torch.testing.assert_close(d["d_fake"], (fake.mean(1) ** 2).mean())
    torch.testing.assert_close(d["d_real"], ((real.mean(1) - 1) ** 2).mean())
    torch.testing.assert_close(g["gan"], ((fake.mean(1) - 1) ** 2).mean())
    assert not d["d_fake"].requires_grad  # the D phase sees detached fakes
    assert g["gan"].requires_grad


def explicit_nce(t: CUT, src: torch.Tensor, tgt: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """The reference's calculate_NCE_loss, spelled out: separate encoder passes over the
    source (keys) and G's output (queries), shared patch locations, mean over layers."""
    q_feats = t.generator.encode(tgt, LAYERS)
    if flip:
        q_feats = [f.flip(3) for f in q_feats]
    k_feats = t.generator.encode(src, LAYERS)
    keys, ids = t.patch_sampler(k_feats, t.num_patches)
    queries, _ = t.patch_sampler(q_feats, t.num_patches, ids)
    per_layer = [patch_nce_loss(q, k, src.shape[0]).mean() for q, k in zip(queries, keys)]
    return sum(per_layer) / len(per_layer)


def test_nce_terms_equal_the_explicit_computation():
    t = tiny()
    batch = make_batch(2)
    a, b = batch["phone"] * 2 - 1, batch["studio"] * 2 - 1
    out = t.forward_step(batch)
    torch.manual_seed(7)
    g = t.generator_losses(batch, out)
    torch.manual_seed(7)
    fake_b, idt_b = t.generator(a), t.generator(b)
    # Same order of draws as ours: the NCE term, then the identity term.
    expected_nce = explicit_nce(t, a, fake_b)
    expected_idt = explicit_nce(t, b, idt_b)
    torch.testing.assert_close(g["nce"], expected_nce, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g["nce_identity"], expected_idt, rtol=1e-5, atol=1e-5)


def test_fastcut_flip_equivariance(monkeypatch):
    t = tiny(nce_identity=False, flip_equivariance=True)
    batch = make_batch(1)
    a = batch["phone"] * 2 - 1
    monkeypatch.setattr(cut_module.torch, "rand", lambda *a, **k: torch.tensor(0.0))  # always flip
    out = t.forward_step(batch)
    assert out["flipped"]
    torch.testing.assert_close(out["fake_b"], t.generator(a.flip(3)))
    torch.manual_seed(3)
    g = t.generator_losses(batch, out)
    torch.manual_seed(3)
    expected = explicit_nce(t, a, t.generator(a.flip(3)), flip=True)
    torch.testing.assert_close(g["nce"], expected, rtol=1e-5, atol=1e-5)
    t.eval()  # no flips outside training
    assert not t.forward_step(batch)["flipped"]


class HandInstanceNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5)


def test_generator_gradients_match_a_hand_written_instance_norm():
    # torch's CPU instance-norm backward is wrong for channels-last incoming gradients at
    # batch 1 (it bites the reference's patch gather); ours must produce correct gradients.
    t = tiny()
    hand = copy.deepcopy(t)
    for name, module in list(hand.generator.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.InstanceNorm2d):
                setattr(module, child_name, HandInstanceNorm())
    batch = make_batch(1)
    grads = []
    for model in (t, hand):
        torch.manual_seed(11)
        out = model.forward_step(batch)
        terms = model.generator_losses(batch, out)
        loss = terms["gan"] + 0.5 * terms["nce"] + 0.5 * terms["nce_identity"]
        grads.append(torch.autograd.grad(loss, list(model.generator.parameters())))
    for (name, p), g1, g2 in zip(t.generator.named_parameters(), *grads):
        if name.endswith("bias") and p.shape[0] != 3:
            continue  # biases in front of instance norms: zero up to rounding
        torch.testing.assert_close(g1, g2, rtol=1e-3, atol=1e-4 * g2.abs().max().item(),
                                   msg=name)


def test_parameters_split_into_generator_and_discriminator():
    t = tiny()
    g = {id(p) for p in t.generator_parameters()}
    d = {id(p) for p in t.discriminator_parameters()}
    assert not g & d
    assert g == {id(p) for p in [*t.generator.parameters(), *t.patch_sampler.parameters()]}
    assert d == {id(p) for p in t.discriminator.parameters()}


@pytest.mark.parametrize("fast", [False, True])
def test_a_few_steps_on_a_fixed_batch_reduce_the_nce_term(fast):
    t = tiny(nce_identity=not fast, flip_equivariance=fast)
    batch = make_batch(1)
    weights = t.reference_loss_weights()
    opts = {"generator": torch.optim.Adam(t.generator_parameters(), 1e-3, betas=(0.5, 0.999)),
            "discriminator": torch.optim.Adam(t.discriminator_parameters(), 1e-3,
                                              betas=(0.5, 0.999))}

    def nce_now() -> float:
        torch.manual_seed(123)  # same patches, no flip
        with torch.no_grad():
            t.eval()
            value = t.generator_losses(batch, t.forward_step(batch))["nce"].item()
            t.train()
        return value

    before = nce_now()
    for _ in range(8):
        out = t.forward_step(batch)
        for phase, spec in t.phases().items():
            terms = spec.losses(batch, out, 0)
            loss = sum(weights[k] * v for k, v in terms.items())
            opts[phase].zero_grad()
            loss.backward()
            opts[phase].step()
            assert torch.isfinite(loss)
    assert nce_now() < 0.9 * before


def test_translate_runs_g_in_unit_range_and_ignores_the_mask():
    t = tiny()
    phone = make_batch(2)["phone"]
    y = t.translate(phone)
    assert y.shape == phone.shape and 0 <= y.min() and y.max() <= 1
    torch.testing.assert_close(y, (t.generator(phone * 2 - 1) + 1) / 2)
    torch.testing.assert_close(t.translate(phone, torch.zeros(2, 1, 32, 32)), y)
    t.eval()  # instance norm without running stats, no dropout: train == eval
    torch.testing.assert_close(t.translate(phone), y)
    assert t.translate_batch({"phone": phone, "mask": None, "stem": ["a", "b"]}).shape == y.shape


def test_visuals_are_images_in_unit_range():
    t = tiny()
    batch = make_batch(1)
    vis = t.visuals(batch, t.forward_step(batch))
    assert set(vis) == {"fake_studio", "identity_studio"}
    assert all(v.shape == (1, 3, 32, 32) and 0 <= v.min() and v.max() <= 1 for v in vis.values())


def test_batch_norm_variant_encodes_each_domain_on_its_own():
    # With batch norm, statistics depend on the batch: keys and queries come from separate
    # per-domain encoder passes, as the reference's calls, not from the joint forward.
    t = tiny(norm="batch")
    batch = make_batch(2)
    out = t.forward_step(batch)
    assert out["keys"] is None
    torch.manual_seed(5)
    g = t.generator_losses(batch, out)
    assert set(g) == {"gan", "nce", "nce_identity"} and all(torch.isfinite(v) for v in g.values())
