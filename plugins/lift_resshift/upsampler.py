"""ResShift upsampler with phone-gradient conditioning (Sect 3.2, Eq. 9-14, Table 3).

Textures are [0,1]; the chain runs on ``2 * texture - 1`` (ResShift's [-1,1] range), encoded by the
autoencoder. The degraded input ``y`` of the chain is the bicubic upsampling of the low-resolution
texture to the target size, plus ``G(I_phone)`` where the conditioning mode asks for it:

    conditioning          training input y (Eq. 13)          sampling input y (Eq. 14)
    "none"                up(I_LR)                           up(I_LR)                 Table 3 "vanilla"
    "inference"           up(I_LR)                           up(I_LR) + G(I_phone)    "inference-only"
    "train+inference"     up(I_LR) + G(I_phone)              up(I_LR) + G(I_phone)    the paper's

``y`` enters the network twice, as in ResShift: through x_t (which is shifted towards y) and
concatenated as the condition.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from lift.components import GradientOperator, Upsampler
from lift.components.upsampler import (check_conditioning, check_mask_erosion, conditioned_input,
                                      uses_gradient)
from lift_resshift.autoencoder import Autoencoder
from lift_resshift.denoiser import Denoiser
from lift_resshift.scheduler import ResShiftScheduler
from lift_resshift.tiling import tiled_apply

Conditioning = Literal["none", "inference", "train+inference"]
Phase = Literal["train", "sample"]


class ResShift(Upsampler):
    """ResShift diffusion upsampler (x_0 prediction, plain MSE).

    Loss terms: ``mse`` (the chain) and, with a trainable autoencoder, ``autoencoder``.

    Args:
        denoiser: the network f(x_t, t, condition) -> x_0 (e.g. ``UNetDenoiser``).
        scheduler: the ResShift chain (``ResShiftScheduler``: T, kappa, p, ...).
        autoencoder: the space the chain runs in (``IdentityAutoencoder`` = pixel space).
        gradient_operator: G of Eq. 13-14 (required unless ``conditioning`` is "none").
        conditioning: when G(I_phone) is added to the input (Table 3 rows, see module doc).
        scale_factor: high-res size / low-res size (ResShift: 4).
        num_inference_steps: reverse steps at sampling (None: all T).
        clip_denoised: clamp the x_0 estimate to [-1,1] at sampling (pixel space).
        gradient_mask_erosion: None adds G(I_phone) everywhere (Eq. 13-14 as written); an
            integer k only over the phone's visible texels eroded by k (no hole edges; lift's
            option, docs/upsampling.md).
    """

    def __init__(
        self,
        denoiser: Denoiser,
        scheduler: ResShiftScheduler,
        autoencoder: Autoencoder,
        gradient_operator: GradientOperator | None = None,
        conditioning: Conditioning = "train+inference",
        scale_factor: int = 4,
        num_inference_steps: int | None = None,
        clip_denoised: bool = True,
        gradient_mask_erosion: int | None = None,
    ):
        super().__init__()
        check_conditioning(conditioning, gradient_operator)
        check_mask_erosion(gradient_mask_erosion)
        if scale_factor < 1:
            raise ValueError(f"scale_factor must be >= 1, got {scale_factor}")
        if denoiser.latent_channels != autoencoder.latent_channels:
            raise ValueError(f"denoiser latent_channels {denoiser.latent_channels} != autoencoder "
                             f"latent_channels {autoencoder.latent_channels}")
        if denoiser.condition_channels != 3:
            raise ValueError("the condition is the RGB input y: denoiser.condition_channels must "
                             f"be 3, got {denoiser.condition_channels}")
        self.denoiser = denoiser
        self.scheduler = scheduler
        self.autoencoder = autoencoder
        self.gradient_operator = gradient_operator
        self.conditioning = conditioning
        self.scale_factor = scale_factor
        self.num_inference_steps = num_inference_steps
        self.clip_denoised = clip_denoised
        self.gradient_mask_erosion = gradient_mask_erosion
        self.loss_terms = ("mse", "autoencoder") if autoencoder.trainable else ("mse",)

    # --- the input y (Eq. 13-14) ---------------------------------------------------------------

    def uses_gradient(self, phase: Phase) -> bool:
        return uses_gradient(self.conditioning, phase)

    def degraded_input(
        self, low_res: torch.Tensor, phone: torch.Tensor | None, phase: Phase,
        mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """y in texture units [B,3,H,W]: up(I_LR) (+ G(I_phone)), I_LR* of Eq. 13-14."""
        return conditioned_input(low_res, phone, scale_factor=self.scale_factor,
                                 gradient_operator=self.gradient_operator,
                                 conditioning=self.conditioning, phase=phase, mask=mask,
                                 mask_erosion=self.gradient_mask_erosion)

    def _condition(self, y_image: torch.Tensor, latent_size: torch.Size) -> torch.Tensor:
        """The network's concatenated condition: y in [-1,1] at the latent's size."""
        if y_image.shape[-2:] != latent_size:
            y_image = F.interpolate(y_image, size=latent_size, mode="area")
        return y_image

    # --- training -----------------------------------------------------------------------------

    def training_losses(
        self,
        low_res: torch.Tensor,
        high_res: torch.Tensor,
        phone: torch.Tensor | None,
        *,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """{"mse": ||f(x_t, y, t) - x_0||^2} at uniform t (x_0 prediction, plain MSE)."""
        y = self.degraded_input(low_res, phone, "train", mask)
        if y.shape != high_res.shape:
            raise ValueError(f"high_res {tuple(high_res.shape)} must be scale_factor="
                             f"{self.scale_factor} times low_res {tuple(low_res.shape)}")
        y = 2 * y - 1
        x = 2 * high_res - 1
        terms: dict[str, torch.Tensor] = {}
        z0 = self.autoencoder.encode(x)
        zy = self.autoencoder.encode(y)
        if self.autoencoder.trainable:
            terms["autoencoder"] = F.mse_loss(self.autoencoder.decode(z0), x)
            z0, zy = z0.detach(), zy.detach()  # the chain does not train the autoencoder
        b = x.shape[0]
        t = self.scheduler.sample_timesteps(b, generator=generator).to(x.device)
        noise = torch.randn(z0.shape, generator=generator).to(z0)
        z_t = self.scheduler.add_noise(z0, zy, noise, t)
        cond = self._condition(y, z0.shape[-2:])
        pred = self.denoiser(self.scheduler.scale_input(z_t, t), t, cond)
        terms["mse"] = F.mse_loss(pred, z0)
        return terms

    # --- sampling -----------------------------------------------------------------------------

    @torch.no_grad()
    def upsample(
        self,
        low_res: torch.Tensor,
        phone: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        tile_size: int | None = None,
        tile_overlap: int = 32,
        num_inference_steps: int | None = None,
    ) -> torch.Tensor:
        """The reverse process from x_T = y + kappa sqrt(eta_T) e (Eq. 12), in [0,1].

        ``tile_size``/``tile_overlap`` are in output pixels; with ``tile_size`` the network runs
        on overlapping tiles (see ``lift_resshift.tiling``). Noise is drawn full-size from
        ``generator`` (on the CPU, then moved), so results depend only on the seed.
        """
        y_image = 2 * self.degraded_input(low_res, phone, "sample", mask) - 1
        zy = self.autoencoder.encode(y_image)
        cond = self._condition(y_image, zy.shape[-2:])
        sched = self.scheduler
        timesteps = sched.set_timesteps(num_inference_steps or self.num_inference_steps)

        def draw() -> torch.Tensor:
            return torch.randn(zy.shape, generator=generator).to(zy)

        def denoise(z: torch.Tensor, c: torch.Tensor, t: int) -> torch.Tensor:
            tt = torch.full((z.shape[0],), t, device=z.device, dtype=torch.long)
            pred = self.denoiser(sched.scale_input(z, tt), tt, c)
            return pred.clamp(-1, 1) if self.clip_denoised else pred

        f = self.autoencoder.downsample_factor
        z = sched.prior_sample(zy, draw())
        for i, t in enumerate(timesteps.tolist()):
            if tile_size is None:
                x0 = denoise(z, cond, t)
            else:
                if tile_size % f or tile_overlap % f:
                    raise ValueError(f"tile_size and tile_overlap must be multiples of the "
                                     f"autoencoder's downsample factor {f}")
                x0 = tiled_apply(lambda zc, cc: denoise(zc, cc, t), z, cond, tile_size // f,
                                 tile_overlap // f, getattr(self.denoiser, "size_multiple", 1))
            last = i == len(timesteps) - 1
            z = sched.step(x0, t, z, noise=None if last else draw()).prev_sample
        image = self.autoencoder.decode(z)
        return ((image + 1) / 2).clamp(0, 1)
