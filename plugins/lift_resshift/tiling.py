"""Tiled denoising with overlap blending, for textures larger than memory allows.

Sampling keeps the whole state ``x_t`` (small: 3 x 1024^2 floats in pixel space) and tiles only the
network call, which is what needs memory. At every reverse step:

1. the x_0 estimate is computed tile by tile on overlapping crops of ``x_t`` and the condition;
2. the tile estimates are blended with weights that are 0 within ``overlap // 4`` pixels of a
   tile edge that lies inside the texture, ramp linearly to 1 across the rest of the overlap, and
   are 1 elsewhere (edges on the texture border keep weight 1, the untiled network sees the same
   border there); the weights are normalised to sum to 1 at every pixel;
3. the scheduler's step runs once on the full canvas with one full-size noise draw per step
   (the same draws, in the same order, as untiled sampling under the same generator).

So tiled sampling differs from untiled sampling only through the network: a network whose
receptive field reaches at most ``overlap // 4`` pixels (e.g. ``ConvDenoiser`` with
``num_layers <= overlap // 4``) gives the same result up to float rounding. A network with a
global receptive field (GroupNorm statistics, attention) cannot match exactly; its tiles differ
from the untiled pass by how much those statistics change with the crop.
"""

from __future__ import annotations

from typing import Callable

import torch


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, size)`` with tiles of ``tile`` overlapping by >= ``overlap``."""
    if tile >= size:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, {tile}), got {overlap}")
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)  # the last tile is shifted back to end at the border
    return starts


def edge_ramp(length: int, overlap: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """1-D blending weights of one tile side: 0 for ``overlap // 4`` pixels, then a ramp."""
    w = torch.ones(length, dtype=torch.float64)
    if overlap <= 0:
        return w
    dead = overlap // 4
    span = max(1, overlap - 2 * dead)
    dist = torch.arange(length, dtype=torch.float64)
    ramp = ((dist - dead + 1) / (span + 1)).clamp(0, 1)  # distance from the edge -> weight
    if ramp_start:
        w = torch.minimum(w, ramp)
    if ramp_end:
        w = torch.minimum(w, ramp.flip(0))
    return w


def tiled_apply(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    condition: torch.Tensor,
    tile: int,
    overlap: int,
    multiple: int = 1,
) -> torch.Tensor:
    """``fn(x_crop, condition_crop)`` on overlapping tiles of ``x`` [B,C,H,W], blended.

    ``tile`` and ``overlap`` are in ``x``'s pixels; ``tile`` must be a multiple of ``multiple``
    (the network's size granularity). ``fn`` returns a tensor with ``x``'s crop shape.
    """
    if x.shape[-2:] != condition.shape[-2:] or x.shape[0] != condition.shape[0]:
        raise ValueError(f"x {tuple(x.shape)} and condition {tuple(condition.shape)} differ")
    if tile % multiple:
        raise ValueError(f"tile size {tile} must be a multiple of {multiple}")
    H, W = x.shape[-2:]
    ys, xs = tile_starts(H, tile, overlap), tile_starts(W, tile, overlap)
    out = None
    total = torch.zeros(H, W, dtype=torch.float64, device=x.device)
    for y0 in ys:
        for x0 in xs:
            th, tw = min(tile, H), min(tile, W)
            crop = (..., slice(y0, y0 + th), slice(x0, x0 + tw))
            pred = fn(x[crop], condition[crop])
            if out is None:
                out = torch.zeros(x.shape[0], pred.shape[1], H, W, dtype=torch.float64,
                                  device=x.device)
            wy = edge_ramp(th, overlap, y0 > 0, y0 + th < H).to(x.device)
            wx = edge_ramp(tw, overlap, x0 > 0, x0 + tw < W).to(x.device)
            weight = wy[:, None] * wx[None, :]
            out[crop] += pred.double() * weight
            total[y0:y0 + th, x0:x0 + tw] += weight
    assert out is not None
    if bool((total <= 0).any()):
        raise RuntimeError("tile weights do not cover the texture; increase the tile overlap")
    return (out / total).to(x.dtype)
