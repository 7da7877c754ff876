"""AgileGAN's variational encoder into Z+ (Song et al. 2021, Sect. 3.2), a compact version.

AgileGAN inverts an image into Z+ (one z per style row, each mapped through the frozen
mapping network) with a *variational* encoder: a feature pyramid whose levels feed per-row
heads predicting a Gaussian (mean, log-variance) in Z, trained with reconstruction, LPIPS
and a KL term towards N(0, I). Here row j of W+ (which modulates resolution r_j) reads the
pyramid level at r_j (coarse rows see coarse features), average-pooled. The backbone is a
plain conv pyramid rather than AgileGAN's ResNet-IR (configurable width; documented in
docs/translators.md).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from lift.spec import Recordable


class ZPlusEncoder(Recordable, nn.Module):
    """Texture ``[B,3,R,R]`` in [0,1] -> Z+ Gaussian ``(mu, logvar)``, each ``[B,num_ws,z_dim]``.

    Args:
        resolution: input size R (the generator's).
        ws_resolutions: the resolution each W+ row modulates (``synthesis.ws_resolutions``).
        z_dim: Z's dimension.
        channels: width of the first pyramid level (doubles per level up to ``max_channels``).
    """

    def __init__(self, resolution: int, ws_resolutions: Sequence[int], z_dim: int = 512,
                 channels: int = 32, max_channels: int = 256):
        super().__init__()
        self.resolution = resolution
        self.ws_resolutions = list(ws_resolutions)
        self.z_dim = z_dim
        levels = int(math.log2(resolution)) - 1  # R, R/2, ..., 4
        widths = [min(channels * 2**i, max_channels) for i in range(levels)]
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1)
        self.down = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(levels - 1))
        self.level_of = {resolution // 2**i: i for i in range(levels)}
        missing = sorted({r for r in self.ws_resolutions if r not in self.level_of})
        if missing:
            raise ValueError(f"ws_resolutions {missing} are not pyramid levels of {resolution}")
        self.heads = nn.ModuleList(
            nn.Linear(widths[self.level_of[r]], 2 * z_dim) for r in self.ws_resolutions)

    @property
    def num_ws(self) -> int:
        return len(self.ws_resolutions)

    def forward(self, texture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.leaky_relu(self.stem(texture * 2 - 1), 0.2)
        pooled = [x.mean(dim=(2, 3))]
        for conv in self.down:
            x = F.leaky_relu(conv(x), 0.2)
            pooled.append(x.mean(dim=(2, 3)))
        stats = torch.stack([head(pooled[self.level_of[r]])
                             for head, r in zip(self.heads, self.ws_resolutions)], dim=1)
        mu, logvar = stats.chunk(2, dim=2)
        return mu, logvar.clamp(-10, 10)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over z, averaged over rows and batch."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(dim=-1).mean()


def zplus_to_wplus(mapping: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor,
                   num_ws: int, w_dim: int) -> torch.Tensor:
    """Z+ ``[B,num_ws,z_dim]`` -> W+ through ``mapping`` (e.g. ``StyleGenerator.map``), each
    row separately."""
    b = z.shape[0]
    w = mapping(z.reshape(b * num_ws, -1))[:, 0]  # the mapping broadcasts; keep one row
    return w.reshape(b, num_ws, w_dim)
