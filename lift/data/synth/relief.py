"""The height field ``h`` of an identity (in head radii) over the head surface.

Nose (ridge, rounded tip, alae, nostrils), brow ridges, eye sockets and eyeballs,
cheekbones, lips, philtrum, chin and forehead; age-dependent forehead lines and nasolabial
folds; ears (a raised auricle with a helix rim and a concha cavity); and a recessed neck
below the jaw line, which the jaw shadows and where normals turn down.
"""

from __future__ import annotations

import math

import torch

from lift.data.synth.canvas import _Canvas
from lift.data.synth.ops import _blob, _sig


def face_relief(c: _Canvas, p: dict, eyes: list[dict], lips: torch.Tensor):
    """Nose, eyes, cheeks, mouth, chin and forehead; returns ``h`` and the nostril map."""
    x, v, ax = c.x, c.v, c.ax
    h = torch.zeros(1, c.r, c.r, device=c.dev)
    nv, nw, nh = p["nose_v"], p["nose_w"], p["nose_h"]
    mv = p["mouth_v"]
    bridge_v = eyes[0]["eye_v"] * 0.5 + eyes[1]["eye_v"] * 0.5 - 0.02
    tn = ((v - bridge_v) / (nv - bridge_v)).clamp(0, 1)
    below = torch.exp(-0.5 * ((v - nv).clamp(min=0) / 0.011) ** 2)  # rounded tip, short underside
    prof = (0.15 + 0.85 * tn**1.5) * below * _sig(v - bridge_v + 0.03, 0.01)
    width = 0.012 + 0.011 * tn
    h = h + nh * prof * torch.exp(-0.5 * (x / width) ** 2)
    h = h + 0.07 * _blob(ax, v, nw * 0.55, nv + 0.003, 0.016, 0.012)  # alae
    nostril = _blob(ax, v, nw * 0.33, nv + 0.014, 0.010, 0.0045)
    h = h - 0.05 * nostril
    for sg, e_ in ((-1, eyes[0]), (1, eyes[1])):
        ex, ev = sg * e_["eye_x"], e_["eye_v"]
        h = h - 0.07 * _blob(x, v, ex, ev, 0.05, 0.03)  # socket
        h = h + 0.035 * _blob(x, v, ex, ev, 0.035, 0.014)  # eyeball / lids
        h = h + 0.04 * _blob(x, v, ex * 0.95, ev - e_["brow_dv"] + 0.005, 0.06, 0.02)  # brow ridge
    h = h + 0.06 * _blob(ax, v, 0.15, 0.48, 0.05, 0.04)  # cheekbones
    h = h + 0.05 * lips.clamp(0, 1) * (1.0 - 0.3 * torch.exp(-0.5 * ((v - mv) / 0.004) ** 2))
    h = h - 0.02 * _blob(ax, v, p["mouth_w"], mv, 0.008, 0.008)  # mouth corners
    h = h - 0.012 * _blob(x, v, 0.0, (nv + mv) / 2, 0.006, 0.02)  # philtrum
    h = h + 0.07 * _blob(x, v, 0.0, p["chin_v"] - 0.03, 0.05, 0.03)  # chin
    h = h + 0.03 * _blob(x, v, 0.0, 0.2, 0.2, 0.08)  # forehead
    return h, nostril


def wrinkles(c: _Canvas, p: dict, h: torch.Tensor) -> torch.Tensor:
    """Forehead lines and nasolabial folds, scaled by the identity's "age"."""
    x, v = c.x, c.v
    age = p["age"]
    if age > 0:
        nv, nw, mv = p["nose_v"], p["nose_w"], p["mouth_v"]
        fl = torch.sin(2 * math.pi * (v - 0.2) / 0.022) * _blob(x, v, 0.0, 0.24, 0.12, 0.045)
        h = h - 0.004 * age * fl.clamp(min=0) ** 3
        for sg in (-1, 1):
            # nasolabial folds from the alae to the mouth corners
            p0x, p0v = sg * nw * 0.6, nv
            p1x, p1v = sg * (p["mouth_w"] + 0.02), mv + 0.02
            dx_, dv_ = p1x - p0x, p1v - p0v
            ll = dx_ * dx_ + dv_ * dv_
            tt = (((x - p0x) * dx_ + (v - p0v) * dv_) / ll).clamp(0, 1)
            dist = torch.sqrt((x - p0x - tt * dx_) ** 2 + (v - p0v - tt * dv_) ** 2)
            h = h - 0.015 * (0.3 + age) * torch.exp(-0.5 * (dist / 0.004) ** 2) * torch.sin(math.pi * tt)
    return h


def ears(c: _Canvas, p: dict, sides: list[dict], h: torch.Tensor):
    """Auricles at ``x = +-x_ear``; returns ``h`` and the ears' coverage, records ``p["ears"]``."""
    x, v = c.x, c.v
    ear_cov = torch.zeros(1, c.r, c.r, device=c.dev)
    p["ears"] = []
    for sg, e_ in ((-1, sides[0]), (1, sides[1])):
        ex = sg * c.uv.x_ear
        ew = p["ear_w"]
        rr = torch.sqrt(((x - ex) / ew) ** 2 + ((v - e_["ear_v"]) / e_["ear_h"]) ** 2)
        cov = _sig(1.0 - rr, 0.06)
        ear_cov = ear_cov + cov
        h = h + 0.12 * cov + 0.04 * torch.exp(-0.5 * ((rr - 0.82) / 0.07) ** 2) * cov
        h = h - 0.08 * _blob(x, v, ex - sg * 0.004, e_["ear_v"] + 0.015, 0.45 * ew, 0.35 * e_["ear_h"])
        p["ears"].append((ex, e_["ear_v"], ew, e_["ear_h"]))
    return h, ear_cov


def recessed_neck(c: _Canvas, p: dict, h: torch.Tensor) -> torch.Tensor:
    """The neck is recessed below the jaw: the jaw casts shadows onto it and normals turn down."""
    jaw = c.uv.jaw_v(p["chin_v"])
    return h - 0.1 * _sig(c.v - (jaw + 0.5 * p["under_chin_w"]), 0.012) * _sig(84.0 - c.uv.aphi_deg, 5.0)
