"""CycleGAN translator: every term by hand with known networks, batching, training, inference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lift_i2i.cyclegan import CycleGAN


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny(**kwargs) -> CycleGAN:
    torch.manual_seed(0)
    return CycleGAN(ngf=8, ndf=8, n_blocks=2, **kwargs)


def make_batch(b: int = 1, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Smooth random images (bilinearly upsampled 4x4 noise): texture-like, learnable."""
    g = torch.Generator().manual_seed(seed)

    def smooth() -> torch.Tensor:
        coarse = torch.rand(b, 3, 4, 4, generator=g)
        return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")

    return {"phone": smooth(), "studio": smooth()}


class Scale(nn.Module):
    def __init__(self, s: float):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s


class ChannelMean(nn.Module):
    def __init__(self, shift: float = 0.0):
        super().__init__()
        self.shift = shift

    def forward(self, x):
        return x.mean(dim=1, keepdim=True) + self.shift


def test_every_term_by_hand_with_known_networks():
    t = tiny(pool_size=0)
    t.generator_a, t.generator_b = Scale(0.5), Scale(-1.0)  # G_A: A -> B, G_B: B -> A
    t.discriminator_a, t.discriminator_b = ChannelMean(0.1), ChannelMean(-0.2)
    batch = make_batch(2)
    a, b = batch["phone"] * 2 - 1, batch["studio"] * 2 - 1  # phone = A, studio = B, [-1, 1]
    out = t.forward_step(batch)
    g = t.generator_losses(batch, out)
    d = t.discriminator_losses(batch, out)

    def d_a(x):
        return x.mean(1) + 0.1

    def d_b(x):
        return x.mean(1) - 0.2

    expected = {
        "gan_a": ((d_a(0.5 * a) - 1) ** 2).mean(),      # D_A(G_A(a)) -> 1
        "gan_b": ((d_b(-b) - 1) ** 2).mean(),           # D_B(G_B(b)) -> 1
        "cycle_a": (-0.5 * a - a).abs().mean(),         # |G_B(G_A(a)) - a|
        "cycle_b": (-0.5 * b - b).abs().mean(),         # |G_A(G_B(b)) - b|
        "identity_a": (0.5 * b - b).abs().mean(),       # |G_A(b) - b|
        "identity_b": (-a - a).abs().mean(),            # |G_B(a) - a|
        "d_a_real": ((d_a(b) - 1) ** 2).mean(),
        "d_a_fake": (d_a(0.5 * a) ** 2).mean(),
        "d_b_real": ((d_b(a) - 1) ** 2).mean(),
        "d_b_fake": (d_b(-b) ** 2).mean(),
    }
    assert set(g) | set(d) == set(expected) == set(CycleGAN.reference_loss_weights())
    phases = t.phases()
    assert set(phases["generator"].terms) == set(g) and set(phases["discriminator"].terms) == set(d)
    for name, value in {**g, **d}.items():
        torch.testing.assert_close(value, expected[name], msg=name)


def test_reference_weights_and_phase_order():
    w = CycleGAN.reference_loss_weights()
    assert (w["cycle_a"], w["cycle_b"]) == (10.0, 10.0)            # λ_A = λ_B = 10
    assert (w["identity_a"], w["identity_b"]) == (5.0, 5.0)        # λ_idt · λ = 0.5 · 10
    assert all(w[k] == 0.5 for k in w if k.startswith("d_"))       # D loss halved
    assert list(tiny().phases()) == ["generator", "discriminator"]  # G_A, G_B, then D_A, D_B


def test_batched_forward_equals_separate_generator_calls():
    t = tiny()
    batch = make_batch(2)
    a, b = batch["phone"] * 2 - 1, batch["studio"] * 2 - 1
    out = t.forward_step(batch)
    with torch.no_grad():
        expected = {"fake_b": t.generator_a(a), "idt_a": t.generator_a(b),
                    "fake_a": t.generator_b(b), "idt_b": t.generator_b(a)}
        expected["rec_a"] = t.generator_b(expected["fake_b"])
        expected["rec_b"] = t.generator_a(expected["fake_a"])
    for name, value in expected.items():
        torch.testing.assert_close(out[name].detach(), value, rtol=1e-5, atol=1e-5, msg=name)


def test_discriminator_phase_uses_the_pool_and_detached_fakes():
    t = tiny(pool_size=3, pool_seed=0)
    batch = make_batch(2)
    out = t.forward_step(batch)
    d = t.discriminator_losses(batch, out)
    assert len(t.fake_b_pool.images) == 2 and len(t.fake_a_pool.images) == 2
    torch.testing.assert_close(t.fake_b_pool.images[0], out["fake_b"][:1].detach())
    loss = sum(d.values())
    loss.backward()
    assert all(p.grad is None for p in t.generator_parameters())
    assert all(p.grad is not None for p in t.discriminator_parameters())


def test_without_identity_loss_no_identity_terms():
    t = tiny(identity_loss=False)
    batch = make_batch(1)
    g = t.generator_losses(batch, t.forward_step(batch))
    assert set(g) == {"gan_a", "gan_b", "cycle_a", "cycle_b"} == set(t.phases()["generator"].terms)


def test_a_few_steps_on_a_fixed_batch_reduce_the_generator_objective():
    t = tiny(pool_seed=0)
    batch = make_batch(1)
    w = CycleGAN.reference_loss_weights()
    opts = {"generator": torch.optim.Adam(t.generator_parameters(), 1e-3, betas=(0.5, 0.999)),
            "discriminator": torch.optim.Adam(t.discriminator_parameters(), 1e-3,
                                              betas=(0.5, 0.999))}
    history = []
    for _ in range(30):
        out = t.forward_step(batch)
        for phase, spec in t.phases().items():
            terms = spec.losses(batch, out, 0)
            loss = sum(w[k] * v for k, v in terms.items())
            assert torch.isfinite(loss)
            opts[phase].zero_grad()
            loss.backward()
            opts[phase].step()
            if phase == "generator":
                history.append((terms["cycle_a"] + terms["cycle_b"]).item())
    assert sum(history[-3:]) / 3 < 0.7 * history[0]


def test_translate_is_g_a_in_unit_range():
    t = tiny()
    phone = make_batch(2)["phone"]
    y = t.translate(phone, torch.ones(2, 1, 32, 32))
    assert y.shape == phone.shape and 0 <= y.min() and y.max() <= 1
    torch.testing.assert_close(y, (t.generator_a(phone * 2 - 1) + 1) / 2)
    vis = t.visuals(make_batch(1), t.forward_step(make_batch(1)))
    assert set(vis) == {"fake_studio", "cycled_phone", "fake_phone", "cycled_studio"}


def test_translator_pickles_for_ddp_spawn_and_deepcopy():
    import copy
    import pickle

    for t in (tiny(), tiny(pool_seed=3)):
        batch = make_batch(1)
        t.discriminator_losses(batch, t.forward_step(batch))  # a filled pool too
        assert len(t.fake_b_pool.images) == 1
        clone = pickle.loads(pickle.dumps(copy.deepcopy(t)))
        phone = make_batch(1)["phone"]
        torch.testing.assert_close(clone.translate(phone), t.translate(phone))


def test_batch_norm_variant_runs_each_part_on_its_own():
    t = tiny(norm="batch")
    calls = []
    t.generator_b.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    batch = make_batch(2)
    g = t.generator_losses(batch, t.forward_step(batch))
    assert calls == [2, 2, 2]  # G_B(b), G_B(a), G_B(G_A(a)): no cross-image statistics
    assert all(torch.isfinite(v) for v in g.values())
    calls.clear()
    t_in = tiny()
    t_in.generator_b.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    t_in.forward_step(batch)
    assert calls == [6]  # instance norm: one batched call over [b; a; G_A(a)]


def test_image_pools_travel_in_the_state_dict_and_load_with_weights_only(tmp_path):
    a = tiny()
    a.fake_b_pool.query(torch.rand(3, 3, 16, 16))
    a.fake_a_pool.query(torch.rand(2, 3, 16, 16))
    torch.save(a.state_dict(), tmp_path / "s.pt")
    b = tiny()
    b.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    for name in ("fake_b_pool", "fake_a_pool"):
        pa, pb = getattr(a, name), getattr(b, name)
        assert len(pa.images) == len(pb.images) > 0
        assert all(torch.equal(x, y) for x, y in zip(pa.images, pb.images))
