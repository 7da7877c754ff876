"""The inversion loss of Eq. 1, one value per texture: ||G(W+) - I||^2 + LPIPS(G(W+), I).

Per-texture terms are never averaged across the batch, so each texture's gradient depends
on its own loss only (textures inverted together stay independent).
"""

from __future__ import annotations

import torch
from torch import nn

from lift.components import PerceptualDistance


class InversionObjective(nn.Module):
    """``mse_weight * MSE + perceptual_weight * distance``, each ``[B]``.

    With ``use_mask`` both terms see only the visible texels of the phone texture (mask 1):
    the MSE is averaged over visible texels, and the perceptual distance compares the two
    images with invisible texels set to 0 in both, so holes in the capture do not pull the
    code towards black.
    """

    def __init__(
        self,
        distance: PerceptualDistance,   # e.g. LPIPS-VGG, or the offline ST-LPIPS
        mse_weight: float,              # weight of the pixel MSE in [0,1] units (Eq. 1: 1)
        perceptual_weight: float,       # weight of the perceptual distance (Eq. 1: 1)
        use_mask: bool,                 # weight both terms by the visibility mask
    ):
        super().__init__()
        self.distance = distance
        self.mse_weight = mse_weight
        self.perceptual_weight = perceptual_weight
        self.use_mask = use_mask

    def forward(
        self, synthesized: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """``synthesized`` is the generator's output (about [-1, 1]); ``target`` in [0, 1]."""
        assert synthesized.shape == target.shape and target.ndim == 4, (
            synthesized.shape, target.shape)
        image = (synthesized + 1) / 2  # the generator works in [-1, 1], textures in [0, 1]
        if self.use_mask:
            if mask is None:
                raise ValueError("use_mask is set but the batch has no 'mask'")
            assert mask.shape == (target.shape[0], 1, *target.shape[2:]), mask.shape
            mask = mask.to(image.dtype)
            visible = mask.flatten(1).sum(1).clamp(min=1) * image.shape[1]
            mse = (mask * (image - target).square()).flatten(1).sum(1) / visible
            perceptual = self.distance(image * mask, target * mask)
        else:
            mse = (image - target).square().flatten(1).mean(1)
            perceptual = self.distance(image, target)
        perceptual = perceptual.reshape(-1)
        assert perceptual.shape == mse.shape, (perceptual.shape, mse.shape)
        total = self.mse_weight * mse + self.perceptual_weight * perceptual
        return {"loss": total, "mse": mse, "perceptual": perceptual, "image": image}
