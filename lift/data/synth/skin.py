"""Skin reflectance of an identity: a two-chromophore (melanin / haemoglobin) Beer-Lambert model.

``albedo_c = exp(ln b_c - m sigma_m,c - (h - 1) sigma_h,c)`` with spatially varying,
left/right near-symmetric chromophore maps (low-frequency blotchiness; redder cheeks, nose
tip and lips; darker under the eyes) and identity-specific, asymmetric spots (freckles,
moles).
"""

from __future__ import annotations

import math

import torch

from lift.data.synth.canvas import _Canvas
from lift.data.synth.colour import _LN_B0, _SIGMA_HEM, _SIGMA_MEL
from lift.data.synth.ops import _blob, _blur, _noise, _sig, _symmetrize, _u


def chromophores(c: _Canvas):
    """Base melanin ``m0`` / haemoglobin ``h0``, undertone, blotchiness noise ``nm`` and the maps."""
    g, r, prm = c.g, c.r, c.params
    m0 = prm.melanin_range[0] + (prm.melanin_range[1] - prm.melanin_range[0]) * _u(g) ** 1.2
    h0 = _u(g, *prm.haemoglobin_range)
    undertone = torch.randn(3, 1, 1, generator=g) * prm.undertone_sigma
    asym = prm.asymmetry
    nm = _symmetrize(_noise(g, 2, r, base=3, octaves=5), asym)
    mel = m0 * torch.exp(prm.chromophore_variation * nm[0:1] * 1.5) + 0.15 * prm.chromophore_variation * nm[0:1]
    hem = h0 + prm.chromophore_variation * 2.0 * nm[1:2]
    return m0, h0, undertone, nm, mel, hem


def lip_mask(c: _Canvas, p: dict, mouth_corner: list[float]) -> torch.Tensor:
    """Soft mask of the lips, with a Cupid's bow; each mouth corner has its own width."""
    x, v, r = c.x, c.v, c.r
    mv = p["mouth_v"]
    mw_map = torch.where(x < 0, torch.tensor(mouth_corner[0]), torch.tensor(mouth_corner[1]))
    t = (x / mw_map).clamp(-1, 1)
    bow = 1.0 - 0.35 * torch.exp(-0.5 * (x / 0.010) ** 2)
    up = mv - p["lip_up"] * (1 - t**2).clamp(min=0) ** 0.45 * bow
    lo = mv + p["lip_lo"] * (1 - t**2).clamp(min=0) ** 0.7
    return _sig(v - up, 1.2 / r) * _sig(lo - v, 1.2 / r) * _sig(mw_map - c.ax, 1.5 / r)


def regional_chromophores(c: _Canvas, p: dict, eyes: list[dict], lips: torch.Tensor, mel, hem, m0: float):
    """Redder lips, cheeks and nose tip; paler lips; darker circles under the eyes and eyelids."""
    x, v = c.x, c.v
    hem = hem + lips * _u(c.g, 1.6, 2.6) + p["cheek"] * 8 * (
        _blob(c.ax, v, 0.15, 0.52, 0.055, 0.05)
    ) + 0.35 * _blob(x, v, 0.0, p["nose_v"] - 0.01, 0.03, 0.03)
    mel = mel * (1.0 - 0.12 * lips)
    under_eye = sum(
        _blob(x, v, sg * e_["eye_x"], e_["eye_v"] + 0.03, 0.04, 0.012) for sg, e_ in ((-1, eyes[0]), (1, eyes[1]))
    )
    mel = mel + 0.25 * under_eye * (0.3 + 0.3 * m0)
    return mel, hem


def spots(c: _Canvas, m0: float):
    """Freckles and moles (asymmetric identity detail): melanin ``spots``, mole height, mole list."""
    g, r, dev, prm = c.g, c.r, c.dev, c.params
    x, v = c.x, c.v
    fr_p = prm.freckle_prob * (1.6 if m0 < 1.0 else 0.4)
    out = torch.zeros(1, r, r, device=dev)
    if _u(g) < fr_p and prm.max_freckles > 0:
        nf = int(_u(g, 30, prm.max_freckles))
        fx = torch.randn(nf, generator=g) * 0.10
        fv = 0.47 + torch.randn(nf, generator=g) * 0.045
        amp = 0.2 + 0.6 * torch.rand(nf, generator=g)
        ix = ((fx + 0.5) * r).long().clamp(0, r - 1)
        iv = (fv * r).long().clamp(0, r - 1)
        out.view(-1).index_put_((iv * r + ix,), amp.to(dev), accumulate=True)
        out = _blur(out, max(0.6, 0.0022 * r)) * (2 * math.pi * max(0.6, 0.0022 * r) ** 2) ** 0.5
    n_moles = int(torch.randint(prm.moles_range[0], prm.moles_range[1] + 1, (), generator=g))
    mole_h = torch.zeros(1, r, r, device=dev)
    moles = []
    for _ in range(n_moles):
        mx = _u(g, -0.32, 0.32)
        mvv = _u(g, 0.2, 0.92)
        rad = _u(g, 0.0025, 0.0065)
        amp = _u(g, 1.0, 2.6)
        d = torch.sqrt((x - mx) ** 2 + (v - mvv) ** 2)
        disc = _sig(rad - d, 0.5 / r + 0.15 * rad)
        out = out + amp * disc
        mole_h = mole_h + 0.004 * _u(g) * disc
        moles.append((mx, mvv, rad))
    return out, mole_h, moles


def skin_albedo(c: _Canvas, undertone, mel, hem, m0: float, h0: float):
    """The Beer-Lambert albedo ``[3,H,W]`` of the maps, and the mean skin colour ``[3]`` (for painting)."""
    dev = c.dev
    ln_b = _LN_B0.to(dev) + undertone.to(dev)
    albedo = torch.exp(ln_b - mel * _SIGMA_MEL.to(dev) - (hem - 1.0) * _SIGMA_HEM.to(dev))
    skin_mean = torch.exp(ln_b - m0 * _SIGMA_MEL.to(dev) - (h0 - 1.0) * _SIGMA_HEM.to(dev)).view(3)
    return albedo, skin_mean
