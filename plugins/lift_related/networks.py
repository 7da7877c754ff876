"""Networks of the related systems: a U-Net (MoSAR's completion / light normalisation), a
multi-resolution U-Net with flipped-feature concatenation (seed 004's completion) and an
SRResNet body (seed 004's texture super-resolution).

Resampling is 2x average pooling down and bilinear 2x up (no strided or transposed
convolutions): both commute with mirroring about the centre line, so a network whose
convolution kernels are left-right symmetric is exactly mirror-equivariant (the symmetry tests
use that). Spatial sizes must be multiples of ``2 ** (len(channels) - 1)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lift_related.symmetry import MirrorConcat


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``"none"`` (default of the translators: keeps the absolute light level, which the light
    normalisation must read), ``"batch"``, ``"instance"`` or ``"group"`` (8 groups)."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"norm must be 'none', 'batch', 'instance' or 'group', got {kind!r}")


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by the norm and a LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, norm: str = "none"):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1), norm_layer(norm, cout), nn.LeakyReLU(0.2),
            nn.Conv2d(cout, cout, 3, padding=1), norm_layer(norm, cout), nn.LeakyReLU(0.2))


def _down(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _check_size(x: torch.Tensor, levels: int) -> None:
    m = 2 ** (levels - 1)
    if x.shape[-1] % m or x.shape[-2] % m:
        raise ValueError(f"texture size {tuple(x.shape[-2:])} must be a multiple of {m} "
                         f"({levels} U-Net levels)")


class UNet(nn.Module):
    """U-Net with skip connections: ``[B, in, H, W]`` -> ``[B, out, H, W]`` logits."""

    def __init__(self, in_channels: int, out_channels: int, channels: Sequence[int],
                 norm: str = "none"):
        super().__init__()
        channels = [int(c) for c in channels]
        self.levels = len(channels)
        self.encoder = nn.ModuleList()
        cin = in_channels
        for c in channels:
            self.encoder.append(ConvBlock(cin, c, norm))
            cin = c
        self.decoder = nn.ModuleList(
            ConvBlock(channels[i + 1] + channels[i], channels[i], norm)
            for i in reversed(range(self.levels - 1)))
        self.head = nn.Conv2d(channels[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x, self.levels)
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else _down(x))
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            x = block(torch.cat([_up(x), skips.pop()], dim=1))
        return self.head(x)


class SymmetricUNet(nn.Module):
    """Multi-resolution completion network with flipped-feature concatenation (seed 004).

    Encoder level ``l`` computes ``f_l`` and passes ``cat([f_l, mirror(f_l)])`` (``MirrorConcat``)
    both to the next level and to the decoder's skip. The decoder is coarse to fine: level ``l``
    predicts logits ``y_l = up(y_{l+1}) + head_l(h_l)`` at ``H / 2**l`` from its features,
    the skip and ``up(y_{l+1})``; :meth:`forward` returns ``[y_0, y_1, ..., y_{L-1}]``
    (finest first), each scale a complete texture at its resolution.
    """

    def __init__(self, in_channels: int, out_channels: int, channels: Sequence[int],
                 norm: str = "none", axis: float = 0.5):
        super().__init__()
        channels = [int(c) for c in channels]
        self.levels = len(channels)
        self.fuse = MirrorConcat(axis)
        self.encoder = nn.ModuleList()
        cin = in_channels
        for c in channels:
            self.encoder.append(ConvBlock(cin, c, norm))
            cin = 2 * c
        self.bottom_head = nn.Conv2d(2 * channels[-1], out_channels, 1)
        self.decoder = nn.ModuleList()
        self.heads = nn.ModuleList()
        below = 2 * channels[-1]
        for i in reversed(range(self.levels - 1)):
            self.decoder.append(ConvBlock(below + 2 * channels[i] + out_channels, channels[i],
                                          norm))
            self.heads.append(nn.Conv2d(channels[i], out_channels, 1))
            below = channels[i]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The fused encoder features of every level, finest first."""
        _check_size(x, self.levels)
        fused = []
        for i, block in enumerate(self.encoder):
            x = self.fuse(block(x if i == 0 else _down(x)))
            fused.append(x)
        return fused

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = self.encode(x)
        h = skips.pop()
        y = self.bottom_head(h)
        outputs = [y]
        for block, head in zip(self.decoder, self.heads):
            coarse = _up(y)
            h = block(torch.cat([_up(h), skips.pop(), coarse], dim=1))
            y = coarse + head(h)
            outputs.append(y)
        return outputs[::-1]


class ResidualBlock(nn.Module):
    """SRResNet's block: conv-(BN)-PReLU-conv-(BN) plus the identity."""

    def __init__(self, channels: int, batch_norm: bool = False):
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(channels)) if batch_norm else nn.Identity
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), norm(), nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1), norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNetBody(nn.Module):
    """SRResNet (Ledig et al. 2017): 9x9 conv + PReLU, ``num_blocks`` residual blocks, a conv
    with the long skip, then pixel-shuffle stages (x2 each, or one x3) to ``scale`` x the size.
    Returns the high-resolution features ``[B, channels, H*s, W*s]``."""

    def __init__(self, in_channels: int, channels: int, num_blocks: int, scale: int,
                 batch_norm: bool = False):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(in_channels, channels, 9, padding=4),
                                  nn.PReLU(channels))
        self.blocks = nn.Sequential(*[ResidualBlock(channels, batch_norm)
                                      for _ in range(num_blocks)])
        self.fuse = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.BatchNorm2d(channels) if batch_norm else nn.Identity())
        stages: list[nn.Module] = []
        factors = {1: [], 2: [2], 3: [3], 4: [2, 2], 8: [2, 2, 2]}
        if scale not in factors:
            raise ValueError(f"scale_factor must be 1, 2, 3, 4 or 8, got {scale}")
        for f in factors[scale]:
            stages += [nn.Conv2d(channels, channels * f * f, 3, padding=1), nn.PixelShuffle(f),
                       nn.PReLU(channels)]
        self.upsample = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        return self.upsample(h + self.fuse(self.blocks(h)))
