"""Supervised completion + light-normalisation translators of the related systems.

Both learn ``(incomplete phone-like texture, mask) -> complete studio-lit texture`` with pixel
losses, from two kinds of training pairs, concatenated in every step:

1. **paired subjects** (``use_paired``): ``paired_phone`` / ``paired_mask`` ->
   ``paired_studio`` of the paired split;
2. **augmented studio textures** (``augmentation``): each ``studio`` of the studio split,
   degraded by :class:`~lift_related.augmentation.RelightingAugmentation` (random SH light,
   hard key light with soft shadow, colour cast, holes from the phone masks' distribution)
   -> the studio texture itself. The augmentation learns its masks from the phone masks of
   every training batch (``mask``, and ``paired_mask``) before it degrades.

One phase, ``generator``. Loss terms (unweighted; the stage's ``loss_weights`` weight them):

- ``l1``: mean |prediction - target| over the whole texture (holes completed, light
  normalised everywhere);
- ``perceptual`` (only with a ``distance``): the perceptual distance, mean over the batch;
- ``l1_multiscale`` (``SymmetricCompletion`` only): mean over the coarser scales of the L1
  against the area-downsampled target.

The network input is ``phone * mask`` and ``mask``; ``translate`` returns the network's full
output (visible texels are relit as well: the light is normalised everywhere).
"""

from __future__ import annotations

import abc
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lift.components import PerceptualDistance, Phase, Translator
from lift_related.augmentation import RelightingAugmentation
from lift_related.networks import SymmetricUNet, UNet
from lift_related.symmetry import mirror, mirror_valid


class _Completion(Translator):
    """What both completion translators share: the pairs, the losses, the visuals."""

    def __init__(self, augmentation: RelightingAugmentation | None, use_paired: bool,
                 distance: PerceptualDistance | None, symmetry_axis: float):
        super().__init__()
        if augmentation is None and not use_paired:
            raise ValueError(f"{type(self).__name__}: no training pairs: give an augmentation "
                             "or set use_paired: true")
        self.augmentation = augmentation
        self.use_paired = use_paired
        self.distance = None if distance is None else distance.requires_grad_(False)
        self.symmetry_axis = symmetry_axis

    # --- subclasses ---------------------------------------------------------------------------

    @abc.abstractmethod
    def predict(self, masked: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Logits at every scale the network predicts, finest (the output) first."""

    def extra_terms(self) -> tuple[str, ...]:
        return ()

    # --- the contract -------------------------------------------------------------------------

    def network_parameters(self):
        skip = set() if self.distance is None else {id(p) for p in self.distance.parameters()}
        return [p for p in self.parameters() if id(p) not in skip and p.requires_grad]

    def phases(self) -> dict[str, Phase]:
        terms = ("l1", *self.extra_terms(), *(("perceptual",) if self.distance else ()))
        return {"generator": Phase(self.network_parameters, self.generator_losses, terms)}

    def rebuilt_modules(self) -> tuple[str, ...]:
        return () if self.distance is None else ("distance",)  # pretrained, frozen

    def pairs(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The step's training pairs ``{"phone", "mask", "studio"}`` (paired, then augmented)."""
        if self.augmentation is not None and self.training:  # learn the holes (not in visuals)
            for key in ("mask", "paired_mask"):
                if batch.get(key) is not None:
                    self.augmentation.observe(batch[key])
        phones, masks, studios = [], [], []
        if self.use_paired and batch.get("paired_phone") is not None:
            phones.append(batch["paired_phone"])
            masks.append(batch["paired_mask"])
            studios.append(batch["paired_studio"])
        if self.augmentation is not None and batch.get("studio") is not None:
            phone, mask = self.augmentation(batch["studio"])
            phones.append(phone)
            masks.append(mask)
            studios.append(batch["studio"])
        if not phones:
            raise ValueError(f"{type(self).__name__}: the batch holds no training pair (need "
                             "paired_* keys with use_paired, or studio with an augmentation)")
        return {"phone": torch.cat(phones), "mask": torch.cat(masks),
                "studio": torch.cat(studios)}

    def forward_step(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        pairs = self.pairs(batch)
        mask = (pairs["mask"] > 0.5).to(pairs["phone"])
        logits = self.predict(pairs["phone"] * mask, mask)
        return {**pairs, "logits": logits, "prediction": torch.sigmoid(logits[0])}

    def generator_losses(self, batch: Mapping[str, Any], outputs: Mapping[str, Any],
                         step: int = 0) -> dict[str, torch.Tensor]:
        target, prediction = outputs["studio"], outputs["prediction"]
        terms = {"l1": (prediction - target).abs().mean()}
        if "l1_multiscale" in self.extra_terms():
            coarse = outputs["logits"][1:]
            terms["l1_multiscale"] = (torch.stack([
                (torch.sigmoid(y) - F.interpolate(target, size=y.shape[-2:], mode="area"))
                .abs().mean() for y in coarse]).mean() if coarse else prediction.sum() * 0)
        if self.distance is not None:
            terms["perceptual"] = self.distance(prediction, target).mean()
        return terms

    def translate(self, phone: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = torch.ones_like(phone[:, :1]) if mask is None else (mask > 0.5).to(phone)
        return torch.sigmoid(self.predict(phone * mask, mask)[0])

    def visuals(self, batch: Mapping[str, Any], outputs: Mapping[str, Any]
                ) -> dict[str, torch.Tensor]:
        return {"input": outputs["phone"], "mask": outputs["mask"].expand(-1, 3, -1, -1),
                "completed": outputs["prediction"].clamp(0, 1), "target": outputs["studio"]}


class MirroredCompletion(_Completion):
    """MoSAR-like (seed 003) completion and light normalisation in one U-Net.

    The input (8 channels) is the incomplete texture ``phone * mask``, its mask and both
    mirrored across the UV symmetry axis (MoSAR, after UV-GAN: the incomplete map "alongside
    its mirrored version"); columns whose mirror falls outside the map get a zero mirrored mask.

    Args:
        channels: U-Net widths per level (5 levels in MoSAR; a multiple of ``2**(L-1)`` size).
        norm: ``"none"`` | ``"batch"`` | ``"instance"`` | ``"group"`` (see networks.norm_layer).
        augmentation: the relighting-and-masking augmentation (None: paired pairs only).
        use_paired: train on the paired split's pairs as well.
        distance: optional perceptual distance of the ``perceptual`` term (e.g. LPIPS).
        symmetry_axis: u of the vertical UV symmetry line (0.5: the centre).
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128, 256, 256), norm: str = "none",
                 augmentation: RelightingAugmentation | None = None, use_paired: bool = True,
                 distance: PerceptualDistance | None = None, symmetry_axis: float = 0.5):
        super().__init__(augmentation, use_paired, distance, symmetry_axis)
        self.network = UNet(8, 3, channels, norm)

    def network_input(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``cat([texture, mask, mirror(texture), mirror(mask)])`` ``[B, 8, H, W]``."""
        valid = mirror_valid(mask.shape[-1], self.symmetry_axis, mask.device).to(mask)
        return torch.cat([masked, mask, mirror(masked, self.symmetry_axis),
                          mirror(mask, self.symmetry_axis) * valid], dim=1)

    def predict(self, masked: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        return [self.network(self.network_input(masked, mask))]


class SymmetricCompletion(_Completion):
    """Yamaguchi-like (seed 004) symmetry-aware, multi-resolution completion.

    Input ``phone * mask`` and ``mask`` (4 channels); every encoder level's features are
    concatenated with their mirror across the UV symmetry axis (``MirrorConcat``), and the
    decoder completes coarse to fine, one prediction per level (see ``SymmetricUNet``), the
    coarser ones supervised by ``l1_multiscale``.

    Args: as :class:`MirroredCompletion` (``channels``: one level per resolution).
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128, 256), norm: str = "none",
                 augmentation: RelightingAugmentation | None = None, use_paired: bool = True,
                 distance: PerceptualDistance | None = None, symmetry_axis: float = 0.5):
        super().__init__(augmentation, use_paired, distance, symmetry_axis)
        self.network = SymmetricUNet(4, 3, channels, norm, symmetry_axis)

    def extra_terms(self) -> tuple[str, ...]:
        return ("l1_multiscale",)

    def predict(self, masked: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        return self.network(torch.cat([masked, mask], dim=1))


def symmetrise_kernels(module: nn.Module) -> None:
    """Makes every convolution kernel of ``module`` left-right symmetric (in place): with the
    networks' pooling / bilinear resampling the network becomes exactly mirror-equivariant.
    For tests of the symmetry properties."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_((m.weight + m.weight.flip(-1)) / 2)
