"""Training-free translators: the phone texture as it is, and a mean-studio fill.

Neither has an optimiser phase. ``MeanStudioFill`` estimates its statistics during
``lift fit`` (one pass over the studio split: the mean studio texture), so it runs through
the same stage, checkpoint and pipeline as every other translator.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from lift.components import Phase, Translator


class PhoneTexture(Translator):
    """I* = I_phone: the capture unchanged (holes left as they are)."""

    def phases(self) -> dict[str, Phase]:
        return {}

    def translate(self, phone: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return phone


class MeanStudioFill(Translator):
    """A global colour match of the phone texture to the mean studio texture, holes filled
    from the mean studio texture.

    Per channel c, gain g_c and bias b_c minimise sum_visible (g_c x + b_c - m)^2 where x is
    the phone texture and m the mean studio texture (ordinary least squares over the texels
    the phone saw); the output is g x + b where visible and m elsewhere.

    Args:
        resolution: the texture size the statistics are kept at (the data's resolution).
    """

    def __init__(self, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.register_buffer("studio_sum", torch.zeros(3, resolution, resolution,
                                                       dtype=torch.float64))
        self.register_buffer("studio_count", torch.zeros((), dtype=torch.float64))

    def phases(self) -> dict[str, Phase]:
        return {}

    def forward_step(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        if self.training:  # accumulate the mean studio texture over the training pass
            studio = batch["studio"]
            if studio.shape[-2:] != (self.resolution, self.resolution):
                raise ValueError(f"MeanStudioFill: studio textures are {tuple(studio.shape[-2:])} "
                                 f"but resolution is {self.resolution}")
            self.studio_sum += studio.detach().double().sum(0)
            self.studio_count += studio.shape[0]
        return {}

    @property
    def mean_studio(self) -> torch.Tensor:
        if float(self.studio_count) == 0:
            raise RuntimeError("MeanStudioFill has seen no studio texture: run `lift fit` over "
                               "the studio split first")
        return (self.studio_sum / self.studio_count).float()

    def translate(self, phone: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mean = self.mean_studio.to(phone.device)
        if phone.shape[-2:] != mean.shape[-2:]:
            mean = torch.nn.functional.interpolate(mean[None], size=phone.shape[-2:],
                                                   mode="area")[0]
        mean = mean.expand_as(phone)
        visible = torch.ones_like(phone[:, :1]) if mask is None else (mask > 0.5).to(phone)
        n = visible.sum(dim=(2, 3)).clamp(min=1)                       # [B, 1]
        mx = (phone * visible).sum(dim=(2, 3)) / n                     # [B, C]
        my = (mean * visible).sum(dim=(2, 3)) / n
        dx = (phone - mx[..., None, None]) * visible
        dy = (mean - my[..., None, None]) * visible
        var = dx.square().sum(dim=(2, 3))
        gain = torch.where(var > 1e-12, (dx * dy).sum(dim=(2, 3)) / var.clamp(min=1e-12),
                           torch.ones_like(var))
        bias = my - gain * mx
        matched = phone * gain[..., None, None] + bias[..., None, None]
        return (visible * matched + (1 - visible) * mean).clamp(0, 1)
