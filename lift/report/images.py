"""Display images of the report: linear textures sRGB-encoded, masks as they are, crops.

Crop boxes are ``[top, left, height, width]`` in fractions of the texture (so they do not
depend on resolution). The defaults are for lift's synthetic UV layout
(``lift/data/synth``: eyes at v ~ 0.40, u = 0.5 +- 0.11, brows ~ 0.06 above; mouth at
v ~ 0.64, half-width ~ 0.08; moles anywhere on the face, freckles around the nose and
cheeks); other layouts set theirs in the recipe's ``report.crops``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from lift.atomic import atomic_path
from lift.colour import linear_to_srgb

#: name -> (top, left, height, width) in fractions of the texture.
DEFAULT_CROPS: dict[str, tuple[float, float, float, float]] = {
    "eyes": (0.32, 0.30, 0.14, 0.40),
    "lips": (0.57, 0.37, 0.13, 0.26),
    "cheek (moles, freckles)": (0.44, 0.20, 0.18, 0.18),
}
CROP_COLOURS = ((230, 60, 60), (40, 160, 60), (50, 100, 230), (220, 150, 0), (160, 60, 200))


def check_crops(crops: Mapping[str, Sequence[float]] | None) -> dict[str, tuple[float, ...]]:
    """The recipe's ``report.crops`` validated (None: the defaults)."""
    if crops is None:
        return dict(DEFAULT_CROPS)
    out = {}
    for name, box in dict(crops).items():
        try:
            t, l, h, w = (float(v) for v in box)
        except (TypeError, ValueError):
            raise ValueError(f"report.crops.{name}: expected [top, left, height, width] "
                             f"fractions, got {box!r}") from None
        if min(t, l) < 0 or h <= 0 or w <= 0 or t + h > 1 + 1e-9 or l + w > 1 + 1e-9:
            raise ValueError(f"report.crops.{name}: box {[t, l, h, w]} is not inside the "
                             "texture (fractions of its height and width)")
        out[str(name)] = (t, l, h, w)
    return out


def box_pixels(box: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """``(r0, c0, r1, c1)`` texel bounds of a fractional box (at least one texel)."""
    t, l, h, w = box
    r0, c0 = int(round(t * height)), int(round(l * width))
    r1 = max(r0 + 1, min(height, int(round((t + h) * height))))
    c1 = max(c0 + 1, min(width, int(round((l + w) * width))))
    return r0, c0, r1, c1


def display_array(tensor: torch.Tensor, colour: bool = True) -> np.ndarray:
    """uint8 ``[H, W, 3]`` display values of a ``[C, H, W]`` linear texture or mask."""
    x = tensor.detach().float().cpu().clamp(0, 1)
    if x.ndim == 4:
        x = x[0]
    if colour and x.shape[0] == 3:
        x = linear_to_srgb(x).clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return (x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def fit_size(tensor: torch.Tensor, max_side: int) -> torch.Tensor:
    """Shrink ``[C, H, W]`` (area) so its longer side is at most ``max_side``."""
    h, w = tensor.shape[-2:]
    if max(h, w) <= max_side:
        return tensor
    scale = max_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(tensor[None].float(), size=size, mode="area")[0]


def save_png(array: np.ndarray, path: Path) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", optimize=True)
    return path


def enlarge(array: np.ndarray, min_side: int) -> np.ndarray:
    """Nearest upscaling by the smallest integer factor giving a shorter side >= min_side."""
    factor = max(1, math.ceil(min_side / max(1, min(array.shape[:2]))))
    if factor == 1:
        return array
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def draw_boxes(array: np.ndarray, crops: Mapping[str, Sequence[float]]) -> np.ndarray:
    """``array`` with each crop box outlined in its colour."""
    image = Image.fromarray(array.copy())
    draw = ImageDraw.Draw(image)
    h, w = array.shape[:2]
    width = max(1, round(min(h, w) / 128))
    for i, box in enumerate(crops.values()):
        r0, c0, r1, c1 = box_pixels(box, h, w)
        draw.rectangle([c0, r0, c1 - 1, r1 - 1], outline=CROP_COLOURS[i % len(CROP_COLOURS)],
                       width=width)
    return np.asarray(image)


def write_texture_views(tensor: torch.Tensor, folder: Path, name: str,
                        crops: Mapping[str, Sequence[float]], *, colour: bool = True,
                        max_side: int = 256, crop_min_side: int = 96,
                        outline: bool = False) -> dict[str, Path]:
    """Write ``<name>.png`` (the whole texture, at most ``max_side``) and
    ``<name>_<crop>.png`` (each crop at full resolution, enlarged by an integer factor).
    Returns ``{"full": path, <crop name>: path, ...}``."""
    full = display_array(fit_size(tensor, max_side), colour)
    if outline:
        full = draw_boxes(full, crops)
    out = {"full": save_png(full, folder / f"{name}.png")}
    native = display_array(tensor, colour)
    for i, (crop, box) in enumerate(crops.items()):
        r0, c0, r1, c1 = box_pixels(box, native.shape[0], native.shape[1])
        out[crop] = save_png(enlarge(native[r0:r1, c0:c1], crop_min_side),
                             folder / f"{name}_crop{i}.png")
    return out
