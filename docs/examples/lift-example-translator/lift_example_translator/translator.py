"""AffineColourTranslator: phone -> studio as one learned 3x3 colour matrix plus a bias.

A deliberately small translator: it can only undo a global colour cast (white balance,
exposure), which makes it a useful lower bound next to the paper's translators. It trains
on the paired split (the batch's ``paired_*`` keys) with an L1 reconstruction loss and has
no discriminator.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import nn

from lift.components import Phase, Translator


class AffineColourTranslator(Translator):
    def __init__(self, init_gain: float = 1.0):
        super().__init__()
        self.matrix = nn.Parameter(torch.eye(3) * init_gain)
        self.bias = nn.Parameter(torch.zeros(3))

    def translate(self, phone: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if phone.ndim != 4 or phone.shape[1] != 3:
            raise ValueError(f"expected phone textures [B,3,H,W], got {tuple(phone.shape)}")
        out = torch.einsum("ij,bjhw->bihw", self.matrix, phone) + self.bias[None, :, None, None]
        return out.clamp(0.0, 1.0)

    def phases(self) -> dict[str, Phase]:
        # One phase: fit the colour matrix on the paired split.
        return {"generator": Phase(self.generator_parameters, self.generator_losses, ("l1",))}

    def generator_losses(self, batch: Mapping[str, torch.Tensor],
                         outputs: Mapping[str, torch.Tensor] | None = None,
                         step: int = 0) -> dict[str, torch.Tensor]:
        pred = self.translate(batch["paired_phone"])
        weight = batch.get("paired_mask")
        err = (pred - batch["paired_studio"]).abs()
        if weight is not None:  # only texels the phone actually saw carry colour evidence
            err = err * weight
            return {"l1": err.sum() / (weight.sum() * 3).clamp_min(1.0)}
        return {"l1": err.mean()}

    def generator_parameters(self) -> Iterable[nn.Parameter]:
        return [self.matrix, self.bias]
