"""UV layout of the head: texel coordinates, the sphere's frame, face regions, the jaw line.

``u`` (columns, left to right) is the azimuth around a head-shaped sphere, with the face
centred at ``u = 0.5`` and the back of the head at the left/right border (the seam); the
mapping ``phi = pi * (a s + (1 - a) s^3)``, ``s = 2u - 1``, ``a = 0.5`` magnifies the face.
``v`` (rows, top to bottom) is the elevation, from +85 deg (top of the head, ``v = 0``) down
to -85 deg (the neck, ``v = 1``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lift.data.synth.ops import _sig

__all__ = ["UVLayout", "under_chin", "base_normal"]

_A = 0.5  # azimuth mapping: phi = pi (a s + (1 - a) s^3)
_THETA_TOP = math.radians(85.0)
_THETA_BOT = math.radians(-85.0)
_ON_DEVICE = ("v", "x", "v1", "x1", "n_cyl", "phi", "aphi_deg", "theta", "len_u", "len_v", "n0", "t_u", "t_v",
              "face_w", "head_w", "base_grid")


class UVLayout:
    """Per-texel geometry of a ``resolution``² UV layout, on ``device``.

    ``v``, ``x`` are ``[1,H,W]`` (``x = u - 0.5``), ``v1`` / ``x1`` their broadcastable 1-D
    versions; ``phi`` / ``theta`` the azimuth / elevation, ``aphi_deg`` ``|phi|`` in degrees
    ``[1,1,W]``; ``n0``, ``t_u``, ``t_v`` the surface normal and tangents ``[3,H,W]``;
    ``len_u`` / ``len_v`` head radii per UV unit; ``x_ear`` the ears' ``x``; ``face_w`` /
    ``head_w`` the face (exposure metering) and front-of-head (highlight metering) regions;
    ``base_grid`` the identity ``grid_sample`` grid ``[1,H,W,2]``; ``shadow_geo`` the same
    geometry at the (reduced) resolution soft shadows are marched at.
    """

    def __init__(self, resolution: int, device: torch.device):
        self.resolution = r = resolution
        self.device = device
        self._coordinates(r)
        self._frame()
        # face region weight (for exposure metering, tests)
        self.face_w = ((self.x.abs() < 0.22) & (self.v > 0.25) & (self.v < 0.75)).float()
        self.head_w = ((self.x.abs() < 0.36) & (self.v > 0.1) & (self.v < 0.9)).float()  # highlight metering
        ii = torch.arange(r, dtype=torch.float32)
        gy, gx = torch.meshgrid(ii, ii, indexing="ij")
        self.base_grid = torch.stack([(gx + 0.5) / r * 2 - 1, (gy + 0.5) / r * 2 - 1], -1)[None]  # [1,H,W,2]
        sp1, cp1 = torch.sin(self.phi), torch.cos(self.phi)
        self.n_cyl = torch.cat([sp1, torch.full_like(sp1, -0.08), cp1], 0)
        self.n_cyl = self.n_cyl * torch.rsqrt((self.n_cyl**2).sum(0, keepdim=True))
        self.shadow_geo = self._shadow_geometry(r)
        for name in _ON_DEVICE:
            setattr(self, name, getattr(self, name).to(device))

    def _coordinates(self, r: int) -> None:
        c = (torch.arange(r, dtype=torch.float32) + 0.5) / r
        v, u = torch.meshgrid(c, c, indexing="ij")
        self.v = v[None]  # [1,H,W]
        self.x = (u - 0.5)[None]  # signed horizontal offset from the face centre
        self.v1 = c.view(1, r, 1)  # 1-D (broadcastable) versions for separable expressions
        self.x1 = (c - 0.5).view(1, 1, r)
        s = 2.0 * self.x
        a = _A
        self.phi = math.pi * (a * s + (1 - a) * s**3)
        s1 = 2.0 * self.x1
        self.aphi_deg = (math.pi * (a * s1 + (1 - a) * s1**3)).abs() * (180.0 / math.pi)  # [1,1,W]
        self.theta = _THETA_TOP + (_THETA_BOT - _THETA_TOP) * self.v
        dphi_du = 2.0 * math.pi * (a + 3 * (1 - a) * s**2)
        cos_t = torch.cos(self.theta)
        self.len_u = (dphi_du * cos_t.clamp(min=0.08))  # head radii per UV unit along u
        self.len_v = torch.full_like(self.v, _THETA_TOP - _THETA_BOT)

    def _frame(self) -> None:
        a = _A
        cos_t = torch.cos(self.theta)
        sp, cp = torch.sin(self.phi), torch.cos(self.phi)
        st = torch.sin(self.theta)
        # normal of a vertically elongated ellipsoid (b = 1.35): the face is more upright than a sphere's
        n0 = torch.cat([sp * cos_t, st / 1.35, cp * cos_t], 0)
        self.n0 = n0 * torch.rsqrt((n0 * n0).sum(0, keepdim=True))  # [3,H,W]
        self.t_u = torch.cat([cp, torch.zeros_like(cp), -sp], 0)
        self.t_v = torch.cat([sp * st, -cos_t, cp * st], 0)
        # ear position: phi = 90 deg  <=>  a s + (1 - a) s^3 = 0.5
        roots = np.roots([1 - a, 0.0, a, -0.5])
        s_ear = float(min(rr.real for rr in roots if abs(rr.imag) < 1e-9 and rr.real > 0))
        self.x_ear = 0.5 * s_ear

    def _shadow_geometry(self, r: int) -> tuple:
        """``(sr, n0, t_u, t_v, len_u, len_v, base_grid)`` at the shadow-marching resolution ``sr``."""
        sr = min(r, max(128, r // 4))
        sub = lambda t: F.interpolate(t[None], size=(sr, sr), mode="area")[0] if sr != r else t  # noqa: E731
        base_s = self.base_grid
        if sr != r:
            base_s = F.interpolate(base_s.permute(0, 3, 1, 2), size=(sr, sr), mode="area").permute(0, 2, 3, 1)
        return (
            sr,
            *(sub(t).to(self.device) for t in (self.n0, self.t_u, self.t_v, self.len_u, self.len_v)),
            base_s.to(self.device),
        )

    def jaw_v(self, chin_v: float) -> torch.Tensor:
        """Row of the jaw line (chin at the centre, rising towards the ear lobes)."""
        t = (self.aphi_deg / 78.0).clamp(max=1.0)
        return chin_v - (chin_v - 0.60) * t**1.6


def under_chin(uv: UVLayout, p: dict) -> torch.Tensor:
    """The band under the jaw line (``p``: the identity's feature parameters)."""
    jaw = uv.jaw_v(p["chin_v"])
    band = _sig(uv.v1 - jaw, 0.005) * _sig(jaw + p["under_chin_w"] - uv.v1, 0.01)
    return band * _sig(84.0 - uv.aphi_deg, 4.0)


def base_normal(uv: UVLayout, p: dict) -> torch.Tensor:
    """Sphere normal, blended to a (vertical) neck cylinder below the jaw and tilted to
    face downwards in the under-chin band."""
    jaw = uv.jaw_v(p["chin_v"])
    w_neck = _sig(uv.v1 - (jaw + p["under_chin_w"] + 0.02), 0.012)
    n = uv.n0 * (1 - w_neck) + uv.n_cyl * w_neck
    w = under_chin(uv, p)
    down = torch.tensor([0.0, -1.0, p["under_chin_z"]], device=uv.device).view(3, 1, 1)
    n = n * (1 - w) + w * 4.0 * down
    return n * torch.rsqrt((n * n).sum(0, keepdim=True).clamp(min=1e-12))
