"""Translator: phone texture -> studio-lit low-resolution texture (Tables 1, 2)."""

from __future__ import annotations

import abc
from typing import Any, Iterable, Mapping

import torch
from torch import nn

Batch = Mapping[str, Any]
Outputs = Mapping[str, Any]


class Translator(nn.Module, abc.ABC):
    """A trainable phone -> studio translator driven by the translation stage.

    One training step of :class:`~lift.stages.translation.TranslationModule`:

    1. ``outputs = translator.forward_step(batch)`` (shared forward work, e.g. the fakes);
    2. for each phase in ``phase_order``: the phase's ``*_losses(batch, outputs)`` returns
       *unweighted* loss terms by name, the stage applies the configured weights (a term
       with no weight is logged, not applied), back-propagates and steps that phase's
       optimiser. During a phase only that phase's parameters require grad.

    The training batch (built by :class:`~lift.data.TranslationDataModule`) is a flat dict:
    ``phone`` ``[B,3,H,W]`` / ``mask`` ``[B,1,H,W]`` / ``phone_stem`` (unpaired phone domain),
    ``studio`` ``[B,3,H,W]`` / ``studio_stem`` (unpaired studio domain) and, when a paired
    split is configured, ``paired_phone`` / ``paired_mask`` / ``paired_studio`` /
    ``paired_stem``. Textures are in [0, 1].

    A translator with no discriminator returns no discriminator parameters and no
    discriminator terms (the stage then skips that phase).
    """

    kind = "translator"
    #: The order of the phases within one training step (NVlabs' StyleGAN2 and CycleGAN
    #: update G first; CUT updates D first).
    phase_order: tuple[str, ...] = ("generator", "discriminator")

    def forward_step(self, batch: Batch) -> dict[str, Any]:
        """Forward work shared by both phases of one step (called once, before them)."""
        return {}

    @abc.abstractmethod
    def translate(self, phone: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Translate phone textures ``[B,3,H,W]`` in [0,1] to studio-lit textures in [0,1]."""

    def translate_batch(self, batch: Batch) -> torch.Tensor:
        """Translate an evaluation batch (keys ``phone``, ``mask``, ``stem``).

        Override when translation needs more than the pixels (e.g. a per-stem latent code).
        """
        return self.translate(batch["phone"], batch.get("mask"))

    @abc.abstractmethod
    def generator_losses(self, batch: Batch, outputs: Outputs) -> dict[str, torch.Tensor]:
        """Return the generator phase's unweighted loss terms."""

    def discriminator_losses(self, batch: Batch, outputs: Outputs) -> dict[str, torch.Tensor]:
        """Return the discriminator phase's unweighted loss terms (none by default)."""
        return {}

    @abc.abstractmethod
    def generator_parameters(self) -> Iterable[nn.Parameter]:
        """Parameters the generator optimiser updates (frozen ones excluded)."""

    def discriminator_parameters(self) -> Iterable[nn.Parameter]:
        """Parameters the discriminator optimiser updates (none by default)."""
        return []

    def visuals(self, batch: Batch, outputs: Outputs) -> dict[str, torch.Tensor]:
        """Named images ``[B,3,H,W]`` in [0,1] of a training batch; the stage shows them in the
        validation grid as rows ``train <name>`` (computed without gradients)."""
        return {}
