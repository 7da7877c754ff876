"""Upsampler: low-resolution studio texture -> high-resolution texture (Sect 3.2)."""

from __future__ import annotations

import abc
from typing import Mapping

import torch
from torch import nn


class Upsampler(nn.Module, abc.ABC):
    """A trainable upsampler; ``phone`` is the full-resolution phone texture (Eq. 13-14).

    Whether and when the phone texture's gradient conditions the process (Table 3) is the
    upsampler's configuration, not the stage's.
    """

    kind = "upsampler"

    @abc.abstractmethod
    def training_losses(
        self, low_res: torch.Tensor, high_res: torch.Tensor, phone: torch.Tensor | None
    ) -> Mapping[str, torch.Tensor]:
        """Return unweighted loss terms for one batch of paired crops."""

    @abc.abstractmethod
    def upsample(
        self, low_res: torch.Tensor, phone: torch.Tensor | None = None, *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Return the high-resolution texture for ``low_res`` (``phone`` at the target size)."""
