"""The FaceID metric of Table 2: identity distance between a translated texture and its input."""

from __future__ import annotations

import torch

from lift.components import IdentityEncoder
from lift_metrics.sample_mean import SampleMean


class FaceID(SampleMean):
    """Mean over textures of ``||F(preds) - F(target)||_2^2`` (Eq. 4 as a metric, Table 2:
    the translated texture against the phone input); lower is better.

    Args:
        encoder: the face-recognition network F, e.g. ``DlibResNet`` (offline default) or
            ``ArcFace``; it owns the texture -> face-crop adapter, so this metric and the
            Eq. 4 loss see the same input.

    ``update(preds, target, mask=None)``: with the phone input's visibility mask ``[B,1,H,W]``,
    both textures are masked before the crop, so holes in the input are not counted as
    identity changes.
    """

    name = "FaceID"
    higher_is_better = False
    is_differentiable = False
    supports_mask = True

    def __init__(self, encoder: IdentityEncoder, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(encoder, IdentityEncoder):
            raise TypeError(f"encoder must be an IdentityEncoder, got {type(encoder)}")
        self.encoder = encoder

    def _embed(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.encoder(x) if mask is None else self.encoder(x, mask=mask)

    def update(
        self, preds: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        self.check_inputs(preds, target)
        if preds.shape[0] == 0:
            return
        with torch.no_grad():
            a, b = self._embed(preds, mask), self._embed(target, mask)
        if a.shape != b.shape or a.ndim != 2 or a.shape[0] != preds.shape[0]:
            raise ValueError(f"{type(self.encoder).__name__} returned embeddings of shapes "
                             f"{tuple(a.shape)} and {tuple(b.shape)}, expected [B, D]")
        self.accumulate((a.double() - b.double()).pow(2).sum(dim=1))
