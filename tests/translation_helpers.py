"""A callback for CLI tests: records the logged training losses and checks they are finite."""

from __future__ import annotations

import math

import lightning.pytorch as pl

SEEN: list[dict[str, float]] = []


class FiniteLossCheck(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        losses = {k: float(v) for k, v in trainer.callback_metrics.items()
                  if k.startswith("train/")}
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        assert not bad, f"non-finite losses {bad}"
        SEEN.append(losses)
