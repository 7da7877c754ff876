"""DiffAugment (Zhao et al., NeurIPS 2020): differentiable augmentation for small data.

The same random transformation family is applied to real and fake images before D (each
sample draws its own parameters), so D never sees un-augmented images and G's gradients pass
through the augmentation. Images are in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from lift.spec import Recordable


class DiffAugment(Recordable, nn.Module):
    """Color, translation and cutout, each switched on by its own flag."""

    def __init__(
        self,
        color: bool = True,             # random brightness, saturation, contrast
        translation: bool = True,       # integer shift with zero fill
        cutout: bool = True,            # one zeroed square per image
        translation_ratio: float = 0.125,   # max shift as a fraction of the size
        cutout_ratio: float = 0.5,          # square side as a fraction of the size
    ):
        super().__init__()
        self.color = color
        self.translation = translation
        self.cutout = cutout
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4, x.shape
        if self.color:
            x = self._color(x)
        if self.translation:
            x = self._translate(x)
        if self.cutout:
            x = self._cutout(x)
        return x

    @staticmethod
    def _color(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        rand = lambda: torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype)  # noqa: E731
        x = x + (rand() - 0.5)                                     # brightness ±0.5
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (rand() * 2) + mean                       # saturation x[0, 2]
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        return (x - mean) * (rand() + 0.5) + mean                  # contrast x[0.5, 1.5]

    def _translate(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        sy, sx = int(h * self.translation_ratio + 0.5), int(w * self.translation_ratio + 0.5)
        ty = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
        tx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
        gy, gx = torch.meshgrid(torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
        # Shifted pixel (y - ty, x - tx) of a one-pixel zero border: out-of-range reads zero.
        gy = (gy.unsqueeze(0) - ty + 1).clamp(0, h + 1)
        gx = (gx.unsqueeze(0) - tx + 1).clamp(0, w + 1)
        padded = F.pad(x, [1, 1, 1, 1])
        flat = padded.flatten(2)                                   # [n, c, (h+2)(w+2)]
        index = (gy * (w + 2) + gx).flatten(1)                     # [n, h*w]
        out = flat.gather(2, index.unsqueeze(1).expand(-1, x.shape[1], -1))
        return out.reshape_as(x)

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        ch, cw = int(h * self.cutout_ratio + 0.5), int(w * self.cutout_ratio + 0.5)
        cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
        cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
        gy = torch.arange(h, device=x.device).reshape(1, h, 1)
        gx = torch.arange(w, device=x.device).reshape(1, 1, w)
        dy, dx = gy - cy + ch // 2, gx - cx + cw // 2           # offsets inside the square
        inside = (dy >= 0) & (dy < ch) & (dx >= 0) & (dx < cw)
        return x * (~inside).unsqueeze(1).to(x.dtype)
