"""IdentityEncoder: the face-recognition network F of Eq. 4 and the FaceID metric."""

from __future__ import annotations

import abc

import torch
from torch import nn
from lift.spec import Recordable


class IdentityEncoder(Recordable, nn.Module, abc.ABC):
    """Maps a UV texture ``[B,3,H,W]`` in [0,1] to identity embeddings ``[B,D]``.

    The texture-to-face-crop adapter belongs to the encoder, so the loss (Eq. 4) and the
    FaceID metric (Table 2) see exactly the same input.
    """

    kind = "identity_encoder"
    embedding_dim: int

    @abc.abstractmethod
    def forward(self, texture: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return one embedding per texture, ``[B, embedding_dim]``.

        ``mask`` ``[B,1,H,W]`` (1 = visible) blanks texels the capture did not see in the
        encoder's input, so holes are not read as identity changes (FaceID on phone inputs)."""
