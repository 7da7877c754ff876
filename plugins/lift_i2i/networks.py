"""Networks shared by CUT and CycleGAN: ResNet generator, PatchGAN, CUT's patch-sampling MLP.

Architectures follow the reference defaults (taesungp/contrastive-unpaired-translation,
junyanz/pytorch-CycleGAN-and-pix2pix): a ResNet generator (Johnson et al. 2016) with two
down- and two up-sampling stages around ``n_blocks`` residual blocks, and the 70x70 PatchGAN of
pix2pix. CUT's code anti-aliases its resampling (Zhang 2019: blur then subsample, zero-insert
then blur); CycleGAN's original code uses strided and transposed convolutions. Both variants
have the same parameters, and the layer layout (``model.<index>``) equals the references', so
``nce_layers`` index the same layers and the official generator checkpoints load unchanged.

Layer indices of the default generator (what CUT's ``nce_layers = 0,4,8,12,16`` pick):
0 reflection-padded input, 4 first down-sampling conv, 8 second down-sampling conv,
12 first residual block, 16 fifth residual block.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def binomial_kernel(taps: int) -> torch.Tensor:
    """Normalised 2-D binomial filter (outer product of a row of Pascal's triangle)."""
    row = torch.tensor([math.comb(taps - 1, i) for i in range(taps)], dtype=torch.float32)
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class BlurDownsample(nn.Module):
    """Anti-aliased x1/2: reflection pad 1, depthwise [1,2,1]²/16 blur, stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        # Named ``filt`` and kept in the state dict, as in CUT's checkpoints.
        self.register_buffer("filt", binomial_kernel(3)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2,
                        groups=x.shape[1])


class BlurUpsample(nn.Module):
    """Anti-aliased x2: zero insertion, then a [1,3,3,1]² blur (gain 4), replicate borders.

    A transposed convolution over the 1-pixel replicate-padded input; ``padding=3`` crops the
    output to exactly 2H x 2W.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("filt", (binomial_kernel(4) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt,
                                  stride=2, padding=3, groups=x.shape[1])


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Instance norm without affine parameters or running statistics (the references' default)."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {kind!r}")


# ReLUs are not in place: after an instance norm (whose output is a view) an in-place ReLU
# makes autograd copy the whole tensor back in the backward pass; out of place is ~2 % faster.


def _uses_bias(norm: str) -> bool:
    # The references give convolutions a bias unless a batch norm (with its own shift) follows.
    return norm != "batch"


class ResnetBlock(nn.Module):
    """x + [pad, conv3, norm, ReLU, (dropout), pad, conv3, norm](x), reflection padding."""

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False):
        super().__init__()
        bias = _uses_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias),
                                   norm_layer(norm, dim), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """ResNet generator: c7s1-ngf, two x1/2 stages, ``n_blocks`` residual blocks, two x2 stages,
    c7s1-out, tanh. Maps [-1, 1] images to [-1, 1] images.

    ``antialias``: CUT's blurred down-sampling (conv3 stride 1, norm, ReLU, blur-subsample)
    instead of a stride-2 conv3; ``antialias_up``: CUT's blurred up-sampling (zero-insert + blur,
    then conv3) instead of a stride-2 transposed conv3. CycleGAN's reference uses neither.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: bool = False,
        antialias: bool = True,
        antialias_up: bool = True,
    ):
        super().__init__()
        bias = _uses_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                                   norm_layer(norm, ngf), nn.ReLU()]
        ch = ngf
        for _ in range(2):
            if antialias:
                layers += [nn.Conv2d(ch, ch * 2, 3, stride=1, padding=1, bias=bias),
                           norm_layer(norm, ch * 2), nn.ReLU(), BlurDownsample(ch * 2)]
            else:
                layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=bias),
                           norm_layer(norm, ch * 2), nn.ReLU()]
            ch *= 2
        layers += [ResnetBlock(ch, norm, dropout) for _ in range(n_blocks)]
        for _ in range(2):
            if antialias_up:
                layers += [BlurUpsample(ch), nn.Conv2d(ch, ch // 2, 3, padding=1, bias=bias),
                           norm_layer(norm, ch // 2), nn.ReLU()]
            else:
                layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1,
                                              output_padding=1, bias=bias),
                           norm_layer(norm, ch // 2), nn.ReLU()]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def _run(self, x: torch.Tensor, layers: Sequence[int], stop: bool):
        wanted = set(layers)
        last = max(wanted)
        feats = []
        modules = list(self.model)
        for i, module in enumerate(modules):
            x = module(x)
            if i in wanted:
                nxt = modules[i + 1] if i + 1 < len(modules) else None
                # An in-place ReLU next would overwrite the kept feature.
                inplace_next = isinstance(nxt, nn.ReLU) and nxt.inplace
                feats.append(x.clone() if inplace_next else x)
            if stop and i == last:
                return None, feats
        return x, feats

    def forward(self, x: torch.Tensor, layers: Sequence[int] = ()):
        """The translation; with ``layers``, also the outputs of those layers (in index order)."""
        if not layers:
            return self.model(x)
        return self._run(x, sorted(layers), stop=False)

    def encode(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """Outputs of ``layers`` only, stopping after the last of them (CUT's encoder pass)."""
        return self._run(x, sorted(layers), stop=True)[1]

    def feature_channels(self, layers: Sequence[int]) -> list[int]:
        """Channel count of each of ``layers``' outputs (in index order)."""
        channels, out = [], None
        for i, module in enumerate(self.model):
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                out = module.out_channels
            elif i == 0:
                out = self.model[1].in_channels  # the padded input
            if i in set(layers):
                channels.append(out)
        return channels


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix): ``n_layers`` x1/2 conv4 stages, a stride-1 conv4, a 1-channel conv4.

    With ``n_layers=3`` each output sees a 70x70 input patch. ``antialias`` (CUT's default)
    replaces each stride-2 conv by a stride-1 conv followed by blur-subsampling.
    LeakyReLU 0.2; no norm after the first conv.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3,
                 norm: str = "instance", antialias: bool = True):
        super().__init__()
        bias = _uses_bias(norm)
        stride = 1 if antialias else 2

        def down(ch: int) -> list[nn.Module]:
            return [BlurDownsample(ch)] if antialias else []

        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=stride, padding=1),
                                   nn.LeakyReLU(0.2, True), *down(ndf)]
        ch = ndf
        for n in range(1, n_layers):
            out = ndf * min(2**n, 8)
            layers += [nn.Conv2d(ch, out, 4, stride=stride, padding=1, bias=bias),
                       norm_layer(norm, out), nn.LeakyReLU(0.2, True), *down(out)]
            ch = out
        out = ndf * min(2**n_layers, 8)
        layers += [nn.Conv2d(ch, out, 4, stride=1, padding=1, bias=bias), norm_layer(norm, out),
                   nn.LeakyReLU(0.2, True), nn.Conv2d(out, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def l2_normalize(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """x / (||x||₂ + eps) along dim 1 (CUT's normalisation; not F.normalize's max(·, eps))."""
    return x / (x.square().sum(1, keepdim=True).sqrt() + eps)


class PatchSampleMLP(nn.Module):
    """CUT's PatchSampleF: sample patch locations of each feature map, embed them with a
    per-layer 2-layer MLP (Linear, ReLU, Linear; ``nc`` = 256 units) and l2-normalise.

    The same locations are used for every image of the batch, and a second call with the
    returned ``patch_ids`` samples the same locations again (query vs key features).
    """

    def __init__(self, in_channels: Sequence[int], nc: int = 256, use_mlp: bool = True):
        super().__init__()
        self.use_mlp = use_mlp
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)) if use_mlp
            else nn.Identity() for c in in_channels
        )

    def forward(
        self,
        feats: Sequence[torch.Tensor],
        num_patches: int = 256,
        patch_ids: Sequence[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``feats`` [B,C,H,W] each -> ([B*P, nc] embeddings, [P] location ids) per layer.

        Rows are batch-major (image 0's P patches first). ``P = min(num_patches, H*W)``.
        """
        out, ids_out = [], []
        for i, feat in enumerate(feats):
            flat = feat.flatten(2)  # [B, C, H*W]
            if patch_ids is not None:
                ids = patch_ids[i]
            else:
                hw = flat.shape[2]
                ids = torch.randperm(hw, generator=generator)[: min(num_patches, hw)]
                ids = ids.to(feat.device)
            x = flat[:, :, ids].transpose(1, 2).flatten(0, 1)  # [B*P, C]
            out.append(l2_normalize(self.mlps[i](x)))
            ids_out.append(ids)
        return out, ids_out


def init_weights(module: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """The references' init: conv / linear weights from N(0, gain) ('normal', CycleGAN) or
    Xavier-normal with ``gain`` ('xavier', CUT), zero biases; batch-norm scales N(1, gain)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(m.weight, gain=gain)
            else:
                raise ValueError(f"unknown init_type {init_type!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return module
