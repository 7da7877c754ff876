"""Built-in metrics (plugin ``lift_metrics``): PSNR, SSIM and perceptual-distance metrics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lift.components import Metric, PerceptualDistance
from lift_metrics.image_metrics import PSNR, SSIM
from lift_metrics.perceptual import DISTSMetric, LPIPSMetric, PerceptualMetric


def smooth_images(n: int, size: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = F.avg_pool2d(torch.rand(n, 3, size + 4, size + 4, generator=g), 5, 1)
    preds = (target + 0.05 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    return preds, target


class MeanAbs(PerceptualDistance):
    """A stand-in distance with a known value (for the accumulation arithmetic only)."""

    def forward(self, x, y):
        return (x - y).abs().mean(dim=(1, 2, 3))


def test_registered_by_the_metrics_plugin(builtin_registry):
    infos = {c.name: c for c in builtin_registry.components("metric")}
    for cls in (PSNR, SSIM, PerceptualMetric, LPIPSMetric, DISTSMetric):
        assert infos[cls.__name__].cls is cls
        assert infos[cls.__name__].plugin == "metrics"
        assert issubclass(cls, Metric)


def test_report_columns_and_directions():
    d = MeanAbs()
    assert (PSNR().name, PSNR.higher_is_better) == ("psnr", True)
    assert (SSIM().name, SSIM.higher_is_better) == ("ssim", True)
    assert (LPIPSMetric(d).name, LPIPSMetric.higher_is_better) == ("lpips", False)
    assert (DISTSMetric(d).name, DISTSMetric.higher_is_better) == ("dists", False)
    assert PerceptualMetric(d, name="stlpips").name == "stlpips"
    with pytest.raises(TypeError, match="PerceptualDistance"):
        PerceptualMetric(torch.nn.Identity(), name="x")


# --- PSNR ------------------------------------------------------------------------------


def test_psnr_is_the_mean_of_per_sample_values():
    target = torch.full((2, 3, 8, 8), 0.5)
    preds = target + torch.tensor([0.1, 0.05]).view(2, 1, 1, 1)  # MSE 1e-2 and 2.5e-3
    metric = PSNR()
    metric.update(preds, target)
    expected = (20.0 + 10 * math.log10(1 / 2.5e-3)) / 2  # not the PSNR of the pooled MSE
    assert metric.compute().item() == pytest.approx(expected, abs=1e-4)


def test_psnr_with_a_mask_uses_only_masked_texels():
    target = torch.full((2, 3, 8, 8), 0.5)
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, :4] = 1  # top half of sample 0; sample 1 has an empty mask
    preds = target.clone()
    preds[0, :, :4] += 0.1  # error 0.1 where visible
    preds[0, :, 4:] += 0.4  # large error where masked out: must not count
    preds[1] += 0.3  # sample with an empty mask: left out of the mean
    metric = PSNR()
    metric.update(preds, target, mask=mask)
    assert metric.compute().item() == pytest.approx(20.0, abs=1e-4)
    with pytest.raises(ValueError, match="mask of shape"):
        metric.update(preds, target, mask=mask[:, :, :4])


# --- SSIM ------------------------------------------------------------------------------


def test_ssim_of_constant_images_is_the_luminance_term():
    # Constant images: zero variances and covariance, so SSIM = (2 mx my + C1)/(mx^2 + my^2 + C1)
    # with C1 = (0.01 * 1)^2.
    metric = SSIM()
    metric.update(torch.full((1, 3, 24, 24), 0.3), torch.full((1, 3, 24, 24), 0.5))
    c1 = 1e-4
    expected = (2 * 0.3 * 0.5 + c1) / (0.3**2 + 0.5**2 + c1)
    assert metric.compute().item() == pytest.approx(expected, abs=1e-6)


def test_ssim_matches_a_hand_computation_and_piq():
    piq = pytest.importorskip("piq")
    preds, target = smooth_images(3, size=40)
    metric = SSIM()
    metric.update(preds, target)

    # Wang et al.: gaussian window 11, sigma 1.5, valid region, mean over channels and texels.
    k = torch.exp(-0.5 * ((torch.arange(11, dtype=torch.float64) - 5) / 1.5) ** 2)
    k = (k[:, None] * k[None]) / k.sum() ** 2
    window = lambda t: F.conv2d(t, k.expand(3, 1, 11, 11), groups=3)  # noqa: E731
    x, y = preds.double(), target.double()
    mx, my = window(x), window(y)
    vx, vy, cxy = window(x * x) - mx**2, window(y * y) - my**2, window(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    hand = ssim_map.mean(dim=(1, 2, 3)).mean()

    assert metric.compute().item() == pytest.approx(hand.item(), abs=1e-5)
    reference = piq.ssim(preds, target, data_range=1.0, reduction="none").mean()
    assert metric.compute().item() == pytest.approx(reference.item(), abs=1e-5)


def test_ssim_rejects_tiny_images():
    with pytest.raises(ValueError, match="at least 11x11"):
        SSIM().update(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


# --- accumulation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [PSNR, SSIM, lambda: PerceptualMetric(MeanAbs(), name="mean_abs")],
    ids=["psnr", "ssim", "perceptual"],
)
def test_several_updates_equal_one_big_update(make):
    preds, target = smooth_images(6, size=24)
    split, whole = make(), make()
    for i in range(0, 6, 2):
        split.update(preds[i : i + 2], target[i : i + 2])
    split.update(preds[:0], target[:0])  # an empty batch changes nothing
    whole.update(preds, target)
    assert split.compute().item() == pytest.approx(whole.compute().item(), abs=1e-6)
    split.reset()
    split.update(preds[:1], target[:1])
    single = make()
    single.update(preds[:1], target[:1])
    assert split.compute().item() == pytest.approx(single.compute().item(), abs=1e-6)


def test_unequal_batches_weigh_every_sample_equally():
    target = torch.full((3, 3, 8, 8), 0.5)
    preds = target + torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1, 1)
    metric = PerceptualMetric(MeanAbs(), name="mean_abs")
    metric.update(preds[:1], target[:1])
    metric.update(preds[1:], target[1:])
    assert metric.compute().item() == pytest.approx(0.2, abs=1e-6)


@pytest.mark.parametrize(
    "make", [PSNR, SSIM, lambda: LPIPSMetric(MeanAbs())], ids=["psnr", "ssim", "lpips"]
)
def test_metrics_reject_bad_shapes(make):
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        make().update(x[:, :2], x[:, :2])
    with pytest.raises(ValueError, match="one shape"):
        make().update(x, x[:1])


# --- with the real offline distance ----------------------------------------------------


def test_lpips_metric_with_stlpips_orders_identical_shifted_noisy():
    from lift_perceptual.stlpips import STLPIPS

    g = torch.Generator().manual_seed(0)
    size = 96
    big = F.interpolate(torch.rand(2, 3, 13, 13, generator=g), size=size + 1, mode="bicubic")
    big = big.clamp(0, 1)
    target = big[..., :size, :size]
    results = {}
    for name, preds in {
        "identical": target.clone(),
        "shifted": big[..., :size, 1:],
        "noisy": (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1),
    }.items():
        metric = LPIPSMetric(STLPIPS("alex"))
        metric.update(preds, target)
        results[name] = metric.compute().item()
    assert abs(results["identical"]) < 1e-6
    assert results["identical"] < results["shifted"] < results["noisy"]


def test_perceptual_metric_keeps_its_distance_frozen_in_eval():
    from lift_perceptual.stlpips import STLPIPS

    metric = LPIPSMetric(STLPIPS("alex"))
    metric.train()
    assert not metric.distance.training
    assert all(not p.requires_grad for p in metric.parameters())
