"""A tiny stage for the resume tests: a 1x1 conv trained on random crops of a small in-memory
texture source, drawing from every global RNG stream each step (torch, NumPy, Python), with an
EMA copy and a ``seen`` buffer that accumulates a digest of every batch it trained on (items,
order, crop windows). Importable by class path as ``resume_toy.NoisyConv`` /
``resume_toy.ToyTextures`` when ``tests/`` is on the path."""

from __future__ import annotations

import random

import lightning.pytorch as pl
import numpy as np
import torch

from lift.data import TextureDataModule, TextureSource


class ToySource(TextureSource):
    """``n`` random 16x16 paired textures (phone, studio, mask), the same for a seed."""

    def __init__(self, n: int = 10, size: int = 16, seed: int = 0, val_items: int = 2):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.textures = {}
        for i in range(n):
            phone = torch.rand(3, size, size, generator=g)
            self.textures[f"s{i:02d}"] = {"phone": phone, "studio": phone.flip(0),
                                          "mask": (phone[:1] > 0.5).float()}
        stems = list(self.textures)
        self._splits = {"phone_train": stems, "studio_train": stems, "paired_train": stems,
                        "paired_test": stems[:val_items], "unpaired_test": stems[:val_items]}

    def splits(self):
        return self._splits

    def load(self, stem, kind):
        return self.textures[stem][kind]


class ToyTextures(TextureDataModule):
    """TextureDataModule over :class:`ToySource` with 8x8 random crops."""

    def __init__(self, n: int = 10, batch_size: int = 3, crop_size: int | None = 8,
                 seed: int = 0, num_workers: int = 0, val_items: int = 0):
        super().__init__(ToySource(n, val_items=max(val_items, 1)), train_split="paired_train",
                         val_split="paired_test" if val_items else None,
                         test_split=None, crop_size=crop_size, batch_size=batch_size,
                         seed=seed, num_workers=num_workers)


class NoisyConv(pl.LightningModule):
    stage = "toy"

    def __init__(self, lr: float = 0.01):
        super().__init__()
        self.lr = lr
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.ema = torch.nn.Conv2d(3, 3, 1)
        self.ema.load_state_dict(self.conv.state_dict())
        self.register_buffer("seen", torch.zeros(4, dtype=torch.float64))
        self.stems: list[str] = []

    def training_step(self, batch, batch_idx):
        x, y = batch["phone"], batch["studio"]
        noise = torch.randn_like(x) * 0.01                      # torch's global stream
        scale = 1.0 + 0.01 * float(np.random.rand()) + 0.01 * random.random()  # NumPy, Python
        loss = (self.conv(x + noise) * scale - y).square().mean()
        weights = torch.arange(1, x.numel() + 1, dtype=torch.float64).view_as(x)
        step = float(self.global_step + 1)
        self.seen += torch.stack([x.double().sum() * step, (x.double() * weights).sum(),
                                  noise.double().sum(), torch.tensor(scale, dtype=torch.float64)])
        self.stems.extend(batch["stem"])
        return loss

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.conv.parameters()):
                e.lerp_(p, 0.1)

    def configure_optimizers(self):
        return torch.optim.Adam(self.conv.parameters(), lr=self.lr)


class MetricProbe(pl.LightningModule):
    """Validation only: lift's PSNR of ``0.9 * phone`` against the studio texture, logged as the
    stages log their metrics, plus the number of items seen; rank 0 writes the epoch's values
    to ``out`` (JSON)."""

    def __init__(self, out: str = "metrics.json"):
        super().__init__()
        from lift_metrics.image_metrics import PSNR

        self.out = out
        self.psnr = PSNR()
        self.layer = torch.nn.Linear(1, 1)

    def validation_step(self, batch, batch_idx):
        b = batch["phone"].shape[0]
        self.psnr.update(batch["phone"] * 0.9, batch["studio"])
        self.log("val/psnr", self.psnr, on_step=False, on_epoch=True, batch_size=b)
        self.log("val/items", float(b), on_step=False, on_epoch=True, reduce_fx="sum",
                 sync_dist=True, batch_size=1)

    def on_validation_end(self):
        if self.trainer.is_global_zero:
            import json

            values = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
            with open(self.out, "w") as fh:
                json.dump(values, fh)
