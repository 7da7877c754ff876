"""An identity: albedo, height field and oiliness of one subject, from its own random stream.

The steps run in a fixed order because they share one random stream (``(seed, index, 0)``):
chromophores (:mod:`.skin`), feature positions and sizes (symmetric base + per-side
jitter), looks (hair, eyes, beard), spots, relief (:mod:`.relief`) and painted features
(:mod:`.features`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lift.data.synth import features, relief, skin
from lift.data.synth.canvas import _Canvas, _Looks
from lift.data.synth.colour import _HAIR_P, _HAIR_PALETTE, _IRIS_P, _IRIS_PALETTE, _SIGMA_HEM
from lift.data.synth.geometry import UVLayout
from lift.data.synth.ops import _gen, _n, _u
from lift.data.synth.params import IdentityParams

__all__ = ["_Identity", "build_identity"]

# (name, lo, hi) of the symmetric feature parameters, drawn in this order
_FEATURES = (
    ("eye_x", 0.100, 0.118),
    ("eye_v", 0.385, 0.415),
    ("eye_w", 0.040, 0.050),
    ("eye_h", 0.013, 0.019),
    ("brow_dv", 0.055, 0.075),
    ("brow_th", 0.006, 0.013),
    ("brow_arch", 0.004, 0.014),
    ("nose_v", 0.53, 0.56),
    ("nose_w", 0.045, 0.062),
    ("nose_h", 0.15, 0.24),
    ("mouth_v", 0.625, 0.655),
    ("mouth_w", 0.070, 0.095),
    ("lip_up", 0.014, 0.024),
    ("lip_lo", 0.018, 0.030),
    ("chin_v", 0.765, 0.80),
    ("under_chin_w", 0.035, 0.06),
    ("under_chin_z", 0.0, 0.25),
    ("ear_v", 0.42, 0.46),
    ("ear_h", 0.085, 0.11),
    ("ear_w", 0.024, 0.032),
    ("cheek", 0.03, 0.08),
)


@dataclass
class _Identity:
    albedo: torch.Tensor  # [3,H,W]
    height: torch.Tensor  # [1,H,W] head radii
    oil: torch.Tensor  # [1,H,W] specular weight
    skin: torch.Tensor  # [3] mean skin colour (for painting)
    p: dict  # feature parameters


def _feature_params(c: _Canvas):
    """Feature positions / sizes: ``p``, per-side eyes and ears, and the two mouth corners."""
    g, jit = c.g, c.params.feature_jitter

    def side_params(base: dict) -> list[dict]:
        return [{k: val + _n(g, jit) for k, val in base.items()} for _ in (0, 1)]

    p: dict = {name: _u(g, lo, hi) for name, lo, hi in _FEATURES}
    p["age"] = _u(g, *c.params.wrinkle_range)
    eyes = side_params({k: p[k] for k in ("eye_x", "eye_v", "eye_w", "eye_h", "brow_dv", "brow_th")})
    ears = side_params({"ear_v": p["ear_v"], "ear_h": p["ear_h"]})
    mouth_corner = [p["mouth_w"] + _n(g, jit), p["mouth_w"] + _n(g, jit)]
    return p, eyes, ears, mouth_corner


def _looks(c: _Canvas) -> _Looks:
    g, dev, prm = c.g, c.dev, c.params
    hair_i = int(torch.multinomial(_HAIR_P, 1, generator=g))
    hair_col = (_HAIR_PALETTE[hair_i] * torch.exp(torch.randn(3, generator=g) * 0.12)).view(3, 1, 1).to(dev)
    iris_i = int(torch.multinomial(_IRIS_P, 1, generator=g))
    iris_col = (_IRIS_PALETTE[iris_i] * torch.exp(torch.randn(3, generator=g) * 0.1)).view(3, 1, 1).to(dev)
    bald = _u(g) < prm.bald_prob
    hair_density = _u(g, 0.0, 0.25) if bald else _u(g, 0.75, 1.0)
    hairline_front = _u(g, 0.10, 0.18) + (0.05 if bald else 0.0)
    temple = _u(g, 0.0, 0.05)
    beard = _u(g) < prm.beard_prob
    beard_density = _u(g, 0.2, 0.75)
    return _Looks(hair_col, iris_col, bald, hair_density, hairline_front, temple, beard, beard_density)


def build_identity(uv: UVLayout, params: IdentityParams, seed: int, index: int) -> _Identity:
    """Albedo, height, oiliness and feature parameters of subject ``index``."""
    c = _Canvas(_gen(seed, index, 0), uv, params)
    m0, h0, undertone, nm, mel, hem = skin.chromophores(c)
    p, eyes, ears, mouth_corner = _feature_params(c)
    looks = _looks(c)
    p["beard"] = looks.beard
    lips = skin.lip_mask(c, p, mouth_corner)
    mel, hem = skin.regional_chromophores(c, p, eyes, lips, mel, hem, m0)
    spots, mole_h, p["moles"] = skin.spots(c, m0)
    albedo, skin_mean = skin.skin_albedo(c, undertone, mel + spots, hem, m0, h0)

    h, nostril = relief.face_relief(c, p, eyes, lips)
    h = relief.wrinkles(c, p, h)
    h, ear_cov = relief.ears(c, p, ears, h)
    h = relief.recessed_neck(c, p, h + mole_h)
    # ears are ruddier (haemoglobin), applied to the finished skin albedo
    albedo = albedo * torch.exp(-_SIGMA_HEM.to(c.dev) * 0.3 * ear_cov)

    albedo, cover = features.hair(c, looks, ear_cov, nm, albedo)
    fine = torch.randn(1, c.r, c.r, generator=c.g).to(c.dev)  # shared by the beard and the irises
    albedo = features.brows(c, p, eyes, looks, albedo)
    if looks.beard:
        albedo = features.beard(c, p, looks, lips, fine, albedo)
    albedo, h = features.eyes(c, eyes, looks, fine, albedo, h)
    albedo = features.nostrils_and_mouth_line(c, p, nostril, albedo)
    albedo, h = features.pores(c, albedo, h)
    oil = features.oiliness(c, p, eyes, lips, cover, looks.hair_density)

    p["eyes"] = eyes
    p["mouth_corner"] = mouth_corner
    p["m0"], p["h0"] = m0, h0
    p["hair_color"] = looks.hair_col.view(3).tolist()
    return _Identity(albedo=albedo, height=h, oil=oil, skin=skin_mean, p=p)
