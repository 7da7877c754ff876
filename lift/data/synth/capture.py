"""A phone capture: its light rig and camera, and the degraded phone texture it records.

Auto-exposure and imperfect auto white balance are metered on the face; the lit radiance
then loses light-dependent (under-exposed) texels, is warped by a smooth sub-pixel
misalignment, loses effective resolution (optical blur, antialiased down-sampling, bicubic
up-sampling) and gains signal-dependent sensor noise.  Missing texels are filled with
``missing_value`` and flagged 0 in the mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lift.data.synth.colour import _LUMA
from lift.data.synth.coverage import visibility
from lift.data.synth.geometry import UVLayout
from lift.data.synth.identity import _Identity
from lift.data.synth.lighting import LightRig, irradiance, sample_light_rig
from lift.data.synth.ops import _blur, _gen, _lum, _n, _noise, _u
from lift.data.synth.params import CameraParams, CoverageParams, LightingParams

__all__ = ["_Capture", "capture", "render_phone"]


@dataclass
class _Capture:
    rig: LightRig
    gain: float = 1.0
    wb: torch.Tensor | None = None
    scale: float = 0.5
    blur_px: float = 0.0
    warp: torch.Tensor | None = None  # [1,H,W,2] grid_sample grid or None
    view_mask: torch.Tensor | None = None  # [1,H,W] before light-dependent cut & warp
    E: torch.Tensor | None = None  # neutral diffuse irradiance, cached for the neutral render
    spec: torch.Tensor | None = None  # neutral specular radiance
    meta: dict = field(default_factory=dict)


def _sample_capture(g: torch.Generator, lighting: LightingParams, camera: CameraParams,
                    coverage: CoverageParams, dev: torch.device) -> _Capture:
    rig = sample_light_rig(g, lighting, dev)
    cap = _Capture(rig=rig, meta=dict(rig.meta))
    # camera / processing parameters (always drawn, in a fixed order)
    cap.meta["exposure_error_stops"] = _n(g, camera.exposure_jitter_stops)
    cap.meta["awb_strength"] = _u(g, *camera.awb_strength_range)
    cap.wb = torch.exp(torch.randn(3, generator=g) * camera.wb_error_sigma).to(dev)
    cap.scale = _u(g, *camera.phone_scale_range)
    cap.blur_px = _u(g, *camera.phone_blur_range)
    cap.meta["yaw_max_deg"] = _u(g, *coverage.yaw_range_deg)
    cap.meta["pitch_low_deg"] = _u(g, *coverage.pitch_low_deg)
    cap.meta["pitch_high_deg"] = _u(g, *coverage.pitch_high_deg)
    cap.meta["scale"] = cap.scale
    return cap


def capture(uv: UVLayout, seed: int, index: int, capture_index: int, ident: _Identity, n, ao,
            lighting: LightingParams, camera: CameraParams, coverage: CoverageParams) -> _Capture:
    """Phone capture ``capture_index`` of subject ``index``, metered on its neutral rendering."""
    g = _gen(seed, index, 1, capture_index)
    cap = _sample_capture(g, lighting, camera, coverage, uv.device)
    E, spec = irradiance(uv, n, ident.height, ao, cap.rig, lighting)
    _auto_exposure(uv, cap, ident, E, spec, camera)
    _white_balance(uv, cap, E)
    cap.view_mask = visibility(g, uv, ident.p, cap.meta, coverage)
    # misalignment warp (smooth field + global shift), in grid_sample units
    if camera.misalignment_px > 0:
        r = uv.resolution
        amp = camera.misalignment_px * 2.0 / r
        glob = torch.randn(2, 1, 1, generator=g) * 0.7
        loc = _noise(g, 2, r, base=3, octaves=2) * 0.7
        disp = ((glob + loc) * amp).to(uv.device)
        cap.warp = uv.base_grid + disp.permute(1, 2, 0)[None]
    cap.E, cap.spec = E, spec
    return cap


def _auto_exposure(uv: UVLayout, cap: _Capture, ident: _Identity, E, spec, camera: CameraParams) -> None:
    """Auto exposure on the face irradiance (albedo is not normalised)."""
    fw = uv.face_w
    meanE = float((_lum(E) * fw).sum() / fw.sum())
    gain = camera.exposure_target / max(meanE, 1e-4)
    if camera.highlight_quantile < 1.0:
        # highlight protection: the brightest face texels (diffuse + specular) must not clip
        rad = _lum(ident.albedo * E + ident.oil * spec)[uv.head_w > 0]
        q = float(torch.quantile(rad[:: max(1, rad.numel() // 8192)], camera.highlight_quantile))
        gain = min(gain, 1.0 / max(q, 1e-4))
    cap.gain = gain * 2.0 ** cap.meta["exposure_error_stops"]
    cap.meta["gain"] = cap.gain


def _white_balance(uv: UVLayout, cap: _Capture, E) -> None:
    """Imperfect auto white balance: part of the face-metered illuminant cast, times an error."""
    fw = uv.face_w
    ill = (E * fw).sum((1, 2)) / fw.sum()
    ill = ill / float(ill @ torch.tensor(_LUMA, dtype=torch.float32, device=uv.device))
    wb = ill.clamp(min=1e-3) ** (-cap.meta["awb_strength"]) * cap.wb
    cap.wb = wb / float(wb @ torch.tensor(_LUMA, dtype=torch.float32, device=uv.device))


def render_phone(uv: UVLayout, albedo, oil, E, spec, cap: _Capture, g_noise: torch.Generator,
                 camera: CameraParams, coverage: CoverageParams):
    """Lit radiance -> camera processing -> degraded phone texture and its mask."""
    radiance = (albedo * E + oil * spec) * cap.gain * cap.wb.view(3, 1, 1)
    mask = cap.view_mask
    if coverage.dark_cutoff > 0:
        mask = mask * (_blur(_lum(radiance), 1.5 * uv.resolution / 256) >= coverage.dark_cutoff).float()
    r = uv.resolution
    if cap.warp is not None:
        stack = torch.cat([radiance, mask], 0)[None]
        stack = F.grid_sample(stack, cap.warp, mode="bilinear", padding_mode="border", align_corners=False)[0]
        radiance, mask = stack[:3], (stack[3:] > 0.5).float()
    low = max(8, int(round(r * cap.scale)))
    img = radiance
    if cap.blur_px > 0.2:
        img = _blur(img, cap.blur_px)
    if low < r:
        img = F.interpolate(img[None], size=(low, low), mode="bilinear", antialias=True, align_corners=False)[0]
    sig = torch.sqrt(camera.noise_shot * img.clamp(min=0) + camera.noise_read**2)
    img = img + sig * torch.randn(img.shape, generator=g_noise).to(uv.device)
    if low < r:
        img = F.interpolate(img[None], size=(r, r), mode="bicubic", align_corners=False)[0]
    img = img.clamp(0, 1)
    img = img * mask + coverage.missing_value * (1 - mask)
    return img, mask
