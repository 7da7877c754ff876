"""The sRGB transfer function (IEC 61966-2-1), for showing linear textures on a display.

lift's textures are *linear* light in [0, 1] (see ``lift.data.io``). A display expects
sRGB-encoded values, so linear values shown as they are look too dark. These functions apply
the piecewise sRGB curve (a linear segment near black, then a 1/2.4 power with offset), not a
bare 2.2 gamma:

    encode:  x <= 0.0031308  ->  12.92 x,        else  1.055 x^(1/2.4) - 0.055
    decode:  y <= 0.04045    ->  y / 12.92,      else  ((y + 0.055) / 1.055)^2.4

Both accept a ``torch.Tensor`` or a NumPy array (any shape, float) and return the same kind.
Values below 0 follow the linear segment; nothing is clamped at 1.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

_LINEAR_CUT = 0.0031308  # linear value where the two segments meet
_SRGB_CUT = 0.04045  # = 12.92 * _LINEAR_CUT (to 4 decimals, as the standard gives it)
_SLOPE = 12.92
_A = 0.055
_GAMMA = 2.4

ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)


def linear_to_srgb(x: ArrayT) -> ArrayT:
    """Encode linear values with the sRGB transfer curve (display values in [0, 1])."""
    if isinstance(x, torch.Tensor):
        x = x if x.is_floating_point() else x.float()
        curve = (1 + _A) * x.clamp(min=_LINEAR_CUT).pow(1 / _GAMMA) - _A
        return torch.where(x <= _LINEAR_CUT, _SLOPE * x, curve)
    x = np.asarray(x, dtype=np.result_type(x, np.float32))
    curve = (1 + _A) * np.power(np.maximum(x, _LINEAR_CUT), 1 / _GAMMA) - _A
    return np.where(x <= _LINEAR_CUT, _SLOPE * x, curve)


def srgb_to_linear(y: ArrayT) -> ArrayT:
    """Decode sRGB-encoded values back to linear light (the inverse of :func:`linear_to_srgb`)."""
    if isinstance(y, torch.Tensor):
        y = y if y.is_floating_point() else y.float()
        curve = ((y.clamp(min=_SRGB_CUT) + _A) / (1 + _A)).pow(_GAMMA)
        return torch.where(y <= _SRGB_CUT, y / _SLOPE, curve)
    y = np.asarray(y, dtype=np.result_type(y, np.float32))
    curve = np.power((np.maximum(y, _SRGB_CUT) + _A) / (1 + _A), _GAMMA)
    return np.where(y <= _SRGB_CUT, y / _SLOPE, curve)
