"""The in-the-wild light rig of a phone capture and the irradiance it casts.

A coloured directional key light with a soft cast shadow marched over the height field, an
optional (unshadowed, sometimes saturated) fill light, hemispherical sky/ground ambient,
wrapped diffuse for subsurface scattering and Blinn-Phong specular.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lift.data.synth.colour import _GROUND_TINTS, _LUMA, blackbody_rgb
from lift.data.synth.geometry import UVLayout
from lift.data.synth.ops import _u
from lift.data.synth.params import LightingParams

__all__ = ["LightRig", "direction", "sample_light_rig", "shadow", "irradiance"]


@dataclass
class LightRig:
    key_dir: torch.Tensor  # [3]
    key_rgb: torch.Tensor  # [3]
    penumbra: float
    fill_dir: torch.Tensor | None
    fill_rgb: torch.Tensor | None
    sky_rgb: torch.Tensor
    ground_rgb: torch.Tensor
    ks: float
    shininess: float
    meta: dict = field(default_factory=dict)


def _random_color(g: torch.Generator, cct: float, params: LightingParams) -> torch.Tensor:
    rgb = torch.tensor(blackbody_rgb(cct), dtype=torch.float32)
    return rgb * torch.exp(torch.randn(3, generator=g) * params.light_tint_sigma)


def direction(az_deg: float, el_deg: float) -> torch.Tensor:
    """Unit vector from azimuth / elevation in degrees (0/0 = towards the camera, +z)."""
    az, el = math.radians(az_deg), math.radians(el_deg)
    return torch.tensor([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)], dtype=torch.float32)


def sample_light_rig(g: torch.Generator, params: LightingParams, dev: torch.device) -> LightRig:
    """Draw a light rig; every draw happens in a fixed order, whether used or not."""
    key_az = _u(g, *params.key_azimuth_deg)
    key_el = _u(g, *params.key_elevation_deg)
    key_cct = _u(g, *params.key_cct_range)
    key_rgb = _random_color(g, key_cct, params)
    amb = _u(g, *params.ambient_ratio_range)
    sky_cct = _u(g, *params.ambient_cct_range)
    sky = _random_color(g, sky_cct, params) * amb
    tint = _GROUND_TINTS[int(torch.randint(0, len(_GROUND_TINTS), (), generator=g))]
    ground = sky * tint / float(tint @ torch.tensor(_LUMA, dtype=torch.float32)) * _u(g, *params.ground_ratio_range)
    fill_dir = fill_rgb = None
    has_fill = _u(g) < params.fill_prob
    fill_az, fill_el = _u(g, -150, 150), _u(g, -20, 50)
    fill_ratio = _u(g, *params.fill_ratio_range)
    colored = _u(g) < params.colored_light_prob
    hue, sat = _u(g), _u(g, *params.colored_light_saturation)
    fill_cct = _u(g, *params.key_cct_range)
    if has_fill:
        fill_dir = direction(fill_az, fill_el)
        if colored:
            rgb = torch.tensor(colorsys.hsv_to_rgb(hue, sat, 1.0), dtype=torch.float32)
            fill_rgb = rgb / float(rgb @ torch.tensor(_LUMA, dtype=torch.float32)) * fill_ratio
        else:
            fill_rgb = _random_color(g, fill_cct, params) * fill_ratio
    rig = LightRig(
        key_dir=direction(key_az, key_el).to(dev),
        key_rgb=key_rgb.to(dev),
        penumbra=_u(g, *params.light_size_range),
        fill_dir=None if fill_dir is None else fill_dir.to(dev),
        fill_rgb=None if fill_rgb is None else fill_rgb.to(dev),
        sky_rgb=sky.to(dev),
        ground_rgb=ground.to(dev),
        ks=_u(g, *params.specular_range),
        shininess=_u(g, *params.shininess_range),
    )
    rig.meta = dict(
        key_azimuth_deg=key_az,
        key_elevation_deg=key_el,
        key_cct=key_cct,
        ambient_ratio=amb,
        sky_cct=sky_cct,
        fill=has_fill,
        fill_colored=has_fill and colored,
        penumbra=rig.penumbra,
    )
    return rig


def shadow(uv: UVLayout, h: torch.Tensor, L: torch.Tensor, penumbra: float, params: LightingParams) -> torch.Tensor:
    """Soft cast-shadow visibility of directional light ``L`` by marching over the height field."""
    r = uv.resolution
    sr, n0, tu, tv, lu, lv, base = uv.shadow_geo
    hs = F.interpolate(h[None], size=(sr, sr), mode="area")[0] if sr != r else h
    Lv = L.view(3, 1, 1)
    ln = (n0 * Lv).sum(0, keepdim=True)
    lu_ = (tu * Lv).sum(0, keepdim=True)
    lv_ = (tv * Lv).sum(0, keepdim=True)
    lt = torch.sqrt(lu_**2 + lv_**2).clamp(min=1e-4)
    tan_a = (ln / lt).clamp(min=0.0)
    du = lu_ / lt / lu  # UV units per head radius along the light's tangent direction
    dv = lv_ / lt / lv
    steps = params.shadow_steps
    dists = [params.shadow_max_dist * ((k + 1) / steps) ** 1.7 for k in range(steps)]
    vis = torch.ones_like(hs)
    h4 = hs[None]
    for d in dists:
        off = torch.cat([du * d * 2.0, dv * d * 2.0], 0).permute(1, 2, 0)[None]
        hq = F.grid_sample(h4, base + off, mode="bilinear", padding_mode="border", align_corners=False)[0]
        # the occluder must rise above the ray, which also falls away with the sphere's curvature
        occ = hq - hs - d * tan_a - 0.5 * d * d
        vis = torch.minimum(vis, (1.0 - occ / (penumbra * d + 0.004)).clamp(0, 1))
    if sr != r:
        vis = F.interpolate(vis[None], size=(r, r), mode="bilinear", align_corners=False)[0]
    return vis


def irradiance(uv: UVLayout, n: torch.Tensor, h: torch.Tensor, ao: torch.Tensor, rig: LightRig,
               params: LightingParams):
    """Diffuse irradiance ``[3,H,W]`` and specular radiance ``[3,H,W]`` (before albedo / oil)."""
    dev = uv.device
    wrap = torch.tensor(params.sss_wrap, device=dev).view(3, 1, 1)
    L = rig.key_dir
    ndl = (n * L.view(3, 1, 1)).sum(0, keepdim=True)
    diff = ((ndl + wrap) / (1 + wrap)).clamp(min=0)
    sh = shadow(uv, h, L, rig.penumbra, params)
    # cast shadows only attenuate the direct term; wrap lighting leaks a bit into them
    sh_c = sh + (1 - sh) * wrap * 0.5
    E = diff * sh_c * rig.key_rgb.view(3, 1, 1)
    if rig.fill_dir is not None:
        ndf = (n * rig.fill_dir.view(3, 1, 1)).sum(0, keepdim=True)
        E = E + ((ndf + wrap) / (1 + wrap)).clamp(min=0) * rig.fill_rgb.view(3, 1, 1)
    up = 0.5 + 0.5 * n[1:2]
    E = E + ao * (rig.sky_rgb.view(3, 1, 1) * up + rig.ground_rgb.view(3, 1, 1) * (1 - up))
    V = torch.tensor([0.0, 0.0, 1.0], device=dev)
    H = L + V
    H = H / H.norm()
    ndh = (n * H.view(3, 1, 1)).sum(0, keepdim=True).clamp(min=0)
    spec = rig.ks * ndh**rig.shininess * (ndl > 0).float() * sh * rig.key_rgb.view(3, 1, 1)
    spec = spec * (rig.shininess + 8) / 40.0  # rough energy normalisation
    return E, spec
