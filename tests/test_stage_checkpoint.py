"""StageCheckpoint: last.ckpt at <default_root_dir>/last.ckpt holding the final step."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch

from lift.callbacks import StageCheckpoint
from toy_stage import TinyData, TinyRegressor


def _trainer(root: Path, callback: StageCheckpoint, **kwargs) -> pl.Trainer:
    args = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                enable_model_summary=False, default_root_dir=root, num_sanity_val_steps=0,
                callbacks=[callback])
    args.update(kwargs)
    return pl.Trainer(**args)


def _step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


def test_last_ckpt_is_in_the_root_dir_and_holds_the_final_step(tmp_path):
    # 4 batches an epoch, validation every 5 epochs, 22 steps: the last validation (and with
    # it ModelCheckpoint's own last save) is at step 20; the run ends at 22.
    root = tmp_path / "run"
    trainer = _trainer(root, StageCheckpoint(), max_steps=22, check_val_every_n_epoch=5)
    trainer.fit(TinyRegressor(), TinyData(n=8, batch_size=2))
    assert trainer.global_step == 22
    last = root / "last.ckpt"
    assert last.is_file() and _step(last) == 22
    # The top-k file (monitor=None: the latest) is refreshed at the end too. (Its epoch is
    # the trainer's current_epoch at train end, which Lightning has already advanced.)
    others = [p.name for p in root.glob("*.ckpt") if p.name != "last.ckpt"]
    assert len(others) == 1 and others[0].endswith("-step=22.ckpt")


def test_plain_model_checkpoint_would_keep_a_stale_last(tmp_path):
    """The behaviour StageCheckpoint fixes (if Lightning changes it, this test says so)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    root = tmp_path / "run"
    trainer = _trainer(root, ModelCheckpoint(dirpath=root, save_last=True), max_steps=22,
                       check_val_every_n_epoch=5)
    trainer.fit(TinyRegressor(), TinyData(n=8, batch_size=2))
    assert _step(root / "last.ckpt") == 20


def test_every_n_train_steps_saves_without_validation(tmp_path):
    root = tmp_path / "run"
    callback = StageCheckpoint(every_n_train_steps=3)
    trainer = _trainer(root, callback, max_steps=7, limit_val_batches=0)
    steps = []

    class Spy(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if (root / "last.ckpt").is_file():
                steps.append(_step(root / "last.ckpt"))

    trainer.callbacks.append(Spy())
    trainer.fit(TinyRegressor(), TinyData(n=8, batch_size=2))
    assert sorted(set(steps)) == [3, 6]
    assert _step(root / "last.ckpt") == 7  # and the end of training


def test_rerun_resumes_from_the_fixed_last_path(tmp_path):
    root = tmp_path / "run"
    _trainer(root, StageCheckpoint(), max_steps=6, check_val_every_n_epoch=5).fit(
        TinyRegressor(), TinyData())
    assert _step(root / "last.ckpt") == 6
    # A new process: dirpath is resolved from default_root_dir before `--ckpt_path last`.
    trainer = _trainer(root, StageCheckpoint(), max_steps=10, check_val_every_n_epoch=5)
    trainer.fit(TinyRegressor(), TinyData(), ckpt_path="last")
    assert trainer.global_step == 10
    assert _step(root / "last.ckpt") == 10
    assert not list(root.glob("last-v*.ckpt"))  # overwritten in place, no version counter


def test_an_explicit_dirpath_is_kept(tmp_path):
    trainer = _trainer(tmp_path / "run", StageCheckpoint(dirpath=tmp_path / "ckpt"), max_steps=3)
    trainer.fit(TinyRegressor(), TinyData())
    assert _step(tmp_path / "ckpt" / "last.ckpt") == 3
    assert not (tmp_path / "run" / "last.ckpt").exists()


def test_fast_dev_run_writes_nothing_into_the_run_dir(tmp_path):
    root = tmp_path / "run"
    trainer = _trainer(root, StageCheckpoint(every_n_train_steps=1), fast_dev_run=True)
    trainer.fit(TinyRegressor(), TinyData())
    assert trainer.global_step == 1
    assert not root.exists() or not any(root.rglob("*"))


def test_plain_model_checkpoint_writes_last_under_fast_dev_run(tmp_path):
    """Why StageCheckpoint.on_train_end does not call ModelCheckpoint's (Lightning 2.6 saves
    `last` at train end even under fast_dev_run); if Lightning fixes it, this test says so."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    root = tmp_path / "run"
    trainer = _trainer(root, ModelCheckpoint(dirpath=root, save_last=True), fast_dev_run=True)
    trainer.fit(TinyRegressor(), TinyData())
    assert (root / "last.ckpt").exists()


class ThreeStepsABatch(TinyRegressor):
    """Manual optimisation with three optimiser steps a batch, as the GAN stages make."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        for _ in range(3):
            loss = (self.layer(batch["x"]) - batch["y"]).square().mean()
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_every_n_train_steps_saves_when_a_batch_steps_over_the_multiple(tmp_path):
    # global_step after each batch: 3, 6, 9, 12, 15, 18. With N = 4 the multiples 4, 8, 16
    # are stepped over (saved at 6, 9, 18), 12 is hit; Lightning's rule alone saves only 12.
    root = tmp_path / "run"
    trainer = _trainer(root, StageCheckpoint(every_n_train_steps=4, save_top_k=-1,
                                             last_every_seconds=None),
                       max_steps=18, limit_val_batches=0)
    trainer.fit(ThreeStepsABatch(), TinyData(n=8, batch_size=2))
    saved = sorted(_step(p) for p in root.glob("*.ckpt") if p.name != "last.ckpt")
    assert saved == [6, 9, 12, 18]
