"""The first stage of latent diffusion: the space ResShift's chain runs in (Sect 3.2).

The paper and ResShift diffuse in the latent space of a pretrained VQ autoencoder (f = 4).
``IdentityAutoencoder`` runs the chain in pixel space (the CPU default); ``ConvAutoencoder`` is a
small trainable conv autoencoder whose reconstruction loss the upsampler reports as the term
``"autoencoder"`` (weight it in ``loss_weights`` to train it). Swap by ``class_path``.
"""

from __future__ import annotations

import abc

import torch
from torch import nn
from lift.spec import Recordable


class Autoencoder(Recordable, nn.Module, abc.ABC):
    """Maps images ``[B,3,H,W]`` in [-1,1] to latents ``[B,C,H/f,W/f]`` and back.

    Attributes: ``latent_channels`` (C), ``downsample_factor`` (f), ``trainable`` (whether the
    upsampler should add its reconstruction loss).
    """

    latent_channels: int = 3
    downsample_factor: int = 1
    trainable: bool = False

    @abc.abstractmethod
    def encode(self, image: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def decode(self, latent: torch.Tensor) -> torch.Tensor: ...

    def check_image(self, image: torch.Tensor) -> None:
        f = self.downsample_factor
        if image.ndim != 4 or image.shape[1] != 3 or image.shape[-1] % f or image.shape[-2] % f:
            raise ValueError(f"{type(self).__name__} expects [B,3,H,W] with H, W divisible by "
                             f"{f}, got {tuple(image.shape)}")


class IdentityAutoencoder(Autoencoder):
    """Pixel-space diffusion: the latent is the image itself."""

    latent_channels = 3
    downsample_factor = 1
    trainable = False

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        self.check_image(image)
        return image

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return latent


class ConvAutoencoder(Autoencoder):
    """A small deterministic conv autoencoder with ``downsample_factor = 2**num_downsamples``.

    Args:
        latent_channels: C of the latent (ResShift's VQ-f4 uses 3).
        hidden_channels: width of the conv layers.
        num_downsamples: stride-2 stages; f = 2**num_downsamples.
    """

    trainable = True

    def __init__(self, latent_channels: int = 3, hidden_channels: int = 32,
                 num_downsamples: int = 1):
        super().__init__()
        if num_downsamples < 0:
            raise ValueError(f"num_downsamples must be >= 0, got {num_downsamples}")
        self.latent_channels = latent_channels
        self.downsample_factor = 2**num_downsamples
        h = hidden_channels
        enc: list[nn.Module] = [nn.Conv2d(3, h, 3, padding=1), nn.SiLU()]
        for _ in range(num_downsamples):
            enc += [nn.Conv2d(h, h, 4, stride=2, padding=1), nn.SiLU()]
        enc += [nn.Conv2d(h, latent_channels, 3, padding=1)]
        dec: list[nn.Module] = [nn.Conv2d(latent_channels, h, 3, padding=1), nn.SiLU()]
        for _ in range(num_downsamples):
            dec += [nn.ConvTranspose2d(h, h, 4, stride=2, padding=1), nn.SiLU()]
        dec += [nn.Conv2d(h, 3, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        self.check_image(image)
        return self.encoder(image)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.ndim != 4 or latent.shape[1] != self.latent_channels:
            raise ValueError(f"expected [B,{self.latent_channels},h,w] latents, "
                             f"got {tuple(latent.shape)}")
        return self.decoder(latent)
