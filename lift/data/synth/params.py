"""The generator's parameters, grouped by what they model (frozen dataclasses).

:class:`~lift.data.synth.TextureSynthesizer` takes one object per group (``identity=``,
``shading=``, ``lighting=``, ``camera=``, ``coverage=``, ``expression=``) and, as before the
grouping, every field as a flat keyword argument (``melanin_range=...``), which overrides
that field of its group.  Field names are unique across groups, so the flat names also
name them in the ``lift data synth`` manifest.

All ranges are ``(lo, hi)`` of a uniform draw per subject / capture.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = [
    "IdentityParams",
    "ShadingParams",
    "LightingParams",
    "CameraParams",
    "CoverageParams",
    "ExpressionParams",
    "GROUPS",
    "FIELD_GROUP",
    "resolve_groups",
]


@dataclass(frozen=True)
class IdentityParams:
    """Who the subject is: skin chromophores, facial features and fine identity detail.

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
    """

    melanin_range: tuple[float, float] = (0.0, 3.6)
    haemoglobin_range: tuple[float, float] = (0.7, 1.5)
    undertone_sigma: float = 0.05
    chromophore_variation: float = 0.12
    asymmetry: float = 0.25
    feature_jitter: float = 0.003
    moles_range: tuple[int, int] = (2, 10)
    freckle_prob: float = 0.3
    max_freckles: int = 220
    pore_strength: float = 0.035
    wrinkle_range: tuple[float, float] = (0.0, 1.0)
    beard_prob: float = 0.3
    bald_prob: float = 0.08


@dataclass(frozen=True)
class ShadingParams:
    """Geometry -> shading, and the studio texture.

    bump_strength:
        Multiplier of the height field's slopes when computing normals.
    studio_gain:
        Uniform studio irradiance (albedo multiplier) of the studio texture.
    studio_ao_strength:
        How much ambient occlusion darkens the studio texture (0 = pure albedo).
    ao_strength:
        Exponent scale of the cavity ambient-occlusion map ``exp(-ao_strength * cavity)``.
    """

    bump_strength: float = 1.0
    studio_gain: float = 1.0
    studio_ao_strength: float = 0.5
    ao_strength: float = 10.0


@dataclass(frozen=True)
class LightingParams:
    """The in-the-wild light rig of a phone capture.

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
    """

    key_azimuth_deg: tuple[float, float] = (-120.0, 120.0)
    key_elevation_deg: tuple[float, float] = (-10.0, 65.0)
    key_cct_range: tuple[float, float] = (2700.0, 7500.0)
    ambient_ratio_range: tuple[float, float] = (0.08, 0.6)
    ambient_cct_range: tuple[float, float] = (5000.0, 12000.0)
    ground_ratio_range: tuple[float, float] = (0.2, 0.6)
    fill_prob: float = 0.5
    fill_ratio_range: tuple[float, float] = (0.1, 0.5)
    colored_light_prob: float = 0.25
    colored_light_saturation: tuple[float, float] = (0.3, 0.7)
    light_tint_sigma: float = 0.04
    light_size_range: tuple[float, float] = (0.03, 0.3)
    shadow_steps: int = 10
    shadow_max_dist: float = 0.6
    specular_range: tuple[float, float] = (0.03, 0.2)
    shininess_range: tuple[float, float] = (10.0, 60.0)
    sss_wrap: tuple[float, float, float] = (0.3, 0.12, 0.08)

    def __post_init__(self):
        object.__setattr__(self, "shadow_steps", int(self.shadow_steps))


@dataclass(frozen=True)
class CameraParams:
    """The phone camera and its processing: exposure, white balance, registration error,
    effective resolution and sensor noise.

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
    misalignment_px:
        RMS (per axis, in full-resolution pixels) of the smooth phone-vs-studio warp
        (global shift + low-frequency field) modelling tracking/UV registration error.
        0 disables the warp.
    phone_scale_range:
        Effective resolution of the phone texture relative to ``resolution``.
    phone_blur_range:
        Extra optical/motion Gaussian blur sigma (full-resolution pixels).
    noise_shot, noise_read:
        Signal-dependent sensor noise ``sigma^2 = noise_shot * x + noise_read**2`` added at
        the phone's effective resolution.
    """

    exposure_target: float = 0.9
    exposure_jitter_stops: float = 0.35
    highlight_quantile: float = 0.99
    awb_strength_range: tuple[float, float] = (0.4, 1.0)
    wb_error_sigma: float = 0.05
    misalignment_px: float = 0.5
    phone_scale_range: tuple[float, float] = (0.3, 0.6)
    phone_blur_range: tuple[float, float] = (0.0, 1.0)
    noise_shot: float = 4e-4
    noise_read: float = 3e-3

    def __post_init__(self):
        object.__setattr__(self, "misalignment_px", float(self.misalignment_px))


@dataclass(frozen=True)
class CoverageParams:
    """What the phone scan saw: view coverage, holes and the value of missing texels.

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
    """

    yaw_range_deg: tuple[float, float] = (30.0, 60.0)
    pitch_low_deg: tuple[float, float] = (-12.0, 0.0)
    pitch_high_deg: tuple[float, float] = (5.0, 20.0)
    grazing_cos: float = 0.3
    boundary_noise: float = 0.08
    hole_rate: float = 1.0
    hair_occlusion_prob: float = 0.25
    dark_cutoff: float = 0.003
    missing_value: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "missing_value", float(self.missing_value))


@dataclass(frozen=True)
class ExpressionParams:
    """Expression textures.

    expression_strength_range:
        Intensity of the expression warps.
    """

    expression_strength_range: tuple[float, float] = (0.6, 1.0)


# constructor keyword -> parameter class, in manifest order
GROUPS: dict[str, type] = {
    "identity": IdentityParams,
    "shading": ShadingParams,
    "lighting": LightingParams,
    "camera": CameraParams,
    "coverage": CoverageParams,
    "expression": ExpressionParams,
}
# flat (pre-grouping) keyword -> its group
FIELD_GROUP: dict[str, str] = {
    f.name: group for group, cls in GROUPS.items() for f in dataclasses.fields(cls)
}


def resolve_groups(groups: dict[str, object | None], flat: dict[str, object]) -> dict[str, object]:
    """One parameter object per group: the given one (or the defaults) with ``flat`` overrides."""
    unknown = sorted(set(flat) - set(FIELD_GROUP))
    if unknown:
        raise TypeError(f"TextureSynthesizer() got an unexpected keyword argument {unknown[0]!r}")
    out = {}
    for group, cls in GROUPS.items():
        value = groups.get(group)
        if value is None:
            value = cls()
        elif not isinstance(value, cls):
            raise TypeError(f"{group}= must be a {cls.__name__}, got {type(value).__name__}")
        overrides = {k: v for k, v in flat.items() if FIELD_GROUP[k] == group}
        out[group] = dataclasses.replace(value, **overrides) if overrides else value
    return out
