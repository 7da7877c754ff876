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

    # optional: default draws ``sample`` and has no index
    def sample_indexed(self, num: int, *, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``sample`` plus, for a sampler over a finite set of codes (a bank), the ``[num]``
        indices of the drawn codes, so that a translator can cache what it computes from a
        code once (e.g. the frozen G_phone's image of it); None for continuous samplers."""
        return self.sample(num, generator=generator), None
