"""A small W+ encoder for encoder-initialised inversion (Luo et al. 2021, seed 002).

The encoder predicts a phone texture's W+ code of G_phone in one pass; a short refinement of
Eq. 1 (``lift.inversion.encoder``) finishes it. Built from the same blocks as AgileGAN's Z+
encoder (:mod:`lift_stylegan2.encoder`): a plain conv pyramid whose level at resolution r
feeds the heads of the W+ rows that modulate r. Two changes for W+ regression:

- the input is the masked texture and its visibility mask (4 channels), so holes in the
  capture are known to be holes rather than black skin;
- each head sees its level's features pooled to ``pool x pool`` (not a global mean: where
  things are in the UV layout matters) together with a global code from the deepest level,
  and predicts ``w_avg + w_scale * head(...)``, i.e. in units of W's per-dimension spread
  (``bind(generator)`` measures both on mapped Gaussian z; they are buffers, saved with the
  weights).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lift.inversion.encoder import WPlusEncoder


class ConvWPlusEncoder(WPlusEncoder):
    """Texture ``[B,3,R,R]`` in [0,1] (+ mask ``[B,1,R,R]``) -> W+ ``[B,num_ws,w_dim]``.

    Args:
        resolution: input size R (the generator's).
        ws_resolutions: the resolution each W+ row modulates (``synthesis.ws_resolutions``).
        w_dim: W's dimension.
        channels: width of the first pyramid level (doubles per level up to ``max_channels``).
        max_channels: the widest level.
        pool: each level's features are average-pooled to ``pool x pool`` for the heads.
        global_dim: width of the global code (from the deepest level) every head also sees.
    """

    def __init__(self, resolution: int, ws_resolutions: Sequence[int], w_dim: int = 512,
                 channels: int = 16, max_channels: int = 128, pool: int = 2,
                 global_dim: int = 512):
        super().__init__()
        self.resolution = resolution
        self.ws_resolutions = list(ws_resolutions)
        self.w_dim = w_dim
        self.pool = pool
        levels = int(math.log2(resolution)) - 1  # R, R/2, ..., 4
        widths = [min(channels * 2**i, max_channels) for i in range(levels)]
        self.stem = nn.Conv2d(4, widths[0], 3, padding=1)
        self.down = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(levels - 1))
        self.refine = nn.ModuleList(
            nn.Conv2d(widths[i + 1], widths[i + 1], 3, padding=1) for i in range(levels - 1))
        self.level_of = {resolution // 2**i: i for i in range(levels)}
        missing = sorted({r for r in self.ws_resolutions if r not in self.level_of})
        if missing:
            raise ValueError(f"ws_resolutions {missing} are not pyramid levels of {resolution}")
        self.glob = nn.Linear(widths[-1] * 16, global_dim)  # the 4x4 level, flattened
        self.heads = nn.ModuleList(
            nn.Linear(global_dim + widths[self.level_of[r]] * pool * pool, w_dim)
            for r in self.ws_resolutions)
        for head in self.heads:  # start at w_avg: the first predictions are the mean code
            nn.init.normal_(head.weight, std=1e-3 / math.sqrt(head.in_features))
            nn.init.zeros_(head.bias)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.register_buffer("w_scale", torch.ones(w_dim))

    @property
    def num_ws(self) -> int:
        return len(self.ws_resolutions)

    @torch.no_grad()
    def bind(self, w_avg: torch.Tensor, w_scale: torch.Tensor) -> None:
        self.w_avg.copy_(w_avg)
        self.w_scale.copy_(w_scale)

    def features(self, texture: torch.Tensor, mask: torch.Tensor | None) -> list[torch.Tensor]:
        if mask is None:
            mask = torch.ones_like(texture[:, :1])
        x = torch.cat([(texture * 2 - 1) * mask, mask], 1)
        x = F.leaky_relu(self.stem(x), 0.2)
        levels = [x]
        for down, refine in zip(self.down, self.refine):
            x = F.leaky_relu(down(x), 0.2)
            x = F.leaky_relu(refine(x), 0.2) + x
            levels.append(x)
        return levels

    def forward(self, texture: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        assert texture.ndim == 4 and texture.shape[-1] == self.resolution, texture.shape
        levels = self.features(texture, mask)
        g = F.leaky_relu(self.glob(levels[-1].flatten(1)), 0.2)
        pooled = [F.adaptive_avg_pool2d(x, self.pool).flatten(1) for x in levels]
        rows = [head(torch.cat([g, pooled[self.level_of[r]]], 1))
                for head, r in zip(self.heads, self.ws_resolutions)]
        delta = torch.stack(rows, dim=1)
        return self.w_avg + self.w_scale * delta
