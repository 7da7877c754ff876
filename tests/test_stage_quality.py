"""lift.evaluation.stage_quality: KID against a hand computation, the W-distance measure on
codes whose answer is known, masked PSNR, the blur, and the prior measure on a tiny GAN."""

import math

import pytest
import torch

from lift.evaluation import stage_quality as sq
from tests.inversion_helpers import TinyGenerator


def _mmd2_unbiased_by_hand(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731 (the cubic kernel of KID)
    m, n = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - kxx.trace()) / (m * (m - 1))
                 + (kyy.sum() - kyy.trace()) / (n * (n - 1)) - 2 * kxy.mean())


def test_kid_of_whole_sets_is_the_unbiased_polynomial_mmd():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    y = torch.randn(12, 5, generator=g, dtype=torch.float64) + 0.7
    got = sq.kid(x, y, subsets=3, subset_size=12)  # every subset is the whole set
    assert got["subset_size"] == 12
    assert got["mean"] == pytest.approx(_mmd2_unbiased_by_hand(x, y), rel=1e-9)
    assert got["std"] == pytest.approx(0.0, abs=1e-12)


def test_kid_grows_with_the_distance_between_the_distributions():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(200, 8, generator=g, dtype=torch.float64)
    same = torch.randn(200, 8, generator=g, dtype=torch.float64)
    near = torch.randn(200, 8, generator=g, dtype=torch.float64) + 0.3
    far = torch.randn(200, 8, generator=g, dtype=torch.float64) + 1.0
    k_same, k_near, k_far = (sq.kid(real, s, subsets=20, subset_size=100)["mean"]
                             for s in (same, near, far))
    assert abs(k_same) < k_near < k_far
    with pytest.raises(ValueError, match="at least 2"):
        sq.kid(real[:1], same)


def test_code_distances_are_one_for_w_samples_and_zero_spread_for_w_codes():
    g = torch.Generator().manual_seed(2)
    mean, std = torch.randn(16, generator=g).double(), torch.rand(16, generator=g).double() + .5
    w = mean + std * torch.randn(5000, 16, generator=g).double()      # draws from "W"
    codes = w[:, None].repeat(1, 6, 1)                                 # W codes: equal rows
    d = sq.code_distances(codes, mean, std)
    assert d["w_distance"] == pytest.approx(1.0, abs=0.02)
    assert d["row_spread"] == pytest.approx(0.0, abs=1e-9)
    wplus = (mean + std * torch.randn(5000, 6, 16, generator=g).double())  # independent rows
    d = sq.code_distances(wplus, mean, std)
    assert d["row_spread"] == pytest.approx(math.sqrt(5 / 6), abs=0.02)  # population std of 6
    far = sq.code_distances(mean + 3 * std * torch.ones(10, 6, 16, dtype=torch.float64),
                            mean, std)
    assert far["w_distance"] == pytest.approx(3.0)


def test_masked_psnr_counts_only_the_visible_texels():
    x = torch.zeros(1, 3, 4, 4)
    y = torch.zeros(1, 3, 4, 4)
    y[..., :2] = 0.1            # error 0.1 on the left half
    y[..., 2:] = 0.5            # a large error on the right half, masked out below
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2] = 1
    assert float(sq.masked_psnr(x, y, mask)) == pytest.approx(20.0, abs=1e-4)
    full = 10 * math.log10(1 / ((0.1 ** 2 + 0.5 ** 2) / 2))
    assert float(sq.masked_psnr(x, y, None)) == pytest.approx(full, abs=1e-4)


def test_gaussian_blur_keeps_constants_and_the_mean_and_removes_detail():
    const = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(sq.gaussian_blur(const, 2.0), const, atol=1e-6)
    g = torch.Generator().manual_seed(3)
    noise = torch.rand(1, 3, 32, 32, generator=g)
    blurred = sq.gaussian_blur(noise, 2.0)
    assert blurred.shape == noise.shape
    assert float(blurred.mean()) == pytest.approx(float(noise.mean()), abs=0.01)
    assert float(blurred.std()) < 0.3 * float(noise.std())


def test_prior_quality_on_a_tiny_gan_orders_its_own_samples_before_blobs():
    torch.manual_seed(0)
    generator = TinyGenerator().eval()
    net = sq.perceptual_net()
    with torch.no_grad():
        z = torch.randn(120, generator.z_dim, generator=torch.Generator().manual_seed(9))
        reals = ((generator.synthesize(generator.map(z)) + 1) / 2).clamp(0, 1)
    got = sq.prior_quality(generator, reals, net, samples=120, seed=0, blur_sigma=3.0)
    assert got["samples"].shape == (64, 3, generator.resolution, generator.resolution)
    # the generator's own samples are the real distribution: KID at the real-halves floor
    # and well under the blurred reals'
    assert got["kid"]["mean"] < got["kid_blurred_reals"]["mean"]
    assert abs(got["kid"]["mean"]) < 0.5 * got["kid_blurred_reals"]["mean"]
    feats = sq.texture_features(net, reals[:4])
    assert feats.shape == (4, 64 + 128 + 256 + 512 + 512) and feats.dtype == torch.float64


def test_the_report_shows_the_stage_quality_tables_and_grids(tmp_path):
    import json

    from lift.report.sections import stage_quality_section

    run = tmp_path / "run"
    grid = run / "stage_quality" / "prior_samples_seed0.png"
    sq._save(torch.rand(4, 3, 8, 8), grid, columns=2)
    data = {"source": "synthetic", "feature_net": "ST-LPIPS vgg", "seeds": {"seed0": {
        "prior": {"kid": {"mean": 0.1234}, "kid_real_halves": {"mean": 0.0012},
                  "kid_blurred_reals": {"mean": 0.0567}, "grid": str(grid)},
        "inversion": {"bank": {"psnr": 21.5, "lpips": 0.25, "w_distance": 1.7,
                               "row_spread": 0.9}},
        "upsampler": {"bicubic": {"psnr": 40.1, "lpips": 0.05, "seconds": 0.1}}}}}
    (run / "tables").mkdir(parents=True)
    (run / "tables" / "stage_quality.json").write_text(json.dumps(data))
    html = stage_quality_section(run / "report", run)
    for text in ("123.40", "1.20", "56.70", "21.50", "1.70", "bicubic", "40.10",
                 'src="../stage_quality/prior_samples_seed0.png"'):
        assert text in html, text
    assert stage_quality_section(run / "report", tmp_path / "none") == ""
