"""Colour science: light source spectra to linear sRGB, and the skin, hair and iris colours.

Light colours are black-body spectra integrated against the CIE 1931 colour-matching
functions, converted to linear sRGB and balanced to 6504 K (the sRGB white); skin
reflectance comes from a two-chromophore (melanin / haemoglobin) Beer-Lambert model whose
constants live here.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["blackbody_rgb"]

_LAMBDA_NM = np.arange(380.0, 781.0, 5.0)


def _g(x, mu, s1, s2):
    s = np.where(x < mu, s1, s2)
    return np.exp(-0.5 * ((x - mu) / s) ** 2)


def _cie_cmf(lam: np.ndarray) -> np.ndarray:
    """CIE 1931 2-degree colour matching functions, multi-lobe Gaussian fit (Wyman et al. 2013)."""
    x = 1.056 * _g(lam, 599.8, 37.9, 31.0) + 0.362 * _g(lam, 442.0, 16.0, 26.7) - 0.065 * _g(lam, 501.1, 20.4, 26.2)
    y = 0.821 * _g(lam, 568.8, 46.9, 40.5) + 0.286 * _g(lam, 530.9, 16.3, 31.1)
    z = 1.217 * _g(lam, 437.0, 11.8, 36.0) + 0.681 * _g(lam, 459.0, 26.0, 13.8)
    return np.stack([x, y, z], 1)


_XYZ2RGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
_CMF = _cie_cmf(_LAMBDA_NM)


def _planck_rgb_raw(t_kelvin: float) -> np.ndarray:
    lam = _LAMBDA_NM * 1e-9
    spd = lam**-5.0 / np.expm1(1.4388e-2 / (lam * t_kelvin))
    return _XYZ2RGB @ (spd @ _CMF)


_WHITE = _planck_rgb_raw(6504.0)
_LUMA = np.array([0.2126, 0.7152, 0.0722])


def blackbody_rgb(t_kelvin: float) -> np.ndarray:
    """Linear-sRGB colour of a black body at ``t_kelvin``, white-balanced to 6504 K, unit luminance."""
    rgb = np.clip(_planck_rgb_raw(float(t_kelvin)) / _WHITE, 1e-3, None)
    return rgb / float(rgb @ _LUMA)


# Chromophore model constants (linear sRGB bands): ln reflectance of very fair skin with
# nominal haemoglobin, melanin and haemoglobin absorption per unit concentration.
_LN_B0 = torch.tensor([-0.22, -0.56, -0.80]).view(3, 1, 1)
_SIGMA_MEL = torch.tensor([0.80, 0.92, 1.00]).view(3, 1, 1)
_SIGMA_HEM = torch.tensor([0.06, 0.42, 0.30]).view(3, 1, 1)

_HAIR_PALETTE = torch.tensor(
    [
        [0.012, 0.009, 0.007],  # black
        [0.035, 0.020, 0.012],  # dark brown
        [0.090, 0.048, 0.022],  # brown
        [0.280, 0.170, 0.075],  # dark blond
        [0.500, 0.360, 0.180],  # blond
        [0.230, 0.070, 0.025],  # red
        [0.300, 0.290, 0.280],  # grey
    ]
)
_HAIR_P = torch.tensor([0.30, 0.26, 0.17, 0.09, 0.06, 0.05, 0.07])
_IRIS_PALETTE = torch.tensor(
    [[0.045, 0.020, 0.008], [0.10, 0.06, 0.02], [0.07, 0.10, 0.14], [0.07, 0.09, 0.045], [0.08, 0.08, 0.09]]
)
_IRIS_P = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05])
# ground bounce tints: warm, green (grass), neutral, cool
_GROUND_TINTS = torch.tensor([[1.0, 0.85, 0.65], [0.75, 1.0, 0.6], [1.0, 1.0, 1.0], [0.8, 0.85, 1.0]])
