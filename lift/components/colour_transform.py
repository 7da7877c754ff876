"""ColourTransform: the neutral -> expression colour transfer of Sect 3.3 (Eq. 15-16)."""

from __future__ import annotations

import abc

import torch
from torch import nn
from lift.spec import Recordable


class ColourTransform(Recordable, nn.Module, abc.ABC):
    """Fits a colour transform from a phone texture to its studio-lit version, then applies it.

    Eq. 15 fits the transform that maps the neutral phone texture ``I_phone`` onto the
    studio-lit neutral texture ``I*`` over the visible texels; Eq. 16 applies it to every
    phone expression texture ``I_exp_phone`` of the same capture. Textures are linear RGB
    ``[B,C,H,W]`` in [0, 1]; masks ``[B,1,H,W]`` (1 = visible) or None (all visible).
    """

    kind = "colour_transform"

    @abc.abstractmethod
    def fit(self, source: torch.Tensor, target: torch.Tensor,
            mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Eq. 15: the transform's parameter maps (e.g. ``{"gain": [B,C,k,k], "bias": ...}``)
        that best map ``source`` onto ``target`` over the texels where ``mask`` is 1."""

    @abc.abstractmethod
    def apply(self, params: dict[str, torch.Tensor], texture: torch.Tensor) -> torch.Tensor:
        """Eq. 16: ``texture`` (``[B,C,H,W]``, any size) transformed by ``fit``'s ``params``."""
