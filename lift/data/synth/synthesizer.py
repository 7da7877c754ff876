"""The generator: :class:`TextureSynthesizer` ties identity, capture and expressions together."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Iterator

import torch

from lift.data.synth.capture import capture as phone_capture
from lift.data.synth.capture import render_phone
from lift.data.synth.expressions import expression as warp_expression
from lift.data.synth.geometry import UVLayout
from lift.data.synth.identity import _Identity, build_identity
from lift.data.synth.lighting import irradiance
from lift.data.synth.ops import _gen, _quantize
from lift.data.synth.params import (FIELD_GROUP, GROUPS, CameraParams, CoverageParams, ExpressionParams,
                                    IdentityParams, LightingParams, ShadingParams, resolve_groups)
from lift.data.synth.profiles import SynthProfile
from lift.data.synth.shading import ambient_occlusion, normals, studio_texture
from lift.data.synth.splits import _stem, subject_plan

__all__ = ["SynthSample", "TextureSynthesizer", "iter_samples"]


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


class TextureSynthesizer:
    """Deterministic generator of paired phone / studio UV face textures.

    ``sample(i)`` depends only on ``(seed, i)`` (and the constructor arguments).  Random
    streams are separate for the identity (albedo, geometry), each phone capture (light
    rig, camera, visibility, noise) and each expression, so requesting or not requesting
    one output never changes another.

    Parameters
    ----------
    resolution:
        Output size ``H = W`` of every texture and mask.
    seed:
        Dataset seed; subject ``i`` uses streams derived from ``(seed, i, ...)``.
    quantize_bits:
        Quantise outputs to ``2**bits - 1`` levels (16: exact 16-bit PNG round trip);
        ``None`` keeps raw float32.
    identity, shading, lighting, camera, coverage, expression:
        The model's parameters by group (:mod:`lift.data.synth.params`; their docstrings
        document every field); ``None`` = the group's defaults.
    **fields:
        Any field of any group by its own name (``melanin_range=(0.0, 2.0)``,
        ``missing_value=0.5``, ...), overriding that field of its group.
    device:
        Torch device to compute on (CPU by default; outputs are returned on this device).
    num_threads:
        Torch intra-op threads used while sampling (set temporarily, then restored).  The
        per-texture work is many small element-wise ops, for which one thread is fastest
        and immune to OpenMP oversubscription on a busy machine; ``None`` leaves torch's
        setting alone.  Parallelise across subjects (processes) instead.

    Every field is also readable as an attribute (``synth.melanin_range``), and so is the
    UV layout's geometry (``synth.x``, ``synth.v``, ``synth.face_w``, ...: :class:`UVLayout`).
    """

    def __init__(
        self,
        resolution: int,
        seed: int = 0,
        *,
        quantize_bits: int | None = 16,
        identity: IdentityParams | None = None,
        shading: ShadingParams | None = None,
        lighting: LightingParams | None = None,
        camera: CameraParams | None = None,
        coverage: CoverageParams | None = None,
        expression: ExpressionParams | None = None,
        device: str | torch.device = "cpu",
        num_threads: int | None = 1,
        **fields,
    ):
        if resolution < 32:
            raise ValueError("resolution must be >= 32")
        self.resolution = int(resolution)
        self.seed = int(seed)
        self.quantize_bits = quantize_bits
        groups = resolve_groups(dict(identity=identity, shading=shading, lighting=lighting, camera=camera,
                                     coverage=coverage, expression=expression), fields)
        self.identity: IdentityParams = groups["identity"]
        self.shading: ShadingParams = groups["shading"]
        self.lighting: LightingParams = groups["lighting"]
        self.camera: CameraParams = groups["camera"]
        self.coverage: CoverageParams = groups["coverage"]
        self.expression: ExpressionParams = groups["expression"]
        self.device = torch.device(device)
        self.num_threads = num_threads
        with self._threads():
            self.uv = UVLayout(self.resolution, self.device)

    def __getattr__(self, name: str):
        # only reached for names that are not instance attributes: group fields, UV geometry
        d = self.__dict__
        if name in FIELD_GROUP and FIELD_GROUP[name] in d:
            return getattr(d[FIELD_GROUP[name]], name)
        if not name.startswith("__") and "uv" in d and hasattr(d["uv"], name):
            return getattr(d["uv"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def parameters(self) -> dict:
        """Every constructor argument but ``device``, flat (group fields by their own names)."""
        out = {"resolution": self.resolution, "seed": self.seed, "quantize_bits": self.quantize_bits}
        for group in GROUPS:
            out.update(dataclasses.asdict(getattr(self, group)))
        out["num_threads"] = self.num_threads
        return out

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

    def _identity(self, index: int) -> _Identity:
        return build_identity(self.uv, self.identity, self.seed, index)

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
            n = normals(self.uv, ident.height, chin, self.shading)
            ao = ambient_occlusion(self.uv, ident.height, chin, self.shading)
            out = SynthSample(stem=stem or _stem(index), phone=None, mask=None, studio=None)
            if studio:
                out.studio = self._q(studio_texture(ident.albedo, ao, self.shading))
            if phone or expressions > 0:
                cap = phone_capture(self.uv, self.seed, index, capture, ident, n, ao,
                                    self.lighting, self.camera, self.coverage)
                out.meta.update(cap.meta)
                if phone:
                    img, mask = render_phone(self.uv, ident.albedo, ident.oil, cap.E, cap.spec, cap,
                                             _gen(self.seed, index, 3, capture), self.camera, self.coverage)
                    out.phone, out.mask = self._q(img), mask.contiguous()
                for j in range(expressions):
                    self._render_expression(out, ident, cap, index, capture, j)
            return out

    def _render_expression(self, out: SynthSample, ident: _Identity, cap, index: int, capture: int, j: int):
        """Expression ``j``, phone-lit with the neutral capture ``cap`` and studio-lit, into ``out``."""
        name, alb, hgt, oil, info = warp_expression(self.uv, ident, j, self.seed, index, self.expression)
        chin = ident.p
        n_e = normals(self.uv, hgt, chin, self.shading)
        ao_e = ambient_occlusion(self.uv, hgt, chin, self.shading)
        out.meta.setdefault("expressions", {})[name] = info
        E, spec = irradiance(self.uv, n_e, hgt, ao_e, cap.rig, self.lighting)
        img, _ = render_phone(self.uv, alb, oil, E, spec, cap, _gen(self.seed, index, 4, capture, j),
                              self.camera, self.coverage)
        out.expressions[name] = self._q(img)
        out.expressions_studio[name] = self._q(studio_texture(alb, ao_e, self.shading))

    def _q(self, t: torch.Tensor) -> torch.Tensor:
        return _quantize(t, self.quantize_bits)


def iter_samples(profile: SynthProfile, seed: int = 0, **synth_kwargs) -> Iterator[SynthSample]:
    """Every distinct subject of ``profile`` once, in index order, with the right outputs.

    Extra keyword arguments go to :class:`TextureSynthesizer`.
    """
    synth = TextureSynthesizer(profile.resolution, seed, **synth_kwargs)
    for stem, i, ph, st, ne, _cat in subject_plan(profile):
        yield synth.sample(i, phone=ph, studio=st, expressions=ne if ph else 0, stem=stem)
