"""LatentSampler: where G_studio's training latents come from (Table 4)."""

from __future__ import annotations

import abc

import torch
from torch import nn
from lift.components.generator import StyleGenerator
from lift.spec import Recordable


class LatentSampler(Recordable, nn.Module, abc.ABC):
    """Draws W+ codes ``[N, num_ws, w_dim]`` for the synthesis network.

    Z vs W vs W+ is the sampler's business (a module boundary), never a flag inside a
    generator's ``forward``. ``bind`` is called once, by the translator that owns the sampler
    (when it is built), with G_phone.
    """

    kind = "latent_sampler"

    def bind(self, generator: StyleGenerator) -> None:
        """Attach G_phone (Z-space samplers draw through its ``map``; bank samplers check that
        their codes were inverted with it). Called once, before the first ``sample``."""

    @abc.abstractmethod
    def sample(self, num: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return ``num`` W+ codes, ``[num, num_ws, w_dim]``."""
