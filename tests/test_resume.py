"""Resumable training state, in process: ResumableSampler / ResumableLoader (data order and
crop windows), StageCheckpoint's RNG streams, interval saves and atomic checkpoint IO. The
real SIGKILL tests are in test_kill_resume.py."""

from __future__ import annotations

import random
import warnings

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from kill_resume_helpers import differences
from lift.callbacks import RNG_KEY, AtomicCheckpointIO, StageCheckpoint, rng_state, set_rng_state
from lift.data.datamodule import ResumableLoader, ResumableSampler
from resume_toy import NoisyConv, ToyTextures


def _stems(batches):
    return [s for b in batches for s in b["stem"]]


def test_sampler_order_depends_on_seed_epoch_and_pass_only():
    data = list(range(10))
    a, b = ResumableSampler(data, seed=1), ResumableSampler(data, seed=1)
    assert list(a) == list(b)            # pass 0 of epoch 0
    assert list(a) != list(ResumableSampler(data, seed=1))  # a's pass 1 differs from pass 0
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) and sorted(list(b)) != list(b)
    assert list(ResumableSampler(data, seed=2)) != list(ResumableSampler(data, seed=1))


def test_sampler_resume_continues_the_pass_and_ranks_split_it():
    data = list(range(11))
    whole = ResumableSampler(data, seed=3)
    whole.set_epoch(4)
    full = list(whole)
    resumed = ResumableSampler(data, seed=3)
    resumed.resume(4, 0, 5)
    assert list(resumed) == full[5:]
    ranks = [list(ResumableSampler(data, seed=3, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 6                       # padded to 12
    assert set(ranks[0]) | set(ranks[1]) == set(data)
    draws = ResumableSampler(data, seed=3, draws=True)
    items = list(draws)
    assert [i for i, _ in items] == list(ResumableSampler(data, seed=3))
    assert len({d for _, d in items}) == len(items)


def test_loader_state_resumes_the_batches_and_crops():
    dm = ToyTextures(n=10, batch_size=3)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader, ResumableLoader)
    loader.sampler.set_epoch(2)
    whole = list(loader)
    again = dm.train_dataloader()
    again.sampler.set_epoch(2)
    it = iter(again)
    next(it)
    state = again.state_dict()
    assert state["epoch"] == 2 and state["batches"] == 1
    fresh = ToyTextures(n=10, batch_size=3)
    fresh.setup("fit")
    resumed = fresh.train_dataloader()
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert _stems(rest) == _stems(whole[1:])
    for a, b in zip(rest, whole[1:]):
        assert torch.equal(a["phone"], b["phone"])  # the same crop windows


def test_loader_state_of_another_batch_size_warns_and_restarts_the_epoch():
    dm = ToyTextures(n=10, batch_size=3)
    dm.setup("fit")
    state = dm.train_dataloader().state_dict() | {"batches": 2, "epoch": 1}
    other = ToyTextures(n=10, batch_size=2)
    other.setup("fit")
    loader = other.train_dataloader()
    with pytest.warns(UserWarning, match="batch_size 3 -> 2"):
        loader.load_state_dict(state)
    assert len(list(loader)) == len(loader)


def test_crops_do_not_depend_on_the_number_of_workers():
    def batches(workers):
        dm = ToyTextures(n=10, batch_size=3, num_workers=workers)
        dm.setup("fit")
        return [b["phone"] for b in dm.train_dataloader()]

    for a, b in zip(batches(0), batches(2)):
        assert torch.equal(a, b)


def test_rng_state_round_trips_through_a_weights_only_load(tmp_path):
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and (got[1] == expected[1]).all()
    assert got[2] == expected[2]


class _Stop(pl.Callback):
    """Simulates a kill: raises at the start of step ``at`` (the last save is before it)."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.at:
            raise SystemExit


def _fit(root, max_steps, *, stop=None, ckpt=None):
    pl.seed_everything(0, verbose=False)
    callbacks = [StageCheckpoint(save_top_k=0, last_every_n_train_steps=2)]
    if stop is not None:
        callbacks.append(_Stop(stop))
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=root,
                         max_steps=max_steps, callbacks=callbacks, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            trainer.fit(NoisyConv(), ToyTextures(), ckpt_path=ckpt)
        except SystemExit:
            pass
    return trainer


@pytest.mark.parametrize("stop", [4, 7, 10])  # saves at 4, at 7 (6 ends an epoch), at 10
def test_an_interrupted_fit_resumes_bit_for_bit(tmp_path, stop):
    whole = _fit(tmp_path / "whole", 14)
    assert isinstance(whole.strategy.checkpoint_io, AtomicCheckpointIO)
    _fit(tmp_path / "cut", 14, stop=stop)
    saved = torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)
    assert saved["global_step"] in (stop, stop - 1) and saved[RNG_KEY]
    _fit(tmp_path / "cut", 14, ckpt="last")
    a = torch.load(tmp_path / "whole" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)
    for key in ("state_dict", "optimizer_states", "loops", "global_step", "epoch", RNG_KEY):
        assert not differences(a[key], b[key], key)


def test_last_every_seconds_refreshes_last_ckpt_without_validation(tmp_path):
    from toy_stage import TinyData, TinyRegressor

    root = tmp_path / "run"
    steps = []

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, *args):
            if (root / "last.ckpt").is_file():
                steps.append(torch.load(root / "last.ckpt", weights_only=True)["global_step"])

    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=root, max_steps=6,
                         limit_val_batches=0, num_sanity_val_steps=0,
                         callbacks=[StageCheckpoint(last_every_seconds=1e-6), Spy()])
    trainer.fit(TinyRegressor(), TinyData(n=16, batch_size=2))  # 8 batches an epoch
    assert steps == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="last_every_seconds"):
        StageCheckpoint(last_every_seconds=0)
