"""Latent samplers (Table 4): shapes, Z broadcast, Z+ per-layer draws, W+ bank uniformity."""

from __future__ import annotations

import pytest
import torch
from inversion_helpers import single_thread as _single_thread
from inversion_helpers import TinyGenerator
from lift_stylegan2.samplers import WPlusBankSampler, WSampler, ZPlusSampler, ZSampler

from lift.latent_bank import (
    BankLayout,
    LatentBankError,
    LatentBankWriter,
    make_manifest,
    state_dict_fingerprint,
)

single_thread = pytest.fixture(autouse=True)(_single_thread)


@pytest.fixture
def gen():
    return TinyGenerator(z_dim=8, w_dim=8)


@pytest.fixture
def bank_dir(tmp_path, gen):
    stems = [f"s{i}" for i in range(10)]
    layout = BankLayout.from_stems(stems, 4)
    manifest = make_manifest(layout, num_ws=gen.num_ws, w_dim=gen.w_dim,
                             generator={"fingerprint": state_dict_fingerprint(gen),
                                        "checkpoint": "prior.ckpt"})
    writer = LatentBankWriter(tmp_path / "bank", manifest)
    writer.prepare()
    for k in range(layout.num_shards):
        mine = layout.shard_stems(k)
        # code of stem s{i}: every entry equals i, so a draw tells which texture it came from
        codes = torch.stack([torch.full((gen.num_ws, gen.w_dim), float(s[1:])) for s in mine])
        n = len(mine)
        writer.write_shard(k, list(mine), codes, {"final_loss": torch.zeros(n),
                                                  "mse": torch.zeros(n),
                                                  "perceptual": torch.zeros(n),
                                                  "steps": torch.zeros(n)})
    return writer.root


@pytest.mark.parametrize("cls", [ZSampler, WSampler, ZPlusSampler])
def test_mapping_samplers_shapes_and_determinism(gen, cls):
    sampler = cls(truncation_psi=1.0)
    sampler.bind(gen)
    a = sampler.sample(5, generator=torch.Generator().manual_seed(3))
    b = sampler.sample(5, generator=torch.Generator().manual_seed(3))
    c = sampler.sample(5, generator=torch.Generator().manual_seed(4))
    assert a.shape == (5, gen.num_ws, gen.w_dim)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_z_and_w_broadcast_one_w_to_every_layer_and_equal_mapping_of_gaussian(gen):
    for cls in (ZSampler, WSampler):
        sampler = cls(truncation_psi=1.0)
        sampler.bind(gen)
        ws = sampler.sample(4, generator=torch.Generator().manual_seed(0))
        assert torch.equal(ws, ws[:, :1].expand_as(ws))
        z = torch.randn(4, gen.z_dim, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(ws, gen.mapping(z))


def test_z_is_differentiable_w_is_frozen(gen):
    z_s, w_s = ZSampler(truncation_psi=1.0), WSampler(truncation_psi=1.0)
    z_s.bind(gen)
    w_s.bind(gen)
    assert z_s.sample(2).requires_grad
    assert not w_s.sample(2).requires_grad


def test_truncation_pulls_towards_w_avg(gen):
    gen.mapping.w_avg.fill_(0.5)
    sampler = WSampler(truncation_psi=0.0)
    sampler.bind(gen)
    torch.testing.assert_close(sampler.sample(3), torch.full((3, gen.num_ws, gen.w_dim), 0.5))


def test_zplus_layers_differ_and_each_is_a_mapped_gaussian(gen):
    sampler = ZPlusSampler(truncation_psi=1.0)
    sampler.bind(gen)
    ws = sampler.sample(3, generator=torch.Generator().manual_seed(0))
    for i in range(3):
        for a in range(gen.num_ws):
            for b in range(a + 1, gen.num_ws):
                assert not torch.allclose(ws[i, a], ws[i, b])
    z = torch.randn(3 * gen.num_ws, gen.z_dim, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ws.reshape(-1, gen.w_dim), gen.mapping(z)[:, 0])


def test_unbound_sampler_says_so():
    with pytest.raises(RuntimeError, match="bind"):
        ZSampler(truncation_psi=1.0).sample(1)


def test_wplus_bank_draws_only_bank_codes_uniformly(gen, bank_dir):
    sampler = WPlusBankSampler(bank=str(bank_dir))
    sampler.bind(gen)
    assert "codes" not in sampler.state_dict()  # checkpoints do not copy the bank
    ws = sampler.sample(5000, generator=torch.Generator().manual_seed(0))
    assert ws.shape == (5000, gen.num_ws, gen.w_dim)
    ids = ws[:, 0, 0]
    assert torch.equal(ws, ids[:, None, None].expand_as(ws))  # whole bank codes, never mixed
    counts = torch.bincount(ids.long(), minlength=10).double()
    assert counts.numel() == 10 and (counts > 0).all()
    expected = 5000 / 10
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 27.9  # chi-square, 9 dof, p = 0.001
    again = sampler.sample(5000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ws, again)


def test_wplus_bank_rejects_incomplete_bank_and_wrong_generator(gen, bank_dir):
    other = TinyGenerator(z_dim=8, w_dim=4)
    sampler = WPlusBankSampler(bank=str(bank_dir))
    with pytest.raises(ValueError, match="num_ws, w_dim"):
        sampler.bind(other)
    (bank_dir / "shard_00001.safetensors").unlink()
    with pytest.raises(RuntimeError, match="incomplete"):
        WPlusBankSampler(bank=str(bank_dir))


def test_wplus_bank_refuses_a_generator_it_was_not_inverted_with(gen, bank_dir):
    WPlusBankSampler(bank=str(bank_dir)).bind(gen)  # the bank's own generator: fine
    other = TinyGenerator(z_dim=8, w_dim=8, seed=1)  # same shapes, other weights
    with pytest.raises(LatentBankError) as err:
        WPlusBankSampler(bank=str(bank_dir)).bind(other)
    assert str(bank_dir) in str(err.value) and "prior.ckpt" in str(err.value)


def test_samplers_are_registered(builtin_registry):
    names = {c.name for c in builtin_registry.components("latent_sampler")}
    assert {"ZSampler", "WSampler", "ZPlusSampler", "WPlusBankSampler"} <= names
