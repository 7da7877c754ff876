"""Stage 3 (Sect 3.1, Eq. 3-8): phone -> studio translation with any Translator plugin.

The module drives a :class:`~lift.components.Translator` (``StyleGANWPlus``, the paper's;
``CUT``, ``CycleGAN``, ``AgileGANZPlus``, the baselines; or a third party's) with manual
optimisation: per training step one ``forward_step`` and then the translator's phases in its
``phase_order``, each with its own optimiser. The translator returns unweighted loss terms;
the configured ``loss_weights`` make the objective (Eq. 8 for StyleGAN-W+), so ablating a
term is a config edit.

Evaluation: validation translates ``val_split`` (image grid phone / translated / studio);
``lift test`` translates every test split of the datamodule: metrics against the studio
ground truth where a split has it (Table 1, 4), identity metrics against the phone input on
every split (Table 2's FaceID). ``lift predict`` writes the translated textures (I*), the
upsampling stage's low-resolution input.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any, Mapping

import torch
import torchmetrics
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lift.components import Translator
from lift.data.translation import flatten_translation_batch
from lift.stages.base import StageModule

PHASES = ("generator", "discriminator")


def _takes_mask(metric: torchmetrics.Metric) -> bool:
    return "mask" in inspect.signature(metric.update).parameters


class TranslationModule(StageModule):
    """LightningModule of the translation stage.

    Args:
        translator: the Translator plugin.
        generator_optimizer: optimiser of ``translator.generator_parameters()``
            (e.g. ``torch.optim.Adam`` with lr 0.002, betas (0, 0.99) for StyleGAN2;
            2e-4, (0.5, 0.999) for CUT / CycleGAN).
        discriminator_optimizer: optimiser of ``translator.discriminator_parameters()``
            (None: the translator has no discriminator).
        loss_weights: term name -> weight (a term left out is logged, not applied).
        metrics: metrics against the studio ground truth (PSNR, SSIM, LPIPS, DISTS), applied
            on splits whose batches hold ``studio``; logged as ``<split>/<name>``.
        identity_metrics: metrics of the translation against its phone input (FaceID),
            applied on every evaluated split.
        predict_dir: where ``lift predict`` writes ``<stem>.png`` (16-bit); None: nothing.
    """

    stage = "translate"

    def __init__(
        self,
        translator: Translator,
        generator_optimizer: OptimizerCallable,
        discriminator_optimizer: OptimizerCallable | None = None,
        loss_weights: dict[str, float] | None = None,
        metrics: list[torchmetrics.Metric] | None = None,
        identity_metrics: list[torchmetrics.Metric] | None = None,
        predict_dir: str | None = None,
    ):
        super().__init__(loss_weights=loss_weights)
        self.save_hyperparameters(ignore=["translator", "generator_optimizer",
                                          "discriminator_optimizer", "metrics",
                                          "identity_metrics"])
        self.automatic_optimization = False
        self.translator = translator
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self._metric_protos = list(metrics or [])
        self._identity_protos = list(identity_metrics or [])
        self.eval_metrics = nn.ModuleDict()  # split -> ModuleDict(name -> metric), see setup
        self.predict_dir = predict_dir
        self.eval_splits: list[str] = []
        self._last_train_batch: dict[str, Any] | None = None  # for Translator.visuals

    # --- set-up --------------------------------------------------------------------------------

    @staticmethod
    def _metric_name(metric: torchmetrics.Metric) -> str:
        return getattr(metric, "name", "") or type(metric).__name__.lower()

    def _metric_set(self) -> nn.ModuleDict:
        out = nn.ModuleDict()
        for group, protos in (("gt", self._metric_protos), ("id", self._identity_protos)):
            for proto in protos:
                out[f"{group}:{self._metric_name(proto)}"] = copy.deepcopy(proto)
        return out

    def setup(self, stage: str) -> None:
        # One metric copy per evaluated split (runs before the module moves to its device).
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        self.eval_splits = list(getattr(datamodule, "test_splits", None) or ["test"])
        for split in ["val", *self.eval_splits]:
            key = split.replace(".", "_")
            if key not in self.eval_metrics:
                self.eval_metrics[key] = self._metric_set()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Metric copies (with their frozen pretrained encoders) are rebuilt from the config;
        # keeping them out saves tens of MB per checkpoint.
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("eval_metrics.")]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key, value in self.state_dict().items():
            if key.startswith("eval_metrics."):
                state.setdefault(key, value)

    def configure_optimizers(self):
        optimizers = [self.generator_optimizer(list(self.translator.generator_parameters()))]
        d_params = list(self.translator.discriminator_parameters())
        if d_params:
            if self.discriminator_optimizer is None:
                raise ValueError(
                    f"{type(self.translator).__name__} has discriminator parameters but "
                    "model.discriminator_optimizer is not configured")
            optimizers.append(self.discriminator_optimizer(d_params))
        return optimizers

    def on_fit_start(self) -> None:
        names = getattr(self.translator, "loss_terms", None)
        if isinstance(names, Mapping):
            known = set().union(*map(set, names.values()))
            unknown = sorted(set(self.loss_weights) - known)
            if unknown:  # a plugin's lift_extra_loss_terms may add them; a typo never will
                rank_zero_warn(
                    f"loss_weights {unknown} name no term of {type(self.translator).__name__} "
                    f"(its terms: {sorted(known)}); unless a plugin adds them they do nothing")

    def on_train_start(self) -> None:
        if self.world_size() > 1:  # different latents and noise on every rank
            torch.manual_seed(torch.initial_seed() + 1_000_003 * self.global_rank
                              + self.global_step)

    # --- training ------------------------------------------------------------------------------

    @staticmethod
    def flat_batch(batch: Mapping[str, Any]) -> dict[str, Any]:
        """The combined loader's ``{role: batch}`` -> the translator's flat batch."""
        if any(isinstance(value, Mapping) for value in batch.values()):
            return flatten_translation_batch(batch)
        return dict(batch)

    def _phase_terms(self, phase: str) -> frozenset[str]:
        """Terms a configured weight must find every step: the translator's ``loss_terms``
        of the phase, less its ``lazy_terms`` (computed every k steps only, e.g. lazy R1)."""
        names = getattr(self.translator, "loss_terms", None)
        if not isinstance(names, Mapping):
            return frozenset()
        return frozenset(names.get(phase, ())) - frozenset(getattr(self.translator, "lazy_terms", ()))

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        flat = self.flat_batch(batch)
        optimizers = self.optimizers()
        if not isinstance(optimizers, (list, tuple)):
            optimizers = [optimizers]
        by_phase = dict(zip(PHASES, optimizers))
        outputs = self.translator.forward_step(flat)
        self._last_train_batch = flat
        for phase in self.translator.phase_order:
            if phase not in PHASES:
                raise ValueError(f"{type(self.translator).__name__}.phase_order has an unknown "
                                 f"phase {phase!r} (phases: {PHASES})")
            optimizer = by_phase.get(phase)
            if optimizer is None:
                continue
            self.toggle_optimizer(optimizer)
            losses = (self.translator.generator_losses if phase == "generator"
                      else self.translator.discriminator_losses)
            terms = losses(flat, outputs)
            if terms:
                loss = self.weighted_loss(phase, terms, flat, outputs)
                params = [p for group in optimizer.param_groups for p in group["params"]]
                self.synced_step(loss, optimizer, params)
            self.untoggle_optimizer(optimizer)

    # --- evaluation ----------------------------------------------------------------------------

    def _evaluate(self, batch: Mapping[str, Any], split: str) -> torch.Tensor:
        translated = self.translator.translate_batch(batch)
        n = translated.shape[0]
        for key, metric in self.eval_metrics[split.replace(".", "_")].items():
            group, name = key.split(":", 1)
            if group == "gt":
                if "studio" not in batch:
                    continue
                metric.update(translated, batch["studio"])
            elif "mask" in batch and _takes_mask(metric):  # holes are not identity changes
                metric.update(translated, batch["phone"], mask=batch["mask"])
            else:
                metric.update(translated, batch["phone"])
            self.log(f"{split}/{name}", metric, on_step=False, on_epoch=True, batch_size=n,
                     add_dataloader_idx=False)
        return translated

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        translated = self._evaluate(batch, "val")
        if batch_idx == 0 and self.global_rank == 0:
            images = {"phone": batch["phone"], "translated": translated}
            if "studio" in batch:
                images["studio"] = batch["studio"]
            images.update(self.training_visuals())
            images.update(self.collect_extra_images(batch, {"translated": translated}))
            self.validation_images = images

    def training_visuals(self) -> dict[str, torch.Tensor]:
        """``Translator.visuals`` of the last training batch, rows named ``train <name>``.

        The forward pass runs without gradients and with the random state forked, so showing
        images never changes the course of training.
        """
        batch = self._last_train_batch
        if batch is None:
            return {}
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            visuals = self.translator.visuals(batch, self.translator.forward_step(batch))
        return {f"train {name}": image for name, image in visuals.items()}

    def test_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        split = self.eval_splits[dataloader_idx] if dataloader_idx < len(self.eval_splits) \
            else f"test{dataloader_idx}"
        self._evaluate(batch, split)

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        translated = self.translator.translate_batch(batch)
        if self.predict_dir is not None:
            from lift.data import write_texture

            root = Path(self.predict_dir)
            for stem, image in zip(batch["stem"], translated):
                write_texture(root / f"{stem}.png", image.float().cpu())
        return {"stem": list(batch["stem"]), "translated": translated}
