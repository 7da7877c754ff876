"""The UV-texture -> face-crop adapter shared by the FaceID loss (Eq. 4) and metric (Table 2).

The paper feeds F with renders of the textures; without a renderer we crop the face region of
the UV layout instead. The box is given in fractions of the texture's height and width, so it
does not depend on resolution, but it does depend on the UV layout: the defaults below are
for lift's synthetic layout (lift/data/synth/identity.py: brows v ~ 0.33, eyes v ~ 0.40 at
u = 0.5 +- 0.11, mouth v ~ 0.64, chin v ~ 0.78). Data with another layout must set its own.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class FaceBox(NamedTuple):
    """A crop box in fractions of the texture: ``(top, left, height, width)``."""

    top: float
    left: float
    height: float
    width: float


def face_box_for_template(eye_y: float, eye_spacing: float, eye_x: float = 0.5,
                          uv_eye_v: float = 0.40, uv_eye_spacing: float = 0.22,
                          uv_eye_u: float = 0.5) -> FaceBox:
    """The square box that puts the UV layout's eyes where an encoder's alignment template
    expects them (template positions in fractions of its input, e.g. dlib's or ArcFace's)."""
    side = uv_eye_spacing / eye_spacing
    return FaceBox(top=round(uv_eye_v - eye_y * side, 2), left=round(uv_eye_u - eye_x * side, 2),
                   height=round(side, 2), width=round(side, 2))


class FaceCrop(nn.Module):
    """Crop ``box`` out of a texture ``[B,3,H,W]``, optionally mask it, and resize the crop to
    ``size x size`` (bilinear, antialiased). Differentiable in the texture.

    Args:
        box: ``(top, left, height, width)`` in fractions of the texture's height / width.
        size: the encoder's input side (150 for dlib, 112 for ArcFace).
    """

    def __init__(self, box: Sequence[float], size: int):
        super().__init__()
        box = FaceBox(*(float(v) for v in box))
        if min(box) < 0 or box.height <= 0 or box.width <= 0:
            raise ValueError(f"face box must have top, left >= 0 and a positive size, got {box}")
        if box.top + box.height > 1 + 1e-9 or box.left + box.width > 1 + 1e-9:
            raise ValueError(f"face box {box} reaches outside the texture")
        if size < 1:
            raise ValueError(f"crop size must be positive, got {size}")
        self.box = box
        self.size = int(size)

    def extra_repr(self) -> str:
        return f"box={tuple(self.box)}, size={self.size}"

    def rows_cols(self, height: int, width: int) -> tuple[slice, slice]:
        """The texel rows and columns the box covers at a given resolution (at least one)."""
        t, l, h, w = self.box
        r0, c0 = round(t * height), round(l * width)
        r1 = max(r0 + 1, min(height, round((t + h) * height)))
        c1 = max(c0 + 1, min(width, round((l + w) * width)))
        return slice(r0, r1), slice(c0, c1)

    def forward(self, texture: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if texture.ndim != 4 or texture.shape[1] != 3:
            raise ValueError(f"FaceCrop expects textures [B,3,H,W], got {tuple(texture.shape)}")
        b, _, height, width = texture.shape
        if mask is not None:
            if mask.shape != (b, 1, height, width):
                raise ValueError(f"FaceCrop expects a mask of shape {(b, 1, height, width)}, "
                                 f"got {tuple(mask.shape)}")
            # Unseen texels become 0, as in an unwrapped phone texture.
            texture = texture * mask.to(texture.dtype)
        rows, cols = self.rows_cols(height, width)
        crop = texture[:, :, rows, cols]
        if crop.shape[-2:] == (self.size, self.size):
            return crop
        return F.interpolate(crop, size=(self.size, self.size), mode="bilinear",
                             align_corners=False, antialias=True)
