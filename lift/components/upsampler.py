"""Upsampler: low-resolution studio texture -> high-resolution texture (Sect 3.2)."""

from __future__ import annotations

import abc
from typing import Mapping

import torch
from torch import nn

from lift.components.gradient_operator import GradientOperator
from lift.spec import Recordable


class Upsampler(Recordable, nn.Module, abc.ABC):
    """A trainable ``scale_factor``-times upsampler driven by the upsampling stage.

    ``phone`` is the full-resolution phone texture (at the output size). Whether and when its
    gradient conditions the process (Table 3: Eq. 13 in training, Eq. 14 at inference) is the
    upsampler's configuration, not the stage's.

    Attributes every implementation sets in ``__init__``:
        scale_factor: output size / input size (an integer; ResShift: 4).
        gradient_operator: (optional) the G of Eq. 13-14 the upsampler conditions on, or None;
            the stage shows G(I_phone) in the validation grid when it is set.
        loss_terms: every term name ``training_losses`` may return (checked against the
            configured loss weights).
    """

    kind = "upsampler"
    scale_factor: int
    gradient_operator: GradientOperator | None  # no class default: nn.Module registers it
    loss_terms: tuple[str, ...] = ()

    @abc.abstractmethod
    def training_losses(
        self, low_res: torch.Tensor, high_res: torch.Tensor, phone: torch.Tensor | None
    ) -> Mapping[str, torch.Tensor]:
        """Unweighted loss terms for one batch of paired crops: ``low_res`` ``[B,3,h,w]``,
        ``high_res`` ``[B,3,h*s,w*s]``, ``phone`` like ``high_res`` or None; all in [0,1]."""

    @abc.abstractmethod
    def upsample(
        self,
        low_res: torch.Tensor,
        phone: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        tile_size: int | None = None,
        tile_overlap: int = 0,
        num_inference_steps: int | None = None,
    ) -> torch.Tensor:
        """The high-resolution texture ``[B,3,h*s,w*s]`` in [0,1] for ``low_res``.

        ``generator`` seeds any sampling noise; ``tile_size`` / ``tile_overlap`` (output
        pixels; None: whole texture) bound memory at large sizes; ``num_inference_steps``
        overrides an iterative sampler's step count (None: its own; ignored by one-pass
        upsamplers)."""
