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

Under DDP each rank gets its share of a split: Lightning swaps a DistributedSampler into the
train loader (padded to equal shares) and its unpadded sampler into the predict loader. The
val and test loaders here use the unpadded sampler too whenever every rank then runs the
same number of batches, so evaluation sees every item exactly once; otherwise they keep
Lightning's padded sampler (a few items counted twice) so that the ranks stay in step.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, default_collate

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
        seed: seeds the train shuffle order and the crop windows.
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
        generator = torch.Generator().manual_seed(self.seed) if train and self.shuffle else None
        sampler = None
        evaluating = role in ("val", "test") or role.startswith("test_")
        if evaluating and dist.is_available() and dist.is_initialized():
            # Each item once across ranks (metrics over a padded split would count repeats),
            # but only while every rank runs the same number of steps: a rank with fewer
            # would leave the others waiting in per-step collectives (sync_dist, all_gather).
            world, n, bs = dist.get_world_size(), len(dataset), batch_size
            fewest, most = n // world, -(-n // world)
            if fewest > 0 and -(-fewest // bs) == -(-most // bs):
                sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train and self.shuffle,
            sampler=sampler,
            drop_last=train and self.drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_textures,
            generator=generator,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self):
        return [] if self.val_split is None else self._loader("val")

    def test_dataloader(self):
        return [] if self.test_split is None else self._loader("test")

    def predict_dataloader(self):
        return [] if self.predict_split is None else self._loader("predict")
