"""LatentSampler: where G_studio's training latents come from (Table 4)."""

from __future__ import annotations

import abc

import torch
from torch import nn


class LatentSampler(nn.Module, abc.ABC):
    """Draws W+ codes ``[N, num_ws, w_dim]`` for the synthesis network.

    Z vs W vs W+ is the sampler's business (a module boundary), never a flag inside a
    generator's ``forward``. ``bind`` is called once by the stage with the generator whose
    mapping network Z-space samplers need.
    """

    kind = "latent_sampler"

    def bind(self, generator: nn.Module) -> None:
        """Attach the generator (for samplers that go through its mapping network)."""

    @abc.abstractmethod
    def sample(self, num: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return ``num`` W+ codes, ``[num, num_ws, w_dim]``."""
