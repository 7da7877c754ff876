"""A discriminator on a frozen pretrained feature space (Projected GANs; Sauer, Chitta, Müller
and Geiger, NeurIPS 2021), an option beside the paper's StyleGAN2 D for CPU-sized priors.

What carries over from Projected GANs:
* the feature network is pretrained and frozen; here the shift-tolerant AlexNet or VGG16 of
  ST-LPIPS, whose weights ship with ``stlpips-pytorch`` (Projected GANs use EfficientNet-lite,
  which no installed package ships): nothing is downloaded;
* each of its first ``num_scales`` stage outputs goes through a fixed random 1x1 projection
  (cross-channel mixing, CCM) to ``projection_channels``, and a small trainable discriminator
  per scale maps it to a logit map; the per-scale mean logits are summed;
* the trainable heads use spectral normalisation.

Left out: the cross-scale mixing (CSM) of the paper's feature pyramid, and its hinge loss: the
prior stage applies its own (StyleGAN2's non-saturating logistic) loss to these logits. R1 still
works (the gradient flows through the frozen network to the images); Projected GANs train
without it, so its configs set ``r1_gamma`` small (configs/prior/stylegan2_projected_quickstart.yaml).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from lift.components import ImageDiscriminator
from lift_perceptual.stlpips import CHANNELS, STLPIPS


def _head(channels: int, size: int, width: int) -> nn.Sequential:
    """Strided 4x4 convs (spectral norm) down to <= 4x4, then a 1-channel logit map."""
    layers: list[nn.Module] = []
    cin = channels
    while size > 4:
        layers += [spectral_norm(nn.Conv2d(cin, width, 4, stride=2, padding=1)),
                   nn.LeakyReLU(0.2)]
        cin, size = width, size // 2
    layers.append(spectral_norm(nn.Conv2d(cin, 1, 3, padding=1)))
    return nn.Sequential(*layers)


class ProjectedDiscriminator(ImageDiscriminator):
    """D(x) = sum over scales s of mean(head_s(CCM_s(F_s(x)))), F frozen and pretrained.

    Args:
        resolution: image side (the generator's).
        img_channels: 3 (the feature network takes RGB).
        features: the ST-LPIPS backbone, ``"alex"`` (cheaper) or ``"vgg"``.
        num_scales: how many of the backbone's stage outputs are discriminated (1-5).
        projection_channels: channels of each fixed random 1x1 projection (CCM).
        head_channels: width of the trainable per-scale heads.
        projection_seed: seed of the fixed projections (part of the model: saved as buffers).
    """

    def __init__(self, resolution: int, img_channels: int = 3,
                 features: Literal["alex", "vgg"] = "alex", num_scales: int = 4,
                 projection_channels: int = 64, head_channels: int = 64,
                 projection_seed: int = 0):
        super().__init__()
        if img_channels != 3:
            raise ValueError(f"ProjectedDiscriminator needs RGB images, got {img_channels} "
                             "channels")
        if not 1 <= num_scales <= len(CHANNELS[features]):
            raise ValueError(f"num_scales must be 1..{len(CHANNELS[features])}, got {num_scales}")
        self.resolution, self.img_channels = int(resolution), int(img_channels)
        self.num_scales = num_scales
        net = STLPIPS(net=features)
        if resolution < net.min_size:
            raise ValueError(f"ProjectedDiscriminator({features}) needs resolution >= "
                             f"{net.min_size}, got {resolution}")
        # Frozen, and not a submodule: its weights are the package's, not this model's.
        self._frozen = [net]
        with torch.no_grad():
            sizes = [int(a.shape[-1]) for a in
                     net.activations(torch.zeros(1, 3, resolution, resolution))]
        gen = torch.Generator().manual_seed(projection_seed)
        for s in range(num_scales):
            cin = CHANNELS[features][s]
            # Fixed random CCM (Projected GANs: a random, untrained 1x1 convolution).
            weight = torch.randn(projection_channels, cin, 1, 1, generator=gen) / cin ** 0.5
            self.register_buffer(f"ccm{s}", weight)
        self.heads = nn.ModuleList(_head(projection_channels, sizes[s], head_channels)
                                   for s in range(num_scales))

    @property
    def feature_net(self) -> STLPIPS:
        return self._frozen[0]

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self._frozen[0]._apply(fn, *args, **kwargs)  # follow .to(device) / dtype moves
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1:] != (3, self.resolution, self.resolution):
            raise ValueError(f"ProjectedDiscriminator expects [N, 3, {self.resolution}, "
                             f"{self.resolution}], got {tuple(images.shape)}")
        acts = self.feature_net.activations((images + 1) / 2)  # [-1, 1] -> the net's [0, 1]
        logits = images.new_zeros(images.shape[0], 1)
        for s, head in enumerate(self.heads):
            h = nn.functional.conv2d(acts[s], getattr(self, f"ccm{s}").to(acts[s].dtype))
            logits = logits + head(h).mean(dim=(2, 3))
        return logits
