"""CUT / CycleGAN networks: reference parameter counts, resampling filters, init, features."""

from __future__ import annotations

import pytest
import torch

from lift_i2i.networks import (
    BlurDownsample,
    BlurUpsample,
    PatchDiscriminator,
    PatchSampleMLP,
    ResnetGenerator,
    init_weights,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_equal_the_official_cut_at_its_defaults():
    from lift_i2i.cut import CUT

    cut = CUT()  # FACTS.md: official CUT G 11,378,179, netF 560,384, D 2,764,737
    assert count(cut.generator) == 11_378_179
    assert count(cut.patch_sampler) == 560_384
    assert count(cut.discriminator) == 2_764_737


def test_cyclegan_networks_have_the_same_counts_without_antialiasing():
    # Strided / transposed convs have the parameters of the anti-aliased stride-1 convs.
    assert count(ResnetGenerator(antialias=False, antialias_up=False)) == 11_378_179
    assert count(PatchDiscriminator(antialias=False)) == 2_764_737


@pytest.mark.parametrize("antialias", [True, False])
def test_generator_keeps_the_size_and_the_range(antialias):
    g = ResnetGenerator(ngf=8, n_blocks=2, antialias=antialias, antialias_up=antialias)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() < 1


@pytest.mark.parametrize("antialias", [True, False])
def test_patchgan_output_size(antialias):
    # Three halvings, then two stride-1 4x4 convs (-1 each): 64 -> 8 -> 6, both variants.
    d = PatchDiscriminator(ndf=8, antialias=antialias)
    assert d(torch.rand(1, 3, 64, 64)).shape == (1, 1, 6, 6)


def test_blur_downsample_is_the_121_filter_with_reflected_borders():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    y = BlurDownsample(2).double()(x)
    # 1-D: y[i] = (x[2i-1] + 2 x[2i] + x[2i+1]) / 4 with x[-1] = x[1]; separable in 2-D.
    xp = torch.cat([x[..., 1:2, :], x], dim=2)
    rows = (xp[..., 0:-1:2, :] + 2 * xp[..., 1::2, :] + xp[..., 2::2, :]) / 4
    rp = torch.cat([rows[..., 1:2], rows], dim=3)
    expected = (rp[..., 0:-1:2] + 2 * rp[..., 1::2] + rp[..., 2::2]) / 4
    torch.testing.assert_close(y, expected)


def test_blur_upsample_is_quarter_pixel_linear_interpolation():
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    y = BlurUpsample(2).double()(x)
    assert y.shape == (1, 2, 10, 10)

    # Zero insertion + [1,3,3,1]/4: y[2i] = (x[i-1] + 3 x[i]) / 4, y[2i+1] = (3 x[i] + x[i+1]) / 4,
    # edge samples replicated; separable in 2-D.
    def up1d(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        prev = torch.cat([t.narrow(dim, 0, 1), t.narrow(dim, 0, n - 1)], dim)
        nxt = torch.cat([t.narrow(dim, 1, n - 1), t.narrow(dim, n - 1, 1)], dim)
        even, odd = (prev + 3 * t) / 4, (3 * t + nxt) / 4
        return torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)

    torch.testing.assert_close(y, up1d(up1d(x, 2), 3))


def test_features_of_the_forward_pass_equal_the_encoder_pass():
    g = ResnetGenerator(ngf=8, n_blocks=6)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    layers = [0, 4, 8, 12, 16]
    out, feats = g(x, layers)
    enc = g.encode(x, layers)
    torch.testing.assert_close(out, g(x))
    assert [f.shape[1] for f in enc] == g.feature_channels(layers) == [3, 16, 32, 32, 32]
    assert [f.shape[-1] for f in enc] == [38, 32, 16, 8, 8]  # 0 is the 3-pixel padded input
    for a, b in zip(feats, enc):
        torch.testing.assert_close(a, b)


def test_a_feature_before_an_inplace_relu_is_kept_intact():
    g = ResnetGenerator(ngf=8, n_blocks=1)
    g.model[3].inplace = True  # ours are out of place; a user's in-place ReLU must not bite
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    (norm_out,) = g.encode(x, [2])  # the instance norm's output, before the ReLU
    assert (norm_out < 0).any()


def test_init_follows_the_references():
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(ngf=64, n_blocks=1), "normal", 0.02)
    conv = g.model[1]
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.all(conv.bias == 0)
    g = init_weights(ResnetGenerator(ngf=64, n_blocks=1), "xavier", 0.02)
    conv = g.model[4]  # 64 -> 128, 3x3: xavier std = gain * sqrt(2 / (fan_in + fan_out))
    expected = 0.02 * (2 / (64 * 9 + 128 * 9)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.05)


def test_patch_sampler_shares_locations_across_the_batch_and_the_second_call():
    sampler = PatchSampleMLP([4, 6], nc=16)
    feats = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 3, 3)]
    emb, ids = sampler(feats, num_patches=5)
    assert emb[0].shape == (10, 16) and emb[1].shape == (2 * 5, 16)
    assert len(ids[1]) == 5 and len(set(ids[1].tolist())) == 5  # 9 locations, 5 distinct drawn
    torch.testing.assert_close(emb[0].norm(dim=1), torch.ones(10))
    # Row b*P + j is image b at location ids[j], embedded by the layer's MLP.
    flat = feats[0].flatten(2)
    for b in range(2):
        for j in range(5):
            v = sampler.mlps[0](flat[b, :, ids[0][j]])
            torch.testing.assert_close(emb[0][b * 5 + j], v / (v.norm() + 1e-7))
    again, _ = sampler(feats, num_patches=5, patch_ids=ids)
    for a, b in zip(emb, again):
        torch.testing.assert_close(a, b)
    few, few_ids = sampler([torch.randn(1, 4, 2, 2), torch.randn(1, 6, 2, 2)], num_patches=256)
    assert few[0].shape == (4, 16) and sorted(few_ids[0].tolist()) == [0, 1, 2, 3]


def test_generator_is_fully_convolutional():
    g = ResnetGenerator(ngf=4, n_blocks=1)
    assert g(torch.zeros(1, 3, 24, 40)).shape == (1, 3, 24, 40)
