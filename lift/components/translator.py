"""Translator: phone texture -> studio-lit low-resolution texture (Tables 1, 2)."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from lift.spec import Recordable

Batch = Mapping[str, Any]
Outputs = Mapping[str, Any]


@dataclass(frozen=True)
class Phase:
    """One optimiser step of a translator's training iteration.

    Attributes:
        parameters: the parameters this phase's optimiser updates (called once, when the
            stage builds its optimisers; frozen parameters left out).
        losses: ``losses(batch, outputs, step)`` -> the phase's *unweighted* loss terms by
            name; ``step`` counts the phase's previous runs (0, 1, ...), so lazy
            regularisation (e.g. R1 every k steps) needs no counter inside the translator.
        terms: every name ``losses`` may return (a configured weight naming none of any
            phase's terms gets a warning).
        lazy_terms: the subset of ``terms`` returned only on some steps (a configured
            weight of any other term must find it at every step).
    """

    parameters: Callable[[], Iterable[nn.Parameter]]
    losses: Callable[[Batch, Outputs, int], Mapping[str, torch.Tensor]]
    terms: tuple[str, ...]
    lazy_terms: tuple[str, ...] = ()


class Translator(Recordable, nn.Module, abc.ABC):
    """A trainable phone -> studio translator driven by the translation stage.

    One training step of :class:`~lift.stages.translation.TranslationModule`:

    1. ``outputs = translator.forward_step(batch)`` (shared forward work, e.g. the fakes);
    2. for each ``name, phase`` of ``translator.phases()``, in order: the stage computes
       ``phase.losses(batch, outputs, step)``, applies the configured loss weights (a term
       with no weight is logged, not applied), back-propagates and steps the optimiser
       configured for ``name`` (``model.optimizers.<name>``) over ``phase.parameters()``.
       During a phase only that phase's parameters require grad.

    The training batch (built by :class:`~lift.data.TranslationDataModule`) is a flat dict:
    ``phone`` ``[B,3,H,W]`` / ``mask`` ``[B,1,H,W]`` / ``phone_stem`` (unpaired phone domain),
    ``studio`` ``[B,3,H,W]`` / ``studio_stem`` (unpaired studio domain) and, when a paired
    split is configured, ``paired_phone`` / ``paired_mask`` / ``paired_studio`` /
    ``paired_stem``. Textures are in [0, 1]. Evaluation batches hold ``phone``, ``mask``,
    ``stem`` (and ``studio`` on paired splits).
    """

    kind = "translator"

    @abc.abstractmethod
    def phases(self) -> dict[str, Phase]:
        """The training phases by name, in the order they run within one step (e.g. NVlabs'
        StyleGAN2 and CycleGAN update the generator first; CUT the discriminator)."""

    def forward_step(self, batch: Batch) -> dict[str, Any]:
        """Forward work shared by the phases of one step (called once, before them)."""
        return {}

    @abc.abstractmethod
    def translate(self, phone: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Translate phone textures ``[B,3,H,W]`` in [0,1] to studio-lit textures in [0,1]."""

    def translate_batch(self, batch: Batch) -> torch.Tensor:
        """Translate an evaluation batch (keys ``phone``, ``mask``, ``stem``).

        Override when translation needs more than the pixels (e.g. a per-stem latent code).
        """
        return self.translate(batch["phone"], batch.get("mask"))

    def visuals(self, batch: Batch, outputs: Outputs) -> dict[str, torch.Tensor]:
        """Named images ``[B,3,H,W]`` in [0,1] of a training batch; the stage shows them in the
        validation grid as rows ``train <name>`` (computed without gradients)."""
        return {}

    def rebuilt_modules(self) -> tuple[str, ...]:
        """Names of submodules that ``__init__`` rebuilds from its arguments (frozen pretrained
        networks, a frozen copy of an upstream checkpoint's generator): checkpoints leave
        their weights out and the stage checks, on resume, that the rebuilt ones are equal."""
        return ()
