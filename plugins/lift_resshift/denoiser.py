"""Denoisers f_theta(x_t, y, t) -> x_0 estimate of ResShift (Sect 3.2).

Input: the scaled state ``x_t`` (``latent_channels``) concatenated with the condition (the
upsampled low-resolution texture, plus G(I_phone) where configured, resized to the latent's size)
and the timestep index. Output: the x_0 estimate with ``latent_channels`` channels.

``UNetDenoiser`` wraps diffusers' maintained ``UNet2DModel`` (the default); ``ConvDenoiser`` is a
plain conv stack with a known, finite receptive field (``num_layers`` pixels each side), useful on
CPU and for checking that tiled sampling equals untiled sampling exactly.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn
from lift.spec import Recordable


class Denoiser(Recordable, nn.Module, abc.ABC):
    """``forward(x_t, t, condition) -> x_0`` with ``x_t`` [B,C,h,w], ``condition`` [B,Cc,h,w]."""

    latent_channels: int
    condition_channels: int

    def check_inputs(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> None:
        b, c, h, w = x_t.shape
        if c != self.latent_channels or condition.shape != (b, self.condition_channels, h, w):
            raise ValueError(
                f"{type(self).__name__}: expected x_t [B,{self.latent_channels},h,w] and condition "
                f"[B,{self.condition_channels},h,w], got {tuple(x_t.shape)} and "
                f"{tuple(condition.shape)}")
        if t.shape != (b,):
            raise ValueError(f"timesteps must have shape ({b},), got {tuple(t.shape)}")

    @abc.abstractmethod
    def forward(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        ...


class UNetDenoiser(Denoiser):
    """diffusers ``UNet2DModel`` on ``concat(x_t, condition)``; widths small enough for a CPU.

    Args:
        latent_channels: channels of x_t and of the output (3 in pixel space).
        condition_channels: channels of the condition (3: the upsampled RGB texture).
        block_out_channels: width per resolution level (ResShift: 160, 320, 320, 640).
        layers_per_block: ResNet blocks per level.
        down_block_types / up_block_types: diffusers block names, one per level
            (``"AttnDownBlock2D"`` adds self-attention at that level).
        add_attention: self-attention in the middle block.
        norm_num_groups: GroupNorm groups (must divide every width).
    """

    def __init__(
        self,
        latent_channels: int = 3,
        condition_channels: int = 3,
        block_out_channels: list[int] = [32, 64, 64],  # noqa: B006 (jsonargparse-friendly)
        layers_per_block: int = 1,
        down_block_types: list[str] | None = None,
        up_block_types: list[str] | None = None,
        add_attention: bool = False,
        norm_num_groups: int = 8,
        attention_head_dim: int = 8,
    ):
        super().__init__()
        from diffusers import UNet2DModel

        levels = len(block_out_channels)
        self.latent_channels = latent_channels
        self.condition_channels = condition_channels
        self.unet = UNet2DModel(
            in_channels=latent_channels + condition_channels,
            out_channels=latent_channels,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            down_block_types=tuple(down_block_types or ["DownBlock2D"] * levels),
            up_block_types=tuple(up_block_types or ["UpBlock2D"] * levels),
            add_attention=add_attention,
            norm_num_groups=norm_num_groups,
            attention_head_dim=attention_head_dim,
        )
        self.size_multiple = 2 ** (levels - 1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        self.check_inputs(x_t, t, condition)
        if x_t.shape[-1] % self.size_multiple or x_t.shape[-2] % self.size_multiple:
            raise ValueError(f"UNetDenoiser needs h, w divisible by {self.size_multiple}, "
                             f"got {tuple(x_t.shape[-2:])}")
        return self.unet(torch.cat([x_t, condition], dim=1), t).sample


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding [B, dim] of integer timesteps (Transformer / DDPM style)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return torch.nn.functional.pad(emb, (0, dim % 2))


class ConvDenoiser(Denoiser):
    """``num_layers`` 3x3 convs (SiLU) with a timestep embedding added after the first one.

    No normalisation and no downsampling: its receptive field is ``num_layers`` pixels each side.
    """

    def __init__(self, latent_channels: int = 3, condition_channels: int = 3,
                 hidden_channels: int = 32, num_layers: int = 4):
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"num_layers must be >= 2, got {num_layers}")
        self.latent_channels = latent_channels
        self.condition_channels = condition_channels
        self.receptive_radius = num_layers
        h = hidden_channels
        self.head = nn.Conv2d(latent_channels + condition_channels, h, 3, padding=1)
        self.time = nn.Sequential(nn.Linear(h, h), nn.SiLU(), nn.Linear(h, h))
        body: list[nn.Module] = []
        for _ in range(num_layers - 2):
            body += [nn.SiLU(), nn.Conv2d(h, h, 3, padding=1)]
        body += [nn.SiLU(), nn.Conv2d(h, latent_channels, 3, padding=1)]
        self.body = nn.Sequential(*body)
        self.hidden = h

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        self.check_inputs(x_t, t, condition)
        h = self.head(torch.cat([x_t, condition], dim=1))
        h = h + self.time(timestep_embedding(t, self.hidden).to(h))[:, :, None, None]
        return self.body(h)
