"""Small tensor helpers shared by the generator's modules: seeded random streams, uniform /
normal draws, Gaussian blur, fractal noise, symmetrisation, soft masks and quantisation.

The names keep their leading underscore: they are the package's internals, imported by its
sibling modules (and ``_blur`` by the tests), not public API.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _seed_for(*key: int) -> int:
    state = np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in key] + [0x5EED]).generate_state(2)
    return (int(state[0]) << 31) ^ int(state[1])


def _gen(*key: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(_seed_for(*key))
    return g


def _u(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _n(g: torch.Generator, sigma: float = 1.0) -> float:
    return sigma * float(torch.randn((), generator=g))


def _gauss1d(sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(img: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[C, H, W]``; large sigmas are done at reduced resolution."""
    if sigma_px <= 0.2:
        return img
    c, h, w = img.shape
    f = 1
    if sigma_px > 3.0:
        f = int(sigma_px // 1.5)
        while h % f or w % f:
            f -= 1
    x = img.unsqueeze(0)
    if f > 1:
        x = F.avg_pool2d(x, f)
    s = sigma_px / f
    k = _gauss1d(s)
    r = (k.numel() - 1) // 2
    hh, ww = x.shape[-2:]
    rr = min(r, hh - 1, ww - 1)
    if rr < r:
        k = k[r - rr : r + rr + 1]
        k = k / k.sum()
        r = rr
    x = x.reshape(c, 1, hh, ww)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    x = x.reshape(1, c, hh, ww)
    if f > 1:
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x[0]


def _noise(g: torch.Generator, c: int, res: int, base: int = 4, octaves: int = 4, persistence: float = 0.55) -> torch.Tensor:
    """Fractal (bicubic value) noise ``[c, res, res]`` with roughly unit standard deviation.

    Octaves are summed at a working resolution of about two pixels per finest cell and
    the sum is bilinearly up-sampled to ``res`` (the field is smooth at that scale).
    """
    octaves = max(1, min(octaves, int(math.log2(max(res / base, 1))) + 1))
    top = base * 2 ** (octaves - 1)
    work = min(res, max(32, 2 * top))
    out = torch.zeros(1, c, work, work)
    amp, tot = 1.0, 0.0
    for o in range(octaves):
        n = base * 2**o
        z = torch.randn(1, c, n + 2, n + 2, generator=g)
        # interpolate the (n+2)-cell grid and crop its outer cell: no edge effects
        size = int(round(work * (n + 2) / n))
        up = F.interpolate(z, size=(size, size), mode="bicubic", align_corners=False)
        m = (size - work) // 2
        out += amp * up[..., m : m + work, m : m + work]
        tot += amp * amp
        amp *= persistence
    if work != res:
        out = F.interpolate(out, size=(res, res), mode="bilinear", align_corners=False)
    return out[0] / math.sqrt(max(tot, 1e-8)) * 1.25


def _symmetrize(f: torch.Tensor, asym: float) -> torch.Tensor:
    """Mirror-symmetric part of a field (about ``u = 0.5``) plus ``asym`` times its antisymmetric part."""
    fl = f.flip(-1)
    return 0.5 * (f + fl) + asym * 0.5 * (f - fl)


def _sig(x: torch.Tensor, w: float) -> torch.Tensor:
    return torch.sigmoid(x / w)


def _blob(x, v, cx, cv, sx, sv):
    """Axis-aligned Gaussian bump; separable, so 1-D ``x`` [1,1,W] / ``v`` [1,H,1] make it cheap."""
    return torch.exp(-0.5 * ((x - cx) / sx) ** 2) * torch.exp(-0.5 * ((v - cv) / sv) ** 2)


def _interp(xq: torch.Tensor, xk: list[float], yk: list[float]) -> torch.Tensor:
    xk_t = torch.tensor(xk, dtype=torch.float32)
    yk_t = torch.tensor(yk, dtype=torch.float32)
    xq = xq.clamp(xk[0], xk[-1])
    i = torch.bucketize(xq, xk_t).clamp(1, len(xk) - 1)
    x0, x1 = xk_t[i - 1], xk_t[i]
    y0, y1 = yk_t[i - 1], yk_t[i]
    t = ((xq - x0) / (x1 - x0)).clamp(0, 1)
    t = t * t * (3 - 2 * t)  # smooth between knots
    return y0 + (y1 - y0) * t


def _lum(rgb: torch.Tensor) -> torch.Tensor:
    return 0.2126 * rgb[0:1] + 0.7152 * rgb[1:2] + 0.0722 * rgb[2:3]


def _quantize(x: torch.Tensor, bits: int | None) -> torch.Tensor:
    x = x.clamp(0.0, 1.0).to(torch.float32)
    if bits is None:
        return x.contiguous()
    levels = float(2**bits - 1)
    return (torch.round(x * levels) / levels).contiguous()

