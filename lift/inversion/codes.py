"""Latent parameterisations: which space a texture is inverted in (W+ in Eq. 1, or W).

A code owns the shape of a texture's free parameters and the map from them to the W+ code
the synthesis network takes. Choosing W or W+ is choosing this component in the config,
never a flag inside the optimiser or the generator.
"""

from __future__ import annotations

import abc

import torch
from lift.spec import Recordable


class LatentCode(Recordable, abc.ABC):
    """Free parameters ``[B, *param_shape]`` of a texture -> W+ codes ``[B, num_ws, w_dim]``."""

    @abc.abstractmethod
    def param_shape(self, num_ws: int, w_dim: int) -> tuple[int, ...]:
        """Shape of one texture's free parameters."""

    def init(self, w_avg: torch.Tensor, num_ws: int, num: int) -> torch.Tensor:
        """Initial parameters of ``num`` textures: every row at ``w_avg`` ``[w_dim]``."""
        shape = self.param_shape(num_ws, w_avg.shape[0])
        return w_avg.reshape(1, 1, -1).expand(num, shape[0], -1).clone()

    @abc.abstractmethod
    def to_wplus(self, params: torch.Tensor, num_ws: int) -> torch.Tensor:
        """Map parameters ``[B, *param_shape]`` to W+ ``[B, num_ws, w_dim]``."""

    def from_wplus(self, w_plus: torch.Tensor) -> torch.Tensor:
        """Parameters ``[B, *param_shape]`` closest to W+ codes ``[B, num_ws, w_dim]`` (e.g. an
        encoder's prediction as the starting point)."""
        raise NotImplementedError(f"{type(self).__name__} cannot start from a W+ code")


class WPlusCode(LatentCode):
    """One free w per style layer (W+, Eq. 1): the paper's near-perfect inversions."""

    def param_shape(self, num_ws: int, w_dim: int) -> tuple[int, ...]:
        return (num_ws, w_dim)

    def to_wplus(self, params: torch.Tensor, num_ws: int) -> torch.Tensor:
        assert params.ndim == 3 and params.shape[1] == num_ws, params.shape
        return params

    def from_wplus(self, w_plus: torch.Tensor) -> torch.Tensor:
        return w_plus.clone()


class WCode(LatentCode):
    """A single w shared by every style layer (W, as NVlabs' projector)."""

    def param_shape(self, num_ws: int, w_dim: int) -> tuple[int, ...]:
        return (1, w_dim)

    def to_wplus(self, params: torch.Tensor, num_ws: int) -> torch.Tensor:
        assert params.ndim == 3 and params.shape[1] == 1, params.shape
        return params.expand(-1, num_ws, -1)

    def from_wplus(self, w_plus: torch.Tensor) -> torch.Tensor:
        return w_plus.mean(1, keepdim=True)  # the least-squares single w
