"""Translator: phone texture -> studio-lit low-resolution texture (Tables 1, 2)."""

from __future__ import annotations

import abc
from typing import Iterable, Mapping

import torch
from torch import nn


class Translator(nn.Module, abc.ABC):
    """A trainable phone -> studio translator driven by the translation stage.

    The stage alternates a generator phase and a discriminator phase, each calling the
    matching ``*_losses`` method; the translator returns *unweighted* loss terms by name and
    the stage applies the configured weights (a term with no weight is not applied).
    A translator with no discriminator returns no discriminator parameters.
    """

    kind = "translator"

    @abc.abstractmethod
    def translate(self, phone: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Translate phone textures ``[B,3,H,W]`` in [0,1] to studio-lit textures in [0,1]."""

    @abc.abstractmethod
    def generator_losses(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Return the generator phase's unweighted loss terms for ``batch``."""

    def discriminator_losses(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Return the discriminator phase's unweighted loss terms (none by default)."""
        return {}

    @abc.abstractmethod
    def generator_parameters(self) -> Iterable[nn.Parameter]:
        """Parameters the generator optimiser updates (frozen ones excluded)."""

    def discriminator_parameters(self) -> Iterable[nn.Parameter]:
        """Parameters the discriminator optimiser updates (none by default)."""
        return []
