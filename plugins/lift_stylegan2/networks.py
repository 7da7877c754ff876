"""StyleGAN2 config F networks: mapping, skip synthesis, generator, residual discriminator.

Z → W is :class:`MappingNetwork`, W+ → image is :class:`SynthesisNetwork`; the two are a
module boundary (``Generator.mapping`` / ``Generator.synthesis``), so inversion into W+ and
the latent samplers (Z, W, W+, Z+) never need a flag inside ``forward``.

Widths follow the reference rule ``channels(res) = min(channel_base // res, channel_max)``;
config F is ``channel_base=32768, channel_max=512``. At 64² with ``channel_base=4096,
channel_max=256`` the parameter counts equal the official networks' (G 7,056,600,
D 4,727,617; checked by a test).
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
from torch import nn

from lift.components import ImageDiscriminator, StyleGenerator
from lift_stylegan2.layers import (
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    SynthesisLayer,
    ToRGBLayer,
    make_fir_filter,
    normalize_2nd_moment,
    upsample2d,
)


def _log2_resolution(resolution: int) -> int:
    log2 = int(math.log2(resolution))
    if resolution < 4 or 2**log2 != resolution:
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
    return log2


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at a resolution: ``min(channel_base // resolution, channel_max)``."""
    return min(channel_base // resolution, channel_max)


class MappingNetwork(nn.Module):
    """Z → W: pixel-normalised z through ``num_layers`` leaky-ReLU FC layers (lr x 0.01).

    Tracks ``w_avg`` (moving mean of W, used for the truncation trick) when asked to.
    Output is broadcast to ``[N, num_ws, w_dim]`` (W+ with identical rows).
    """

    def __init__(
        self,
        z_dim: int = 512,
        w_dim: int = 512,
        num_ws: int = 14,                   # rows of W+ (the synthesis network's num_ws)
        num_layers: int = 8,                # config F: 8
        lr_multiplier: float = 0.01,        # equalised-lr multiplier of every FC layer
        w_avg_beta: float = 0.995,          # decay of the tracked mean of W
    ):
        super().__init__()
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.w_avg_beta = w_avg_beta
        features = [z_dim] + [w_dim] * num_layers
        self.layers = nn.Sequential(*[
            EqualizedLinear(fin, fout, lr_multiplier=lr_multiplier, lrelu=True)
            for fin, fout in zip(features[:-1], features[1:])
        ])
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self, z: torch.Tensor, truncation_psi: float = 1.0, update_w_avg: bool = False
    ) -> torch.Tensor:
        assert z.ndim == 2 and z.shape[1] == self.z_dim, z.shape
        w = self.layers(normalize_2nd_moment(z))
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1:
            w = self.w_avg.lerp(w, truncation_psi)  # truncation trick: w_avg + psi (w - w_avg)
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: (up-conv), conv, tRGB added to the upsampled image.

    Uses ``num_conv + num_torgb`` consecutive rows of W+; the tRGB shares its row with the next
    block's first convolution, as in the reference.
    """

    def __init__(
        self,
        in_channels: int,                   # 0 for the 4x4 block (learned constant input)
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.register_buffer("resample_filter", make_fir_filter(resample_filter), persistent=False)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution,
                                    resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
        noise_mode: str,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert ws.shape[1] == self.num_conv + self.num_torgb, ws.shape
        rows = iter(ws.unbind(dim=1))
        if self.conv0 is None:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        else:
            x = self.conv0(x, next(rows), noise_mode=noise_mode)
        x = self.conv1(x, next(rows), noise_mode=noise_mode)
        y = self.torgb(x, next(rows))
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """W+ → image: blocks at 4, 8, ..., resolution; skip architecture (tRGB at every block).

    ``block_resolutions[i]`` is the output resolution of ``blocks[i]``;
    ``ws_resolutions[j]`` is the resolution whose layers row ``j`` of W+ modulates (the last
    row drives only the final tRGB). :meth:`parameters_up_to` selects the parameters of all
    blocks at or below a resolution (e.g. to freeze ≤ 8x8 when finetuning G_studio).
    """

    def __init__(
        self,
        w_dim: int = 512,
        resolution: int = 256,
        img_channels: int = 3,
        channel_base: int = 32768,          # config F: 32768 (= 512 channels up to 64²)
        channel_max: int = 512,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,    # clamp activations to ±value (None: off)
    ):
        super().__init__()
        log2 = _log2_resolution(resolution)
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        self.blocks = nn.ModuleList()
        self.num_ws = 0
        self.ws_resolutions: list[int] = []
        in_channels = 0
        for res in self.block_resolutions:
            out_channels = channels_at(res, channel_base, channel_max)
            block = SynthesisBlock(in_channels, out_channels, w_dim, res, img_channels,
                                   resample_filter=resample_filter, conv_clamp=conv_clamp)
            self.blocks.append(block)
            self.num_ws += block.num_conv
            self.ws_resolutions += [res] * block.num_conv
            in_channels = out_channels
        self.num_ws += 1  # the final tRGB's row
        self.ws_resolutions.append(resolution)

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        assert ws.ndim == 3 and ws.shape[1:] == (self.num_ws, self.w_dim), (
            f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        x = img = None
        start = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, start: start + block.num_conv + block.num_torgb],
                           noise_mode=noise_mode)
            start += block.num_conv
        assert img is not None
        return img

    def blocks_up_to(self, resolution: int) -> list[SynthesisBlock]:
        """Blocks whose output resolution is <= ``resolution``."""
        return [b for b in self.blocks if b.resolution <= resolution]

    def parameters_up_to(self, resolution: int) -> Iterator[nn.Parameter]:
        """Parameters of every block at or below ``resolution`` (conv, noise, tRGB, styles)."""
        for block in self.blocks_up_to(resolution):
            yield from block.parameters()


class Generator(StyleGenerator):
    """G = synthesis ∘ mapping. ``forward(z)`` draws images; ``map`` / ``synthesize`` (the
    core's :class:`~lift.components.StyleGenerator` contract) give W+ and images of W+."""

    regularizers = frozenset({"path_length"})

    def __init__(
        self,
        z_dim: int = 512,
        w_dim: int = 512,
        resolution: int = 256,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim, resolution, img_channels, channel_base,
                                          channel_max, resample_filter, conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers,
                                      mapping_lr_multiplier, w_avg_beta)

    def forward(
        self, z: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "random",
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        ws = self.mapping(z, truncation_psi=truncation_psi, update_w_avg=update_w_avg)
        return self.synthesis(ws, noise_mode=noise_mode)

    # --- lift.components.StyleGenerator ----------------------------------------------------

    def map(self, z: torch.Tensor, *, truncation_psi: float = 1.0,
            update_w_avg: bool = False) -> torch.Tensor:
        return self.mapping(z, truncation_psi=truncation_psi, update_w_avg=update_w_avg)

    def synthesize(self, ws: torch.Tensor, *, noise_mode: str = "const") -> torch.Tensor:
        return self.synthesis(ws, noise_mode=noise_mode)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def parameters_up_to(self, resolution: int) -> Iterator[nn.Parameter]:
        return self.synthesis.parameters_up_to(resolution)

    def mapping_parameters(self) -> Iterator[nn.Parameter]:
        return self.mapping.parameters()


class DiscriminatorBlock(nn.Module):
    """Residual block: (fromRGB), conv 3x3, conv 3x3 ↓2, plus a 1x1 ↓2 skip, each x sqrt(1/2)."""

    def __init__(
        self,
        in_channels: int,                   # 0 for the first block (reads the image)
        tmp_channels: int,
        out_channels: int,
        img_channels: int,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.fromrgb = (
            EqualizedConv2d(img_channels, tmp_channels, 1, lrelu=True, conv_clamp=conv_clamp)
            if in_channels == 0 else None
        )
        self.conv0 = EqualizedConv2d(tmp_channels, tmp_channels, 3, lrelu=True,
                                     conv_clamp=conv_clamp)
        self.conv1 = EqualizedConv2d(tmp_channels, out_channels, 3, lrelu=True, down=2,
                                     resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.skip = EqualizedConv2d(tmp_channels, out_channels, 1, bias=False, down=2,
                                    resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(img)
        assert x is not None
        gain = math.sqrt(0.5)
        y = self.skip(x, gain=gain)
        x = self.conv1(self.conv0(x), gain=gain)
        return x + y


class Discriminator(ImageDiscriminator):
    """Residual discriminator with minibatch standard deviation; image → logits [N, 1]."""

    def __init__(
        self,
        resolution: int = 256,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        mbstd_group_size: int = 4,          # samples per std group (min with the batch)
        mbstd_num_channels: int = 1,        # std feature maps appended (0: no mbstd layer)
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ):
        super().__init__()
        log2 = _log2_resolution(resolution)
        if resolution < 8:
            raise ValueError(f"the discriminator needs resolution >= 8, got {resolution}")
        self.resolution = resolution
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        self.blocks = nn.ModuleList()
        for res in self.block_resolutions:
            in_ch = 0 if res == resolution else channels_at(res, channel_base, channel_max)
            tmp_ch = channels_at(res, channel_base, channel_max)
            out_ch = channels_at(res // 2, channel_base, channel_max)
            self.blocks.append(DiscriminatorBlock(in_ch, tmp_ch, out_ch, img_channels,
                                                  resample_filter, conv_clamp))
        ch4 = channels_at(4, channel_base, channel_max)
        self.mbstd = (MinibatchStdDev(mbstd_group_size, mbstd_num_channels)
                      if mbstd_num_channels > 0 else None)
        self.conv = EqualizedConv2d(ch4 + mbstd_num_channels, ch4, 3, lrelu=True,
                                    conv_clamp=conv_clamp)
        self.fc = EqualizedLinear(ch4 * 4 * 4, ch4, lrelu=True)
        self.out = EqualizedLinear(ch4, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        assert img.ndim == 4 and img.shape[1:] == (
            self.img_channels, self.resolution, self.resolution), (
            f"D expects [N, {self.img_channels}, {self.resolution}, {self.resolution}], "
            f"got {tuple(img.shape)}")
        x = None
        for block in self.blocks:
            x = block(x, img)
        assert x is not None
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        return self.out(x)
