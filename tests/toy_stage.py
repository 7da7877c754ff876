"""A tiny LightningModule / DataModule pair (a linear layer on random vectors) for tests of the
run machinery (checkpoints, loggers, CLI, prediction writer); importable by class_path as
``toy_stage.TinyRegressor`` / ``toy_stage.TinyData`` when ``tests/`` is on the path."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset


class _Vectors(Dataset):
    def __init__(self, n: int, seed: int = 0, size: int = 4):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x.sum(dim=1, keepdim=True)
        self.size = size

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"stem": f"item{i:03d}", "x": self.x[i], "y": self.y[i]}


class TinyData(pl.LightningDataModule):
    """``n`` random 4-vectors, batches of ``batch_size`` (train, val and predict)."""

    def __init__(self, n: int = 8, batch_size: int = 2, seed: int = 0):
        super().__init__()
        self.n, self.batch_size, self.seed = n, batch_size, seed

    def train_dataloader(self):
        return DataLoader(_Vectors(self.n, self.seed), batch_size=self.batch_size)

    def val_dataloader(self):
        return DataLoader(_Vectors(self.batch_size, self.seed + 1), batch_size=self.batch_size)

    def predict_dataloader(self):
        return DataLoader(_Vectors(self.n, self.seed + 2), batch_size=self.batch_size)


class TinyRegressor(pl.LightningModule):
    """A linear layer; ``predict_step`` returns the TextureWriter contract (``image``: a
    ``[B,3,size,size]`` texture in [0,1] derived from the output, ``mask``: ``[B,1,..]``)."""

    stage = "toy"

    def __init__(self, lr: float = 0.01, size: int = 4):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)
        self.validation_images: dict[str, torch.Tensor] = {}

    def training_step(self, batch, batch_idx):
        loss = (self.layer(batch["x"]) - batch["y"]).square().mean()
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = (self.layer(batch["x"]) - batch["y"]).square().mean()
        self.log("val/loss", loss)
        s = self.hparams.size
        self.validation_images = {
            "input": batch["x"][:, :3, None, None].sigmoid().expand(-1, 3, s, s),
        }

    def predict_step(self, batch, batch_idx):
        s = self.hparams.size
        out = self.layer(batch["x"]).sigmoid()  # [B,1]
        ramp = torch.linspace(0, 1, s * s).reshape(1, 1, s, s)
        image = (out[:, :, None, None] * ramp).expand(-1, 3, -1, -1).contiguous()
        return {"stem": list(batch["stem"]), "image": image, "mask": (ramp > 0.5).float()
                .expand(len(out), 1, s, s), "loss": out.mean()}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
