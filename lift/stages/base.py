"""What every stage LightningModule shares.

Weighted loss terms and the per-stage hooks; per-split metric copies and their log names;
per-rank seeding; and what goes into a checkpoint: the specs of the components a stage
trains (so the next stage rebuilds them from the checkpoint alone) and nothing that can be
rebuilt (frozen pretrained networks, an upstream generator, metric copies).
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Any, Iterable, Mapping

import lightning.pytorch as pl
import torch
import torch.distributed as dist
import torchmetrics
from torch import nn

from lift.checkpoints import COMPONENTS_KEY
from lift.latent_bank import tensors_fingerprint
from lift.registry import get_plugin_manager
from lift.spec import spec_of

REBUILT_KEY = "lift_rebuilt"


def metric_name(metric: torchmetrics.Metric) -> str:
    """A metric's column / log name: its ``name`` attribute, else its class name."""
    return getattr(metric, "name", "") or type(metric).__name__.lower()


def split_key(split: str) -> str:
    """A split name as a ModuleDict key (no dots)."""
    return split.replace(".", "_")


class LossWeightError(KeyError):
    """A configured loss weight names a term that nothing produces."""


class StageModule(pl.LightningModule):
    """Base of the stage modules.

    Subclasses set ``stage`` (the name passed to hooks, e.g. ``"prior"``) and call
    :meth:`weighted_loss` with their unweighted terms; they fill ``self.validation_images``
    (name -> ``[B,3,H,W]`` in [0,1]) in the first validation batch for the image-grid callback.
    """

    stage: str = ""
    #: attributes holding the components this stage trains; their specs go into checkpoints
    recorded_components: tuple[str, ...] = ()

    def __init__(self, loss_weights: Mapping[str, float] | None = None):
        super().__init__()
        self.loss_weights: dict[str, float] = dict(loss_weights or {})
        self.validation_images: dict[str, torch.Tensor] = {}
        self.validation_stems: list[str] = []  # the grid's column labels (ImageGridLogger)

    # --- checkpoints -----------------------------------------------------------------------

    def rebuilt_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes (``"a.b."``) that the constructor rebuilds from the config:
        left out of checkpoints, checked on load."""
        return ()

    def dropped_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes left out of checkpoints without a check: the per-split metric
        copies of ``split_metrics`` (kept as ``self.eval_metrics``; their frozen encoders are
        rebuilt from the config, and their set depends on the splits)."""
        return ("eval_metrics.",)

    def component_specs(self) -> dict[str, dict[str, Any]]:
        """Specs of ``recorded_components`` (what the next stage rebuilds them from)."""
        return {name: spec_of(getattr(self, name), name) for name in self.recorded_components}

    def setup(self, stage: str) -> None:
        self.component_specs()  # an unrecordable argument fails now, not at the first save

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[COMPONENTS_KEY] = self.component_specs()
        state = checkpoint["state_dict"]
        rebuilt = {}
        for prefix in self.rebuilt_prefixes():
            keys = sorted(k for k in state if k.startswith(prefix))
            rebuilt[prefix] = tensors_fingerprint((k, state[k]) for k in keys)
            for key in keys:
                del state[key]
        for prefix in self.dropped_prefixes():
            for key in [k for k in state if k.startswith(prefix)]:
                del state[key]
        checkpoint[REBUILT_KEY] = rebuilt

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state, own = checkpoint["state_dict"], self.state_dict()
        for prefix, fingerprint in (checkpoint.get(REBUILT_KEY) or {}).items():
            keys = sorted(k for k in own if k.startswith(prefix))
            if tensors_fingerprint((k, own[k]) for k in keys) != fingerprint:
                source = getattr(self._trainer, "ckpt_path", None) if self._trainer else None
                raise ValueError(
                    f"{self.stage} stage: checkpoint {source or ''} was saved with other "
                    f"weights for '{prefix}*' than this config rebuilds (an upstream checkpoint "
                    "or a pretrained network changed since); resuming would silently mix them")
            for key in keys:
                state.setdefault(key, own[key])
        for prefix in self.dropped_prefixes():
            for key in [k for k in own if k.startswith(prefix)]:
                state.setdefault(key, own[key])

    # --- metrics and seeds -------------------------------------------------------------------

    @staticmethod
    def split_metrics(splits: Iterable[str],
                      metrics: Mapping[str, torchmetrics.Metric]) -> nn.ModuleDict:
        """One independent copy of ``metrics`` (name -> metric) per split."""
        return nn.ModuleDict({split_key(s): nn.ModuleDict(
            {k: copy.deepcopy(m) for k, m in metrics.items()}) for s in splits})

    def seed_rank(self, offset: int = 0) -> None:
        """Under DDP, give every rank its own random stream (latents, noise, augmentation),
        reproducibly: the seed depends on the initial seed, the rank and ``offset``."""
        if self.world_size() > 1:
            torch.manual_seed(torch.initial_seed() + 1_000_003 * self.global_rank + offset)

    @property
    def active_terms(self) -> frozenset[str]:
        """Loss terms that carry a non-zero weight in the configuration."""
        return frozenset(k for k, w in self.loss_weights.items() if w != 0)

    def weighted_loss(
        self,
        phase: str,
        terms: Mapping[str, torch.Tensor],
        batch: Mapping[str, Any],
        outputs: Mapping[str, Any] | None = None,
        *,
        log: bool = True,
    ) -> torch.Tensor:
        """Sum of ``weight * term`` over the configured weights (Eq. 8 for the translation).

        Terms the stage computed but the config gives no weight are logged, not applied.
        Plugins' ``lift_extra_loss_terms`` results are applied only for active term names.
        A configured weight whose term was produced by nobody is an error naming it.
        """
        terms = dict(terms)
        active = self.active_terms
        results = get_plugin_manager().hook.lift_extra_loss_terms(
            stage=self.stage, phase=phase, batch=batch, outputs=outputs or {}, module=self,
            active_terms=active,
        )
        for extra in results:
            for name, value in (extra or {}).items():
                if name in active:
                    terms[name] = value
        total: torch.Tensor | None = None
        for name, value in terms.items():
            weight = self.loss_weights.get(name, 0.0)
            if log:
                self.log(f"train/{phase}/{name}", value.detach(), on_step=True, prog_bar=False)
            if weight != 0:
                total = value * weight if total is None else total + value * weight
        missing = [n for n in active if n not in terms and n in self._phase_terms(phase)]
        if missing:
            raise LossWeightError(
                f"{self.stage} stage: loss weight(s) {missing} are configured for the {phase} "
                f"phase but no term of that name was computed (computed: {sorted(terms)})"
            )
        if total is None:
            raise LossWeightError(
                f"{self.stage} stage, {phase} phase: none of the computed terms {sorted(terms)} "
                f"has a non-zero weight in loss_weights {self.loss_weights}"
            )
        if log:
            self.log(f"train/{phase}/total", total.detach(), on_step=True, prog_bar=True)
        return total

    def world_size(self) -> int:
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    def synced_step(self, loss: torch.Tensor, optimizer: Any,
                    params: Iterable[torch.nn.Parameter]) -> None:
        """Manual optimisation step: backward without the DDP reducer, average ``params``'
        gradients over ranks in one all-reduce, then step.

        The stages' phases each touch a different subset of parameters, which the DDP reducer
        (expecting every parameter in every backward) cannot handle without
        ``find_unused_parameters``; one flat all-reduce per phase is also cheaper.
        """
        optimizer.zero_grad(set_to_none=True)
        block = getattr(self.trainer.strategy, "block_backward_sync", None)
        with block() if block is not None else nullcontext():
            self.manual_backward(loss)
        world = self.world_size()
        if world > 1:
            params = [p for p in params if p.requires_grad]
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            flat = torch.cat([p.grad.flatten() for p in params])
            dist.all_reduce(flat)
            flat /= world
            for p, g in zip(params, flat.split([p.numel() for p in params])):
                p.grad.copy_(g.view_as(p))
        optimizer.step()

    def _phase_terms(self, phase: str) -> frozenset[str]:
        """Names a phase is expected to produce (subclasses override to catch typos)."""
        return frozenset()

    def collect_extra_images(
        self, batch: Mapping[str, Any], outputs: Mapping[str, Any] | None = None
    ) -> dict[str, torch.Tensor]:
        """Images from ``lift_extra_images`` hooks (call on rank 0 only)."""
        images: dict[str, torch.Tensor] = {}
        for extra in get_plugin_manager().hook.lift_extra_images(
            stage=self.stage, batch=batch, outputs=outputs or {}, module=self
        ):
            images.update(extra or {})
        return images
