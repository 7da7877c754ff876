"""What the built-in identity encoders share: a FaceCrop adapter, frozen weights, eval mode."""

from __future__ import annotations

import abc
from typing import Sequence

import torch

from lift.components import IdentityEncoder
from lift_identity.crop import FaceCrop


class FrozenIdentityEncoder(IdentityEncoder):
    """A pretrained face-recognition network behind a ``FaceCrop``.

    ``forward(texture, mask=None)`` crops (and masks) the texture and returns ``embed`` of the
    crop. Gradients flow to the texture (Eq. 4 back-propagates through F), never into the
    weights, and batch norm / dropout stay in eval mode inside training loops.
    """

    input_size: int

    def __init__(self, box: Sequence[float]):
        super().__init__()
        self.crop = FaceCrop(box, self.input_size)

    @abc.abstractmethod
    def embed(self, chip: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, embedding_dim]`` of face chips ``[B,3,S,S]`` in [0,1] (RGB)."""

    def forward(self, texture: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.embed(self.crop(texture, mask))

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True):
        return super().train(False)
