"""Geometry -> shading: normals and ambient occlusion from the height field, and the studio
texture (uniform light, mild ambient occlusion; complete, full resolution, noise-free)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lift.data.synth.geometry import UVLayout, base_normal, under_chin
from lift.data.synth.ops import _blur
from lift.data.synth.params import ShadingParams

__all__ = ["normals", "ambient_occlusion", "studio_texture"]


def normals(uv: UVLayout, h: torch.Tensor, p: dict, params: ShadingParams) -> torch.Tensor:
    """Normals ``[3,H,W]``: the base normal plus ``h``'s slopes in the sphere's tangent frame."""
    r = uv.resolution
    hp = F.pad(h[None], (1, 1, 1, 1), mode="replicate")[0]
    dh_du = (hp[:, 1:-1, 2:] - hp[:, 1:-1, :-2]) * (r / 2.0)
    dh_dv = (hp[:, 2:, 1:-1] - hp[:, :-2, 1:-1]) * (r / 2.0)
    k = params.bump_strength
    nb = base_normal(uv, p)
    n = nb - k * (dh_du / uv.len_u) * uv.t_u - k * (dh_dv / uv.len_v) * uv.t_v
    return n * torch.rsqrt((n * n).sum(0, keepdim=True).clamp(min=1e-12))


def ambient_occlusion(uv: UVLayout, h: torch.Tensor, p: dict, params: ShadingParams) -> torch.Tensor:
    """``AO = exp(-ao_strength * cavity)``, the cavities of ``h`` at two scales; darker under the chin."""
    r = uv.resolution
    cav = (_blur(h, 0.02 * r) - h).clamp(min=0) + 0.5 * (_blur(h, 0.006 * r) - h).clamp(min=0)
    ao = torch.exp(-params.ao_strength * cav)
    ao = ao * (1 - 0.15 * under_chin(uv, p))
    return ao.clamp(0, 1)


def studio_texture(albedo: torch.Tensor, ao: torch.Tensor, params: ShadingParams) -> torch.Tensor:
    """``albedo * studio_gain * (1 - studio_ao_strength * (1 - AO))``."""
    return albedo * (params.studio_gain * (1.0 - params.studio_ao_strength * (1.0 - ao)))
