"""A tiny generator and an MSE distance for the inversion, sampler and contract tests.

``TinyGenerator`` is written against :class:`lift.components.StyleGenerator` alone (as a third
party would write a generator): ``map`` / ``synthesize`` / ``w_avg`` / ``parameters_up_to``,
small enough that a test inverts a few textures in a second. Each W+ row modulates its own
layer, so W+ can fit more than W.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from lift.components import PerceptualDistance, StyleGenerator


class TinyMapping(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_ws: int):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws = z_dim, w_dim, num_ws
        self.fc1 = nn.Linear(z_dim, w_dim)
        self.fc2 = nn.Linear(w_dim, w_dim)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z, truncation_psi: float = 1.0, update_w_avg: bool = False):
        assert z.ndim == 2 and z.shape[1] == self.z_dim, z.shape
        z = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        w = self.fc2(F.leaky_relu(self.fc1(z), 0.2))
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.mean(0).lerp(self.w_avg, 0.99))
        if truncation_psi != 1:
            w = self.w_avg.lerp(w, truncation_psi)
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)


class TinySynthesis(nn.Module):
    """Const 4x4 -> (conv, up, conv, conv, up, conv, conv) -> modulated tRGB, one W+ row each."""

    UPS = (False, True, False, True, False)  # upsample before conv i

    def __init__(self, w_dim: int, channels: int = 8):
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = len(self.UPS) + 1
        self.resolution = 4 * 2 ** sum(self.UPS)
        self.const = nn.Parameter(torch.randn(channels, 4, 4))
        self.affines = nn.ModuleList(nn.Linear(w_dim, channels) for _ in range(self.num_ws))
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1)
                                   for _ in self.UPS)
        self.torgb = nn.Conv2d(channels, 3, 1)
        for a in self.affines:
            nn.init.ones_(a.bias)
        self.register_buffer("noise_const", torch.randn(1, 1, self.resolution, self.resolution))

    def forward(self, ws, noise_mode: str = "random"):
        assert ws.ndim == 3 and ws.shape[1:] == (self.num_ws, self.w_dim), ws.shape
        x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        for i, (up, conv) in enumerate(zip(self.UPS, self.convs)):
            if up:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = F.leaky_relu(conv(x * self.affines[i](ws[:, i])[:, :, None, None]), 0.2)
        img = self.torgb(x * self.affines[-1](ws[:, -1])[:, :, None, None])
        if noise_mode == "const":
            img = img + 0.01 * self.noise_const
        elif noise_mode == "random":
            img = img + 0.01 * torch.randn_like(img[:, :1])
        return img


class TinyGenerator(StyleGenerator):
    def __init__(self, z_dim: int = 8, w_dim: int = 8, channels: int = 8, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.synthesis = TinySynthesis(w_dim, channels)
            self.num_ws = self.synthesis.num_ws
            self.mapping = TinyMapping(z_dim, w_dim, self.num_ws)
        self.z_dim, self.w_dim, self.resolution = z_dim, w_dim, self.synthesis.resolution
        self.img_channels = 3

    def map(self, z, *, truncation_psi: float = 1.0, update_w_avg: bool = False):
        return self.mapping(z, truncation_psi, update_w_avg)

    def synthesize(self, ws, *, noise_mode: str = "const"):
        return self.synthesis(ws, noise_mode=noise_mode)

    @property
    def w_avg(self):
        return self.mapping.w_avg

    def parameters_up_to(self, resolution: int):
        # the constant and the first layer act at 4x4, the next two at 8x8 (UPS), ...
        res, out = 4, [self.synthesis.const]
        for i, up in enumerate(TinySynthesis.UPS):
            res *= 2 if up else 1
            if res <= resolution:
                out += [*self.synthesis.convs[i].parameters(),
                        *self.synthesis.affines[i].parameters()]
        return iter(out if resolution >= 4 else [])

    def mapping_parameters(self):
        return self.mapping.parameters()


class MSEDistance(PerceptualDistance):
    """Per-sample mean squared error (a stand-in perceptual distance)."""

    def forward(self, x, y):
        assert x.shape == y.shape and x.ndim == 4, (x.shape, y.shape)
        return (x - y).square().flatten(1).mean(1)


def targets_from(generator: TinyGenerator, num: int, seed: int = 1, plus: bool = True):
    """Images the generator can make: from random W+ codes (``plus``) or W codes, in [0,1]."""
    g = torch.Generator().manual_seed(seed)
    if plus:
        z = torch.randn(num * generator.num_ws, generator.z_dim, generator=g)
        ws = generator.mapping(z)[:, 0].reshape(num, generator.num_ws, generator.w_dim)
    else:
        ws = generator.mapping(torch.randn(num, generator.z_dim, generator=g))
    with torch.no_grad():
        img = generator.synthesis(ws.detach(), noise_mode="const")
    return ((img + 1) / 2).clamp(0, 1)


def single_thread():
    """Generator-style fixture body: tiny ops run fastest (and steadiest under load) on 1 thread."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class TinyTextures(torch.utils.data.Dataset):
    """Textures the tiny generator can make, as the texture datasets give them."""

    def __init__(self, num: int = 6, resolution: int = 16, seed: int = 1, prefix: str = "t"):
        self.stems = [f"{prefix}{i:03d}" for i in range(num)]
        self.images = targets_from(TinyGenerator(seed=0), num, seed=seed)
        assert self.images.shape[-1] == resolution
        g = torch.Generator().manual_seed(seed)
        self.masks = (torch.rand(num, 1, resolution, resolution, generator=g) > 0.2).float()

    def __len__(self):
        return len(self.stems)

    def __getitem__(self, i):
        return {"stem": self.stems[i], "phone": self.images[i], "mask": self.masks[i]}


class TinyTextureData(L.LightningDataModule):
    """A predict-only data module over :class:`TinyTextures`."""

    def __init__(self, num: int = 6, batch_size: int = 4, seed: int = 1):
        super().__init__()
        self.num, self.batch_size, self.seed = num, batch_size, seed

    def predict_dataloader(self):
        return torch.utils.data.DataLoader(TinyTextures(self.num, seed=self.seed),
                                           batch_size=self.batch_size)
