"""PSNR and SSIM of textures in [0,1] (Tables 1 and 4), averaged over samples."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from lift_metrics.sample_mean import SampleMean


class PSNR(SampleMean):
    """Mean over samples of ``10 log10(1 / MSE)`` (data range 1); infinite for identical pairs.

    ``update(preds, target, mask=None)``: with a mask ``[B,1,H,W]`` in {0,1}, the MSE is taken
    over the masked texels only (all three channels), and samples with an empty mask are left
    out of the mean.
    """

    name = "psnr"
    higher_is_better = True
    is_differentiable = True
    supports_mask = True

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        self.check_inputs(preds, target)
        if preds.shape[0] == 0:
            return
        if mask is None:
            values = peak_signal_noise_ratio(
                preds, target, data_range=1.0, reduction="none", dim=(1, 2, 3)
            )
            self.accumulate(values)
            return
        b, _, h, w = preds.shape
        if mask.shape != (b, 1, h, w):
            raise ValueError(f"PSNR expects mask of shape {(b, 1, h, w)}, got {tuple(mask.shape)}")
        mask = mask.to(preds.dtype)
        texels = mask.sum(dim=(1, 2, 3))
        squared = ((preds - target) ** 2 * mask).sum(dim=(1, 2, 3))
        mse = squared / (3 * texels).clamp_min(1)
        self.accumulate(-10 * torch.log10(mse), weights=(texels > 0).to(preds.dtype))


class SSIM(SampleMean):
    """Mean over samples of SSIM (Wang et al. 2004) as in their reference code: gaussian window
    11x11 with sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, averaged over the valid region
    (texels whose whole window lies inside the image) and over channels.

    torchmetrics computes the SSIM map on a reflect-padded image; the padded border is cropped
    here so that the value is Wang et al.'s (and piq's) rather than one that depends on padding.
    """

    name = "ssim"
    higher_is_better = True
    is_differentiable = True
    window = 11  # torchmetrics' gaussian window for sigma 1.5: 2 * int(3.5 * 1.5 + 0.5) + 1

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.check_inputs(preds, target)
        if preds.shape[0] == 0:
            return
        if min(preds.shape[-2:]) < self.window:
            raise ValueError(
                f"SSIM needs images of at least {self.window}x{self.window}, "
                f"got {tuple(preds.shape[-2:])}"
            )
        _, ssim_map = structural_similarity_index_measure(
            preds,
            target,
            gaussian_kernel=True,
            sigma=1.5,
            data_range=1.0,
            reduction="none",
            return_full_image=True,
        )
        border = self.window // 2
        valid = ssim_map[..., border:-border, border:-border]
        self.accumulate(valid.mean(dim=(1, 2, 3)))
