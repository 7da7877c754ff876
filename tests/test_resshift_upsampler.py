"""ResShift upsampler: training step, sampling, the three conditioning modes, tiling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lift_gradients.operators import HighPass, Laplacian
from lift_resshift.autoencoder import ConvAutoencoder, IdentityAutoencoder
from lift_resshift.denoiser import ConvDenoiser, UNetDenoiser
from lift_resshift.scheduler import ResShiftScheduler
from lift_resshift.tiling import edge_ramp, tile_starts
from lift_resshift.upsampler import ResShift

from lift.components.upsampler import check_mask_erosion, eroded_mask


def make(conditioning="train+inference", denoiser=None, autoencoder=None, steps=15, **kw):
    torch.manual_seed(0)
    return ResShift(
        denoiser=denoiser or ConvDenoiser(hidden_channels=16, num_layers=3),
        scheduler=ResShiftScheduler(num_train_timesteps=steps),
        autoencoder=autoencoder or IdentityAutoencoder(),
        gradient_operator=HighPass(sigma=1.0) if conditioning != "none" else None,
        conditioning=conditioning,
        scale_factor=4,
        **kw,
    )


def textures(b=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(b, 3, size, size, generator=g)
    hr = F.avg_pool2d(F.pad(hr, (1, 1, 1, 1), mode="reflect"), 3, stride=1)  # some smoothness
    phone = (hr + 0.05 * torch.randn(hr.shape, generator=g)).clamp(0, 1)
    lr = F.interpolate(hr, scale_factor=0.25, mode="area")
    return lr, hr, phone


class Spy(ConvDenoiser):
    """Records the condition the network receives."""

    def __init__(self):
        super().__init__(hidden_channels=8, num_layers=2)
        self.conditions: list[torch.Tensor] = []

    def forward(self, x_t, t, condition):
        self.conditions.append(condition.clone())
        return super().forward(x_t, t, condition)


def test_training_loss_decreases_on_a_fixed_batch():
    up = make(denoiser=UNetDenoiser(block_out_channels=[16, 32], norm_num_groups=8))
    lr, hr, phone = textures()
    opt = torch.optim.AdamW(up.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        terms = up.training_losses(lr, hr, phone, generator=torch.Generator().manual_seed(0))
        assert set(terms) == {"mse"}
        opt.zero_grad()
        terms["mse"].backward()
        opt.step()
        losses.append(terms["mse"].item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_sampling_shapes_and_determinism():
    up = make(denoiser=UNetDenoiser(block_out_channels=[16, 32], norm_num_groups=8))
    lr, hr, phone = textures(size=16)
    a = up.upsample(lr, phone, generator=torch.Generator().manual_seed(3))
    b = up.upsample(lr, phone, generator=torch.Generator().manual_seed(3))
    c = up.upsample(lr, phone, generator=torch.Generator().manual_seed(4))
    assert a.shape == hr.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    fewer = up.upsample(lr, phone, generator=torch.Generator().manual_seed(3),
                        num_inference_steps=5)
    assert fewer.shape == hr.shape and up.scheduler.num_inference_steps == 5


@pytest.mark.parametrize("conditioning,in_train,in_sample", [
    ("none", False, False),
    ("inference", False, True),
    ("train+inference", True, True),
])
def test_conditioning_modes_add_the_gradient_exactly_where_they_should(
        conditioning, in_train, in_sample):
    lr, hr, phone = textures()
    op = Laplacian()
    spy = Spy()
    up = ResShift(spy, ResShiftScheduler(num_train_timesteps=4), IdentityAutoencoder(),
                  gradient_operator=None if conditioning == "none" else op,
                  conditioning=conditioning, scale_factor=4)
    base = 2 * F.interpolate(lr, scale_factor=4, mode="bicubic") - 1
    with_grad = base + 2 * op(phone)  # Eq. 13-14 in [-1,1] units
    assert not torch.allclose(base, with_grad)

    up.training_losses(lr, hr, phone)
    expected = with_grad if in_train else base
    assert torch.allclose(spy.conditions[-1], expected, atol=1e-6)

    spy.conditions.clear()
    up.upsample(lr, phone, generator=torch.Generator().manual_seed(0))
    expected = with_grad if in_sample else base
    assert len(spy.conditions) == 4
    assert all(torch.allclose(c, expected, atol=1e-6) for c in spy.conditions)
    # the prior starts from the same y: x_T - y is the pure prior noise
    assert up.uses_gradient("train") is in_train and up.uses_gradient("sample") is in_sample


def test_conditioning_needs_an_operator_and_the_phone():
    with pytest.raises(ValueError, match="gradient_operator"):
        ResShift(ConvDenoiser(), ResShiftScheduler(), IdentityAutoencoder(), None, "inference")
    up = make("train+inference")
    lr, hr, _ = textures()
    with pytest.raises(ValueError, match="phone"):
        up.training_losses(lr, hr, None)
    vanilla = make("none")
    assert vanilla.upsample(lr, None, generator=torch.Generator().manual_seed(0)).shape == hr.shape


def test_eroded_mask_by_hand():
    mask = torch.ones(1, 1, 7, 7)
    mask[..., 3, 3] = 0  # one unseen texel
    mask[..., 0, 6] = 0.4  # below 0.5: unseen
    assert torch.equal(eroded_mask(mask, 0), (mask >= 0.5).float())
    e1 = eroded_mask(mask, 1)
    expected = torch.ones(7, 7)
    expected[2:5, 2:5] = 0
    expected[0:2, 5:7] = 0  # the border is no hole: the window is cut at the map's edge
    assert torch.equal(e1[0, 0], expected)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="gradient_mask_erosion"):
            check_mask_erosion(bad)


def test_masked_gradient_condition_drops_the_holes_edges_and_keeps_the_rest():
    lr, hr, phone = textures(b=1)
    mask = torch.ones(1, 1, 32, 32)
    mask[..., 8:16, 8:16] = 0
    phone = phone * mask  # a hole, as the phone textures have them: a black square
    op = Laplacian()
    spy = Spy()
    up = ResShift(spy, ResShiftScheduler(num_train_timesteps=2), IdentityAutoencoder(),
                  gradient_operator=op, conditioning="train+inference", scale_factor=4,
                  gradient_mask_erosion=2)
    base = 2 * F.interpolate(lr, scale_factor=4, mode="bicubic") - 1
    keep = eroded_mask(mask, 2)
    assert keep[..., 6:18, 6:18].sum() == 0 and keep.sum() == 32 * 32 - 12 * 12
    up.training_losses(lr, hr, phone, mask=mask)
    assert torch.allclose(spy.conditions[-1], base + 2 * op(phone) * keep, atol=1e-6)
    spy.conditions.clear()
    up.upsample(lr, phone, mask=mask, generator=torch.Generator().manual_seed(0))
    assert all(torch.allclose(c, base + 2 * op(phone) * keep, atol=1e-6)
               for c in spy.conditions)
    # the unmasked condition has the hole's edge in it; the masked one is y there
    edge = (slice(None), slice(None), slice(6, 18), slice(6, 18))
    assert (op(phone)[edge].abs() > 0.05).any()
    assert torch.allclose(spy.conditions[-1][edge], base[edge], atol=1e-6)
    # without a mask: an error naming the option, not a silent Eq. 13
    with pytest.raises(ValueError, match="gradient_mask_erosion=2 needs the phone"):
        up.training_losses(lr, hr, phone)


def test_tile_geometry():
    assert tile_starts(100, 40, 8) == [0, 32, 60]
    assert tile_starts(32, 64, 8) == [0]
    w = edge_ramp(16, 8, True, False)
    assert w[:2].tolist() == [0.0, 0.0] and w[2] > 0 and w[8:].eq(1).all()


def test_tiled_equals_untiled_when_the_receptive_field_fits_the_overlap():
    up = make(denoiser=ConvDenoiser(hidden_channels=8, num_layers=3))  # radius 3 <= 16 // 4
    lr, hr, phone = textures(b=1, size=64)
    full = up.upsample(lr, phone, generator=torch.Generator().manual_seed(5))
    tiled = up.upsample(lr, phone, generator=torch.Generator().manual_seed(5), tile_size=32,
                        tile_overlap=16)
    assert (full - tiled).abs().max().item() < 1e-5


def test_tiled_unet_stays_close_to_untiled():
    """GroupNorm makes the UNet's receptive field global: close, not equal.

    "Close" here: the tiled result is nearer the untiled one than another seed's sample is.
    """
    up = make(denoiser=UNetDenoiser(block_out_channels=[16, 32], norm_num_groups=8), steps=4)
    lr, hr, phone = textures(b=1, size=64)
    full = up.upsample(lr, phone, generator=torch.Generator().manual_seed(5))
    tiled = up.upsample(lr, phone, generator=torch.Generator().manual_seed(5), tile_size=32,
                        tile_overlap=16)
    other = up.upsample(lr, phone, generator=torch.Generator().manual_seed(6))
    assert tiled.shape == full.shape
    tiling_error = (full - tiled).abs().mean().item()
    assert 0 < tiling_error < 0.5 * (full - other).abs().mean().item()


def test_conv_autoencoder_option():
    ae = ConvAutoencoder(latent_channels=4, hidden_channels=8, num_downsamples=1)
    up = make(denoiser=ConvDenoiser(latent_channels=4, hidden_channels=8, num_layers=2),
              autoencoder=ae)
    lr, hr, phone = textures()
    terms = up.training_losses(lr, hr, phone)
    assert set(terms) == {"mse", "autoencoder"}
    terms["autoencoder"].backward()
    assert ae.encoder[0].weight.grad is not None
    out = up.upsample(lr, phone, generator=torch.Generator().manual_seed(0), tile_size=16,
                      tile_overlap=8)
    assert out.shape == hr.shape
