"""RelightingAugmentation: studio textures degraded into phone-like inputs (MoSAR, seed 003).

MoSAR makes its completion and light-normalisation training pairs by rendering light-stage
faces under random HDR light and camera angles and projecting them back into UV space. Without
a 3D face and an HDR collection, this module does the UV-space analogue on a studio texture
``S`` ``[B, 3, H, W]`` (linear, [0, 1]), per sample::

    phone = clamp(S * gain(u, v) * cast + noise, 0, 1) * mask(u, v)

- **Proxy geometry.** No mesh: each texel gets the normal of an unwrapped head-shaped surface,
  azimuth ``phi = (u - axis) * pi * azimuth_span`` and elevation
  ``theta = (0.5 - v) * pi * elevation_span`` (``u`` right, ``v`` down, the camera looking
  down -z), ``n = (sin phi cos theta, sin theta, cos phi cos theta)``.
- **Low-order spherical-harmonics light** (the light model MoSAR uses, order 2 = 9
  coefficients): the irradiance ``E(n) = sum_l A_l sum_m L_lm Y_lm(n)`` with the Lambertian
  band factors ``A = (pi, 2 pi / 3, pi / 4)``; ``L_00`` is fixed so that a uniform environment
  gives ``E = 1``, ``L_1m ~ N(0, sh_std[0]^2)``, ``L_2m ~ N(0, sh_std[1]^2)``; clamped below at
  ``ambient_floor``.
- **Hard key light with a soft shadow**: a directional light of intensity
  ``~ U(key_intensity)`` from azimuth ``~ U(-key_azimuth, key_azimuth)`` and elevation
  ``~ U(-key_elevation, key_elevation)`` (degrees), shading ``max(0, n . d)``, multiplied by
  ``1 - strength * shadow`` where ``shadow`` is a cast-shadow proxy: the half of the map on the
  side away from the light beyond a random line (offset ``~ U(0, shadow_offset)`` from the
  axis, tilt ``~ U(-shadow_tilt, shadow_tilt)`` degrees), with a sigmoid edge of width
  ``shadow_softness`` (UV units); ``strength ~ U(shadow_strength)``.
- ``gain`` = SH + key, divided by its mean over the map and multiplied by an exposure
  ``~ logU(exposure)``.
- **Colour cast**: per-channel factors ``exp(N(0, cast_std^2))``; **noise**: Gaussian of
  std ``noise_std``.
- **Holes** (``mask``, 1 = seen) from a distribution **learned from real phone masks**
  (:meth:`observe`, called by the completion translators on every training batch's phone
  masks; held in buffers, so it travels in the checkpoint). ``mask_mode``:

  - ``"pool"``: a real phone mask drawn uniformly from a ring buffer of the last
    ``pool_size`` observed masks, shifted by a random integer offset of up to
    ``jitter`` x the size in each direction (the border texels repeated) and mirrored across
    the symmetry axis with probability ``mirror_prob`` (a capture from the other side). This
    keeps the joint shape of real holes (a whole side unseen, a chin shadow band).
  - ``"frequency"``: holes drawn independently of any single mask but with each texel's
    hole probability equal to the observed per-texel hole frequency ``p(u, v)``: a smooth
    unit-variance Gaussian field ``z`` (white noise blurred by a Gaussian of std
    ``hole_correlation`` x the size, normalised to unit variance) is thresholded,
    ``hole = z < Phi^-1(p(u, v))`` (a Gaussian copula), so the marginals match exactly and
    holes come as blobs of the correlation length.

  Holes are set to 0, as in phone captures.

It stands on its own: it imports nothing from the synthetic benchmark (``lift.data.synth``),
whose phone model does not exist for real data. Every random draw comes from the
``generator`` given to :meth:`forward` / :meth:`sample_masks` (the CPU global generator when
None), drawn on the CPU in a fixed order and then moved, so a seed fixes the result on any
device. Under DDP each rank observes its own batches (no collective calls): ranks hold
slightly different mask statistics, rank 0's are saved.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lift.spec import Recordable
from lift_related.symmetry import mirror

# Real SH basis constants of bands 0-2 (x, y, z: the unit normal).
_Y0 = 0.282095
_Y1 = 0.488603
_Y2 = (1.092548, 0.315392, 0.546274)
_A = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)  # Lambertian convolution per band


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 real SH basis functions of bands 0-2 at unit normals ``[..., 3]`` -> ``[..., 9]``."""
    x, y, z = normals.unbind(-1)
    return torch.stack([
        torch.full_like(x, _Y0),
        _Y1 * y, _Y1 * z, _Y1 * x,
        _Y2[0] * x * y, _Y2[0] * y * z, _Y2[1] * (3 * z * z - 1), _Y2[0] * x * z,
        _Y2[2] * (x * x - y * y)], dim=-1)


def _uniform(n: int, bounds: Sequence[float], generator: torch.Generator | None) -> torch.Tensor:
    lo, hi = float(bounds[0]), float(bounds[1])
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


class RelightingAugmentation(Recordable, nn.Module):
    """Degrades studio textures into phone-like (texture, mask) pairs; see the module doc.

    Args:
        resolution: the size the mask statistics are kept at (the training data's).
        mask_mode: ``"pool"`` (real masks with jitter) or ``"frequency"`` (per-texel
            frequency, Gaussian copula).
        pool_size: masks kept in the pool (the last ones observed).
        jitter: pool mode, largest shift as a fraction of the size.
        mirror_prob: pool mode, probability of mirroring the drawn mask.
        hole_correlation: frequency mode, the hole field's correlation length (fraction of
            the size).
        symmetry_axis: u of the vertical UV symmetry line (0.5: the centre).
        sh_std: std of the band-1 and band-2 SH coefficients.
        ambient_floor: lowest SH irradiance.
        key_intensity, key_azimuth, key_elevation: the key light's intensity range and
            largest azimuth / elevation (degrees).
        shadow_strength, shadow_softness, shadow_offset, shadow_tilt: the cast-shadow proxy.
        exposure: range of the overall exposure (log-uniform).
        cast_std: std of the log per-channel colour cast.
        noise_std: std of additive Gaussian noise.
        azimuth_span, elevation_span: the proxy geometry's angular extent (fractions of pi).
    """

    def __init__(
        self,
        resolution: int = 64,
        mask_mode: str = "pool",
        pool_size: int = 64,
        jitter: float = 0.03,
        mirror_prob: float = 0.5,
        hole_correlation: float = 0.05,
        symmetry_axis: float = 0.5,
        sh_std: Sequence[float] = (0.4, 0.2),
        ambient_floor: float = 0.05,
        key_intensity: Sequence[float] = (0.3, 1.5),
        key_azimuth: float = 70.0,
        key_elevation: float = 40.0,
        shadow_strength: Sequence[float] = (0.3, 0.9),
        shadow_softness: float = 0.03,
        shadow_offset: float = 0.15,
        shadow_tilt: float = 20.0,
        exposure: Sequence[float] = (0.6, 1.4),
        cast_std: float = 0.1,
        noise_std: float = 0.0,
        azimuth_span: float = 1.0,
        elevation_span: float = 0.6,
    ):
        super().__init__()
        if mask_mode not in ("pool", "frequency"):
            raise ValueError(f"mask_mode must be 'pool' or 'frequency', got {mask_mode!r}")
        if resolution < 1 or pool_size < 1:
            raise ValueError("resolution and pool_size must be positive")
        self.resolution, self.mask_mode, self.pool_size = resolution, mask_mode, pool_size
        self.jitter, self.mirror_prob = jitter, mirror_prob
        self.hole_correlation, self.symmetry_axis = hole_correlation, symmetry_axis
        self.sh_std, self.ambient_floor = tuple(sh_std), ambient_floor
        self.key_intensity, self.key_azimuth = tuple(key_intensity), key_azimuth
        self.key_elevation = key_elevation
        self.shadow_strength, self.shadow_softness = tuple(shadow_strength), shadow_softness
        self.shadow_offset, self.shadow_tilt = shadow_offset, shadow_tilt
        self.exposure, self.cast_std, self.noise_std = tuple(exposure), cast_std, noise_std
        self.azimuth_span, self.elevation_span = azimuth_span, elevation_span
        r = resolution
        self.register_buffer("visible_sum", torch.zeros(1, r, r, dtype=torch.float64))
        self.register_buffer("mask_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("pool", torch.zeros(pool_size, 1, r, r, dtype=torch.uint8))
        self.register_buffer("pool_next", torch.zeros((), dtype=torch.long))

    # --- the mask distribution ----------------------------------------------------------------

    @torch.no_grad()
    def observe(self, masks: torch.Tensor) -> None:
        """Adds real phone masks ``[B, 1, h, w]`` (1 = seen) to the statistics and the pool."""
        masks = masks.detach().float()
        if masks.shape[-2:] != (self.resolution, self.resolution):
            masks = F.interpolate(masks, size=(self.resolution,) * 2, mode="area")
        binary = (masks > 0.5).to(self.pool.device)
        self.visible_sum += binary.double().sum(0).to(self.visible_sum.device)
        self.mask_count += binary.shape[0]
        for m in binary:
            self.pool[int(self.pool_next) % self.pool_size] = m.to(torch.uint8)
            self.pool_next += 1

    def _require_masks(self) -> None:
        if int(self.mask_count) == 0:
            raise RuntimeError("RelightingAugmentation has observed no phone mask: train with a "
                               "phone or paired split (the masks are learned from them), or "
                               "call observe(masks) first")

    @property
    def visibility(self) -> torch.Tensor:
        """The observed per-texel visibility frequency ``[1, R, R]`` (float32)."""
        self._require_masks()
        return (self.visible_sum / int(self.mask_count)).float()

    def sample_masks(self, num: int, size: int | None = None, *,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """``num`` masks ``[num, 1, size, size]`` (float {0, 1}, on the CPU) drawn from the
        learned distribution (``mask_mode``); ``size`` defaults to ``resolution``."""
        self._require_masks()
        size = size or self.resolution
        if self.mask_mode == "pool":
            masks = self._pool_masks(num, generator)
        else:
            masks = self._frequency_masks(num, generator)
        if size != self.resolution:
            masks = (F.interpolate(masks, size=(size, size), mode="nearest") > 0.5).float()
        return masks

    def _pool_masks(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        filled = min(int(self.pool_next), self.pool_size)
        pool = self.pool[:filled].float().cpu()
        index = torch.randint(filled, (num,), generator=generator)
        r = self.resolution
        reach = int(round(self.jitter * r))
        shifts = torch.randint(-reach, reach + 1, (num, 2), generator=generator)
        flips = torch.rand(num, generator=generator) < self.mirror_prob
        out = []
        for i in range(num):
            m = pool[index[i]][None]
            if reach:
                m = F.pad(m, (reach,) * 4, mode="replicate")
                dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
                m = m[..., reach + dy:reach + dy + r, reach + dx:reach + dx + r]
            if flips[i]:
                m = mirror(m, self.symmetry_axis, fill=0.0)
            out.append(m[0])
        return torch.stack(out)

    def _frequency_masks(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        r = self.resolution
        hole = (1.0 - self.visibility.cpu().double()).clamp(0, 1)
        threshold = torch.special.ndtri(hole)                 # -inf where never a hole
        sigma = max(self.hole_correlation * r, 1e-6)
        radius = max(1, int(math.ceil(3 * sigma)))
        t = torch.arange(-radius, radius + 1, dtype=torch.float64)
        kernel = torch.exp(-0.5 * (t / sigma) ** 2)
        kernel = kernel / kernel.square().sum().sqrt()        # unit L2 norm: unit variance
        noise = torch.randn(num, 1, r + 2 * radius, r + 2 * radius, generator=generator,
                            dtype=torch.float64)
        field = F.conv2d(noise, kernel.view(1, 1, 1, -1))    # valid: every texel full support
        field = F.conv2d(field, kernel.view(1, 1, -1, 1))
        return (field >= threshold).float()

    # --- the light -----------------------------------------------------------------------------

    def normals(self, height: int, width: int) -> torch.Tensor:
        """The proxy normals ``[H, W, 3]`` (float64) of the UV layout (see module doc)."""
        u = (torch.arange(width, dtype=torch.float64) + 0.5) / width
        v = (torch.arange(height, dtype=torch.float64) + 0.5) / height
        phi = (u - self.symmetry_axis) * math.pi * self.azimuth_span
        theta = (0.5 - v) * math.pi * self.elevation_span
        phi, theta = phi[None, :].expand(height, width), theta[:, None].expand(height, width)
        return torch.stack([phi.sin() * theta.cos(), theta.sin(), phi.cos() * theta.cos()], -1)

    def light(self, num: int, height: int, width: int, *,
              generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Random gain fields ``[num, 1, H, W]`` and colour casts ``[num, 3, 1, 1]`` (CPU,
        float64): ``{"gain", "cast", "sh", "key", "shadow"}``."""
        n = self.normals(height, width)                                   # [H, W, 3]
        coeffs = torch.randn(num, 9, generator=generator, dtype=torch.float64)
        std = torch.tensor([0.0, *[self.sh_std[0]] * 3, *[self.sh_std[1]] * 5],
                           dtype=torch.float64)
        band = torch.tensor([_A[0], *[_A[1]] * 3, *[_A[2]] * 5], dtype=torch.float64)
        coeffs = coeffs * std
        coeffs[:, 0] = 1.0 / (_A[0] * _Y0)                                # E = 1 when uniform
        sh = torch.einsum("hwk,bk->bhw", sh_basis(n), coeffs * band).clamp_min(self.ambient_floor)

        intensity = _uniform(num, self.key_intensity, generator)
        az = torch.deg2rad(_uniform(num, (-self.key_azimuth, self.key_azimuth), generator))
        el = torch.deg2rad(_uniform(num, (-self.key_elevation, self.key_elevation), generator))
        d = torch.stack([az.sin() * el.cos(), el.sin(), az.cos() * el.cos()], -1)  # [B, 3]
        lambert = torch.einsum("hwk,bk->bhw", n, d).clamp_min(0)

        strength = _uniform(num, self.shadow_strength, generator)
        offset = _uniform(num, (0.0, self.shadow_offset), generator)
        tilt = torch.deg2rad(_uniform(num, (-self.shadow_tilt, self.shadow_tilt), generator))
        u = (torch.arange(width, dtype=torch.float64) + 0.5) / width
        v = (torch.arange(height, dtype=torch.float64) + 0.5) / height
        side = torch.where(az >= 0, -1.0, 1.0)        # the shadow falls away from the light
        boundary = self.symmetry_axis + side * offset                       # [B]
        dist = (u[None, None, :] - boundary[:, None, None]
                - torch.tan(tilt)[:, None, None] * (v[None, :, None] - 0.5))
        dist = dist * torch.cos(tilt)[:, None, None] * side[:, None, None]  # > 0: shadowed
        shadow = torch.sigmoid(dist / max(self.shadow_softness, 1e-6))
        key = intensity[:, None, None] * lambert * (1 - strength[:, None, None] * shadow)

        gain = sh + key
        lo, hi = math.log(self.exposure[0]), math.log(self.exposure[1])
        exposure = torch.exp(_uniform(num, (lo, hi), generator))
        gain = gain / gain.mean(dim=(1, 2), keepdim=True) * exposure[:, None, None]
        cast = torch.exp(self.cast_std * torch.randn(num, 3, generator=generator,
                                                     dtype=torch.float64))
        return {"gain": gain[:, None], "cast": cast[:, :, None, None], "sh": sh[:, None],
                "key": key[:, None], "shadow": shadow[:, None]}

    # --- the whole degradation -----------------------------------------------------------------

    @torch.no_grad()
    def forward(self, studio: torch.Tensor, *, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(phone, mask)``: ``studio`` ``[B, 3, H, W]`` relit, cast, noised and holed."""
        b, _, h, w = studio.shape
        if h != w:
            raise ValueError(f"RelightingAugmentation needs square textures, got {h}x{w}")
        masks = self.sample_masks(b, h, generator=generator)
        lit = self.light(b, h, w, generator=generator)
        gain, cast = lit["gain"].to(studio), lit["cast"].to(studio)
        degraded = studio * gain * cast
        if self.noise_std > 0:
            degraded = degraded + self.noise_std * torch.randn(
                studio.shape, generator=generator).to(studio)
        masks = masks.to(studio)
        return degraded.clamp(0, 1) * masks, masks
