"""Physically motivated synthetic generator of *paired* phone / studio UV face textures.

No real phone-cum-studio face texture dataset is publicly reachable, so lift ships this
generator, which mirrors the data regime of the paper (Athar et al. 2024, Sect. 4): many
phone-captured neutral textures (in-the-wild lighting, holes, low effective resolution,
noise), few studio-captured ones (uniform lighting, complete, full resolution), a small
paired subset, and phone-captured expression textures under the *same* lighting as the
neutral phone capture.

Everything is pure torch (+ numpy for seeding / colour tables), runs on the CPU, and is
deterministic per ``(seed, subject index)``: the sample of subject ``i`` never depends on
which other subjects were generated before, so a lazily indexed in-memory dataset and a
folder writer produce identical values.

Model (see ``docs/data.md`` for the long version)
-------------------------------------------------
UV layout
    ``u`` (columns, left to right) is the azimuth around a head-shaped sphere, with the
    face centred at ``u = 0.5`` and the back of the head at the left/right border (the
    seam); the mapping ``phi = pi * (a s + (1 - a) s^3)``, ``s = 2u - 1``, ``a = 0.5``
    magnifies the face (as artists' face UV layouts do).  ``v`` (rows, top to bottom) is
    the elevation, from the top of the head (``v = 0``) down to the neck (``v = 1``).
    Landmarks: hairline ~0.15, brows ~0.33, eyes ~0.40, nose tip ~0.54, mouth ~0.64,
    chin ~0.78, ears at ``u = 0.5 +- 0.34``.
Identity -> albedo
    Skin reflectance from a two-chromophore (melanin / haemoglobin) Beer-Lambert model
    ``albedo_c = exp(ln b_c - m sigma_m,c - (h - 1) sigma_h,c)`` with spatially varying,
    left/right near-symmetric chromophore maps, plus features drawn in the UV layout
    (hair and hairline, brows, eyes, nose/nostrils, lips, ears, optional stubble) and
    identity-specific fine detail (moles, freckles, pores, wrinkles).
Geometry
    A height field ``h`` (in head radii) over the sphere: nose, brow ridge, eye sockets,
    cheekbones, lips, chin, ears, wrinkles, pores; normals from ``h``'s gradient in the
    sphere's tangent frame, the under-chin band tilted to face downwards.
Studio texture
    ``albedo * studio_gain * (1 - studio_ao_strength * (1 - AO))``: uniform light, mild
    ambient occlusion from a cavity map of ``h``; complete, full resolution, noise-free.
Phone texture
    Albedo shaded by a random in-the-wild light rig (coloured directional key light with a
    soft cast shadow marched over the height field, optional coloured fill light,
    hemispherical sky/ground ambient, wrapped diffuse for subsurface scattering,
    Blinn-Phong specular on an oiliness map), auto-exposure and imperfect auto white
    balance, visibility mask from the capture's view coverage (back of head, top of head,
    under the chin, behind the ears, ragged borders, random occlusion blobs, under-exposed
    texels), a smooth sub-pixel misalignment warp, lower effective resolution (antialiased
    down-sampling, optical blur, bicubic up-sampling) and signal-dependent sensor noise.
    Missing texels are filled with ``missing_value`` (default 0.0, black, as an unwrapping
    pipeline that never saw them leaves them) and flagged 0 in the mask.
Expressions
    Smooth displacement warps of albedo *and* height around the mouth / eyes / brows
    (smile, open mouth with painted oral cavity and teeth, blink, brow raise, pucker) plus
    expression creases, rendered with the *same* phone capture (lights, exposure, white
    balance, mask, misalignment, resolution) and, as ground truth, with the studio model.

All textures are float32, linear RGB in [0, 1], shaped ``[3, H, W]``; masks ``[1, H, W]``
in {0, 1}; ``H = W = resolution``.  With ``quantize_bits=16`` (default) every value is
``round(x * 65535) / 65535`` computed in float32, so a 16-bit PNG round trip
(``uint16 -> float32 / 65535``) reproduces the tensors bit for bit.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "SynthProfile",
    "PROFILES",
    "SynthSample",
    "TextureSynthesizer",
    "EXPRESSION_KINDS",
    "split_plan",
    "subject_plan",
    "iter_samples",
    "blackbody_rgb",
]

# --------------------------------------------------------------------------------------
# profiles and splits
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthProfile:
    """Sizes of a synthetic benchmark.

    ``resolution`` is the full ("high") resolution of every texture written;
    ``low_resolution`` is what the GAN stages work at (recorded only, unused here).
    Subject counts per category are disjoint: phone-only subjects train G_phone,
    studio-only ones finetune G_studio, paired_train ones do both (Eq. 6, diffusion),
    paired_test is Table 1 and unpaired_test (phone only) is Table 2.
    """

    name: str
    resolution: int
    low_resolution: int
    phone_only: int
    studio_only: int
    paired_train: int
    paired_test: int
    unpaired_test: int
    expressions: int

    @property
    def num_subjects(self) -> int:
        return (
            self.phone_only + self.studio_only + self.paired_train + self.paired_test + self.unpaired_test
        )


PROFILES: dict[str, SynthProfile] = {
    "quickstart": SynthProfile("quickstart", 256, 64, 48, 16, 12, 4, 6, 2),
    "cpu": SynthProfile("cpu", 256, 64, 1200, 120, 40, 10, 31, 2),
    # Paper (Sect. 4): 12,543 phone textures for G_phone (83 of them paired), 383 studio
    # textures (83 paired), 10 paired test, 31 unpaired test subjects.
    "paper": SynthProfile("paper", 1024, 256, 12543 - 83, 383 - 83, 83, 10, 31, 4),
}

SPLITS = ("phone_train", "studio_train", "paired_train", "paired_test", "unpaired_test")


def _stem(index: int) -> str:
    return f"s{index:06d}"


def subject_plan(profile: SynthProfile) -> list[tuple[str, int, bool, bool, int, str]]:
    """Every distinct subject once: ``(stem, index, has_phone, has_studio, n_expressions, category)``.

    Indices are allocated in the order phone_only, studio_only, paired_train, paired_test,
    unpaired_test.  Expression textures are planned only for subjects that have a phone
    texture and belong to paired_train / paired_test / unpaired_test.
    """
    cats = [
        ("phone_only", profile.phone_only, True, False, 0),
        ("studio_only", profile.studio_only, False, True, 0),
        ("paired_train", profile.paired_train, True, True, profile.expressions),
        ("paired_test", profile.paired_test, True, True, profile.expressions),
        ("unpaired_test", profile.unpaired_test, True, False, profile.expressions),
    ]
    out = []
    i = 0
    for cat, n, ph, st, ne in cats:
        for _ in range(n):
            out.append((_stem(i), i, ph, st, ne, cat))
            i += 1
    return out


def split_plan(profile: SynthProfile) -> dict[str, list[tuple[str, int, bool, bool]]]:
    """Split name -> list of ``(stem, subject_index, has_phone, has_studio)``.

    ``phone_train`` = phone-only + paired_train subjects, ``studio_train`` = studio-only +
    paired_train subjects, then ``paired_train``, ``paired_test``, ``unpaired_test``.
    Test subjects never appear in a train split.
    """
    by_cat: dict[str, list[tuple[str, int, bool, bool]]] = {}
    for stem, i, ph, st, _ne, cat in subject_plan(profile):
        by_cat.setdefault(cat, []).append((stem, i, ph, st))
    g = lambda c: list(by_cat.get(c, []))  # noqa: E731
    return {
        "phone_train": g("phone_only") + g("paired_train"),
        "studio_train": g("studio_only") + g("paired_train"),
        "paired_train": g("paired_train"),
        "paired_test": g("paired_test"),
        "unpaired_test": g("unpaired_test"),
    }


# --------------------------------------------------------------------------------------
# sample container
# --------------------------------------------------------------------------------------


@dataclass
class SynthSample:
    """One subject.  Textures ``[3, H, W]`` float32 linear RGB in [0, 1]; mask ``[1, H, W]``."""

    stem: str
    phone: torch.Tensor | None
    mask: torch.Tensor | None
    studio: torch.Tensor | None
    expressions: dict[str, torch.Tensor] = field(default_factory=dict)
    expressions_studio: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # capture parameters, for inspection only


# --------------------------------------------------------------------------------------
# colour science helpers
# --------------------------------------------------------------------------------------

_LAMBDA_NM = np.arange(380.0, 781.0, 5.0)


def _g(x, mu, s1, s2):
    s = np.where(x < mu, s1, s2)
    return np.exp(-0.5 * ((x - mu) / s) ** 2)


def _cie_cmf(lam: np.ndarray) -> np.ndarray:
    """CIE 1931 2-degree colour matching functions, multi-lobe Gaussian fit (Wyman et al. 2013)."""
    x = 1.056 * _g(lam, 599.8, 37.9, 31.0) + 0.362 * _g(lam, 442.0, 16.0, 26.7) - 0.065 * _g(lam, 501.1, 20.4, 26.2)
    y = 0.821 * _g(lam, 568.8, 46.9, 40.5) + 0.286 * _g(lam, 530.9, 16.3, 31.1)
    z = 1.217 * _g(lam, 437.0, 11.8, 36.0) + 0.681 * _g(lam, 459.0, 26.0, 13.8)
    return np.stack([x, y, z], 1)


_XYZ2RGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
_CMF = _cie_cmf(_LAMBDA_NM)


def _planck_rgb_raw(t_kelvin: float) -> np.ndarray:
    lam = _LAMBDA_NM * 1e-9
    spd = lam**-5.0 / np.expm1(1.4388e-2 / (lam * t_kelvin))
    return _XYZ2RGB @ (spd @ _CMF)


_WHITE = _planck_rgb_raw(6504.0)
_LUMA = np.array([0.2126, 0.7152, 0.0722])


def blackbody_rgb(t_kelvin: float) -> np.ndarray:
    """Linear-sRGB colour of a black body at ``t_kelvin``, white-balanced to 6504 K, unit luminance."""
    rgb = np.clip(_planck_rgb_raw(float(t_kelvin)) / _WHITE, 1e-3, None)
    return rgb / float(rgb @ _LUMA)


# Chromophore model constants (linear sRGB bands): ln reflectance of very fair skin with
# nominal haemoglobin, melanin and haemoglobin absorption per unit concentration.
_LN_B0 = torch.tensor([-0.22, -0.56, -0.80]).view(3, 1, 1)
_SIGMA_MEL = torch.tensor([0.80, 0.92, 1.00]).view(3, 1, 1)
_SIGMA_HEM = torch.tensor([0.06, 0.42, 0.30]).view(3, 1, 1)

_HAIR_PALETTE = torch.tensor(
    [
        [0.012, 0.009, 0.007],  # black
        [0.035, 0.020, 0.012],  # dark brown
        [0.090, 0.048, 0.022],  # brown
        [0.280, 0.170, 0.075],  # dark blond
        [0.500, 0.360, 0.180],  # blond
        [0.230, 0.070, 0.025],  # red
        [0.300, 0.290, 0.280],  # grey
    ]
)
_HAIR_P = torch.tensor([0.30, 0.26, 0.17, 0.09, 0.06, 0.05, 0.07])
_IRIS_PALETTE = torch.tensor(
    [[0.045, 0.020, 0.008], [0.10, 0.06, 0.02], [0.07, 0.10, 0.14], [0.07, 0.09, 0.045], [0.08, 0.08, 0.09]]
)
_IRIS_P = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05])
_GROUND_TINTS = torch.tensor([[1.0, 0.85, 0.65], [0.75, 1.0, 0.6], [1.0, 1.0, 1.0], [0.8, 0.85, 1.0]])

EXPRESSION_KINDS = ("smile", "open", "blink", "brow_raise", "pucker")

# --------------------------------------------------------------------------------------
# small tensor helpers
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# internal state
# --------------------------------------------------------------------------------------


@dataclass
class _Identity:
    albedo: torch.Tensor  # [3,H,W]
    height: torch.Tensor  # [1,H,W] head radii
    oil: torch.Tensor  # [1,H,W] specular weight
    skin: torch.Tensor  # [3] mean skin colour (for painting)
    p: dict  # feature parameters


@dataclass
class _Capture:
    key_dir: torch.Tensor  # [3]
    key_rgb: torch.Tensor  # [3]
    penumbra: float
    fill_dir: torch.Tensor | None
    fill_rgb: torch.Tensor | None
    sky_rgb: torch.Tensor
    ground_rgb: torch.Tensor
    ks: float
    shininess: float
    gain: float = 1.0
    wb: torch.Tensor | None = None
    scale: float = 0.5
    blur_px: float = 0.0
    warp: torch.Tensor | None = None  # [1,H,W,2] grid_sample grid or None
    view_mask: torch.Tensor | None = None  # [1,H,W] before light-dependent cut & warp
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------------------


class TextureSynthesizer:
    """Deterministic generator of paired phone / studio UV face textures.

    ``sample(i)`` depends only on ``(seed, i)`` (and the constructor arguments).  Random
    streams are separate for the identity (albedo, geometry), each phone capture (light
    rig, camera, visibility, noise) and each expression, so requesting or not requesting
    one output never changes another.

    Parameters (all ranges are ``(lo, hi)`` of a uniform draw per subject / capture)
    ----------
    resolution:
        Output size ``H = W`` of every texture and mask.
    seed:
        Dataset seed; subject ``i`` uses streams derived from ``(seed, i, ...)``.
    quantize_bits:
        Quantise outputs to ``2**bits - 1`` levels (16: exact 16-bit PNG round trip);
        ``None`` keeps raw float32.
    misalignment_px:
        RMS (per axis, in full-resolution pixels) of the smooth phone-vs-studio warp
        (global shift + low-frequency field) modelling tracking/UV registration error.
        0 disables the warp.
    melanin_range:
        Base epidermal melanin concentration (0 ~ very fair, 3.6 ~ very dark skin); drawn as
        ``lo + (hi - lo) * U**1.2``.
    haemoglobin_range:
        Base dermal haemoglobin concentration (1 = nominal; higher = ruddier).
    undertone_sigma:
        Std of a per-identity per-channel shift of log skin reflectance (olive/pink/yellow).
    chromophore_variation:
        Std of the low-frequency log-melanin / haemoglobin blotchiness fields.
    asymmetry:
        Weight of the antisymmetric part of all smooth random fields (0 = perfectly
        mirror-symmetric, 1 = no symmetry).
    feature_jitter:
        Std (UV units) of independent left/right perturbations of feature positions/sizes.
    moles_range:
        Integer range of the number of moles (dark, slightly raised, asymmetric).
    freckle_prob, max_freckles:
        Probability that an identity is freckled (scaled up for fair skin) and the maximum
        number of freckles (concentrated on nose and cheeks).
    pore_strength:
        Std of the pixel-scale multiplicative pore / skin-grain albedo texture.
    wrinkle_range:
        Range of the "age" factor scaling forehead lines, crow's feet and nasolabial folds.
    beard_prob, bald_prob:
        Probability of stubble / a beard and of a (nearly) bald scalp.
    bump_strength:
        Multiplier of the height field's slopes when computing normals.
    studio_gain:
        Uniform studio irradiance (albedo multiplier) of the studio texture.
    studio_ao_strength:
        How much ambient occlusion darkens the studio texture (0 = pure albedo).
    ao_strength:
        Exponent scale of the cavity ambient-occlusion map ``exp(-ao_strength * cavity)``.
    key_azimuth_deg, key_elevation_deg:
        Direction of the key light (0/0 = from the camera; +azimuth = from the subject's
        left, i.e. +u side; +elevation = from above).
    key_cct_range:
        Correlated colour temperature of the key light (K), tungsten to overcast daylight.
    ambient_ratio_range:
        Hemispherical ambient irradiance relative to the key light.
    ambient_cct_range:
        Colour temperature of the sky part of the ambient term.
    ground_ratio_range:
        Ground (bounce) ambient relative to the sky ambient; tinted warm/green/neutral/cool.
    fill_prob, fill_ratio_range:
        Probability and relative intensity of an (unshadowed) fill light.
    colored_light_prob, colored_light_saturation:
        Probability that the fill light is a saturated coloured light (screen, neon) and
        its HSV saturation range.
    light_tint_sigma:
        Std of a random per-channel log-tint applied to every light (off-Planckian sources).
    light_size_range:
        Angular size (tan) of the key light: penumbra width of the cast shadow.
    shadow_steps, shadow_max_dist:
        Number of height-field marching steps and the longest shadow (head radii).
    specular_range, shininess_range:
        Blinn-Phong specular weight and exponent (weighted by an oiliness map: T-zone, lips,
        eyes high; hair low).
    sss_wrap:
        Per-channel wrap of the diffuse term (RGB), a cheap stand-in for subsurface scattering
        (red light bleeds further past the terminator).
    exposure_target, exposure_jitter_stops:
        Auto-exposure maps the mean face irradiance to ``exposure_target``, then a random
        error ``2**N(0, jitter)`` is applied (the albedo is *not* normalised: dark skin stays
        dark, as with a real scene-metering camera).
    highlight_quantile:
        Highlight protection of the auto-exposure: the gain is capped so that this quantile
        of the (pre-error) radiance of the front of the head does not exceed 1 (1.0
        disables the cap).
    awb_strength_range, wb_error_sigma:
        Fraction of the illuminant colour cast removed by auto white balance and the std of
        the residual log-gain error per channel.
    yaw_range_deg, pitch_low_deg, pitch_high_deg:
        View coverage of the phone scan: maximum head yaw (+-) and the lowest / highest
        camera elevation; texels are visible if some view sees them at an angle whose cosine
        exceeds ``grazing_cos``.
    grazing_cos:
        Visibility threshold on the cosine between normal and view direction.
    boundary_noise:
        Amplitude of noise added to the visibility score (ragged hole borders).
    hole_rate, hair_occlusion_prob:
        Mean number of random occlusion blobs along the visibility border (tracking
        failures) and probability of a fringe/temple hair occlusion band.
    dark_cutoff:
        Texels whose exposed luminance is below this are discarded (under-exposed,
        light-dependent holes).
    missing_value:
        Value written into missing phone texels (0.0: black, as an unwrap leaves them).
    phone_scale_range:
        Effective resolution of the phone texture relative to ``resolution``.
    phone_blur_range:
        Extra optical/motion Gaussian blur sigma (full-resolution pixels).
    noise_shot, noise_read:
        Signal-dependent sensor noise ``sigma^2 = noise_shot * x + noise_read**2`` added at
        the phone's effective resolution.
    expression_strength_range:
        Intensity of the expression warps.
    device:
        Torch device to compute on (CPU by default; outputs are returned on this device).
    num_threads:
        Torch intra-op threads used while sampling (set temporarily, then restored).  The
        per-texture work is many small element-wise ops, for which one thread is fastest
        and immune to OpenMP oversubscription on a busy machine; ``None`` leaves torch's
        setting alone.  Parallelise across subjects (processes) instead.
    """

    def __init__(
        self,
        resolution: int,
        seed: int = 0,
        *,
        quantize_bits: int | None = 16,
        misalignment_px: float = 0.5,
        melanin_range: tuple[float, float] = (0.0, 3.6),
        haemoglobin_range: tuple[float, float] = (0.7, 1.5),
        undertone_sigma: float = 0.05,
        chromophore_variation: float = 0.12,
        asymmetry: float = 0.25,
        feature_jitter: float = 0.003,
        moles_range: tuple[int, int] = (2, 10),
        freckle_prob: float = 0.3,
        max_freckles: int = 220,
        pore_strength: float = 0.035,
        wrinkle_range: tuple[float, float] = (0.0, 1.0),
        beard_prob: float = 0.3,
        bald_prob: float = 0.08,
        bump_strength: float = 1.0,
        studio_gain: float = 1.0,
        studio_ao_strength: float = 0.5,
        ao_strength: float = 10.0,
        key_azimuth_deg: tuple[float, float] = (-120.0, 120.0),
        key_elevation_deg: tuple[float, float] = (-10.0, 65.0),
        key_cct_range: tuple[float, float] = (2700.0, 7500.0),
        ambient_ratio_range: tuple[float, float] = (0.08, 0.6),
        ambient_cct_range: tuple[float, float] = (5000.0, 12000.0),
        ground_ratio_range: tuple[float, float] = (0.2, 0.6),
        fill_prob: float = 0.5,
        fill_ratio_range: tuple[float, float] = (0.1, 0.5),
        colored_light_prob: float = 0.25,
        colored_light_saturation: tuple[float, float] = (0.3, 0.7),
        light_tint_sigma: float = 0.04,
        light_size_range: tuple[float, float] = (0.03, 0.3),
        shadow_steps: int = 10,
        shadow_max_dist: float = 0.6,
        specular_range: tuple[float, float] = (0.03, 0.2),
        shininess_range: tuple[float, float] = (10.0, 60.0),
        sss_wrap: tuple[float, float, float] = (0.3, 0.12, 0.08),
        exposure_target: float = 0.9,
        exposure_jitter_stops: float = 0.35,
        highlight_quantile: float = 0.99,
        awb_strength_range: tuple[float, float] = (0.4, 1.0),
        wb_error_sigma: float = 0.05,
        yaw_range_deg: tuple[float, float] = (30.0, 60.0),
        pitch_low_deg: tuple[float, float] = (-12.0, 0.0),
        pitch_high_deg: tuple[float, float] = (5.0, 20.0),
        grazing_cos: float = 0.3,
        boundary_noise: float = 0.08,
        hole_rate: float = 1.0,
        hair_occlusion_prob: float = 0.25,
        dark_cutoff: float = 0.003,
        missing_value: float = 0.0,
        phone_scale_range: tuple[float, float] = (0.3, 0.6),
        phone_blur_range: tuple[float, float] = (0.0, 1.0),
        noise_shot: float = 4e-4,
        noise_read: float = 3e-3,
        expression_strength_range: tuple[float, float] = (0.6, 1.0),
        device: str | torch.device = "cpu",
        num_threads: int | None = 1,
    ):
        if resolution < 32:
            raise ValueError("resolution must be >= 32")
        self.resolution = int(resolution)
        self.seed = int(seed)
        self.quantize_bits = quantize_bits
        self.misalignment_px = float(misalignment_px)
        self.melanin_range = melanin_range
        self.haemoglobin_range = haemoglobin_range
        self.undertone_sigma = undertone_sigma
        self.chromophore_variation = chromophore_variation
        self.asymmetry = asymmetry
        self.feature_jitter = feature_jitter
        self.moles_range = moles_range
        self.freckle_prob = freckle_prob
        self.max_freckles = max_freckles
        self.pore_strength = pore_strength
        self.wrinkle_range = wrinkle_range
        self.beard_prob = beard_prob
        self.bald_prob = bald_prob
        self.bump_strength = bump_strength
        self.studio_gain = studio_gain
        self.studio_ao_strength = studio_ao_strength
        self.ao_strength = ao_strength
        self.key_azimuth_deg = key_azimuth_deg
        self.key_elevation_deg = key_elevation_deg
        self.key_cct_range = key_cct_range
        self.ambient_ratio_range = ambient_ratio_range
        self.ambient_cct_range = ambient_cct_range
        self.ground_ratio_range = ground_ratio_range
        self.fill_prob = fill_prob
        self.fill_ratio_range = fill_ratio_range
        self.colored_light_prob = colored_light_prob
        self.colored_light_saturation = colored_light_saturation
        self.light_tint_sigma = light_tint_sigma
        self.light_size_range = light_size_range
        self.shadow_steps = int(shadow_steps)
        self.shadow_max_dist = shadow_max_dist
        self.specular_range = specular_range
        self.shininess_range = shininess_range
        self.sss_wrap = sss_wrap
        self.exposure_target = exposure_target
        self.exposure_jitter_stops = exposure_jitter_stops
        self.highlight_quantile = highlight_quantile
        self.awb_strength_range = awb_strength_range
        self.wb_error_sigma = wb_error_sigma
        self.yaw_range_deg = yaw_range_deg
        self.pitch_low_deg = pitch_low_deg
        self.pitch_high_deg = pitch_high_deg
        self.grazing_cos = grazing_cos
        self.boundary_noise = boundary_noise
        self.hole_rate = hole_rate
        self.hair_occlusion_prob = hair_occlusion_prob
        self.dark_cutoff = dark_cutoff
        self.missing_value = float(missing_value)
        self.phone_scale_range = phone_scale_range
        self.phone_blur_range = phone_blur_range
        self.noise_shot = noise_shot
        self.noise_read = noise_read
        self.expression_strength_range = expression_strength_range
        self.device = torch.device(device)
        self.num_threads = num_threads
        with self._threads():
            self._build_geometry()

    @contextlib.contextmanager
    def _threads(self):
        """Temporarily set torch's intra-op thread count (restored afterwards)."""
        if self.num_threads is None or torch.get_num_threads() == self.num_threads:
            yield
            return
        old = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(old)

    # ---------------------------------------------------------------- UV parametrisation
    _A = 0.5  # azimuth mapping: phi = pi (a s + (1 - a) s^3)
    _THETA_TOP = math.radians(85.0)
    _THETA_BOT = math.radians(-85.0)

    def _build_geometry(self) -> None:
        r = self.resolution
        c = (torch.arange(r, dtype=torch.float32) + 0.5) / r
        v, u = torch.meshgrid(c, c, indexing="ij")
        self.v = v[None]  # [1,H,W]
        self.x = (u - 0.5)[None]  # signed horizontal offset from the face centre
        self.v1 = c.view(1, r, 1)  # 1-D (broadcastable) versions for separable expressions
        self.x1 = (c - 0.5).view(1, 1, r)
        s = 2.0 * self.x
        a = self._A
        self.phi = math.pi * (a * s + (1 - a) * s**3)
        s1 = 2.0 * self.x1
        self.aphi_deg = (math.pi * (a * s1 + (1 - a) * s1**3)).abs() * (180.0 / math.pi)  # [1,1,W]
        self.theta = self._THETA_TOP + (self._THETA_BOT - self._THETA_TOP) * self.v
        dphi_du = 2.0 * math.pi * (a + 3 * (1 - a) * s**2)
        cos_t = torch.cos(self.theta)
        self.len_u = (dphi_du * cos_t.clamp(min=0.08))  # head radii per UV unit along u
        self.len_v = torch.full_like(self.v, self._THETA_TOP - self._THETA_BOT)
        sp, cp = torch.sin(self.phi), torch.cos(self.phi)
        st = torch.sin(self.theta)
        # normal of a vertically elongated ellipsoid (b = 1.35): the face is more upright than a sphere's
        n0 = torch.cat([sp * cos_t, st / 1.35, cp * cos_t], 0)
        self.n0 = n0 * torch.rsqrt((n0 * n0).sum(0, keepdim=True))  # [3,H,W]
        self.t_u = torch.cat([cp, torch.zeros_like(cp), -sp], 0)
        self.t_v = torch.cat([sp * st, -cos_t, cp * st], 0)
        # ear position: phi = 90 deg  <=>  a s + (1 - a) s^3 = 0.5
        roots = np.roots([1 - a, 0.0, a, -0.5])
        s_ear = float(min(rr.real for rr in roots if abs(rr.imag) < 1e-9 and rr.real > 0))
        self.x_ear = 0.5 * s_ear
        # face region weight (for exposure metering, tests)
        self.face_w = ((self.x.abs() < 0.22) & (self.v > 0.25) & (self.v < 0.75)).float()
        self.head_w = ((self.x.abs() < 0.36) & (self.v > 0.1) & (self.v < 0.9)).float()  # highlight metering
        ii = torch.arange(r, dtype=torch.float32)
        gy, gx = torch.meshgrid(ii, ii, indexing="ij")
        self._base_grid = torch.stack([(gx + 0.5) / r * 2 - 1, (gy + 0.5) / r * 2 - 1], -1)[None]  # [1,H,W,2]
        sp1, cp1 = torch.sin(self.phi), torch.cos(self.phi)
        self.n_cyl = torch.cat([sp1, torch.full_like(sp1, -0.08), cp1], 0)
        self.n_cyl = self.n_cyl * torch.rsqrt((self.n_cyl**2).sum(0, keepdim=True))
        # geometry at the (reduced) resolution the soft shadows are marched at
        sr = min(r, max(128, r // 4))
        sub = lambda t: F.interpolate(t[None], size=(sr, sr), mode="area")[0] if sr != r else t  # noqa: E731
        base_s = self._base_grid
        if sr != r:
            base_s = F.interpolate(base_s.permute(0, 3, 1, 2), size=(sr, sr), mode="area").permute(0, 2, 3, 1)
        self._shadow_geo = (
            sr,
            *(sub(t).to(self.device) for t in (self.n0, self.t_u, self.t_v, self.len_u, self.len_v)),
            base_s.to(self.device),
        )
        for name in ("v", "x", "v1", "x1", "n_cyl", "phi", "aphi_deg", "theta", "len_u", "len_v", "n0", "t_u", "t_v", "face_w", "head_w", "_base_grid"):
            setattr(self, name, getattr(self, name).to(self.device))

    def _jaw_v(self, chin_v: float) -> torch.Tensor:
        """Row of the jaw line (chin at the centre, rising towards the ear lobes)."""
        t = (self.aphi_deg / 78.0).clamp(max=1.0)
        return chin_v - (chin_v - 0.60) * t**1.6

    # ---------------------------------------------------------------- identity
    def _identity(self, index: int) -> _Identity:
        g = _gen(self.seed, index, 0)
        r = self.resolution
        x, v = self.x1, self.v1  # broadcast to [1,H,W] where they combine
        ax = x.abs()
        zeros = torch.zeros(1, r, r, device=self.device)
        jit = self.feature_jitter
        dev = self.device

        def side_params(base: dict) -> list[dict]:
            return [{k: val + _n(g, jit) for k, val in base.items()} for _ in (0, 1)]

        # ---- skin tone (chromophores)
        m0 = self.melanin_range[0] + (self.melanin_range[1] - self.melanin_range[0]) * _u(g) ** 1.2
        h0 = _u(g, *self.haemoglobin_range)
        undertone = torch.randn(3, 1, 1, generator=g) * self.undertone_sigma
        asym = self.asymmetry
        nm = _symmetrize(_noise(g, 2, r, base=3, octaves=5), asym)
        mel = m0 * torch.exp(self.chromophore_variation * nm[0:1] * 1.5) + 0.15 * self.chromophore_variation * nm[0:1]
        hem = h0 + self.chromophore_variation * 2.0 * nm[1:2]

        # ---- feature parameters (symmetric base + per-side jitter)
        p: dict = {}
        p["eye_x"] = _u(g, 0.100, 0.118)
        p["eye_v"] = _u(g, 0.385, 0.415)
        p["eye_w"] = _u(g, 0.040, 0.050)
        p["eye_h"] = _u(g, 0.013, 0.019)
        p["brow_dv"] = _u(g, 0.055, 0.075)
        p["brow_th"] = _u(g, 0.006, 0.013)
        p["brow_arch"] = _u(g, 0.004, 0.014)
        p["nose_v"] = _u(g, 0.53, 0.56)
        p["nose_w"] = _u(g, 0.045, 0.062)
        p["nose_h"] = _u(g, 0.15, 0.24)
        p["mouth_v"] = _u(g, 0.625, 0.655)
        p["mouth_w"] = _u(g, 0.070, 0.095)
        p["lip_up"] = _u(g, 0.014, 0.024)
        p["lip_lo"] = _u(g, 0.018, 0.030)
        p["chin_v"] = _u(g, 0.765, 0.80)
        p["under_chin_w"] = _u(g, 0.035, 0.06)
        p["under_chin_z"] = _u(g, 0.0, 0.25)
        p["ear_v"] = _u(g, 0.42, 0.46)
        p["ear_h"] = _u(g, 0.085, 0.11)
        p["ear_w"] = _u(g, 0.024, 0.032)
        p["cheek"] = _u(g, 0.03, 0.08)
        p["age"] = _u(g, *self.wrinkle_range)
        eyes = side_params({k: p[k] for k in ("eye_x", "eye_v", "eye_w", "eye_h", "brow_dv", "brow_th")})
        ears = side_params({"ear_v": p["ear_v"], "ear_h": p["ear_h"]})
        mouth_corner = [p["mouth_w"] + _n(g, jit), p["mouth_w"] + _n(g, jit)]

        hair_i = int(torch.multinomial(_HAIR_P, 1, generator=g))
        hair_col = (_HAIR_PALETTE[hair_i] * torch.exp(torch.randn(3, generator=g) * 0.12)).view(3, 1, 1).to(dev)
        iris_i = int(torch.multinomial(_IRIS_P, 1, generator=g))
        iris_col = (_IRIS_PALETTE[iris_i] * torch.exp(torch.randn(3, generator=g) * 0.1)).view(3, 1, 1).to(dev)
        bald = _u(g) < self.bald_prob
        hair_density = _u(g, 0.0, 0.25) if bald else _u(g, 0.75, 1.0)
        hairline_front = _u(g, 0.10, 0.18) + (0.05 if bald else 0.0)
        temple = _u(g, 0.0, 0.05)
        beard = _u(g) < self.beard_prob
        beard_density = _u(g, 0.2, 0.75)
        p["beard"] = beard

        # ---- regional chromophore modulation (symmetric)
        mv = p["mouth_v"]
        mw_map = torch.where(x < 0, torch.tensor(mouth_corner[0]), torch.tensor(mouth_corner[1]))
        t = (x / mw_map).clamp(-1, 1)
        bow = 1.0 - 0.35 * torch.exp(-0.5 * (x / 0.010) ** 2)
        up = mv - p["lip_up"] * (1 - t**2).clamp(min=0) ** 0.45 * bow
        lo = mv + p["lip_lo"] * (1 - t**2).clamp(min=0) ** 0.7
        lip_mask = _sig(v - up, 1.2 / r) * _sig(lo - v, 1.2 / r) * _sig(mw_map - ax, 1.5 / r)
        hem = hem + lip_mask * _u(g, 1.6, 2.6) + p["cheek"] * 8 * (
            _blob(ax, v, 0.15, 0.52, 0.055, 0.05)
        ) + 0.35 * _blob(x, v, 0.0, p["nose_v"] - 0.01, 0.03, 0.03)
        mel = mel * (1.0 - 0.12 * lip_mask)
        # darker circles under the eyes, darker eyelids
        under_eye = sum(
            _blob(x, v, sg * e_["eye_x"], e_["eye_v"] + 0.03, 0.04, 0.012) for sg, e_ in ((-1, eyes[0]), (1, eyes[1]))
        )
        mel = mel + 0.25 * under_eye * (0.3 + 0.3 * m0)

        # ---- freckles and moles (asymmetric identity detail)
        fr_p = self.freckle_prob * (1.6 if m0 < 1.0 else 0.4)
        spots = torch.zeros(1, r, r, device=dev)
        if _u(g) < fr_p and self.max_freckles > 0:
            nf = int(_u(g, 30, self.max_freckles))
            fx = torch.randn(nf, generator=g) * 0.10
            fv = 0.47 + torch.randn(nf, generator=g) * 0.045
            amp = 0.2 + 0.6 * torch.rand(nf, generator=g)
            ix = ((fx + 0.5) * r).long().clamp(0, r - 1)
            iv = (fv * r).long().clamp(0, r - 1)
            spots.view(-1).index_put_((iv * r + ix,), amp.to(dev), accumulate=True)
            spots = _blur(spots, max(0.6, 0.0022 * r)) * (2 * math.pi * max(0.6, 0.0022 * r) ** 2) ** 0.5
        n_moles = int(torch.randint(self.moles_range[0], self.moles_range[1] + 1, (), generator=g))
        mole_h = torch.zeros(1, r, r, device=dev)
        moles = []
        for _ in range(n_moles):
            mx = _u(g, -0.32, 0.32)
            mvv = _u(g, 0.2, 0.92)
            rad = _u(g, 0.0025, 0.0065)
            amp = _u(g, 1.0, 2.6)
            d = torch.sqrt((x - mx) ** 2 + (v - mvv) ** 2)
            disc = _sig(rad - d, 0.5 / r + 0.15 * rad)
            spots = spots + amp * disc
            mole_h = mole_h + 0.004 * _u(g) * disc
            moles.append((mx, mvv, rad))
        p["moles"] = moles
        mel = mel + spots

        # ---- base skin albedo
        ln_b = _LN_B0.to(dev) + undertone.to(dev)
        albedo = torch.exp(ln_b - mel * _SIGMA_MEL.to(dev) - (hem - 1.0) * _SIGMA_HEM.to(dev))
        skin_mean = torch.exp(ln_b - m0 * _SIGMA_MEL.to(dev) - (h0 - 1.0) * _SIGMA_HEM.to(dev)).view(3)

        # ---- height field (head radii)
        h = zeros.clone()
        nv, nw, nh = p["nose_v"], p["nose_w"], p["nose_h"]
        bridge_v = eyes[0]["eye_v"] * 0.5 + eyes[1]["eye_v"] * 0.5 - 0.02
        tn = ((v - bridge_v) / (nv - bridge_v)).clamp(0, 1)
        below = torch.exp(-0.5 * ((v - nv).clamp(min=0) / 0.011) ** 2)  # rounded tip, short underside
        prof = (0.15 + 0.85 * tn**1.5) * below * _sig(v - bridge_v + 0.03, 0.01)
        width = 0.012 + 0.011 * tn
        h = h + nh * prof * torch.exp(-0.5 * (x / width) ** 2)
        h = h + 0.07 * _blob(ax, v, nw * 0.55, nv + 0.003, 0.016, 0.012)  # alae
        nostril = _blob(ax, v, nw * 0.33, nv + 0.014, 0.010, 0.0045)
        h = h - 0.05 * nostril
        for sg, e_ in ((-1, eyes[0]), (1, eyes[1])):
            ex, ev = sg * e_["eye_x"], e_["eye_v"]
            h = h - 0.07 * _blob(x, v, ex, ev, 0.05, 0.03)  # socket
            h = h + 0.035 * _blob(x, v, ex, ev, 0.035, 0.014)  # eyeball / lids
            h = h + 0.04 * _blob(x, v, ex * 0.95, ev - e_["brow_dv"] + 0.005, 0.06, 0.02)  # brow ridge
        h = h + 0.06 * _blob(ax, v, 0.15, 0.48, 0.05, 0.04)  # cheekbones
        h = h + 0.05 * lip_mask.clamp(0, 1) * (1.0 - 0.3 * torch.exp(-0.5 * ((v - mv) / 0.004) ** 2))
        h = h - 0.02 * _blob(ax, v, p["mouth_w"], mv, 0.008, 0.008)  # mouth corners
        h = h - 0.012 * _blob(x, v, 0.0, (nv + mv) / 2, 0.006, 0.02)  # philtrum
        h = h + 0.07 * _blob(x, v, 0.0, p["chin_v"] - 0.03, 0.05, 0.03)  # chin
        h = h + 0.03 * _blob(x, v, 0.0, 0.2, 0.2, 0.08)  # forehead
        # wrinkles ("age")
        age = p["age"]
        if age > 0:
            fl = torch.sin(2 * math.pi * (v - 0.2) / 0.022) * _blob(x, v, 0.0, 0.24, 0.12, 0.045)
            h = h - 0.004 * age * fl.clamp(min=0) ** 3
            for sg in (-1, 1):
                # nasolabial folds from the alae to the mouth corners
                p0x, p0v = sg * nw * 0.6, nv
                p1x, p1v = sg * (p["mouth_w"] + 0.02), mv + 0.02
                dx_, dv_ = p1x - p0x, p1v - p0v
                ll = dx_ * dx_ + dv_ * dv_
                tt = (((x - p0x) * dx_ + (v - p0v) * dv_) / ll).clamp(0, 1)
                dist = torch.sqrt((x - p0x - tt * dx_) ** 2 + (v - p0v - tt * dv_) ** 2)
                h = h - 0.015 * (0.3 + age) * torch.exp(-0.5 * (dist / 0.004) ** 2) * torch.sin(math.pi * tt)
        # ears
        ear_cov = zeros.clone()
        p["ears"] = []
        for sg, e_ in ((-1, ears[0]), (1, ears[1])):
            ex = sg * self.x_ear
            ew = p["ear_w"]
            rr = torch.sqrt(((x - ex) / ew) ** 2 + ((v - e_["ear_v"]) / e_["ear_h"]) ** 2)
            cov = _sig(1.0 - rr, 0.06)
            ear_cov = ear_cov + cov
            h = h + 0.12 * cov + 0.04 * torch.exp(-0.5 * ((rr - 0.82) / 0.07) ** 2) * cov
            h = h - 0.08 * _blob(x, v, ex - sg * 0.004, e_["ear_v"] + 0.015, 0.45 * ew, 0.35 * e_["ear_h"])
            p["ears"].append((ex, e_["ear_v"], ew, e_["ear_h"]))
        h = h + mole_h
        # the neck is recessed below the jaw: the jaw casts shadows onto it and normals turn down
        jaw = self._jaw_v(p["chin_v"])
        h = h - 0.1 * _sig(v - (jaw + 0.5 * p["under_chin_w"]), 0.012) * _sig(84.0 - self.aphi_deg, 5.0)
        hem = hem + 0.3 * ear_cov
        albedo = albedo * torch.exp(-_SIGMA_HEM.to(dev) * 0.3 * ear_cov)

        # ---- hair (scalp) and hairline
        hf = hairline_front
        knots = [0, 20, 40, 60, 70, 78, 86, 95, 110, 135, 180]
        vals = [hf, hf + 0.005, hf + 0.02 + temple, hf + 0.05 + temple, 0.28, 0.44, 0.31, 0.34, 0.48, 0.60, 0.63]
        vals = [vv + _n(g, 0.006) for vv in vals]
        hl = _interp(self.aphi_deg, knots, vals) + 0.008 * _symmetrize(_noise(g, 1, r, base=16, octaves=2), 0.5)
        cover = _sig(hl - v, 0.006) * (1.0 - ear_cov.clamp(0, 1))
        strands = torch.randn(1, max(4, r // 8), max(8, r // 2), generator=g).to(dev)  # strands run along v
        strands = F.interpolate(strands[None], size=(r, r), mode="bilinear", align_corners=False)[0]
        hair = hair_col * torch.exp(0.22 * strands + 0.15 * nm[0:1])
        albedo = albedo * (1 - cover * hair_density) + hair * cover * hair_density

        # ---- brows
        fine = torch.randn(1, r, r, generator=g).to(dev)
        # brow hairs: streaks running laterally (along u)
        brow_tex = torch.randn(1, r, max(8, r // 4), generator=g).to(dev)
        brow_tex = F.interpolate(brow_tex[None], size=(r, r), mode="bilinear", align_corners=False)[0]
        for sg, e_ in ((-1, eyes[0]), (1, eyes[1])):
            x0 = sg * (e_["eye_x"] - 0.055)
            length = 0.10 + _n(g, 0.004)
            t = (sg * (x - x0) / length)
            cv = e_["eye_v"] - e_["brow_dv"] - p["brow_arch"] * torch.sin(math.pi * t.clamp(0, 1) * 0.85)
            th = e_["brow_th"] * (1.0 - 0.6 * t.clamp(0, 1))
            dens = _sig(th - (v - cv).abs(), 1.0 / r) * _sig(t, 0.03) * _sig(1 - t, 0.05)
            dens = dens * (0.7 + 0.3 * torch.tanh(1.5 * brow_tex)) * _u(g, 0.6, 0.95)
            albedo = albedo * (1 - dens) + dens * hair_col * 0.9
        # ---- stubble / beard
        if beard:
            jaw = self._jaw_v(p["chin_v"])
            top = _interp(ax, [0.0, 0.05, 0.10, 0.2, 0.27, 0.33], [nv + 0.025, nv + 0.03, mv - 0.01, mv - 0.06, 0.50, 0.44])
            top = top + 0.006 * _noise(g, 1, r, base=16, octaves=2)
            reg = _sig(v - top, 0.006) * _sig(jaw + 0.05 - v, 0.01) * _sig(0.33 - ax, 0.02)
            reg = reg * (1 - lip_mask.clamp(0, 1))
            reg = reg * (1 - 0.7 * _blob(x, v, 0, (mv + p["chin_v"]) / 2, 0.02, 0.02) * _u(g))
            d = reg * beard_density * (0.5 + 0.5 * torch.sigmoid(2 * fine))
            albedo = albedo * (1 - d) + d * hair_col
        # ---- eyes (sclera, iris, pupil, lash line, lid crease)
        for sg, e_ in ((-1, eyes[0]), (1, eyes[1])):
            ex, ev, ew, eh = sg * e_["eye_x"], e_["eye_v"], e_["eye_w"], e_["eye_h"]
            t = ((x - ex) / ew).clamp(-1, 1)
            lat = sg * t  # +1 at the lateral corner
            up = ev - eh * (1 - t**2).clamp(min=0) ** 0.6 - 0.003 * lat
            lo = ev + 0.75 * eh * (1 - t**2).clamp(min=0) ** 0.8 - 0.002 * lat
            inside = _sig(v - up, 0.8 / r) * _sig(lo - v, 0.8 / r) * _sig(ew - (x - ex).abs(), 0.8 / r)
            sclera = torch.tensor([0.55, 0.50, 0.47], device=dev).view(3, 1, 1) * (1 - 0.4 * (t.abs() ** 2))
            ri = torch.sqrt(((x - ex) / (0.9 * eh)) ** 2 + ((v - ev) / (0.95 * eh)) ** 2)
            iris = _sig(1.0 - ri, 0.08)
            pupil = _sig(0.38 - ri, 0.05)
            eye_col = sclera * (1 - iris) + iris * iris_col * (1 + 0.3 * torch.tanh(fine))
            eye_col = eye_col * (1 - pupil) + pupil * 0.008
            albedo = albedo * (1 - inside) + inside * eye_col
            lash = torch.exp(-0.5 * ((v - up + 0.0015) / (0.0025 + 0.4 / r)) ** 2) * _sig(1.05 - ((x - ex) / ew).abs(), 0.02)
            albedo = albedo * (1 - 0.85 * lash)
            crease = torch.exp(-0.5 * ((v - (up - 0.013)) / 0.003) ** 2) * _sig(0.9 - ((x - ex) / ew).abs(), 0.05)
            h = h - 0.01 * crease
            albedo = albedo * (1 - 0.15 * crease)
        # ---- nostrils, mouth line
        albedo = albedo * (1 - 0.8 * (nostril / 0.6).clamp(0, 1))
        mline = torch.exp(-0.5 * ((v - mv) / (0.0018 + 0.3 / r)) ** 2) * _sig(p["mouth_w"] * 0.97 - ax, 1.0 / r)
        albedo = albedo * (1 - 0.55 * mline)
        # ---- pores / grain (pixel scale) and fine height detail
        pore_region = 0.6 + 0.8 * _blob(x, v, 0.0, 0.5, 0.14, 0.09)
        grain = _blur(torch.randn(1, r, r, generator=g).to(dev), 0.6)
        albedo = albedo * torch.exp(self.pore_strength * 1.8 * grain * pore_region)
        h = h + 0.0015 * grain * pore_region
        albedo = albedo.clamp(0.004, 0.95)

        # specular weight: T-zone oily, lips moist, eyes glossy, hair low
        eye_any = sum(_blob(x, v, sg * e_["eye_x"], e_["eye_v"], 0.03, 0.012) for sg, e_ in ((-1, eyes[0]), (1, eyes[1])))
        oil = (
            0.35
            + 0.8 * _blob(x, v, 0.0, 0.22, 0.12, 0.06)
            + 0.9 * _blob(x, v, 0.0, 0.48, 0.03, 0.09)
            + 0.4 * _blob(x, v, 0.0, p["chin_v"] - 0.03, 0.04, 0.03)
            + 0.8 * lip_mask.clamp(0, 1)
            + 2.0 * eye_any
        ) * (1 - 0.7 * cover * hair_density)
        p["eyes"] = eyes
        p["mouth_corner"] = mouth_corner
        p["m0"], p["h0"] = m0, h0
        p["hair_color"] = hair_col.view(3).tolist()
        return _Identity(albedo=albedo, height=h, oil=oil, skin=skin_mean, p=p)

    # ---------------------------------------------------------------- geometry -> shading
    def _under_chin(self, p: dict) -> torch.Tensor:
        jaw = self._jaw_v(p["chin_v"])
        band = _sig(self.v1 - jaw, 0.005) * _sig(jaw + p["under_chin_w"] - self.v1, 0.01)
        return band * _sig(84.0 - self.aphi_deg, 4.0)

    def _base_normal(self, p: dict) -> torch.Tensor:
        """Sphere normal, blended to a (vertical) neck cylinder below the jaw and tilted to
        face downwards in the under-chin band."""
        jaw = self._jaw_v(p["chin_v"])
        w_neck = _sig(self.v1 - (jaw + p["under_chin_w"] + 0.02), 0.012)
        n = self.n0 * (1 - w_neck) + self.n_cyl * w_neck
        w = self._under_chin(p)
        down = torch.tensor([0.0, -1.0, p["under_chin_z"]], device=self.device).view(3, 1, 1)
        n = n * (1 - w) + w * 4.0 * down
        return n * torch.rsqrt((n * n).sum(0, keepdim=True).clamp(min=1e-12))

    def _normals(self, h: torch.Tensor, p: dict) -> torch.Tensor:
        r = self.resolution
        hp = F.pad(h[None], (1, 1, 1, 1), mode="replicate")[0]
        dh_du = (hp[:, 1:-1, 2:] - hp[:, 1:-1, :-2]) * (r / 2.0)
        dh_dv = (hp[:, 2:, 1:-1] - hp[:, :-2, 1:-1]) * (r / 2.0)
        k = self.bump_strength
        nb = self._base_normal(p)
        n = nb - k * (dh_du / self.len_u) * self.t_u - k * (dh_dv / self.len_v) * self.t_v
        return n * torch.rsqrt((n * n).sum(0, keepdim=True).clamp(min=1e-12))

    def _ao(self, h: torch.Tensor, p: dict) -> torch.Tensor:
        r = self.resolution
        cav = (_blur(h, 0.02 * r) - h).clamp(min=0) + 0.5 * (_blur(h, 0.006 * r) - h).clamp(min=0)
        ao = torch.exp(-self.ao_strength * cav)
        ao = ao * (1 - 0.15 * self._under_chin(p))
        return ao.clamp(0, 1)

    def _shadow(self, h: torch.Tensor, L: torch.Tensor, penumbra: float) -> torch.Tensor:
        """Soft cast-shadow visibility of directional light ``L`` by marching over the height field."""
        r = self.resolution
        sr, n0, tu, tv, lu, lv, base = self._shadow_geo
        hs = F.interpolate(h[None], size=(sr, sr), mode="area")[0] if sr != r else h
        Lv = L.view(3, 1, 1)
        ln = (n0 * Lv).sum(0, keepdim=True)
        lu_ = (tu * Lv).sum(0, keepdim=True)
        lv_ = (tv * Lv).sum(0, keepdim=True)
        lt = torch.sqrt(lu_**2 + lv_**2).clamp(min=1e-4)
        tan_a = (ln / lt).clamp(min=0.0)
        du = lu_ / lt / lu  # UV units per head radius along the light's tangent direction
        dv = lv_ / lt / lv
        steps = self.shadow_steps
        dists = [self.shadow_max_dist * ((k + 1) / steps) ** 1.7 for k in range(steps)]
        vis = torch.ones_like(hs)
        h4 = hs[None]
        for d in dists:
            off = torch.cat([du * d * 2.0, dv * d * 2.0], 0).permute(1, 2, 0)[None]
            hq = F.grid_sample(h4, base + off, mode="bilinear", padding_mode="border", align_corners=False)[0]
            occ = hq - hs - d * tan_a - 0.5 * d * d
            vis = torch.minimum(vis, (1.0 - occ / (penumbra * d + 0.004)).clamp(0, 1))
        if sr != r:
            vis = F.interpolate(vis[None], size=(r, r), mode="bilinear", align_corners=False)[0]
        return vis

    def _studio(self, albedo: torch.Tensor, ao: torch.Tensor) -> torch.Tensor:
        return albedo * (self.studio_gain * (1.0 - self.studio_ao_strength * (1.0 - ao)))

    # ---------------------------------------------------------------- capture
    def _random_color(self, g: torch.Generator, cct: float) -> torch.Tensor:
        rgb = torch.tensor(blackbody_rgb(cct), dtype=torch.float32)
        return rgb * torch.exp(torch.randn(3, generator=g) * self.light_tint_sigma)

    @staticmethod
    def _dir(az_deg: float, el_deg: float) -> torch.Tensor:
        az, el = math.radians(az_deg), math.radians(el_deg)
        return torch.tensor([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)], dtype=torch.float32)

    def _sample_capture(self, g: torch.Generator) -> _Capture:
        dev = self.device
        key_az = _u(g, *self.key_azimuth_deg)
        key_el = _u(g, *self.key_elevation_deg)
        key_cct = _u(g, *self.key_cct_range)
        key_rgb = self._random_color(g, key_cct)
        amb = _u(g, *self.ambient_ratio_range)
        sky_cct = _u(g, *self.ambient_cct_range)
        sky = self._random_color(g, sky_cct) * amb
        tint = _GROUND_TINTS[int(torch.randint(0, len(_GROUND_TINTS), (), generator=g))]
        ground = sky * tint / float(tint @ torch.tensor(_LUMA, dtype=torch.float32)) * _u(g, *self.ground_ratio_range)
        fill_dir = fill_rgb = None
        has_fill = _u(g) < self.fill_prob
        fill_az, fill_el = _u(g, -150, 150), _u(g, -20, 50)
        fill_ratio = _u(g, *self.fill_ratio_range)
        colored = _u(g) < self.colored_light_prob
        hue, sat = _u(g), _u(g, *self.colored_light_saturation)
        fill_cct = _u(g, *self.key_cct_range)
        if has_fill:
            fill_dir = self._dir(fill_az, fill_el)
            if colored:
                import colorsys

                rgb = torch.tensor(colorsys.hsv_to_rgb(hue, sat, 1.0), dtype=torch.float32)
                fill_rgb = rgb / float(rgb @ torch.tensor(_LUMA, dtype=torch.float32)) * fill_ratio
            else:
                fill_rgb = self._random_color(g, fill_cct) * fill_ratio
        cap = _Capture(
            key_dir=self._dir(key_az, key_el).to(dev),
            key_rgb=key_rgb.to(dev),
            penumbra=_u(g, *self.light_size_range),
            fill_dir=None if fill_dir is None else fill_dir.to(dev),
            fill_rgb=None if fill_rgb is None else fill_rgb.to(dev),
            sky_rgb=sky.to(dev),
            ground_rgb=ground.to(dev),
            ks=_u(g, *self.specular_range),
            shininess=_u(g, *self.shininess_range),
        )
        cap.meta = dict(
            key_azimuth_deg=key_az,
            key_elevation_deg=key_el,
            key_cct=key_cct,
            ambient_ratio=amb,
            sky_cct=sky_cct,
            fill=has_fill,
            fill_colored=has_fill and colored,
            penumbra=cap.penumbra,
        )
        # camera / processing parameters (always drawn, in a fixed order)
        cap.meta["exposure_error_stops"] = _n(g, self.exposure_jitter_stops)
        cap.meta["awb_strength"] = _u(g, *self.awb_strength_range)
        cap.wb = torch.exp(torch.randn(3, generator=g) * self.wb_error_sigma).to(dev)
        cap.scale = _u(g, *self.phone_scale_range)
        cap.blur_px = _u(g, *self.phone_blur_range)
        cap.meta["yaw_max_deg"] = _u(g, *self.yaw_range_deg)
        cap.meta["pitch_low_deg"] = _u(g, *self.pitch_low_deg)
        cap.meta["pitch_high_deg"] = _u(g, *self.pitch_high_deg)
        cap.meta["scale"] = cap.scale
        return cap

    def _irradiance(self, n: torch.Tensor, h: torch.Tensor, ao: torch.Tensor, cap: _Capture):
        """Diffuse irradiance ``[3,H,W]`` and specular radiance ``[3,H,W]`` (before albedo / oil)."""
        dev = self.device
        wrap = torch.tensor(self.sss_wrap, device=dev).view(3, 1, 1)
        L = cap.key_dir
        ndl = (n * L.view(3, 1, 1)).sum(0, keepdim=True)
        diff = ((ndl + wrap) / (1 + wrap)).clamp(min=0)
        sh = self._shadow(h, L, cap.penumbra)
        # cast shadows only attenuate the direct term; wrap lighting leaks a bit into them
        sh_c = sh + (1 - sh) * wrap * 0.5
        E = diff * sh_c * cap.key_rgb.view(3, 1, 1)
        if cap.fill_dir is not None:
            ndf = (n * cap.fill_dir.view(3, 1, 1)).sum(0, keepdim=True)
            E = E + ((ndf + wrap) / (1 + wrap)).clamp(min=0) * cap.fill_rgb.view(3, 1, 1)
        up = 0.5 + 0.5 * n[1:2]
        E = E + ao * (cap.sky_rgb.view(3, 1, 1) * up + cap.ground_rgb.view(3, 1, 1) * (1 - up))
        V = torch.tensor([0.0, 0.0, 1.0], device=dev)
        H = L + V
        H = H / H.norm()
        ndh = (n * H.view(3, 1, 1)).sum(0, keepdim=True).clamp(min=0)
        spec = cap.ks * ndh**cap.shininess * (ndl > 0).float() * sh * cap.key_rgb.view(3, 1, 1)
        spec = spec * (cap.shininess + 8) / 40.0  # rough energy normalisation
        return E, spec

    def _visibility(self, g: torch.Generator, p: dict, cap: _Capture) -> torch.Tensor:
        """Binary view-coverage mask ``[1,H,W]`` (1 = seen by the phone scan)."""
        r = self.resolution
        dev = self.device
        n = self._base_normal(p)
        ym = cap.meta["yaw_max_deg"]
        pl, ph = cap.meta["pitch_low_deg"], cap.meta["pitch_high_deg"]
        dirs = torch.stack(
            [self._dir(float(yaw), float(pitch)) for yaw in np.linspace(-ym, ym, 9) for pitch in (pl, 0.5 * (pl + ph), ph)]
        ).to(dev)
        score = (dirs @ n.reshape(3, -1)).amax(0).view(1, r, r)
        score = score + self.boundary_noise * _noise(g, 1, r, base=8, octaves=3)
        vis = (score > self.grazing_cos).float()
        x, v = self.x1, self.v1
        # behind the ears: occluded by the auricle for a frontal scan
        wobble = _noise(g, 1, r, base=16, octaves=2)
        for ex, ev, ew, eh in p["ears"]:
            sg = 1.0 if ex > 0 else -1.0
            cx = ex + sg * (0.75 * ew + _u(g, 0.012, 0.025))
            behind = ((x - cx) / _u(g, 0.018, 0.03)) ** 2 + ((v - ev - 0.01) / (eh * _u(g, 0.9, 1.15))) ** 2
            vis = vis * ((behind + 0.25 * wobble) > 1.0).float()
        # hair occlusion band along the fringe / temples
        if _u(g) < self.hair_occlusion_prob:
            cx = _u(g, -0.2, 0.2)
            band = _blob(x, v, cx, 0.17, _u(g, 0.04, 0.12), 0.03) * (1.0 + 0.5 * _noise(g, 1, r, base=16, octaves=2))
            vis = vis * (band < 0.5).float()
        # random occlusion blobs along the coverage border (tracking failures)
        n_holes = int(torch.poisson(torch.tensor([float(self.hole_rate)]), generator=g)[0])
        if n_holes:
            border = torch.zeros_like(vis, dtype=torch.bool)
            border[:, 1:, :] |= vis[:, 1:, :] != vis[:, :-1, :]
            border[:, :, 1:] |= vis[:, :, 1:] != vis[:, :, :-1]
            idx = border.view(-1).nonzero().view(-1)
            for _ in range(n_holes):
                if idx.numel() == 0:
                    break
                j = int(idx[int(torch.randint(0, idx.numel(), (), generator=g))])
                cy_, cx_ = (j // r + 0.5) / r, (j % r + 0.5) / r - 0.5
                rad = _u(g, 0.01, 0.035)
                blob = _blob(x, v, cx_, cy_, rad * _u(g, 0.6, 1.6), rad)
                vis = vis * (blob < 0.5).float()
        return vis

    def _capture(self, index: int, capture: int, ident: _Identity, n, ao) -> _Capture:
        g = _gen(self.seed, index, 1, capture)
        cap = self._sample_capture(g)
        E, spec = self._irradiance(n, ident.height, ao, cap)
        # auto exposure on the face irradiance (albedo is not normalised)
        fw = self.face_w
        meanE = float((_lum(E) * fw).sum() / fw.sum())
        gain = self.exposure_target / max(meanE, 1e-4)
        if self.highlight_quantile < 1.0:
            # highlight protection: the brightest face texels (diffuse + specular) must not clip
            rad = _lum(ident.albedo * E + ident.oil * spec)[self.head_w > 0]
            q = float(torch.quantile(rad[:: max(1, rad.numel() // 8192)], self.highlight_quantile))
            gain = min(gain, 1.0 / max(q, 1e-4))
        cap.gain = gain * 2.0 ** cap.meta["exposure_error_stops"]
        cap.meta["gain"] = cap.gain
        # imperfect auto white balance
        ill = (E * fw).sum((1, 2)) / fw.sum()
        ill = ill / float(ill @ torch.tensor(_LUMA, dtype=torch.float32, device=self.device))
        wb = ill.clamp(min=1e-3) ** (-cap.meta["awb_strength"]) * cap.wb
        cap.wb = wb / float(wb @ torch.tensor(_LUMA, dtype=torch.float32, device=self.device))
        cap.view_mask = self._visibility(g, ident.p, cap)
        # misalignment warp (smooth field + global shift), in grid_sample units
        if self.misalignment_px > 0:
            r = self.resolution
            amp = self.misalignment_px * 2.0 / r
            glob = torch.randn(2, 1, 1, generator=g) * 0.7
            loc = _noise(g, 2, r, base=3, octaves=2) * 0.7
            disp = ((glob + loc) * amp).to(self.device)
            cap.warp = self._base_grid + disp.permute(1, 2, 0)[None]
        cap._E, cap._spec = E, spec  # cached for the neutral render
        return cap

    def _render_phone(self, albedo, oil, E, spec, cap: _Capture, g_noise: torch.Generator):
        """Lit radiance -> camera processing -> degraded phone texture and its mask."""
        radiance = (albedo * E + oil * spec) * cap.gain * cap.wb.view(3, 1, 1)
        mask = cap.view_mask
        if self.dark_cutoff > 0:
            mask = mask * (_blur(_lum(radiance), 1.5 * self.resolution / 256) >= self.dark_cutoff).float()
        r = self.resolution
        if cap.warp is not None:
            stack = torch.cat([radiance, mask], 0)[None]
            stack = F.grid_sample(stack, cap.warp, mode="bilinear", padding_mode="border", align_corners=False)[0]
            radiance, mask = stack[:3], (stack[3:] > 0.5).float()
        low = max(8, int(round(r * cap.scale)))
        img = radiance
        if cap.blur_px > 0.2:
            img = _blur(img, cap.blur_px)
        if low < r:
            img = F.interpolate(img[None], size=(low, low), mode="bilinear", antialias=True, align_corners=False)[0]
        sig = torch.sqrt(self.noise_shot * img.clamp(min=0) + self.noise_read**2)
        img = img + sig * torch.randn(img.shape, generator=g_noise).to(self.device)
        if low < r:
            img = F.interpolate(img[None], size=(r, r), mode="bicubic", align_corners=False)[0]
        img = img.clamp(0, 1)
        img = img * mask + self.missing_value * (1 - mask)
        return img, mask

    # ---------------------------------------------------------------- expressions
    def _expression(self, ident: _Identity, j: int, index: int):
        """Warp albedo/height/oiliness for expression ``j``; returns (name, albedo, height, oil, info)."""
        g = _gen(self.seed, index, 2, j)
        kind = EXPRESSION_KINDS[j % len(EXPRESSION_KINDS)]
        k = _u(g, *self.expression_strength_range)
        p = ident.p
        x, v = self.x1, self.v1
        r = self.resolution
        dx = torch.zeros(1, r, r, device=self.device)
        dv = torch.zeros(1, r, r, device=self.device)
        h_add = torch.zeros(1, r, r, device=self.device)
        mv, mw = p["mouth_v"], p["mouth_w"]
        paint = None
        if kind == "smile":
            for sg, mc in ((-1, p["mouth_corner"][0]), (1, p["mouth_corner"][1])):
                w = _blob(x, v, sg * mc, mv, 0.05, 0.04)
                dx = dx + sg * 0.026 * k * w
                dv = dv - 0.02 * k * w
                dv = dv - 0.010 * k * _blob(x, v, sg * 0.14, 0.50, 0.05, 0.05)  # cheeks up
                e_ = p["eyes"][0 if sg < 0 else 1]
                dv = dv - 0.005 * k * _blob(x, v, sg * e_["eye_x"], e_["eye_v"] + 0.02, 0.04, 0.01)
                # deepened nasolabial folds
                h_add = h_add - 0.02 * k * _blob(x, v, sg * (mc + 0.012), mv - 0.035, 0.008, 0.035)
        elif kind == "open":
            drop = 0.045 * k
            below = _sig(v - mv, 0.004) * torch.exp(-0.5 * (x / 0.16) ** 2) * torch.exp(-0.5 * ((v - mv) / 0.2) ** 2)
            dv = dv + drop * below
            dx = dx - 0.15 * x * k * _blob(x, v, 0, mv, 0.1, 0.04)
            paint = ("mouth", mv, mw * (1 - 0.1 * k), drop)
        elif kind == "blink":
            for sg, e_ in ((-1, p["eyes"][0]), (1, p["eyes"][1])):
                ex, ev, ew, eh = sg * e_["eye_x"], e_["eye_v"], e_["eye_w"], e_["eye_h"]
                gx = _sig(ew * 1.15 - (x - ex).abs(), 0.006)
                prof = _sig(ev + 0.75 * eh - v, 0.0025) * torch.exp(-0.5 * ((v - ev).clamp(max=0) / 0.03) ** 2)
                dv = dv + 1.75 * eh * k * gx * prof
        elif kind == "brow_raise":
            for sg, e_ in ((-1, p["eyes"][0]), (1, p["eyes"][1])):
                dv = dv - 0.02 * k * _blob(x, v, sg * e_["eye_x"], e_["eye_v"] - e_["brow_dv"], 0.08, 0.04)
            fl = torch.sin(2 * math.pi * (v - 0.2) / 0.022) * _blob(x, v, 0.0, 0.24, 0.14, 0.045)
            h_add = h_add - 0.006 * k * fl.clamp(min=0) ** 3
        elif kind == "pucker":
            w = _blob(x, v, 0, mv, 0.09, 0.035)
            dx = dx - 0.35 * x * k * w
            h_add = h_add + 0.03 * k * _blob(x, v, 0, mv, 0.05, 0.02)
        grid = self._base_grid - torch.stack([dx[0] * 2.0, dv[0] * 2.0], -1)[None]
        stack = torch.cat([ident.albedo, ident.height, ident.oil], 0)[None]
        out = F.grid_sample(stack, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
        albedo, height, oil = out[:3], out[3:4] + h_add, out[4:5]
        if paint is not None:
            _, mv_, mw_, drop = paint
            t = (x / mw_).clamp(-1, 1)
            half = 0.5 * drop * (1 - t**2).clamp(min=0) ** 0.5
            c = mv_ + 0.5 * drop
            inner = _sig(half - (v - c).abs(), 1.0 / r) * _sig(mw_ - x.abs(), 1.0 / r)
            cavity = torch.tensor([0.10, 0.025, 0.025], device=self.device).view(3, 1, 1)
            teeth_band = _sig((mv_ + 0.35 * drop) - v, 1.0 / r) * _sig(0.75 * mw_ - x.abs(), 2.0 / r)
            teeth = torch.tensor([0.55, 0.5, 0.42], device=self.device).view(3, 1, 1)
            col = cavity * (1 - teeth_band) + teeth * teeth_band
            albedo = albedo * (1 - inner) + inner * col
            height = height - 0.06 * inner * (1 - teeth_band)
            oil = oil + 1.0 * inner
        return f"exp{j:02d}_{kind}", albedo, height, oil, {"kind": kind, "strength": k}

    # ---------------------------------------------------------------- public API
    def albedo(self, index: int) -> torch.Tensor:
        """Unlit diffuse albedo ``[3,H,W]`` of subject ``index`` (unquantised)."""
        with torch.no_grad(), self._threads():
            return self._identity(index).albedo

    def sample(
        self,
        index: int,
        *,
        phone: bool = True,
        studio: bool = True,
        expressions: int = 0,
        stem: str | None = None,
        capture: int = 0,
    ) -> SynthSample:
        """Generate subject ``index``.

        ``capture`` selects an independent phone capture (light rig, camera, coverage,
        noise) of the same identity; 0 is the dataset's capture.  Expression textures
        (``expressions > 0``) are rendered with the same capture as the neutral phone
        texture, and their studio-lit ground truth with the studio model.
        """
        with torch.no_grad(), self._threads():
            ident = self._identity(index)
            chin = ident.p  # feature parameters (chin, under-chin band) used by the normals
            n = self._normals(ident.height, chin)
            ao = self._ao(ident.height, chin)
            out = SynthSample(stem=stem or _stem(index), phone=None, mask=None, studio=None)
            q = lambda t: _quantize(t, self.quantize_bits)  # noqa: E731
            if studio:
                out.studio = q(self._studio(ident.albedo, ao))
            if phone or expressions > 0:
                cap = self._capture(index, capture, ident, n, ao)
                out.meta.update(cap.meta)
                if phone:
                    img, mask = self._render_phone(ident.albedo, ident.oil, cap._E, cap._spec, cap, _gen(self.seed, index, 3, capture))
                    out.phone, out.mask = q(img), mask.contiguous()
                for j in range(expressions):
                    name, alb, hgt, oil, info = self._expression(ident, j, index)
                    n_e = self._normals(hgt, chin)
                    ao_e = self._ao(hgt, chin)
                    out.meta.setdefault("expressions", {})[name] = info
                    E, spec = self._irradiance(n_e, hgt, ao_e, cap)
                    img, _ = self._render_phone(alb, oil, E, spec, cap, _gen(self.seed, index, 4, capture, j))
                    out.expressions[name] = q(img)
                    out.expressions_studio[name] = q(self._studio(alb, ao_e))
            return out


def iter_samples(profile: SynthProfile, seed: int = 0, **synth_kwargs) -> Iterator[SynthSample]:
    """Every distinct subject of ``profile`` once, in index order, with the right outputs.

    Extra keyword arguments go to :class:`TextureSynthesizer`.
    """
    synth = TextureSynthesizer(profile.resolution, seed, **synth_kwargs)
    for stem, i, ph, st, ne, _cat in subject_plan(profile):
        yield synth.sample(i, phone=ph, studio=st, expressions=ne if ph else 0, stem=stem)
