"""Stage 4 (Sect 3.2): train the diffusion upsampler on paired studio textures.

Batches come from ``lift.data.TextureDataModule`` (keys ``"phone"``, ``"mask"``, ``"studio"`` at
full resolution; the train split ``paired_train`` is randomly cropped, the paper's 512^2 crops of
1024^2 textures). The low-resolution input is the box-filtered (area) studio texture at
1/``scale_factor`` of the batch's size; the upsampler itself builds y = up(I_LR) (+ G(I_phone),
Eq. 13-14) according to its conditioning mode.

Validation and test sample with the EMA weights (ResShift: EMA 0.999, ``use_ema_val``) on
full-resolution textures; validation fills the image grid (low-res / upsampled / ground truth /
phone gradient). Predict returns ``{"stem", "low_res", "upsampled"}``; the
:class:`~lift.prediction_writer.TextureWriter` callback writes them.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from lift.components import Upsampler
from lift.ema import ema_update
from lift.stages.base import StageModule, metric_name


class UpsamplingModule(StageModule):
    """LightningModule of the upsampling stage.

    Args:
        upsampler: the Upsampler plugin (e.g. ``ResShift``) with its own conditioning mode.
        low_resolution: size of the low-resolution texture at full resolution (64 for the
            256^2 quickstart); full-size batches must be ``low_resolution * scale_factor``.
        lr, weight_decay, betas: AdamW (ResShift: 5e-5, 0, (0.9, 0.999)).
        ema_decay: per-step EMA decay of the upsampler weights used for sampling (0.999).
        loss_weights: weights of the upsampler's loss terms ({"mse": 1.0}).
        metrics: evaluation metrics on full textures (lift ``Metric`` components: PSNR, SSIM,
            LPIPSMetric, ...; any torchmetrics Metric works), logged as ``<split>/<name>``; each
            is copied per split (val, test); None: no metrics.
        tile_size, tile_overlap: tiled sampling in val/test/predict (None: whole texture).
        num_inference_steps: reverse steps in val/test/predict (None: the upsampler's own).
        sample_seed: seeds the sampling noise of val/test/predict (per rank and batch).
    """

    stage = "upsample"
    recorded_components = ("upsampler",)

    def __init__(
        self,
        upsampler: Upsampler,
        low_resolution: int,
        lr: float = 5e-5,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        ema_decay: float = 0.999,
        loss_weights: dict[str, float] | None = None,
        metrics: list[torchmetrics.Metric] | None = None,
        tile_size: int | None = None,
        tile_overlap: int = 32,
        num_inference_steps: int | None = None,
        sample_seed: int = 0,
    ):
        super().__init__(loss_weights=loss_weights if loss_weights is not None else {"mse": 1.0})
        self.save_hyperparameters(ignore=["upsampler", "metrics"])
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.upsampler = upsampler
        self.ema_upsampler = copy.deepcopy(upsampler).requires_grad_(False).eval()
        self.low_resolution = low_resolution
        self.lr, self.weight_decay, self.betas = lr, weight_decay, tuple(betas)
        self.ema_decay = ema_decay
        self.eval_metrics = self.split_metrics(
            ["val", "test"], {metric_name(m): m for m in metrics or []})
        self.tile_size, self.tile_overlap = tile_size, tile_overlap
        self.num_inference_steps = num_inference_steps
        self.sample_seed = sample_seed

    @property
    def scale_factor(self) -> int:
        return int(self.upsampler.scale_factor)

    # --- inputs --------------------------------------------------------------------------------

    def low_res(self, studio: torch.Tensor) -> torch.Tensor:
        """I_LR: the area-downsampled studio texture (or crop) at 1/scale_factor."""
        s = self.scale_factor
        if studio.shape[-1] % s or studio.shape[-2] % s:
            raise ValueError(f"studio size {tuple(studio.shape[-2:])} is not divisible by the "
                             f"upsampler's scale_factor {s}")
        return F.interpolate(studio, scale_factor=1 / s, mode="area")

    def _check_full_size(self, batch: Mapping[str, Any]) -> None:
        size = batch["studio"].shape[-1]
        if size != self.low_resolution * self.scale_factor:
            raise ValueError(
                f"upsample stage: full textures of {size}^2 but low_resolution="
                f"{self.low_resolution} x scale_factor={self.scale_factor} = "
                f"{self.low_resolution * self.scale_factor}; fix the data resolution or the config")

    def _generator(self, batch_idx: int) -> torch.Generator:
        seed = self.sample_seed + 1_000_003 * self.global_rank + batch_idx
        return torch.Generator().manual_seed(seed)

    def sample(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        """Upsample ``batch["low_res"]`` if given (e.g. a translated I*), else the studio's I_LR."""
        low = batch["low_res"] if "low_res" in batch else self.low_res(batch["studio"])
        phone = batch.get("phone")
        upsampled = self.ema_upsampler.upsample(
            low, phone, mask=batch.get("mask"), generator=self._generator(batch_idx),
            tile_size=self.tile_size,
            tile_overlap=self.tile_overlap, num_inference_steps=self.num_inference_steps)
        return {"low_res": low, "upsampled": upsampled}

    # --- training ------------------------------------------------------------------------------

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        studio = batch["studio"]
        terms = self.upsampler.training_losses(self.low_res(studio), studio, batch.get("phone"),
                                               mask=batch.get("mask"))
        return self.weighted_loss("diffusion", terms, batch)

    def _phase_terms(self, phase: str) -> frozenset[str]:
        return frozenset(self.upsampler.loss_terms)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        # The EMA follows each optimiser step here, not in on_train_batch_end: callbacks'
        # on_train_batch_end (a checkpoint save) runs before the module's, so a checkpoint
        # written there would hold this step's weights with the previous step's EMA.
        super().optimizer_step(*args, **kwargs)
        ema_update(self.ema_upsampler, self.upsampler, self.ema_decay)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.upsampler.parameters(), lr=self.lr,
                                 weight_decay=self.weight_decay, betas=self.betas)

    # --- evaluation ----------------------------------------------------------------------------

    def _evaluate(self, batch: Mapping[str, Any], batch_idx: int,
                  split: str) -> dict[str, torch.Tensor]:
        self._check_full_size(batch)
        out = self.sample(batch, batch_idx)
        studio = batch["studio"]
        for name, metric in self.eval_metrics[split].items():
            metric.update(out["upsampled"], studio)
            self.log(f"{split}/{name}", metric, on_step=False, on_epoch=True,
                     batch_size=studio.shape[0])
        return out

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        out = self._evaluate(batch, batch_idx, "val")
        if batch_idx == 0 and self.global_rank == 0:
            images = {"low_res": out["low_res"], "upsampled": out["upsampled"],
                      "studio": batch["studio"]}
            op = getattr(self.upsampler, "gradient_operator", None)
            if op is not None and "phone" in batch:
                images["phone_gradient"] = (0.5 + op(batch["phone"])).clamp(0, 1)
            images.update(self.collect_extra_images(batch, out))
            self.validation_images = images
            self.validation_stems = [str(x) for x in batch.get("stem", [])]  # column labels

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        """Î* of a batch (written by the TextureWriter callback)."""
        return {"stem": list(batch["stem"]), **self.sample(batch, batch_idx)}
