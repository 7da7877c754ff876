"""Stage 3 (Sect 3.1, Eq. 3-8): phone -> studio translation with any Translator plugin.

The module drives a :class:`~lift.components.Translator` (``StyleGANWPlus``, the paper's;
``CUT``, ``CycleGAN``, ``AgileGANZPlus``, the baselines; or a third party's) with manual
optimisation: per training step one ``forward_step`` and then the translator's ``phases()``
in order, each with its own optimiser (``optimizers.<phase>``). The translator returns
unweighted loss terms;
the configured ``loss_weights`` make the objective (Eq. 8 for StyleGAN-W+), so ablating a
term is a config edit.

Evaluation: validation translates ``val_split`` (image grid phone / translated / studio);
``lift test`` translates every test split of the datamodule: metrics against the studio
ground truth where a split has it (Table 1, 4), identity metrics against the phone input on
every split (Table 2's FaceID). ``lift predict`` returns the translated textures (I*, the
upsampling stage's low-resolution input) as ``{"stem", "translated"}``; the
:class:`~lift.prediction_writer.TextureWriter` callback writes them.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torchmetrics
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lift.components import Phase, Translator
from lift.data.translation import flatten_translation_batch
from lift.stages.base import StageModule, metric_name, split_key


class TranslationModule(StageModule):
    """LightningModule of the translation stage.

    Args:
        translator: the Translator plugin.
        optimizers: one optimiser per phase of ``translator.phases()``, by phase name (e.g.
            ``generator`` / ``discriminator``: ``torch.optim.Adam`` with lr 0.002, betas
            (0, 0.99) for StyleGAN2; 2e-4, (0.5, 0.999) for CUT / CycleGAN).
        loss_weights: term name -> weight (a term left out is logged, not applied).
        metrics: metrics against the studio ground truth (PSNR, SSIM, LPIPS, DISTS), applied
            on splits whose batches hold ``studio``; logged as ``<split>/<name>``.
        identity_metrics: metrics of the translation against its phone input (FaceID),
            applied on every evaluated split (masked by the phone's visibility where the
            metric ``supports_mask``).
    """

    stage = "translate"
    recorded_components = ("translator",)

    def __init__(
        self,
        translator: Translator,
        optimizers: dict[str, OptimizerCallable],
        loss_weights: dict[str, float] | None = None,
        metrics: list[torchmetrics.Metric] | None = None,
        identity_metrics: list[torchmetrics.Metric] | None = None,
    ):
        super().__init__(loss_weights=loss_weights)
        self.save_hyperparameters(ignore=["translator", "optimizers", "metrics",
                                          "identity_metrics"])
        self.automatic_optimization = False
        self.translator = translator
        self.phase_names = list(translator.phases())
        unknown = sorted(set(optimizers) - set(self.phase_names))
        missing = [p for p in self.phase_names if p not in optimizers]
        if unknown or missing:
            raise ValueError(
                f"translate stage: model.optimizers must name exactly the phases of "
                f"{type(translator).__name__} {self.phase_names}; missing {missing}, "
                f"unknown {unknown}")
        self.optimizer_factories = dict(optimizers)
        self.register_buffer("phase_steps", torch.zeros(len(self.phase_names), dtype=torch.long))
        self._metric_protos = {f"gt:{metric_name(m)}": m for m in metrics or []}
        self._metric_protos.update({f"id:{metric_name(m)}": m for m in identity_metrics or []})
        self.eval_metrics = nn.ModuleDict()  # split -> ModuleDict(name -> metric), see setup
        self.eval_splits: list[str] = []
        self._last_train_batch: dict[str, Any] | None = None  # for Translator.visuals

    # --- set-up --------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        super().setup(stage)
        # One metric copy per evaluated split (runs before the module moves to its device).
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        self.eval_splits = list(getattr(datamodule, "test_splits", None) or ["test"])
        todo = [s for s in ["val", *self.eval_splits] if split_key(s) not in self.eval_metrics]
        self.eval_metrics.update(self.split_metrics(todo, self._metric_protos))

    def rebuilt_prefixes(self) -> tuple[str, ...]:
        return tuple(f"translator.{name}." for name in self.translator.rebuilt_modules())

    def configure_optimizers(self):
        phases = self.translator.phases()
        return [self.optimizer_factories[name](list(phases[name].parameters()))
                for name in self.phase_names]

    def on_fit_start(self) -> None:
        known = set().union(*(set(p.terms) for p in self.translator.phases().values()))
        unknown = sorted(k for k, w in self.loss_weights.items() if w != 0 and k not in known)
        if unknown:  # a plugin's lift_extra_loss_terms may add them; a typo never will
            rank_zero_warn(
                f"loss_weights {unknown} name no term of {type(self.translator).__name__} "
                f"(its terms: {sorted(known)}); unless a plugin adds them they do nothing")

    def on_train_start(self) -> None:
        self.seed_rank(self.global_step)  # different latents and noise on every rank

    # --- training ------------------------------------------------------------------------------

    @staticmethod
    def flat_batch(batch: Mapping[str, Any]) -> dict[str, Any]:
        """The combined loader's ``{role: batch}`` -> the translator's flat batch."""
        if any(isinstance(value, Mapping) for value in batch.values()):
            return flatten_translation_batch(batch)
        return dict(batch)

    def _phase_terms(self, phase: str) -> frozenset[str]:
        """Terms a configured weight must find every step: the phase's terms less its lazy
        ones (computed every k steps only, e.g. lazy R1)."""
        spec: Phase | None = self.translator.phases().get(phase)
        return frozenset() if spec is None else frozenset(spec.terms) - frozenset(spec.lazy_terms)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        flat = self.flat_batch(batch)
        optimizers = self.optimizers()
        if not isinstance(optimizers, (list, tuple)):
            optimizers = [optimizers]
        phases = self.translator.phases()
        outputs = self.translator.forward_step(flat)
        self._last_train_batch = flat
        for i, (name, optimizer) in enumerate(zip(self.phase_names, optimizers)):
            self.toggle_optimizer(optimizer)
            terms = phases[name].losses(flat, outputs, int(self.phase_steps[i]))
            if terms:
                loss = self.weighted_loss(name, terms, flat, outputs)
                params = [p for group in optimizer.param_groups for p in group["params"]]
                self.synced_step(loss, optimizer, params)
            self.phase_steps[i] += 1
            self.untoggle_optimizer(optimizer)

    # --- evaluation ----------------------------------------------------------------------------

    def _evaluate(self, batch: Mapping[str, Any], split: str) -> torch.Tensor:
        translated = self.translator.translate_batch(batch)
        n = translated.shape[0]
        for key, metric in self.eval_metrics[split_key(split)].items():
            group, name = key.split(":", 1)
            if group == "gt":
                if "studio" not in batch:
                    continue
                metric.update(translated, batch["studio"])
            elif "mask" in batch and getattr(metric, "supports_mask", False):
                # holes in the capture are not identity changes
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
            self.validation_stems = [str(x) for x in batch.get("stem", [])]  # column labels

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
        """I* of a batch of phone textures (written by the TextureWriter callback)."""
        return {"stem": list(batch["stem"]), "translated": self.translator.translate_batch(batch)}
