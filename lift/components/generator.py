"""StyleGenerator / ImageDiscriminator: what the core stages need of a GAN (prior, Eq. 1-8).

The prior stage trains a (generator, discriminator) pair, the inversion stage optimises codes
of the generator's W+ space (Eq. 1), and latent samplers and translators draw from it. None of
them knows the networks' insides: they use only this contract. The StyleGAN2 plugin
(``lift_stylegan2.networks``) implements it; a third party's GAN can replace it.

Images are ``[N, img_channels, resolution, resolution]`` in [-1, 1] at this border (the stages
map textures from [0, 1]); codes are W+ ``[N, num_ws, w_dim]``; Z is ``[N, z_dim]``.
"""

from __future__ import annotations

import abc
from typing import Iterator

import torch
from torch import nn
from lift.spec import Recordable


class StyleGenerator(Recordable, nn.Module, abc.ABC):
    """G = synthesis ∘ mapping, with a W+ code space of ``num_ws`` rows of ``w_dim``.

    Attributes every implementation sets in ``__init__``: ``z_dim``, ``w_dim``, ``num_ws``,
    ``resolution``, ``img_channels``. ``regularizers`` names the generator regularisers the
    prior stage may apply to it (``"path_length"``: StyleGAN2's path-length penalty, which
    needs ``synthesize`` to be differentiable w.r.t. the codes).
    """

    kind = "generator"
    z_dim: int
    w_dim: int
    num_ws: int
    resolution: int
    img_channels: int
    regularizers: frozenset[str] = frozenset()

    @abc.abstractmethod
    def map(self, z: torch.Tensor, *, truncation_psi: float = 1.0,
            update_w_avg: bool = False) -> torch.Tensor:
        """Z ``[N, z_dim]`` -> W+ ``[N, num_ws, w_dim]`` (identical rows for a single w).

        ``update_w_avg``: move the tracked mean of W towards this batch (training only);
        ``truncation_psi``: pull codes towards ``w_avg`` (1: none)."""

    @abc.abstractmethod
    def synthesize(self, ws: torch.Tensor, *, noise_mode: str = "const") -> torch.Tensor:
        """W+ ``[N, num_ws, w_dim]`` -> images in [-1, 1]; ``noise_mode``: ``"random"`` |
        ``"const"`` | ``"none"`` (per-pixel noise inputs, if the network has any)."""

    @property
    @abc.abstractmethod
    def w_avg(self) -> torch.Tensor:
        """The tracked mean of W, ``[w_dim]`` (truncation centre, inversion start)."""

    @abc.abstractmethod
    def parameters_up_to(self, resolution: int) -> Iterator[nn.Parameter]:
        """Synthesis parameters that act at or below ``resolution`` (the paper freezes those
        at <= 8x8 when finetuning G_studio)."""

    def mapping_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the Z -> W mapping (frozen when finetuning)."""
        return iter(())

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0,
                noise_mode: str = "random") -> torch.Tensor:
        return self.synthesize(self.map(z, truncation_psi=truncation_psi), noise_mode=noise_mode)


class ImageDiscriminator(Recordable, nn.Module, abc.ABC):
    """D: images ``[N, img_channels, resolution, resolution]`` in [-1, 1] -> logits ``[N, 1]``.

    Attributes set in ``__init__``: ``resolution``, ``img_channels``.
    """

    kind = "discriminator"
    resolution: int
    img_channels: int

    @abc.abstractmethod
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return one logit per image, ``[N, 1]``."""
