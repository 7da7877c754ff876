"""Features painted into the albedo of an identity, and its oiliness (specular weight) map.

Hair cap and hairline (temples, sideburns, an above-ear notch, the nape) with strand
texture, eyebrows with lateral hair streaks, optional stubble, eyes (almond-shaped sclera,
iris, pupil, lash line, lid crease), nostrils and the mouth line, and pixel-scale pores /
skin grain.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lift.data.synth.canvas import _Canvas, _Looks
from lift.data.synth.ops import _blob, _blur, _interp, _n, _noise, _sig, _symmetrize, _u

_EYE_SIDES = (-1, 1)


def hair(c: _Canvas, looks: _Looks, ear_cov, nm, albedo):
    """Scalp hair above the hairline (not over the ears); returns the albedo and the hair cover."""
    g, r, v = c.g, c.r, c.v
    hf = looks.hairline_front
    temple = looks.temple
    # hairline row by |azimuth| (deg), from the forehead (0) to the nape (180)
    knots = [0, 20, 40, 60, 70, 78, 86, 95, 110, 135, 180]
    vals = [hf, hf + 0.005, hf + 0.02 + temple, hf + 0.05 + temple, 0.28, 0.44, 0.31, 0.34, 0.48, 0.60, 0.63]
    vals = [vv + _n(g, 0.006) for vv in vals]
    hl = _interp(c.uv.aphi_deg, knots, vals) + 0.008 * _symmetrize(_noise(g, 1, r, base=16, octaves=2), 0.5)
    cover = _sig(hl - v, 0.006) * (1.0 - ear_cov.clamp(0, 1))
    strands = torch.randn(1, max(4, r // 8), max(8, r // 2), generator=g).to(c.dev)  # strands run along v
    strands = F.interpolate(strands[None], size=(r, r), mode="bilinear", align_corners=False)[0]
    tex = looks.hair_col * torch.exp(0.22 * strands + 0.15 * nm[0:1])
    d = looks.hair_density
    albedo = albedo * (1 - cover * d) + tex * cover * d
    return albedo, cover


def brows(c: _Canvas, p: dict, eyes: list[dict], looks: _Looks, albedo):
    """Arched eyebrows above each eye, thinning laterally."""
    g, r, x, v = c.g, c.r, c.x, c.v
    # brow hairs: streaks running laterally (along u)
    brow_tex = torch.randn(1, r, max(8, r // 4), generator=g).to(c.dev)
    brow_tex = F.interpolate(brow_tex[None], size=(r, r), mode="bilinear", align_corners=False)[0]
    for sg, e_ in zip(_EYE_SIDES, eyes):
        x0 = sg * (e_["eye_x"] - 0.055)
        length = 0.10 + _n(g, 0.004)
        t = (sg * (x - x0) / length)
        cv = e_["eye_v"] - e_["brow_dv"] - p["brow_arch"] * torch.sin(math.pi * t.clamp(0, 1) * 0.85)
        th = e_["brow_th"] * (1.0 - 0.6 * t.clamp(0, 1))
        dens = _sig(th - (v - cv).abs(), 1.0 / r) * _sig(t, 0.03) * _sig(1 - t, 0.05)
        dens = dens * (0.7 + 0.3 * torch.tanh(1.5 * brow_tex)) * _u(g, 0.6, 0.95)
        albedo = albedo * (1 - dens) + dens * looks.hair_col * 0.9
    return albedo


def beard(c: _Canvas, p: dict, looks: _Looks, lips, fine, albedo):
    """Stubble / beard below the cheeks, down to just under the jaw line, not on the lips."""
    g, r, x, v, ax = c.g, c.r, c.x, c.v, c.ax
    nv, mv = p["nose_v"], p["mouth_v"]
    jaw = c.uv.jaw_v(p["chin_v"])
    top = _interp(ax, [0.0, 0.05, 0.10, 0.2, 0.27, 0.33], [nv + 0.025, nv + 0.03, mv - 0.01, mv - 0.06, 0.50, 0.44])
    top = top + 0.006 * _noise(g, 1, r, base=16, octaves=2)
    reg = _sig(v - top, 0.006) * _sig(jaw + 0.05 - v, 0.01) * _sig(0.33 - ax, 0.02)
    reg = reg * (1 - lips.clamp(0, 1))
    reg = reg * (1 - 0.7 * _blob(x, v, 0, (mv + p["chin_v"]) / 2, 0.02, 0.02) * _u(g))
    d = reg * looks.beard_density * (0.5 + 0.5 * torch.sigmoid(2 * fine))
    return albedo * (1 - d) + d * looks.hair_col


def eyes(c: _Canvas, sides: list[dict], looks: _Looks, fine, albedo, h):
    """Sclera, iris, pupil, lash line and lid crease (also a fold in ``h``)."""
    r, x, v, dev = c.r, c.x, c.v, c.dev
    for sg, e_ in zip(_EYE_SIDES, sides):
        ex, ev, ew, eh = sg * e_["eye_x"], e_["eye_v"], e_["eye_w"], e_["eye_h"]
        t = ((x - ex) / ew).clamp(-1, 1)
        lat = sg * t  # +1 at the lateral corner
        up = ev - eh * (1 - t**2).clamp(min=0) ** 0.6 - 0.003 * lat
        lo = ev + 0.75 * eh * (1 - t**2).clamp(min=0) ** 0.8 - 0.002 * lat
        inside = _sig(v - up, 0.8 / r) * _sig(lo - v, 0.8 / r) * _sig(ew - (x - ex).abs(), 0.8 / r)
        sclera = torch.tensor([0.55, 0.50, 0.47], device=dev).view(3, 1, 1) * (1 - 0.4 * (t.abs() ** 2))
        ri = torch.sqrt(((x - ex) / (0.9 * eh)) ** 2 + ((v - ev) / (0.95 * eh)) ** 2)
        iris = _sig(1.0 - ri, 0.08)
        pupil = _sig(0.38 - ri, 0.05)
        eye_col = sclera * (1 - iris) + iris * looks.iris_col * (1 + 0.3 * torch.tanh(fine))
        eye_col = eye_col * (1 - pupil) + pupil * 0.008
        albedo = albedo * (1 - inside) + inside * eye_col
        lash = torch.exp(-0.5 * ((v - up + 0.0015) / (0.0025 + 0.4 / r)) ** 2) * _sig(1.05 - ((x - ex) / ew).abs(), 0.02)
        albedo = albedo * (1 - 0.85 * lash)
        crease = torch.exp(-0.5 * ((v - (up - 0.013)) / 0.003) ** 2) * _sig(0.9 - ((x - ex) / ew).abs(), 0.05)
        h = h - 0.01 * crease
        albedo = albedo * (1 - 0.15 * crease)
    return albedo, h


def nostrils_and_mouth_line(c: _Canvas, p: dict, nostril, albedo):
    albedo = albedo * (1 - 0.8 * (nostril / 0.6).clamp(0, 1))
    mline = torch.exp(-0.5 * ((c.v - p["mouth_v"]) / (0.0018 + 0.3 / c.r)) ** 2) * _sig(
        p["mouth_w"] * 0.97 - c.ax, 1.0 / c.r
    )
    return albedo * (1 - 0.55 * mline)


def pores(c: _Canvas, albedo, h):
    """Pixel-scale pores / skin grain in the albedo and as fine height detail (stronger mid-face)."""
    pore_region = 0.6 + 0.8 * _blob(c.x, c.v, 0.0, 0.5, 0.14, 0.09)
    grain = _blur(torch.randn(1, c.r, c.r, generator=c.g).to(c.dev), 0.6)
    albedo = albedo * torch.exp(c.params.pore_strength * 1.8 * grain * pore_region)
    h = h + 0.0015 * grain * pore_region
    return albedo.clamp(0.004, 0.95), h


def oiliness(c: _Canvas, p: dict, sides: list[dict], lips, cover, hair_density: float):
    """Specular weight: T-zone oily, lips moist, eyes glossy, hair low."""
    x, v = c.x, c.v
    eye_any = sum(_blob(x, v, sg * e_["eye_x"], e_["eye_v"], 0.03, 0.012) for sg, e_ in zip(_EYE_SIDES, sides))
    return (
        0.35
        + 0.8 * _blob(x, v, 0.0, 0.22, 0.12, 0.06)
        + 0.9 * _blob(x, v, 0.0, 0.48, 0.03, 0.09)
        + 0.4 * _blob(x, v, 0.0, p["chin_v"] - 0.03, 0.04, 0.03)
        + 0.8 * lips.clamp(0, 1)
        + 2.0 * eye_any
    ) * (1 - 0.7 * cover * hair_density)
