"""PerceptualDistance: LPIPS-like distances used in Eq. 1, 5, 6 and as metrics."""

from __future__ import annotations

import abc

import torch
from torch import nn
from lift.spec import Recordable


class PerceptualDistance(Recordable, nn.Module, abc.ABC):
    """Distance between two batches of RGB textures in [0,1]; returns one value per sample.

    Implementations are frozen (no trainable parameters) and differentiable w.r.t. inputs.
    """

    kind = "perceptual_distance"

    @abc.abstractmethod
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return ``[B]`` distances between ``x`` and ``y`` (both ``[B,3,H,W]`` in [0,1])."""
