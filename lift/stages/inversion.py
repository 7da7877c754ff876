"""Inversion stage (Sect 3.1, Eq. 1): every phone texture -> a W+ code of G_phone, into S_W+.

Run with ``lift predict --config configs/invert/stylegan2_quickstart.yaml``. Each predict
batch's textures are queued into a :class:`~lift.inversion.inverter.BatchedInverter` (which
keeps ``batch_size`` textures in flight, each optimised independently); finished codes are
gathered per shard and a shard is written (atomically) as soon as all its textures are done.

Ranks: the bank's shards are split ``rank::world_size`` (:class:`~lift.latent_bank.BankLayout`);
every rank reads the whole predict split (``trainer.use_distributed_sampler: false``) and
inverts only the textures of its own unfinished shards, so ranks never overlap and a resumed
run skips every shard already on disk. Reading a texture costs little next to inverting it.

Gradients under ``lift predict``: Lightning predicts under ``torch.inference_mode``; the
optimisation runs inside ``torch.inference_mode(False)`` + ``torch.enable_grad()`` with
copies of the batch tensors, so no trainer flag is needed.

The stage's objective is Eq. 1 only, with its own ``mse_weight`` / ``perceptual_weight``: it
does not call ``lift_extra_loss_terms`` (batch-level extra terms would couple textures).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from lift.components import PerceptualDistance
from lift.inversion.checkpoint import load_generator_weights
from lift.inversion.codes import LatentCode
from lift.inversion.inverter import BatchedInverter, InversionResult, optimising
from lift.inversion.objective import InversionObjective
from lift.inversion.report import write_report
from lift.inversion.schedule import ProjectorSchedule
from lift.inversion.stopping import PlateauStop
from lift.latent_bank import (
    BankLayout,
    LatentBank,
    LatentBankError,
    LatentBankWriter,
    make_manifest,
    state_dict_fingerprint,
)
from lift.stages.base import StageModule

log = logging.getLogger(__name__)


class InversionModule(StageModule):
    """Inverts the predict split into the latent bank ``bank_dir`` (run by ``lift predict``)."""

    stage = "invert"

    def __init__(
        self,
        generator: nn.Module,               # G_phone's architecture (as in the prior config)
        distance: PerceptualDistance,       # the LPIPS-type term of Eq. 1
        code: LatentCode,                   # WPlusCode (Eq. 1) or WCode (the W baseline)
        schedule: ProjectorSchedule,        # steps, lr ramps, latent noise
        bank_dir: str,                      # where S_W+ is written (resumed if present)
        checkpoint: str | None,             # prior-stage checkpoint; None: generator as built
        use_ema: bool,                      # load generator_ema.* (True) or generator.*
        mse_weight: float,                  # Eq. 1 pixel term weight
        perceptual_weight: float,           # Eq. 1 perceptual term weight
        use_mask: bool,                     # weight both terms by the visibility mask
        batch_size: int,                    # textures optimised together
        shard_size: int,                    # textures per bank shard (unit of resume)
        early_stop: PlateauStop | None,     # per-texture plateau stop; None: all steps
        adam_betas: tuple[float, float],    # reference: (0.9, 0.999)
        adam_eps: float,                    # reference: 1e-8
        w_stats_samples: int,               # z draws for w_avg / w_std (reference: 10000)
        seed: int,                          # latent-noise seed, mixed with each stem
        report: bool = True,                # write report.md/.csv into bank_dir when done
    ):
        super().__init__(loss_weights=None)
        if checkpoint is not None:
            load_generator_weights(generator, checkpoint, ema=use_ema)
        self.generator = generator.requires_grad_(False)
        self.distance = distance
        self.code = code
        self.schedule = schedule
        self.objective = InversionObjective(distance, mse_weight, perceptual_weight, use_mask)
        self.bank_dir = Path(bank_dir)
        self.checkpoint = checkpoint
        self.use_ema = use_ema
        self.use_mask = use_mask
        self.batch_size = batch_size
        self.shard_size = shard_size
        self.early_stop = early_stop
        self.adam_betas = tuple(adam_betas)
        self.adam_eps = adam_eps
        self.w_stats_samples = w_stats_samples
        self.seed = seed
        self.write_report = report
        self.inverter: BatchedInverter | None = None
        self.writer: LatentBankWriter | None = None
        self._todo: dict[int, dict[str, InversionResult]] = {}
        self._queued: set[str] = set()
        self.shards_written: list[int] = []

    # --- configuration recorded in the bank's manifest -------------------------------------

    def inversion_config(self) -> dict[str, Any]:
        s, e = self.schedule, self.early_stop
        return {
            "code": type(self.code).__name__,
            "distance": type(self.distance).__name__,
            "schedule": {"steps": s.steps, "lr": s.lr, "lr_rampup": s.lr_rampup,
                         "lr_rampdown": s.lr_rampdown, "noise_strength": s.noise_strength,
                         "noise_ramp": s.noise_ramp},
            "mse_weight": self.objective.mse_weight,
            "perceptual_weight": self.objective.perceptual_weight,
            "use_mask": self.use_mask,
            "early_stop": None if e is None else {"patience": e.patience, "rel_tol": e.rel_tol,
                                                  "min_steps": e.min_steps},
            "adam_betas": list(self.adam_betas), "adam_eps": self.adam_eps,
            "w_stats_samples": self.w_stats_samples, "seed": self.seed,
        }

    # --- prediction -----------------------------------------------------------------------

    def _predict_loader(self):
        loaders = self.trainer.predict_dataloaders
        if isinstance(loaders, (list, tuple)):
            if len(loaders) != 1:
                raise ValueError(f"the inversion stage takes one predict loader, got {len(loaders)}")
            loaders = loaders[0]
        return loaders

    def _check_sampler(self, loader) -> None:
        samplers = [getattr(loader, "sampler", None),
                    getattr(getattr(loader, "batch_sampler", None), "sampler", None)]
        if self.trainer.world_size > 1 and any(isinstance(s, DistributedSampler) for s in samplers):
            raise RuntimeError(
                "the inversion stage splits the bank's shards across ranks itself and needs "
                "every rank to read the whole predict split: set "
                "`trainer.use_distributed_sampler: false`"
            )

    def on_predict_start(self) -> None:
        loader = self._predict_loader()
        self._check_sampler(loader)
        stems = list(loader.dataset.stems)
        layout = BankLayout.from_stems(stems, self.shard_size)
        generator_id = {"fingerprint": state_dict_fingerprint(self.generator),
                        "checkpoint": self.checkpoint, "ema": self.use_ema}
        manifest = make_manifest(layout, num_ws=self.generator.num_ws,
                                 w_dim=self.generator.w_dim, generator=generator_id,
                                 config=self.inversion_config())
        self.writer = LatentBankWriter(self.bank_dir, manifest)
        rank, world = self.trainer.global_rank, self.trainer.world_size
        if rank == 0:
            self.writer.prepare()
        self.trainer.strategy.barrier("latent_bank_manifest")
        if rank != 0:
            self.writer.check_manifest()
        done = self.writer.done_shards()
        mine = layout.shards_for_rank(rank, world)
        self._todo = {k: {} for k in mine if k not in done}
        self._queued = set()
        self.shards_written = []
        log.info("rank %d: %d of its %d shards to invert (%d already in %s)", rank,
                 len(self._todo), len(mine), len(set(mine) & done), self.bank_dir)
        self.inverter = BatchedInverter(
            self.generator, self.objective, self.code, self.schedule, self.batch_size,
            early_stop=self.early_stop, adam_betas=self.adam_betas, adam_eps=self.adam_eps,
            w_stats_samples=self.w_stats_samples, seed=self.seed,
        )

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        assert self.inverter is not None and self.writer is not None
        layout = self.writer.layout
        stems = list(batch["stem"])
        keep = [i for i, s in enumerate(stems)
                if layout.shard_of(s) in self._todo and s not in self._queued]
        with optimising():
            if keep:
                idx = torch.tensor(keep, device=batch["phone"].device)
                mask = batch["mask"].index_select(0, idx) if self.use_mask else None
                self.inverter.add([stems[i] for i in keep],
                                  batch["phone"].index_select(0, idx), mask)
                self._queued.update(stems[i] for i in keep)
            self._collect(self.inverter.run(drain=False))
        return None

    def on_predict_epoch_end(self) -> None:
        assert self.inverter is not None and self.writer is not None
        with optimising():
            self._collect(self.inverter.run(drain=True))
        if self._todo:
            missing = {k: len(self.writer.layout.shard_stems(k)) - len(v)
                       for k, v in self._todo.items()}
            raise LatentBankError(
                f"rank {self.trainer.global_rank}: shards {sorted(missing)} are incomplete "
                f"after the predict loop ({sum(missing.values())} textures never arrived); "
                "every rank must read the whole predict split "
                "(trainer.use_distributed_sampler: false)"
            )
        self.trainer.strategy.barrier("latent_bank_shards")
        if self.trainer.global_rank == 0:
            bank = LatentBank.open(self.bank_dir)
            bank.check_complete()
            self.writer.write_index()
            if self.write_report:
                write_report({type(self.code).__name__: self.bank_dir}, self.bank_dir)
            log.info("latent bank %s complete: %d codes", self.bank_dir, len(bank))

    def _collect(self, results: list[InversionResult]) -> None:
        """File finished textures under their shard; write every shard that is complete."""
        assert self.writer is not None
        layout = self.writer.layout
        for r in results:
            k = layout.shard_of(r.stem)
            self._todo[k][r.stem] = r
            if len(self._todo[k]) == len(layout.shard_stems(k)):
                done = self._todo.pop(k)
                rows = list(done.values())
                self.writer.write_shard(
                    k, [r.stem for r in rows], torch.stack([r.w_plus for r in rows]),
                    {"final_loss": torch.tensor([r.loss for r in rows]),
                     "mse": torch.tensor([r.mse for r in rows]),
                     "perceptual": torch.tensor([r.perceptual for r in rows]),
                     "steps": torch.tensor([r.steps for r in rows])},
                    rank=self.trainer.global_rank,
                )
                self.shards_written.append(k)
                log.info("rank %d wrote shard %d (%d textures)", self.trainer.global_rank, k,
                         len(rows))

    def configure_optimizers(self):
        return None  # codes are optimised per texture inside predict_step
