"""The image-gradient operators G of Eq. 13 against hand computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lift_gradients.operators import HighPass, Laplacian, SobelMagnitude, gaussian_kernel1d


def test_constant_image_has_no_detail():
    img = torch.full((2, 3, 16, 16), 0.37)
    for op in (HighPass(1.5), Laplacian(0.25)):
        assert op(img).abs().max() < 1e-6
    assert SobelMagnitude()(img).max() < 1e-3  # only sqrt(eps)


def test_laplacian_matches_hand_stencil_in_the_interior():
    img = torch.rand(1, 1, 9, 9, generator=torch.Generator().manual_seed(0))
    out = Laplacian(scale=0.5)(img)
    i, j = 4, 5
    lap = img[0, 0, i - 1, j] + img[0, 0, i + 1, j] + img[0, 0, i, j - 1] + img[0, 0, i, j + 1] \
        - 4 * img[0, 0, i, j]
    assert out[0, 0, i, j].item() == pytest.approx(-0.5 * lap.item(), abs=1e-6)


def test_sobel_on_a_ramp_is_the_slope():
    # I(x, y) = 0.1 * x: Sobel/8 gives exactly the per-pixel slope 0.1 in the interior.
    ramp = (0.1 * torch.arange(12.0)).expand(1, 1, 12, 12).contiguous()
    out = SobelMagnitude(scale=1.0, eps=0.0)(ramp)
    assert torch.allclose(out[..., 1:-1, 1:-1], torch.full_like(out[..., 1:-1, 1:-1], 0.1), atol=1e-6)


def test_high_pass_is_image_minus_gaussian_blur():
    img = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    k = gaussian_kernel1d(1.0)
    assert k.sum().item() == pytest.approx(1.0)
    k2 = torch.outer(k, k)
    r = k.numel() // 2
    blurred = F.conv2d(F.pad(img, (r, r, r, r), mode="reflect"),
                       k2.expand(3, 1, *k2.shape), groups=3)
    assert torch.allclose(HighPass(sigma=1.0)(img), img - blurred, atol=1e-6)


def test_operators_keep_shape_and_are_per_channel():
    img = torch.zeros(2, 3, 17, 23)
    img[:, 1, 8, 11] = 1.0  # a single bright texel in the green channel
    for op in (HighPass(), Laplacian(), SobelMagnitude(eps=0.0)):
        out = op(img)
        assert out.shape == img.shape
        assert out[:, [0, 2]].abs().max() == 0  # nothing leaks into other channels
        assert out[:, 1].abs().max() > 0


def test_high_pass_rejects_bad_sigma():
    with pytest.raises(ValueError, match="sigma"):
        HighPass(sigma=0)
