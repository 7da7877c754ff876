"""The translation stage's data: unpaired phone and studio domains plus the paired subset.

Training draws from up to three splits at once (the paper's 12,543 phone textures, 383 studio
textures and the K = 83 paired ones): the train loader is a dict of loaders that Lightning
combines (``max_size_cycle``: an epoch is one pass over the largest split, the smaller ones
cycle), each with its own distributed sampler under DDP. :func:`flatten_translation_batch`
turns the combined batch into the flat dict a :class:`~lift.components.Translator` reads.

Evaluation runs over several test splits (``paired_test``: Table 1 metrics against the studio
ground truth; ``unpaired_test``: Table 2 FaceID against the phone input), one loader each.

Config::

    data:
      class_path: lift.data.TranslationDataModule
      init_args:
        source: {class_path: lift.data.SyntheticSource, init_args: {profile: quickstart}}
        resolution: 64
        batch_size: 8
"""

from __future__ import annotations

from typing import Any, Mapping

from torch.utils.data import DataLoader

from lift.data.datamodule import TextureDataModule
from lift.data.sources import SPLITS, TextureSource

# Combined-batch role -> prefix of its keys in the flat translator batch.
_ROLE_PREFIX = {"phone": "", "studio": "", "paired": "paired_"}


def flatten_translation_batch(batch: Mapping[str, Any]) -> dict[str, Any]:
    """``{"phone": {...}, "studio": {...}, "paired": {...}}`` -> the flat translator batch.

    ``phone``/``mask``/``phone_stem`` come from the phone role, ``studio``/``studio_stem``
    from the studio role, and every key of the paired role gets a ``paired_`` prefix.
    """
    flat: dict[str, Any] = {}
    for role, items in batch.items():
        if role not in _ROLE_PREFIX:
            raise KeyError(f"translation batch has an unknown role {role!r} "
                           f"(expected {sorted(_ROLE_PREFIX)})")
        for key, value in items.items():
            if role == "paired":
                flat[f"paired_{key}"] = value
            elif key == "stem":
                flat[f"{role}_stem"] = value
            elif role == "phone" and key in ("phone", "mask"):
                flat[key] = value
            elif role == "studio" and key == "studio":
                flat[key] = value
    return flat


class TranslationDataModule(TextureDataModule):
    """Train on phone + studio (+ paired) splits together; test on several splits.

    Args:
        source: the textures (``SyntheticSource``, ``FolderSource`` or your own).
        phone_split: the unpaired phone domain (None: no phone batch, e.g. StyleGAN-W+,
            which trains on the latent bank of the inverted phone textures instead).
        studio_split: the unpaired studio domain (the discriminator's reals).
        paired_split: the paired subset of Eq. 6 (None: no paired batch).
        paired_batch_size: items per paired batch (None: ``batch_size``).
        val_split: validation split (None: none).
        test_splits: one test loader per split, in this order.
        predict_split: split translated by ``lift predict`` (None: no predict loader).
        resolution, crop_size, batch_size, num_workers, shuffle, drop_last, seed: as
            :class:`~lift.data.TextureDataModule`.
    """

    def __init__(
        self,
        source: TextureSource,
        phone_split: str | None = "phone_train",
        studio_split: str = "studio_train",
        paired_split: str | None = "paired_train",
        paired_batch_size: int | None = None,
        val_split: str | None = "paired_test",
        test_splits: list[str] | None = None,
        predict_split: str | None = None,
        resolution: int | None = None,
        crop_size: int | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
    ):
        test_splits = list(test_splits) if test_splits is not None else ["paired_test",
                                                                          "unpaired_test"]
        super().__init__(
            source, train_split=phone_split, val_split=val_split, test_split=None,
            predict_split=predict_split, resolution=resolution, crop_size=crop_size,
            batch_size=batch_size, num_workers=num_workers, shuffle=shuffle,
            drop_last=drop_last, seed=seed)
        for name, split in (("studio_split", studio_split), ("paired_split", paired_split),
                            *(("test_splits", s) for s in test_splits)):
            if split is not None and split not in SPLITS:
                raise ValueError(f"{name}={split!r} is not a split ({', '.join(SPLITS)})")
        self.phone_split = phone_split
        self.studio_split = studio_split
        self.paired_split = paired_split
        self.paired_batch_size = paired_batch_size or batch_size
        self.test_splits = test_splits
        roles = {"phone": phone_split, "studio": studio_split, "paired": paired_split}
        self.train_roles = {role: split for role, split in roles.items() if split is not None}
        if not self.train_roles:
            raise ValueError("TranslationDataModule: phone_split, studio_split and paired_split "
                             "are all null: nothing to train on")

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            for role, split in self.train_roles.items():
                key = f"train_{role}"
                if key not in self.datasets:
                    self.datasets[key] = self.dataset(split, train=True)
                size = self.paired_batch_size if role == "paired" else self.batch_size
                if self.drop_last and len(self.datasets[key]) < size:
                    raise ValueError(
                        f"{role} split {split} has {len(self.datasets[key])} items, fewer than "
                        f"its batch size {size} with drop_last=True: every epoch would be empty")
            if self.val_split is not None and "val" not in self.datasets:
                self.datasets["val"] = self.dataset(self.val_split)
        if stage in (None, "validate") and self.val_split is not None:
            self.datasets.setdefault("val", self.dataset(self.val_split))
        if stage in (None, "test"):
            for split in self.test_splits:
                self.datasets.setdefault(f"test_{split}", self.dataset(split))
        if stage in (None, "predict") and self.predict_split is not None:
            self.datasets.setdefault("predict", self.dataset(self.predict_split))

    def _loader(self, role: str, *, train: bool = False,
                batch_size: int | None = None) -> DataLoader:
        if role not in self.datasets:
            self.setup({"val": "validate", "predict": "predict"}.get(role, "fit")
                       if not role.startswith("test_") else "test")
        return super()._loader(role, train=train, batch_size=batch_size)

    def train_dataloader(self) -> dict[str, DataLoader]:
        return {role: self._loader(
                    f"train_{role}", train=True,
                    batch_size=self.paired_batch_size if role == "paired" else self.batch_size)
                for role in self.train_roles}

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(f"test_{split}") for split in self.test_splits]
