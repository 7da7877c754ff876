"""Upsampler: low-resolution studio texture -> high-resolution texture (Sect 3.2)."""

from __future__ import annotations

import abc
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lift.components.gradient_operator import GradientOperator
from lift.spec import Recordable


class Upsampler(Recordable, nn.Module, abc.ABC):
    """A trainable ``scale_factor``-times upsampler driven by the upsampling stage.

    ``phone`` is the full-resolution phone texture (at the output size), ``mask`` its
    visibility ``[B,1,H,W]`` (1 = seen by the phone; None when the data has none). Whether and
    when the phone's gradient conditions the process (Table 3: Eq. 13 in training, Eq. 14 at
    inference), and whether the mask limits it, is the upsampler's configuration, not the
    stage's. The stage and the pipeline pass ``mask`` to every upsampler.

    Attributes every implementation sets in ``__init__``:
        scale_factor: output size / input size (an integer; ResShift: 4).
        gradient_operator: (optional) the G of Eq. 13-14 the upsampler conditions on, or None;
            the stage shows G(I_phone) in the validation grid when it is set.
        loss_terms: every term name ``training_losses`` may return (checked against the
            configured loss weights).
    """

    kind = "upsampler"
    scale_factor: int
    gradient_operator: GradientOperator | None  # no class default: nn.Module registers it
    loss_terms: tuple[str, ...] = ()

    @abc.abstractmethod
    def training_losses(
        self, low_res: torch.Tensor, high_res: torch.Tensor, phone: torch.Tensor | None, *,
        mask: torch.Tensor | None = None
    ) -> Mapping[str, torch.Tensor]:
        """Unweighted loss terms for one batch of paired crops: ``low_res`` ``[B,3,h,w]``,
        ``high_res`` ``[B,3,h*s,w*s]``, ``phone`` like ``high_res`` or None, ``mask``
        ``[B,1,h*s,w*s]`` or None; all in [0,1]."""

    @abc.abstractmethod
    def upsample(
        self,
        low_res: torch.Tensor,
        phone: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        tile_size: int | None = None,
        tile_overlap: int = 0,
        num_inference_steps: int | None = None,
    ) -> torch.Tensor:
        """The high-resolution texture ``[B,3,h*s,w*s]`` in [0,1] for ``low_res``.

        ``mask`` is ``phone``'s visibility ``[B,1,h*s,w*s]`` (or None).
        ``generator`` seeds any sampling noise; ``tile_size`` / ``tile_overlap`` (output
        pixels; None: whole texture) bound memory at large sizes; ``num_inference_steps``
        overrides an iterative sampler's step count (None: its own; ignored by one-pass
        upsamplers)."""


# --- the gradient conditioning of Eq. 13-14, shared by every upsampler that offers it --------

CONDITIONING_MODES = ("none", "inference", "train+inference")


def check_conditioning(conditioning: str, gradient_operator: GradientOperator | None) -> None:
    """Raise ValueError unless ``conditioning`` is a mode and has the operator it needs."""
    if conditioning not in CONDITIONING_MODES:
        raise ValueError(f"conditioning must be 'none', 'inference' or 'train+inference', "
                         f"got {conditioning!r}")
    if conditioning != "none" and gradient_operator is None:
        raise ValueError(f"conditioning={conditioning!r} needs a gradient_operator (Eq. 13-14)")


def uses_gradient(conditioning: str, phase: str) -> bool:
    """Whether G(I_phone) is added to the input in ``phase`` ("train" or "sample"): Table 3's
    vanilla (``none``), inference-only and train+inference."""
    if phase == "train":
        return conditioning == "train+inference"
    return conditioning in ("inference", "train+inference")


def check_mask_erosion(mask_erosion: int | None) -> None:
    """Raise ValueError unless ``mask_erosion`` is None or an integer >= 0."""
    if mask_erosion is not None and (isinstance(mask_erosion, bool)
                                     or not isinstance(mask_erosion, int) or mask_erosion < 0):
        raise ValueError(f"gradient_mask_erosion must be None or an integer >= 0, got "
                         f"{mask_erosion!r}")


def eroded_mask(mask: torch.Tensor, texels: int) -> torch.Tensor:
    """1 where ``mask >= 0.5`` holds in the whole (2k+1)x(2k+1) window around a texel (k =
    ``texels``), else 0; texels outside the map count as visible (the UV border is no hole)."""
    hole = (mask < 0.5).to(mask.dtype)
    if texels:
        hole = F.max_pool2d(hole, 2 * texels + 1, stride=1, padding=texels)
    return 1 - hole


def conditioned_input(low_res: torch.Tensor, phone: torch.Tensor | None, *, scale_factor: int,
                      gradient_operator: GradientOperator | None, conditioning: str,
                      phase: str, mask: torch.Tensor | None = None,
                      mask_erosion: int | None = None) -> torch.Tensor:
    """y = bicubic(I_LR) at the output size, + G(I_phone) where ``conditioning`` says so in
    ``phase`` (Eq. 13 in training, Eq. 14 at sampling); textures in [0, 1] units.

    ``mask_erosion`` None adds G(I_phone) everywhere, as Eq. 13-14 are written. An integer k
    adds it only where the phone saw the texel and every texel within k of it (``mask``
    eroded by k): the edges of the phone's holes are not detail of the face (an option of
    lift's, not the paper's)."""
    if low_res.ndim != 4 or low_res.shape[1] != 3:
        raise ValueError(f"low_res must be [B,3,h,w], got {tuple(low_res.shape)}")
    size = (low_res.shape[-2] * scale_factor, low_res.shape[-1] * scale_factor)
    y = torch.nn.functional.interpolate(low_res, size=size, mode="bicubic", align_corners=False)
    if uses_gradient(conditioning, phase):
        if phone is None:
            raise ValueError(f"conditioning={conditioning!r} needs the phone texture in the "
                             f"{phase} phase")
        if phone.shape != y.shape:
            raise ValueError(f"phone {tuple(phone.shape)} must be at the target size "
                             f"{tuple(y.shape)}")
        detail = gradient_operator(phone)
        if mask_erosion is not None:
            if mask is None:
                raise ValueError(f"gradient_mask_erosion={mask_erosion} needs the phone "
                                 f"texture's mask in the {phase} phase (the data has none)")
            if mask.shape[-2:] != y.shape[-2:] or mask.shape[0] != y.shape[0]:
                raise ValueError(f"mask {tuple(mask.shape)} must be [B,1,H,W] at the target "
                                 f"size {tuple(y.shape)}")
            detail = detail * eroded_mask(mask.to(detail.dtype), mask_erosion)
        y = y + detail
    return y
