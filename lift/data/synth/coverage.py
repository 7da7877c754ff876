"""What a phone scan sees: the view-coverage mask and its holes.

A texel is visible if some view of the scan (head yaw up to ``yaw_max_deg``, camera
elevations ``pitch_low_deg`` .. ``pitch_high_deg``) sees it at a cosine above ``grazing_cos``;
the border is made ragged, and holes are cut behind the ears (the auricle occludes), by
fringe/temple hair and by random blobs along the coverage border (tracking failures).
"""

from __future__ import annotations

import numpy as np
import torch

from lift.data.synth.geometry import UVLayout, base_normal
from lift.data.synth.lighting import direction
from lift.data.synth.ops import _blob, _noise, _u
from lift.data.synth.params import CoverageParams

__all__ = ["visibility"]


def visibility(g: torch.Generator, uv: UVLayout, p: dict, meta: dict, params: CoverageParams) -> torch.Tensor:
    """Binary view-coverage mask ``[1,H,W]`` (1 = seen by the phone scan).

    ``p`` holds the identity's feature parameters, ``meta`` the capture's view coverage.
    """
    r = uv.resolution
    dev = uv.device
    n = base_normal(uv, p)
    ym = meta["yaw_max_deg"]
    pl, ph = meta["pitch_low_deg"], meta["pitch_high_deg"]
    dirs = torch.stack(
        [direction(float(yaw), float(pitch)) for yaw in np.linspace(-ym, ym, 9) for pitch in (pl, 0.5 * (pl + ph), ph)]
    ).to(dev)
    score = (dirs @ n.reshape(3, -1)).amax(0).view(1, r, r)
    score = score + params.boundary_noise * _noise(g, 1, r, base=8, octaves=3)
    vis = (score > params.grazing_cos).float()
    x, v = uv.x1, uv.v1
    # behind the ears: occluded by the auricle for a frontal scan
    wobble = _noise(g, 1, r, base=16, octaves=2)
    for ex, ev, ew, eh in p["ears"]:
        sg = 1.0 if ex > 0 else -1.0
        cx = ex + sg * (0.75 * ew + _u(g, 0.012, 0.025))
        behind = ((x - cx) / _u(g, 0.018, 0.03)) ** 2 + ((v - ev - 0.01) / (eh * _u(g, 0.9, 1.15))) ** 2
        vis = vis * ((behind + 0.25 * wobble) > 1.0).float()
    # hair occlusion band along the fringe / temples
    if _u(g) < params.hair_occlusion_prob:
        cx = _u(g, -0.2, 0.2)
        band = _blob(x, v, cx, 0.17, _u(g, 0.04, 0.12), 0.03) * (1.0 + 0.5 * _noise(g, 1, r, base=16, octaves=2))
        vis = vis * (band < 0.5).float()
    return _border_holes(g, uv, vis, params)


def _border_holes(g: torch.Generator, uv: UVLayout, vis: torch.Tensor, params: CoverageParams) -> torch.Tensor:
    """Random occlusion blobs centred on the coverage border (tracking failures)."""
    r = uv.resolution
    x, v = uv.x1, uv.v1
    n_holes = int(torch.poisson(torch.tensor([float(params.hole_rate)]), generator=g)[0])
    if n_holes:
        border = torch.zeros_like(vis, dtype=torch.bool)
        border[:, 1:, :] |= vis[:, 1:, :] != vis[:, :-1, :]
        border[:, :, 1:] |= vis[:, :, 1:] != vis[:, :, :-1]
        idx = border.view(-1).nonzero().view(-1)
        for _ in range(n_holes):
            if idx.numel() == 0:
                break
            j = int(idx[int(torch.randint(0, idx.numel(), (), generator=g))])
            cy_, cx_ = (j // r + 0.5) / r, (j % r + 0.5) / r - 0.5
            rad = _u(g, 0.01, 0.035)
            blob = _blob(x, v, cx_, cy_, rad * _u(g, 0.6, 1.6), rad)
            vis = vis * (blob < 0.5).float()
    return vis
