"""Expressions: smooth displacement warps of the identity's albedo, height and oiliness.

Warps act around the mouth / eyes / brows (smile, open mouth with painted oral cavity and
teeth, blink, brow raise, pucker) and add expression creases.  The synthesizer renders each
with the *same* phone capture as the neutral texture and, as ground truth, with the studio
model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lift.data.synth.geometry import UVLayout
from lift.data.synth.identity import _Identity
from lift.data.synth.ops import _blob, _gen, _sig, _u
from lift.data.synth.params import ExpressionParams

__all__ = ["EXPRESSION_KINDS", "expression"]

EXPRESSION_KINDS = ("smile", "open", "blink", "brow_raise", "pucker")


# Each kind: (x, v, p, k, dx, dv, h_add) -> (dx, dv, h_add, paint); displacements in UV units.
def _smile(x, v, p, k, dx, dv, h_add):
    mv = p["mouth_v"]
    for sg, mc in ((-1, p["mouth_corner"][0]), (1, p["mouth_corner"][1])):
        w = _blob(x, v, sg * mc, mv, 0.05, 0.04)
        dx = dx + sg * 0.026 * k * w
        dv = dv - 0.02 * k * w
        dv = dv - 0.010 * k * _blob(x, v, sg * 0.14, 0.50, 0.05, 0.05)  # cheeks up
        e_ = p["eyes"][0 if sg < 0 else 1]
        dv = dv - 0.005 * k * _blob(x, v, sg * e_["eye_x"], e_["eye_v"] + 0.02, 0.04, 0.01)
        # deepened nasolabial folds
        h_add = h_add - 0.02 * k * _blob(x, v, sg * (mc + 0.012), mv - 0.035, 0.008, 0.035)
    return dx, dv, h_add, None


def _open(x, v, p, k, dx, dv, h_add):
    mv, mw = p["mouth_v"], p["mouth_w"]
    drop = 0.045 * k
    below = _sig(v - mv, 0.004) * torch.exp(-0.5 * (x / 0.16) ** 2) * torch.exp(-0.5 * ((v - mv) / 0.2) ** 2)
    dv = dv + drop * below
    dx = dx - 0.15 * x * k * _blob(x, v, 0, mv, 0.1, 0.04)
    return dx, dv, h_add, (mv, mw * (1 - 0.1 * k), drop)


def _blink(x, v, p, k, dx, dv, h_add):
    for sg, e_ in ((-1, p["eyes"][0]), (1, p["eyes"][1])):
        ex, ev, ew, eh = sg * e_["eye_x"], e_["eye_v"], e_["eye_w"], e_["eye_h"]
        gx = _sig(ew * 1.15 - (x - ex).abs(), 0.006)
        prof = _sig(ev + 0.75 * eh - v, 0.0025) * torch.exp(-0.5 * ((v - ev).clamp(max=0) / 0.03) ** 2)
        dv = dv + 1.75 * eh * k * gx * prof
    return dx, dv, h_add, None


def _brow_raise(x, v, p, k, dx, dv, h_add):
    for sg, e_ in ((-1, p["eyes"][0]), (1, p["eyes"][1])):
        dv = dv - 0.02 * k * _blob(x, v, sg * e_["eye_x"], e_["eye_v"] - e_["brow_dv"], 0.08, 0.04)
    fl = torch.sin(2 * math.pi * (v - 0.2) / 0.022) * _blob(x, v, 0.0, 0.24, 0.14, 0.045)
    h_add = h_add - 0.006 * k * fl.clamp(min=0) ** 3
    return dx, dv, h_add, None


def _pucker(x, v, p, k, dx, dv, h_add):
    mv = p["mouth_v"]
    w = _blob(x, v, 0, mv, 0.09, 0.035)
    dx = dx - 0.35 * x * k * w
    h_add = h_add + 0.03 * k * _blob(x, v, 0, mv, 0.05, 0.02)
    return dx, dv, h_add, None


_KINDS = {"smile": _smile, "open": _open, "blink": _blink, "brow_raise": _brow_raise, "pucker": _pucker}


def _paint_mouth(uv: UVLayout, albedo, height, oil, paint):
    """Paint the oral cavity and the upper teeth into the gap of an open mouth."""
    x, v, r = uv.x1, uv.v1, uv.resolution
    mv_, mw_, drop = paint
    t = (x / mw_).clamp(-1, 1)
    half = 0.5 * drop * (1 - t**2).clamp(min=0) ** 0.5
    c = mv_ + 0.5 * drop
    inner = _sig(half - (v - c).abs(), 1.0 / r) * _sig(mw_ - x.abs(), 1.0 / r)
    cavity = torch.tensor([0.10, 0.025, 0.025], device=uv.device).view(3, 1, 1)
    teeth_band = _sig((mv_ + 0.35 * drop) - v, 1.0 / r) * _sig(0.75 * mw_ - x.abs(), 2.0 / r)
    teeth = torch.tensor([0.55, 0.5, 0.42], device=uv.device).view(3, 1, 1)
    col = cavity * (1 - teeth_band) + teeth * teeth_band
    albedo = albedo * (1 - inner) + inner * col
    height = height - 0.06 * inner * (1 - teeth_band)
    oil = oil + 1.0 * inner
    return albedo, height, oil


def expression(uv: UVLayout, ident: _Identity, j: int, seed: int, index: int, params: ExpressionParams):
    """Warp albedo/height/oiliness for expression ``j``; returns (name, albedo, height, oil, info)."""
    g = _gen(seed, index, 2, j)
    kind = EXPRESSION_KINDS[j % len(EXPRESSION_KINDS)]
    k = _u(g, *params.expression_strength_range)
    r = uv.resolution
    zeros = [torch.zeros(1, r, r, device=uv.device) for _ in range(3)]
    dx, dv, h_add, paint = _KINDS[kind](uv.x1, uv.v1, ident.p, k, *zeros)
    grid = uv.base_grid - torch.stack([dx[0] * 2.0, dv[0] * 2.0], -1)[None]
    stack = torch.cat([ident.albedo, ident.height, ident.oil], 0)[None]
    out = F.grid_sample(stack, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    albedo, height, oil = out[:3], out[3:4] + h_add, out[4:5]
    if paint is not None:
        albedo, height, oil = _paint_mouth(uv, albedo, height, oil, paint)
    return f"exp{j:02d}_{kind}", albedo, height, oil, {"kind": kind, "strength": k}
