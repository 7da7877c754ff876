"""The Lightning DataModule every lift stage uses, over any :class:`TextureSource`.

Config (LightningCLI)::

    data:
      class_path: lift.data.TextureDataModule
      init_args:
        source:
          class_path: lift.data.SyntheticSource      # or lift.data.FolderSource
          init_args: {profile: quickstart, seed: 0}  # or {root: data/mine}
        train_split: phone_train
        resolution: 64
        batch_size: 8

Under DDP each rank gets its share of a split: the train loader's :class:`ResumableSampler`
is a ``DistributedSampler`` (padded to equal shares; Lightning keeps it), and Lightning swaps
its unpadded sampler into the predict loader. The val and test loaders here use the unpadded
sampler too, so evaluation sees every item exactly once and a metric reduced over the ranks
equals the single-process one, also when the split does not divide evenly (the ranks then run
different numbers of evaluation batches; nothing in evaluation is a per-step collective). A
split with fewer items than ranks keeps Lightning's padded sampler.

**Resumable training order.** The train loader is a :class:`ResumableLoader` over a
:class:`ResumableSampler`: the order of a pass is a function of ``(seed, loader role, epoch,
pass)`` only (a pass: one iteration over the loader; a smaller loader of a combined batch
cycles through several passes an epoch), and every random crop window is a function of
``(seed, role, epoch, pass, position)``, not of a random stream, so it does not depend on the
number of DataLoader workers. The loader's ``state_dict`` (saved by Lightning in every
checkpoint, ``loops.fit_loop.state_dict.combined_loader``) records the epoch and the batches
the trainer has consumed in it; ``load_state_dict`` positions the next pass after them. A run
resumed from a mid-epoch checkpoint therefore sees exactly the batches (items, order, crops)
the uninterrupted run sees. A resume with another world size, batch size or seed cannot
continue the order: it warns and starts the epoch over.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

from lift.data.dataset import UNION_SPLITS, TextureDataset
from lift.data.io import TextureError
from lift.data.sources import SPLITS, TextureSource


def collate_textures(items: list[dict | None]) -> dict:
    """Stack items into a batch (``"stem"`` becomes a list); drops items skipped on read.

    ``"expressions"`` (``{name: [3,H,W]}`` per item) becomes ``{name: [B,3,H,W]}``; every item
    of the batch must then have the same expression names.
    """
    kept = [item for item in items if item is not None]
    if not kept:
        raise TextureError("every item of this batch was skipped as unreadable (on_error='skip')")
    if "expressions" in kept[0]:
        names = {item["stem"]: sorted(item["expressions"]) for item in kept}
        if len({tuple(n) for n in names.values()}) > 1:
            listed = "; ".join(f"{stem}: {n or 'none'}" for stem, n in names.items())
            raise TextureError(
                f"the subjects of this batch have different expression textures ({listed}); "
                "a batch holds one texture per expression name: predict with batch_size 1 "
                "(--data.init_args.batch_size=1)")
    return default_collate(kept)


def _mix(*key: int) -> int:
    """A 63-bit seed from integers (NumPy's SeedSequence: well spread, platform independent)."""
    state = np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in key]).generate_state(2)
    return (int(state[0]) << 31 ^ int(state[1])) & (2**63 - 1)


class ResumableSampler(DistributedSampler):
    """The train order: a ``DistributedSampler`` whose passes depend on ``(seed, stream,
    epoch, pass)`` only, that can be positioned mid-pass (:meth:`resume`).

    * One pass = one ``iter()``: a permutation of the dataset (``shuffle``; else in order),
      padded to a multiple of ``num_replicas`` (repeating its head, as ``DistributedSampler``),
      of which rank ``r`` takes positions ``r, r + R, ...``. ``set_epoch`` (Lightning calls it
      every epoch) starts the epoch's pass count at 0; a later ``iter()`` in the same epoch (a
      smaller loader cycling in a combined batch) is the next pass, with its own order.
    * ``draws``: yield ``(index, draw)`` instead of ``index``, ``draw`` a 63-bit seed of
      ``(seed, stream, epoch, pass, position)`` from which :class:`TextureDataset` takes its
      random crop window.
    * ``num_replicas`` / ``rank``: default the process group's (1 / 0 without one).
    """

    def __init__(self, dataset: Dataset, *, shuffle: bool = True, seed: int = 0,
                 stream: str = "", draws: bool = False, num_replicas: int | None = None,
                 rank: int | None = None):
        group = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if group else 1
        if rank is None:
            rank = dist.get_rank() if group else 0
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=False)
        self.stream = zlib.crc32(stream.encode())
        self.draws = draws
        self.passes = 0  # passes started in this epoch
        self._skip = 0  # positions the next pass skips (set by resume)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.passes, self._skip = 0, 0
        super().set_epoch(epoch)

    def resume(self, epoch: int, passes: int, skip: int) -> None:
        """The next ``iter()`` is pass ``passes`` of ``epoch``, from its ``skip``-th position
        of this rank on."""
        self.epoch, self.passes, self._skip = int(epoch), int(passes), int(skip)

    def order(self, epoch: int, pass_: int) -> list[int]:
        """Every rank's positions of one pass: the padded permutation (``total_size`` long)."""
        n = len(self.dataset)  # type: ignore[arg-type]
        if self.shuffle:
            g = torch.Generator().manual_seed(_mix(self.seed, self.stream, epoch, pass_))
            indices = torch.randperm(n, generator=g).tolist()
        else:
            indices = list(range(n))
        pad = self.total_size - n
        indices += (indices * math.ceil(pad / n))[:pad] if pad else []
        return indices

    def __iter__(self) -> Iterator[Any]:
        pass_, skip = self.passes, self._skip
        self.passes, self._skip = pass_ + 1, 0
        indices, epoch = self.order(self.epoch, pass_), self.epoch
        positions = range(self.rank, self.total_size, self.num_replicas)[skip:]
        if not self.draws:
            return iter([indices[j] for j in positions])
        return iter([(indices[j], _mix(self.seed, self.stream, epoch, pass_, j, 0xC0))
                     for j in positions])


class ResumableLoader(DataLoader):
    """A train ``DataLoader`` over a :class:`ResumableSampler` with Lightning's stateful-loader
    interface (``state_dict`` / ``load_state_dict``), so that a mid-epoch checkpoint resumes the
    data order exactly.

    ``consumed`` returns the batches of the current epoch the trainer has consumed (the data
    module passes the fit loop's count: the loader's own iterator runs ahead of training by
    the prefetched batches); without it the loader counts the batches it has yielded.
    """

    def __init__(self, dataset: Dataset, *args: Any,
                 consumed: Callable[[], int | None] | None = None, **kwargs: Any):
        super().__init__(dataset, *args, **kwargs)
        if not isinstance(self.sampler, ResumableSampler):
            raise TypeError("ResumableLoader needs a ResumableSampler as its sampler, got "
                            f"{type(self.sampler).__name__}")
        self.consumed = consumed
        self._yielded = 0
        self._yielded_epoch = self.sampler.epoch

    def __iter__(self):
        sampler = self.sampler
        if sampler.epoch != self._yielded_epoch:
            self._yielded, self._yielded_epoch = 0, sampler.epoch
        for batch in super().__iter__():
            self._yielded += 1
            yield batch

    def _batches(self) -> int:
        count = self.consumed() if self.consumed is not None else None
        return self._yielded if count is None else int(count)

    def state_dict(self) -> dict[str, Any]:
        s = self.sampler
        return {"epoch": int(s.epoch), "batches": self._batches(), "seed": int(s.seed),
                "stream": int(s.stream), "num_replicas": int(s.num_replicas),
                "batch_size": int(self.batch_size or 1), "length": len(s.dataset),
                "shuffle": bool(s.shuffle)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        s = self.sampler
        mine = {"seed": int(s.seed), "stream": int(s.stream),
                "num_replicas": int(s.num_replicas), "batch_size": int(self.batch_size or 1),
                "length": len(s.dataset), "shuffle": bool(s.shuffle)}
        changed = {k: (state.get(k), v) for k, v in mine.items() if state.get(k) != v}
        if changed:
            listed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
            warnings.warn(f"resuming the train data order is not possible ({listed}): epoch "
                          f"{state.get('epoch')} starts over from its first batch", stacklevel=2)
            s.resume(int(state.get("epoch", 0)), 0, 0)
            return
        per_pass = len(self)
        batches = int(state["batches"])
        passes, done = (divmod(batches, per_pass) if per_pass else (0, 0))
        s.resume(int(state["epoch"]), passes, done * mine["batch_size"])
        self._yielded, self._yielded_epoch = batches, int(state["epoch"])


class TextureDataModule(L.LightningDataModule):
    """Train/val/test/predict loaders over the splits of one :class:`TextureSource`.

    Args:
        source: the textures (``SyntheticSource`` or ``FolderSource``, or your own).
        train_split: split of the train loader.
        val_split: split of the val loader (None: no validation).
        test_split: split of the test loader (None: no test loader).
        predict_split: split of the predict loader (None: no predict loader); besides the
            splits, ``"all"``: every stem with a phone texture (on a folder without split
            files, every file of ``phone/``); ``"test"``: paired_test and unpaired_test.
        resolution: resize every texture to this size (None: as stored). Integer
            down-sampling factors are exact box filters (``interpolate(mode="area")``).
        crop_size: random crop of this size for training only, the same window for every
            key of an item (None: no crop).
        batch_size: items per batch (each rank's, under DDP).
        num_workers: DataLoader worker processes (0: load in the main process).
        shuffle: shuffle the train loader.
        drop_last: drop the train loader's last incomplete batch.
        seed: seeds the train order and the crop windows (:class:`ResumableSampler`: a
            resumed run continues them exactly).
        with_expressions: predict batches also hold ``"expressions"``: ``{name: [B,3,R,R]}``,
            the subjects' phone-captured expression textures (at ``resolution``); subjects of
            one batch must have the same expression names (else use ``batch_size: 1``).
    """

    def __init__(
        self,
        source: TextureSource,
        train_split: str = "phone_train",
        val_split: str | None = "paired_test",
        test_split: str | None = "paired_test",
        predict_split: str | None = None,
        resolution: int | None = None,
        crop_size: int | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        with_expressions: bool = False,
    ):
        super().__init__()
        for name, split in (("train_split", train_split), ("val_split", val_split),
                            ("test_split", test_split), ("predict_split", predict_split)):
            if split is not None and split not in SPLITS and not (
                    name == "predict_split" and split in UNION_SPLITS):
                also = f", or {', '.join(UNION_SPLITS)}" if name == "predict_split" else ""
                raise ValueError(f"{name}={split!r} is not a split ({', '.join(SPLITS)}{also})")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.source = source
        self.train_split = train_split
        self.val_split = val_split
        self.test_split = test_split
        self.predict_split = predict_split
        self.resolution = resolution
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.with_expressions = with_expressions
        self.datasets: dict[str, TextureDataset] = {}

    def dataset(self, split: str, *, train: bool = False,
                with_expressions: bool = False) -> TextureDataset:
        """The dataset of ``split``; ``train`` adds the random crop."""
        return TextureDataset(
            self.source, split, resolution=self.resolution,
            crop_size=self.crop_size if train else None, random_crop=train, seed=self.seed,
            with_expressions=with_expressions,
        )

    def setup(self, stage: str | None = None) -> None:
        wanted = {
            "fit": [("train", self.train_split), ("val", self.val_split)],
            "validate": [("val", self.val_split)],
            "test": [("test", self.test_split)],
            "predict": [("predict", self.predict_split)],
        }
        stages = wanted if stage is None else {stage: wanted[stage]}
        for pairs in stages.values():
            for role, split in pairs:
                if split is not None and role not in self.datasets:
                    self.datasets[role] = self.dataset(
                        split, train=role == "train",
                        with_expressions=role == "predict" and self.with_expressions)
        train = self.datasets.get("train")
        if train is not None and self.drop_last and len(train) < self.batch_size:
            raise ValueError(
                f"train split {self.train_split} has {len(train)} items, fewer than "
                f"batch_size={self.batch_size} with drop_last=True: every epoch would be empty")

    def _loader(self, role: str, *, train: bool = False,
                batch_size: int | None = None) -> DataLoader:
        if role not in self.datasets:
            self.setup({"train": "fit", "val": "validate"}.get(role, role))
        dataset = self.datasets[role]
        batch_size = batch_size or self.batch_size
        # Every loader has its own generator (the workers' base seed), so that starting an
        # epoch or a validation never draws from the global RNG (a resumed run's would differ).
        generator = torch.Generator().manual_seed(_mix(self.seed, zlib.crc32(role.encode())))
        if train:
            crops = bool(getattr(dataset, "random_crop", False)
                         and getattr(dataset, "crop_size", None))
            sampler = ResumableSampler(dataset, shuffle=self.shuffle, seed=self.seed,
                                       stream=role, draws=crops)
            return ResumableLoader(
                dataset, batch_size=batch_size, sampler=sampler, drop_last=self.drop_last,
                num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                collate_fn=collate_textures, generator=generator, consumed=self._consumed)
        sampler = None
        evaluating = role in ("val", "test") or role.startswith("test_")
        if evaluating and dist.is_available() and dist.is_initialized():
            # Each item once across ranks: metrics over a padded split would count repeats.
            # The ranks may then run different numbers of batches (5 items on 2 ranks: 3 and
            # 2), which is safe because no stage makes a per-step collective call in
            # evaluation (torchmetrics and `self.log(sync_dist=True)` on epoch values
            # synchronise at the epoch's end). Only a rank left without items (fewer items
            # than ranks) keeps Lightning's padded sampler.
            if len(dataset) >= dist.get_world_size():
                sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_textures,
            generator=generator,
        )

    def _consumed(self) -> int | None:
        """The train batches of the current epoch the trainer has consumed (None: no trainer)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return None
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self):
        return [] if self.val_split is None else self._loader("val")

    def test_dataloader(self):
        return [] if self.test_split is None else self._loader("test")

    def predict_dataloader(self):
        return [] if self.predict_split is None else self._loader("predict")
