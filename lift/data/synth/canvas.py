"""What the identity steps (:mod:`.skin`, :mod:`.relief`, :mod:`.features`) share."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lift.data.synth.geometry import UVLayout
from lift.data.synth.params import IdentityParams


@dataclass
class _Canvas:
    """The identity's random stream ``g`` and the UV layout its features are drawn in.

    ``x`` ``[1,1,W]`` and ``v`` ``[1,H,1]`` broadcast to ``[1,H,W]`` where they combine, so
    separable expressions stay cheap; ``ax = |x|`` is for left/right-symmetric features.
    Every step draws from ``g`` in a fixed order: the identity depends on that order.
    """

    g: torch.Generator
    uv: UVLayout
    params: IdentityParams

    def __post_init__(self):
        self.r = self.uv.resolution
        self.dev = self.uv.device
        self.x, self.v = self.uv.x1, self.uv.v1
        self.ax = self.x.abs()


@dataclass
class _Looks:
    """Hair, eyes and beard of an identity (colours and densities)."""

    hair_col: torch.Tensor  # [3,1,1]
    iris_col: torch.Tensor  # [3,1,1]
    bald: bool
    hair_density: float
    hairline_front: float
    temple: float
    beard: bool
    beard_density: float
