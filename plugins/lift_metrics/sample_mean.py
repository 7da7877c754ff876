"""The shared shape of the built-in metrics: the mean over samples of a per-sample value."""

from __future__ import annotations

import abc

import torch

from lift.components import Metric


class SampleMean(Metric, abc.ABC):
    """Accumulates ``sum`` and ``count`` of per-sample values; ``compute()`` is their ratio.

    Both states are summed across DDP ranks, so the result is the mean over all samples.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        zero = torch.tensor(0.0, dtype=torch.float64)
        self.add_state("total", default=zero.clone(), dist_reduce_fx="sum")
        self.add_state("count", default=zero.clone(), dist_reduce_fx="sum")

    def check_inputs(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        name = type(self).__name__
        if preds.ndim != 4 or preds.shape[1] != 3:
            raise ValueError(f"{name} expects preds of shape [B,3,H,W], got {tuple(preds.shape)}")
        if preds.shape != target.shape:
            raise ValueError(
                f"{name} expects preds and target of one shape, got {tuple(preds.shape)} and "
                f"{tuple(target.shape)}"
            )

    def accumulate(self, values: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Add per-sample ``values`` [B] (``weights`` [B] in {0,1} leaves samples out)."""
        values = values.detach().double()
        if weights is None:
            self.total += values.sum()
            self.count += values.numel()
        else:
            weights = weights.detach().double()
            self.total += torch.where(weights > 0, values, torch.zeros_like(values)).sum()
            self.count += weights.sum()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float()
