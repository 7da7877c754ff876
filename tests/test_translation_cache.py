"""StyleGAN-W+'s exact savings: G_phone(w) and F(G_phone(w)) cached per bank code, G_studio(w)
rendered once per step for both phases. Training with them equals training without them."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from lift.data import SyntheticSource
from lift_stylegan2.samplers import WPlusBankSampler
from test_translation_stage import LinearIdentity, _train, tiny_gd, wplus, write_bank

WEIGHTS = {"adv": 1.0, "r1": 10.0, "lpips_prior": 0.5, "faceid": 1.0, "paired": 1.0}


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(profile="quickstart", seed=0)


@pytest.fixture
def bank(tmp_path, source):
    g, _ = tiny_gd(0)
    stems = source.splits()["paired_train"]
    torch.manual_seed(5)
    return write_bank(tmp_path / "bank", stems, 0.5 * torch.randn(len(stems), g.num_ws, g.w_dim))


def _translator(bank, **kwargs):
    g, d = tiny_gd(0)
    torch.manual_seed(1)
    return wplus(g, d, WPlusBankSampler(bank), identity_encoder=LinearIdentity(),
                 paired_bank=bank, r1_interval=2, **kwargs)


def _trained(bank, source, **kwargs):
    pl.seed_everything(0)
    module = _train(_translator(bank, **kwargs), WEIGHTS, source, steps=8,
                    paired_split="paired_train")
    return module.translator


def test_cached_and_reused_training_equals_the_plain_one(bank, source):
    fast = _trained(bank, source, source_cache_mb=256.0, reuse_fakes=True)
    plain = _trained(bank, source, source_cache_mb=0.0, reuse_fakes=False)
    assert fast._source_cache and not plain._source_cache
    for (name, a), (_, b) in zip(fast.state_dict().items(), plain.state_dict().items()):
        # one batched G_studio pass vs two: the same math, summed in another order
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    moved = [n for n, p in fast.generator.named_parameters()
             if not torch.equal(p, tiny_gd(0)[0].state_dict()[n])]
    assert moved  # the comparison is between two trained generators, not two copies


def test_each_bank_code_is_rendered_by_g_phone_once(bank, source):
    tr = _translator(bank)
    calls: list[int] = []
    render = tr.source_generator.synthesize
    tr.source_generator.synthesize = lambda ws, **kw: calls.append(ws.shape[0]) or render(ws, **kw)
    pl.seed_everything(0)
    _train(tr, WEIGHTS, source, steps=16, paired_split="paired_train")
    assert sum(calls) == len(tr._source_cache) <= tr.sampler.codes.shape[0]
    ws, index = tr.sampler.sample_indexed(6)
    cached = tr.source_outputs(ws, index)
    fresh = tr._render_source(ws)
    assert set(cached) == {"source", "source_identity"}
    for key in cached:  # rendered in other batches: equal up to float summation order
        torch.testing.assert_close(cached[key], fresh[key], rtol=1e-5, atol=1e-6)


def test_over_its_budget_the_cache_still_returns_every_code(bank, source):
    tr = _translator(bank, source_cache_mb=1e-5)  # room for no image at all
    ws, index = tr.sampler.sample_indexed(5)
    out = tr.source_outputs(ws, index)
    assert not tr._source_cache
    torch.testing.assert_close(out["source"], tr._render_source(ws)["source"])


def test_the_d_phase_runs_first_and_reads_the_same_rendering(bank, source):
    tr = _translator(bank)
    assert list(tr.phases()) == ["discriminator", "generator"]
    batch = {"studio": torch.rand(3, 3, 16, 16), "paired_studio": torch.rand(2, 3, 16, 16),
             "paired_stem": source.splits()["paired_train"][:2]}
    outputs = tr.forward_step(batch)
    assert outputs["fakes"].requires_grad and outputs["paired"].shape[0] == 2
    torch.testing.assert_close(outputs["fakes"],
                               tr.generator.synthesize(outputs["ws"], noise_mode="const"))
