"""Mirroring across the UV symmetry axis, and the flipped-feature concatenation of seed 004.

The symmetry axis is the vertical line ``u = axis`` of the UV layout, ``axis`` a fraction of the
width (0.5: the centre line, the layout of the synthetic benchmark and of most face UV maps).
Texel column ``j`` of a ``W``-wide map has its centre at ``u = (j + 0.5) / W``; its mirror is
the column whose centre is closest to ``2 * axis - u``, i.e. ``j' = round(2 * axis * W - 1 - j)``.
With ``axis = 0.5`` that is ``W - 1 - j`` (``torch.flip`` of the last dimension) at every
resolution, so mirroring commutes with 2x average pooling and bilinear 2x upsampling; with
another axis some columns mirror to outside the map: they are filled with ``fill`` and
:func:`mirror_valid` says which.
"""

from __future__ import annotations

import torch
from torch import nn


def _mirror_index(width: int, axis: float, device: torch.device) -> torch.Tensor:
    j = torch.arange(width, device=device, dtype=torch.float64)
    return torch.round(2.0 * axis * width - 1.0 - j).long()


def mirror(x: torch.Tensor, axis: float = 0.5, fill: float = 0.0) -> torch.Tensor:
    """``x`` ``[..., H, W]`` mirrored across the vertical line ``u = axis`` (see module doc)."""
    if axis == 0.5:
        return x.flip(-1)
    index = _mirror_index(x.shape[-1], axis, x.device)
    inside = (index >= 0) & (index < x.shape[-1])
    out = x.index_select(-1, index.clamp(0, x.shape[-1] - 1))
    return torch.where(inside, out, torch.full_like(out, fill))


def mirror_valid(width: int, axis: float = 0.5, device: torch.device | None = None
                 ) -> torch.Tensor:
    """``[W]`` bool: the columns whose mirror lies inside the map (all of them for 0.5)."""
    index = _mirror_index(width, axis, device or torch.device("cpu"))
    return (index >= 0) & (index < width)


class MirrorConcat(nn.Module):
    """Seed 004's flipped-feature concatenation: ``f -> cat([f, mirror(f)], dim=1)``.

    The operator is mirror-equivariant: ``fuse(mirror(f)) == mirror(fuse(f))`` (both are
    ``cat([mirror f, f])`` for the centre axis), so a network built from mirror-equivariant
    layers stays equivariant with it, and a mirror-symmetric feature map stays symmetric. Each
    output texel sees its own features and those of its mirrored texel: a hole whose mirror
    was seen gets that texel's features directly, at every resolution it is applied at.
    """

    def __init__(self, axis: float = 0.5):
        super().__init__()
        self.axis = axis

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.cat([features, mirror(features, self.axis)], dim=1)
