"""Image-gradient operators G for Eq. 13-14.

The paper adds ``G(I_phone)`` to a texture, so each operator returns a *signed detail image*
in image units, the same shape as its input, computed per channel with reflect padding:

- ``HighPass``:  I - GaussianBlur_sigma(I), the detail the blur removes (default).
- ``Laplacian``: -scale * (discrete 5-point Laplacian of I), a sharpening detail layer.
- ``SobelMagnitude``: scale * sqrt(Gx^2 + Gy^2), unsigned edge strength (brightens edges).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lift.components import GradientOperator


def _depthwise(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel of ``image`` [B,C,H,W] with ``kernel`` [kh,kw], reflect padded."""
    c = image.shape[1]
    kh, kw = kernel.shape
    weight = kernel.to(image).expand(c, 1, kh, kw)
    padded = F.pad(image, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    return F.conv2d(padded, weight, groups=c)


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).float()


class HighPass(GradientOperator):
    """``scale * (I - GaussianBlur_sigma(I))``: the detail layer above frequency ~1/sigma."""

    def __init__(self, sigma: float = 1.5, scale: float = 1.0):
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"HighPass sigma must be > 0, got {sigma}")
        self.sigma, self.scale = sigma, scale
        self.register_buffer("kernel", gaussian_kernel1d(sigma), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        k = self.kernel
        blurred = _depthwise(_depthwise(image, k[None, :]), k[:, None])  # separable blur
        return self.scale * (image - blurred)


class Laplacian(GradientOperator):
    """``-scale * Laplacian(I)`` with the 5-point stencil: positive on bright details."""

    def __init__(self, scale: float = 0.25):
        super().__init__()
        self.scale = scale
        stencil = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.register_buffer("kernel", stencil, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return -self.scale * _depthwise(image, self.kernel)


class SobelMagnitude(GradientOperator):
    """``scale * |Sobel(I)|`` per channel (Sobel kernels normalised by 1/8)."""

    def __init__(self, scale: float = 1.0, eps: float = 1e-8):
        super().__init__()
        self.scale, self.eps = scale, eps
        gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
        self.register_buffer("gx", gx, persistent=False)
        self.register_buffer("gy", gx.t().contiguous(), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        dx = _depthwise(image, self.gx)
        dy = _depthwise(image, self.gy)
        return self.scale * torch.sqrt(dx * dx + dy * dy + self.eps)
