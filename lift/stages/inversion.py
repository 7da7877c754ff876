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
from torch.utils.data import DistributedSampler

from lift.checkpoints import build_from_checkpoint
from lift.components import StyleGenerator
from lift.inversion.inverter import BatchedInverter, InversionResult, optimising
from lift.inversion.report import write_report
from lift.inversion.settings import InversionSettings
from lift.latent_bank import (
    BankLayout,
    LatentBank,
    LatentBankError,
    LatentBankWriter,
    make_manifest,
    state_dict_fingerprint,
)
from lift.spec import spec_of
from lift.stages.base import StageModule

log = logging.getLogger(__name__)


class InversionModule(StageModule):
    """Inverts the predict split into the latent bank ``bank_dir`` (run by ``lift predict``).

    Args:
        checkpoint: the prior stage's checkpoint; G_phone's architecture and weights are
            read from it (None: use ``generator`` as given, e.g. in tests).
        settings: Eq. 1's objective, code space, schedule and optimiser (recorded in the
            bank's manifest, where test-time inversion finds them).
        bank_dir: where S_W+ is written (resumed if present); None: ``<default_root_dir>/bank``
            (the stage's run directory, ``trainer.default_root_dir``).
        shard_size: textures per bank shard (the unit of resume).
        use_ema: invert G_phone's EMA weights (True) or its raw weights.
        generator: G_phone built in memory, only when ``checkpoint`` is None.
        report: write report.md / report.csv into ``bank_dir`` when done.
    """

    stage = "invert"

    def __init__(
        self,
        checkpoint: str | None,
        settings: InversionSettings,
        bank_dir: str | None,
        shard_size: int,
        use_ema: bool = True,
        generator: StyleGenerator | None = None,
        report: bool = True,
    ):
        super().__init__(loss_weights=None)
        if (checkpoint is None) == (generator is None):
            raise ValueError("invert stage: give exactly one of checkpoint (the prior stage's "
                             "output; the usual case) and generator")
        if checkpoint is not None:
            generator = build_from_checkpoint(checkpoint, "generator",
                                              "generator_ema" if use_ema else "generator")
        assert generator is not None
        self.generator = generator.requires_grad_(False)
        self.settings = settings
        self.distance = settings.distance  # a submodule: moves to the device with the stage
        self._bank_dir = bank_dir
        self.checkpoint = checkpoint
        self.use_ema = use_ema
        self.shard_size = shard_size
        self.write_report = report
        self.inverter: BatchedInverter | None = None
        self.writer: LatentBankWriter | None = None
        self._todo: dict[int, dict[str, InversionResult]] = {}
        self._queued: set[str] = set()
        self.shards_written: list[int] = []

    @property
    def bank_dir(self) -> Path:
        if self._bank_dir is not None:
            return Path(self._bank_dir)
        if self._trainer is None:
            raise RuntimeError("invert stage: bank_dir is null and no trainer is attached to "
                               "say where its default_root_dir is")
        return Path(self.trainer.default_root_dir) / "bank"

    # --- configuration recorded in the bank's manifest -------------------------------------

    def inversion_config(self) -> dict[str, Any]:
        """The settings' spec (rebuilt by test-time inversion) and G_phone's spec."""
        return {"code": type(self.settings.code).__name__,
                "settings": spec_of(self.settings, "settings"),
                "generator": spec_of(self.generator, "generator")}

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
        self.inverter = self.settings.inverter(self.generator)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        assert self.inverter is not None and self.writer is not None
        layout = self.writer.layout
        stems = list(batch["stem"])
        keep = [i for i, s in enumerate(stems)
                if layout.shard_of(s) in self._todo and s not in self._queued]
        with optimising():
            if keep:
                idx = torch.tensor(keep, device=batch["phone"].device)
                mask = batch["mask"].index_select(0, idx) if self.settings.use_mask else None
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
                write_report({type(self.settings.code).__name__: self.bank_dir}, self.bank_dir)
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
