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

Package layout
--------------
``profiles`` (benchmark sizes), ``splits`` (subject and split plans), ``params`` (the
parameter groups), ``colour`` (spectra, skin/hair/iris colours), ``ops`` (random streams,
blur, noise, soft masks), ``geometry`` (UV layout), ``canvas`` / ``skin`` / ``relief`` /
``features`` / ``identity`` (albedo, height and oiliness of an identity), ``shading``
(normals, AO, studio texture), ``lighting`` (light rig, shadows, irradiance), ``coverage``
(visibility and holes), ``capture`` (exposure, white balance, warp, resolution loss,
noise), ``expressions`` and ``synthesizer`` (:class:`TextureSynthesizer`).
"""

from __future__ import annotations

from lift.data.synth.colour import blackbody_rgb
from lift.data.synth.expressions import EXPRESSION_KINDS
from lift.data.synth.geometry import UVLayout
from lift.data.synth.ops import _blur
from lift.data.synth.params import (CameraParams, CoverageParams, ExpressionParams, IdentityParams,
                                    LightingParams, ShadingParams)
from lift.data.synth.profiles import PROFILES, SynthProfile
from lift.data.synth.splits import SPLITS, split_plan, subject_plan  # SPLITS: defined in lift.data.sources
from lift.data.synth.synthesizer import SynthSample, TextureSynthesizer, iter_samples

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
    "IdentityParams",
    "ShadingParams",
    "LightingParams",
    "CameraParams",
    "CoverageParams",
    "ExpressionParams",
    "UVLayout",
]
