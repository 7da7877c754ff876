"""GradientOperator: the image-gradient operator G of Eq. 13-14."""

from __future__ import annotations

import abc

import torch
from torch import nn
from lift.spec import Recordable


class GradientOperator(Recordable, nn.Module, abc.ABC):
    """Maps a texture ``[B,C,H,W]`` to a signed detail image of the same shape.

    Eq. 13 adds ``G(I_phone)`` to the low-resolution studio texture, so the output lives in
    image units (a detail layer), not a gradient magnitude in arbitrary units.
    """

    kind = "gradient_operator"

    @abc.abstractmethod
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Return the detail image of ``image`` (same shape, same dtype)."""
