"""SRResNetUpsampler: a non-diffusion residual CNN super-resolution ``Upsampler`` (seed 004's
texture super-resolution step; Table 3's "is diffusion worth its cost?" row).

One forward pass, no noise:

    y   = bicubic(I_LR) (+ G(I_phone), by ``conditioning``, exactly as ResShift's Table 3 modes)
    Î*  = clamp(y + tail(cat[SRResNet(I_LR), y]), 0, 1)

``SRResNet(I_LR)`` are the high-resolution features of the SRResNet body (9x9 conv, residual
blocks, long skip, pixel shuffle; ``networks.SRResNetBody``); the tail (a 9x9 conv, zero at
initialisation, so the untrained model is the bicubic upsampling plus G(I_phone)) reads them with
the input y at the output size, so the phone's detail image enters as in ResShift:

    conditioning          training y                         sampling y
    "none"                bicubic(I_LR)                      bicubic(I_LR)       (plain SR)
    "inference"           bicubic(I_LR)                      bicubic(I_LR) + G(I_phone)
    "train+inference"     bicubic(I_LR) + G(I_phone)         same

Loss terms: ``l1`` (mean |Î* - I|, before the clamp) and, with a ``distance``, ``perceptual``.
The distance is frozen but is part of the module (its weights are in the checkpoint, twice with
the stage's EMA copy): prefer a small one or leave it out (the quickstart does).

Tiled inference (``tile_size`` / ``tile_overlap`` in output pixels): the output is cut into
``tile_size`` tiles; each is computed from its low-resolution crop widened by
``ceil(tile_overlap / scale_factor)`` input pixels a side (clipped at the border) and its margin
is dropped. A tile equals the untiled result wherever the margin covers the network's receptive
field (``9 + 4 * num_blocks + ...`` input pixels), else it differs near tile edges.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lift.components import GradientOperator, PerceptualDistance, Upsampler
from lift.components.upsampler import (check_conditioning, check_mask_erosion, conditioned_input,
                                      uses_gradient)
from lift_related.networks import SRResNetBody


class SRResNetUpsampler(Upsampler):
    """SRResNet-style super-resolution (see the module doc).

    Args:
        scale_factor: output size / input size (1, 2, 3, 4 or 8; ResShift's 4).
        channels: feature width (SRResNet: 64).
        num_blocks: residual blocks (SRResNet: 16).
        batch_norm: BN in the blocks (SRResNet: yes; default no, as EDSR: batches are small).
        gradient_operator: G of Eq. 13-14 (required unless ``conditioning`` is "none").
        conditioning: when G(I_phone) is added to y (Table 3 modes, module doc).
        distance: optional perceptual distance of the ``perceptual`` term.
        gradient_mask_erosion: None: G(I_phone) everywhere (Eq. 13-14); k: only over the
            phone's visible texels eroded by k (as ``ResShift``'s).
    """

    def __init__(self, scale_factor: int = 4, channels: int = 64, num_blocks: int = 16,
                 batch_norm: bool = False, gradient_operator: GradientOperator | None = None,
                 conditioning: str = "none", distance: PerceptualDistance | None = None,
                 gradient_mask_erosion: int | None = None):
        super().__init__()
        check_conditioning(conditioning, gradient_operator)
        check_mask_erosion(gradient_mask_erosion)
        self.gradient_mask_erosion = gradient_mask_erosion
        self.scale_factor = int(scale_factor)
        self.gradient_operator = gradient_operator
        self.conditioning = conditioning
        self.body = SRResNetBody(3, channels, num_blocks, self.scale_factor, batch_norm)
        self.tail = nn.Conv2d(channels + 3, 3, 9, padding=4)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        self.distance = None if distance is None else distance.requires_grad_(False)
        self.loss_terms = ("l1", "perceptual") if distance is not None else ("l1",)

    def uses_gradient(self, phase: str) -> bool:
        """Whether G(I_phone) is added to y in ``phase`` ("train" or "sample")."""
        return uses_gradient(self.conditioning, phase)

    def base(self, low_res: torch.Tensor, phone: torch.Tensor | None, phase: str,
             mask: torch.Tensor | None = None) -> torch.Tensor:
        """y: bicubic(I_LR) at the output size (+ G(I_phone) where the mode says so)."""
        return conditioned_input(low_res, phone, scale_factor=self.scale_factor,
                                 gradient_operator=self.gradient_operator,
                                 conditioning=self.conditioning, phase=phase, mask=mask,
                                 mask_erosion=self.gradient_mask_erosion)

    def forward(self, low_res: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Î* before the clamp, from I_LR and y (at the output size)."""
        features = self.body(2 * low_res - 1)
        return y + self.tail(torch.cat([features, 2 * y - 1], dim=1))

    def training_losses(self, low_res: torch.Tensor, high_res: torch.Tensor,
                        phone: torch.Tensor | None, *, mask: torch.Tensor | None = None
                        ) -> dict[str, torch.Tensor]:
        y = self.base(low_res, phone, "train", mask)
        if y.shape != high_res.shape:
            raise ValueError(f"high_res {tuple(high_res.shape)} must be scale_factor="
                             f"{self.scale_factor} times low_res {tuple(low_res.shape)}")
        out = self(low_res, y)
        terms = {"l1": (out - high_res).abs().mean()}
        if self.distance is not None:
            terms["perceptual"] = self.distance(out.clamp(0, 1), high_res).mean()
        return terms

    @torch.no_grad()
    def upsample(self, low_res: torch.Tensor, phone: torch.Tensor | None = None, *,
                 mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 tile_size: int | None = None, tile_overlap: int = 0,
                 num_inference_steps: int | None = None) -> torch.Tensor:
        """One pass (``generator`` and ``num_inference_steps`` are ignored: nothing is random,
        nothing iterates)."""
        y = self.base(low_res, phone, "sample", mask)
        if tile_size is None or tile_size >= max(y.shape[-2:]):
            return self(low_res, y).clamp(0, 1)
        s = self.scale_factor
        if tile_size % s:
            raise ValueError(f"tile_size {tile_size} must be a multiple of scale_factor {s}")
        t, margin = tile_size // s, math.ceil(tile_overlap / s)
        h, w = low_res.shape[-2:]
        out = torch.empty_like(y)
        for top in range(0, h, t):
            for left in range(0, w, t):
                y0, x0 = max(0, top - margin), max(0, left - margin)
                y1, x1 = min(h, top + t + margin), min(w, left + t + margin)
                tile = self(low_res[..., y0:y1, x0:x1], y[..., y0 * s:y1 * s, x0 * s:x1 * s])
                bottom, right = min(h, top + t), min(w, left + t)
                out[..., top * s:bottom * s, left * s:right * s] = tile[
                    ..., (top - y0) * s:(bottom - y0) * s, (left - x0) * s:(right - x0) * s]
        return out.clamp(0, 1)
