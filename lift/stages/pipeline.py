"""The inference pipeline of the paper (Sect 3, Eq. 1-2 and 14-16) as one LightningModule.

``lift predict --config configs/pipeline/studio.yaml`` turns phone textures at the studio
(full) resolution R into studio textures, with the components of earlier stages rebuilt from
their checkpoints alone (:func:`lift.checkpoints.build_from_checkpoint`):

1. phone texture and mask are area-downsampled to the translator's resolution r (the mask
   binarised at 0.5, exactly what ``TextureDataset(resolution=r)`` gives the translation
   stage);
2. ``I* = translator.translate_batch({"phone", "mask", "stem"})`` at r (Eq. 1-2 for
   ``StyleGANWPlus``: W+ by inversion on G_phone with the bank's settings, rendered by
   G_studio);
3. ``Î* = upsampler.upsample(I*, I_phone at R, ...)`` with the upsampler's EMA weights and its
   own conditioning mode (Eq. 14: whether G(I_phone) is added), or, without an upsampler,
   ``Î* = bicubic(I*)`` to R (how the baselines without our upsampler are evaluated);
4. Eq. 15: ``params = colour_transform.fit(I_phone, Î*, mask)`` (at R, visible texels);
5. Eq. 16: every expression texture of the subject, ``apply(params, I_exp)``, clamped to [0, 1].

``predict_step`` returns ``{"stem", "translated" (I* at r), "studio" (Î* at R), <the colour
transform's maps> ("gain", "bias" for GainBias, [B,3,k,k]), "expressions": {name: [B,3,H,W]}}``
for the :class:`~lift.prediction_writer.TextureWriter`. Nothing here is rank-specific beyond
the seed of the sampling noise (each rank writes its own stems; no collective calls).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lift.checkpoints import (CheckpointError, build_from_checkpoint, component_spec,
                              read_checkpoint, state_with_prefix)
from lift.components import ColourTransform, GradientOperator, Translator, Upsampler
from lift.spec import SpecError, build
from lift.stages.base import StageModule

#: prediction entries the pipeline itself fills; a colour transform's maps take other names
RESERVED = ("stem", "translated", "studio", "expressions")


def frozen(module: nn.Module) -> nn.Module:
    """``module`` without gradients, in eval mode."""
    return module.requires_grad_(False).eval()


def load_upsampler(path: str, conditioning: str | None = None,
                   gradient_operator: GradientOperator | None = None) -> Upsampler:
    """The upsampler of an upsampling-stage checkpoint with its EMA weights.

    ``conditioning`` rebuilds it with another conditioning mode (an init argument of the
    upsampler, e.g. ``ResShift``'s); ``gradient_operator`` gives one to an upsampler recorded
    without (needed for Eq. 14 by a model trained with ``conditioning: none``).
    """
    if conditioning is None and gradient_operator is None:
        return build_from_checkpoint(path, "upsampler", prefix="ema_upsampler")
    data = read_checkpoint(path)
    spec = component_spec(path, "upsampler", data)
    recorded = dict(spec.get("init_args") or {})
    cls = spec.get("class_path")
    overrides: dict[str, Any] = {}
    if conditioning is not None:
        if "conditioning" not in recorded:
            raise ValueError(
                f"pipeline: conditioning={conditioning!r} cannot be applied: the upsampler of "
                f"{path} ({cls}) has no conditioning mode; set model.init_args.conditioning: "
                "null")
        overrides["conditioning"] = conditioning
    if gradient_operator is not None:
        if "gradient_operator" not in recorded:
            raise ValueError(f"pipeline: the upsampler of {path} ({cls}) takes no "
                             "gradient_operator; set model.init_args.gradient_operator: null")
        if recorded["gradient_operator"] is not None:
            raise ValueError(
                f"pipeline: the upsampler of {path} was trained with its own gradient operator "
                f"({recorded['gradient_operator'].get('class_path')}); "
                "model.init_args.gradient_operator is only for an upsampler recorded without "
                "one: set it to null")
        overrides["gradient_operator"] = gradient_operator
    try:
        module = build(spec, where=f"{path}: upsampler", **overrides)
    except SpecError as err:
        raise CheckpointError(str(err)) from err
    except ValueError as err:
        hint = ""
        if gradient_operator is None and recorded.get("gradient_operator", 0) is None:
            hint = ("; the upsampler was trained without a gradient operator: give one with "
                    "model.init_args.gradient_operator (e.g. lift_gradients.operators.HighPass)")
        changed = ", ".join(f"{k}={v!r}" if isinstance(v, str) else k
                            for k, v in overrides.items())
        raise ValueError(f"pipeline: the upsampler of {path} cannot be rebuilt with "
                         f"{changed}: {err}{hint}") from err
    missing, unexpected = module.load_state_dict(
        state_with_prefix(data, "ema_upsampler", path), strict=False)
    if gradient_operator is not None:  # its own weights, not in a checkpoint trained without
        missing = [k for k in missing if not k.startswith("gradient_operator.")]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path}: 'ema_upsampler.*' does not fit "
                              f"{type(module).__name__}: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}")
    return module


class PipelineModule(StageModule):
    """Phone textures at the studio resolution R -> studio textures (+ expressions).

    Args:
        translator: a translation-stage checkpoint (``lift fit`` output, ``last.ckpt``); the
            translator is rebuilt from it (``build_from_checkpoint(path, "translator")``).
        upsampler: an upsampling-stage checkpoint, rebuilt with its EMA weights
            (``ema_upsampler.*``); None: ``Î* = bicubic(I*)`` to R.
        colour_transform: Eq. 15-16 (``lift_colour.gain_bias.GainBias``, grid_size 32); fitted
            on every batch and returned (its maps are written); None: no maps, no expressions.
        translator_resolution: r, the size the translator works at. None: the translator's
            ``resolution`` attribute (StyleGAN translators: G's resolution); a translator
            without one (CUT, CycleGAN) needs it set (the data resolution of its translation
            config). With an upsampler, R must be ``r * upsampler.scale_factor``.
        conditioning: rebuild the upsampler with this conditioning mode at inference (None:
            as trained). Table 3's inference-only row: a model trained with ``"none"`` sampled
            with ``"inference"`` (Eq. 14). Only for upsamplers that have such an init argument
            (``ResShift``: none | inference | train+inference).
        gradient_operator: G of Eq. 14 for an upsampler recorded without one (a vanilla model
            trained without an operator); an error when the upsampler has its own.
        tile_size, tile_overlap: tiled sampling of the upsampler (None: whole texture).
        num_inference_steps: reverse steps (None: the upsampler's own).
        sample_seed: seeds the sampling noise: ``sample_seed + 1_000_003 * rank + batch_idx``
            (as ``UpsamplingModule``).
        translator_overrides: constructor arguments of the translator replaced when it is
            rebuilt (e.g. ``{"eval_banks": [bank]}``: codes of the test textures inverted once
            by the inversion stage, shared by every method that uses this G_phone)
        eval_bank: one more latent bank appended to the translator's ``eval_banks`` (the
            recipes' test-split bank: every test texture inverted once, with the training
            bank's settings, instead of once per method); None: none
    """

    stage = "pipeline"

    def __init__(
        self,
        translator: str,
        upsampler: str | None,
        colour_transform: ColourTransform | None,
        translator_resolution: int | None = None,
        conditioning: str | None = None,
        gradient_operator: GradientOperator | None = None,
        tile_size: int | None = None,
        tile_overlap: int = 32,
        num_inference_steps: int | None = None,
        sample_seed: int = 0,
        translator_overrides: dict[str, Any] | None = None,
        eval_bank: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["colour_transform", "gradient_operator"])
        self.translator_path = str(translator)
        overrides = dict(translator_overrides or {})
        if eval_bank is not None:  # looked up after the banks the translator already has
            recorded = component_spec(translator, "translator")["init_args"]
            if "eval_banks" not in recorded:
                raise ValueError(f"pipeline: eval_bank is set but the translator of {translator} "
                                 "takes no eval_banks (only latent-code translators do)")
            overrides["eval_banks"] = [*overrides.get("eval_banks", recorded["eval_banks"] or []),
                                       str(eval_bank)]
        self.translator: Translator = frozen(build_from_checkpoint(
            translator, "translator", **overrides))
        self.translator_resolution = self._resolution(translator_resolution)
        self.upsampler_path = None if upsampler is None else str(upsampler)
        if upsampler is None:
            given = [n for n, v in (("conditioning", conditioning),
                                    ("gradient_operator", gradient_operator)) if v is not None]
            if given:
                raise ValueError(f"pipeline: {', '.join(given)} set but upsampler is null "
                                 "(bicubic); set them to null or give an upsampler checkpoint")
            self.upsampler: Upsampler | None = None
        else:
            self.upsampler = frozen(load_upsampler(upsampler, conditioning, gradient_operator))
        self.colour_transform = (frozen(colour_transform) if colour_transform is not None
                                 else None)
        self.tile_size, self.tile_overlap = tile_size, tile_overlap
        self.num_inference_steps = num_inference_steps
        self.sample_seed = sample_seed

    def _resolution(self, given: int | None) -> int:
        own = getattr(self.translator, "resolution", None)
        name = type(self.translator).__name__
        if given is None:
            if own is None:
                raise ValueError(
                    f"pipeline: the translator of {self.translator_path} ({name}) does not say "
                    "at which resolution it works (no `resolution` attribute); set "
                    "model.init_args.translator_resolution (the data resolution of its "
                    "translation config)")
            return int(own)
        if given < 1:
            raise ValueError(f"translator_resolution must be positive, got {given}")
        if own is not None and int(own) != int(given):
            raise ValueError(f"pipeline: translator_resolution={given} but the translator of "
                             f"{self.translator_path} ({name}) works at {int(own)}; set "
                             "translator_resolution: null")
        return int(given)

    @property
    def studio_resolution(self) -> int | None:
        """R the upsampler produces from I* (None without an upsampler: any R)."""
        if self.upsampler is None:
            return None
        return self.translator_resolution * int(self.upsampler.scale_factor)

    # --- the steps -------------------------------------------------------------------------

    def _check_size(self, phone: torch.Tensor) -> None:
        size, r, full = tuple(phone.shape[-2:]), self.translator_resolution, \
            self.studio_resolution
        if full is not None and size != (full, full):
            raise ValueError(
                f"pipeline: phone textures of {size[0]}x{size[1]} but the translator works at "
                f"{r} and the upsampler's scale_factor is {self.upsampler.scale_factor}: the "
                f"studio resolution is {full}; set data.init_args.resolution: {full}")
        if size[0] < r or size[1] < r:
            raise ValueError(f"pipeline: phone textures of {size[0]}x{size[1]} are smaller than "
                             f"the translator's resolution {r}")

    def downsample(self, texture: torch.Tensor) -> torch.Tensor:
        """Area (box) downsampling to the translator's resolution r."""
        r = self.translator_resolution
        if tuple(texture.shape[-2:]) == (r, r):
            return texture
        return F.interpolate(texture, size=(r, r), mode="area")

    def _generator(self, batch_idx: int) -> torch.Generator:
        seed = self.sample_seed + 1_000_003 * self.global_rank + batch_idx
        return torch.Generator().manual_seed(seed)

    def translate(self, batch: Mapping[str, Any], stems: list[str]) -> torch.Tensor:
        """I* at r (Eq. 1-2) of the batch's phone textures."""
        low: dict[str, Any] = {"phone": self.downsample(batch["phone"]), "stem": stems}
        if batch.get("mask") is not None:
            low["mask"] = (self.downsample(batch["mask"]) >= 0.5).to(batch["phone"].dtype)
        return self.translator.translate_batch(low)

    def upsample(self, translated: torch.Tensor, phone: torch.Tensor,
                 batch_idx: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Î* at R (Eq. 14), or bicubic without an upsampler; ``mask``: the phone's, at R."""
        if self.upsampler is None:
            return F.interpolate(translated, size=tuple(phone.shape[-2:]), mode="bicubic",
                                 align_corners=False).clamp(0, 1)
        return self.upsampler.upsample(
            translated, phone, mask=mask, generator=self._generator(batch_idx),
            tile_size=self.tile_size,
            tile_overlap=self.tile_overlap, num_inference_steps=self.num_inference_steps)

    def transfer(self, phone: torch.Tensor, studio: torch.Tensor, mask: torch.Tensor | None,
                 expressions: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Eq. 15 (fit on the neutral pair) and Eq. 16 (apply to every expression)."""
        params = self.colour_transform.fit(phone, studio, mask)
        clash = sorted(set(params) & set(RESERVED))
        if clash:
            raise ValueError(f"pipeline: {type(self.colour_transform).__name__}.fit returns "
                             f"{clash}, names the pipeline uses for its own outputs")
        out: dict[str, Any] = {k: v for k, v in params.items() if isinstance(v, torch.Tensor)}
        out["expressions"] = {name: self.colour_transform.apply(params, texture).clamp(0, 1)
                              for name, texture in expressions.items()}
        return out

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        """One batch through the chain (see the module docstring)."""
        phone, mask = batch["phone"], batch.get("mask")
        stems = [str(s) for s in batch["stem"]]
        self._check_size(phone)
        translated = self.translate(batch, stems)
        studio = self.upsample(translated, phone, batch_idx, mask)
        out: dict[str, Any] = {"stem": stems, "translated": translated, "studio": studio}
        if self.colour_transform is not None:
            out.update(self.transfer(phone, studio, mask, batch.get("expressions") or {}))
        return out
