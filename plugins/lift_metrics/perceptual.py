"""Perceptual-distance metrics (the LPIPS and DISTS columns of Tables 1-4)."""

from __future__ import annotations

import torch

from lift.components import PerceptualDistance
from lift_metrics.sample_mean import SampleMean


class PerceptualMetric(SampleMean):
    """Mean over samples of a PerceptualDistance; lower is better.

    Args:
        distance: the distance, e.g. ``STLPIPS`` (offline default), ``LPIPS``, ``DISTS``.
        name: the report column, e.g. ``"lpips"``.
    """

    higher_is_better = False
    is_differentiable = False

    def __init__(self, distance: PerceptualDistance, name: str, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(distance, PerceptualDistance):
            raise TypeError(f"distance must be a PerceptualDistance, got {type(distance)}")
        self.distance = distance
        self.name = name

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.check_inputs(preds, target)
        if preds.shape[0] == 0:
            return
        with torch.no_grad():
            values = self.distance(preds, target)
        if values.shape != preds.shape[:1]:
            raise ValueError(
                f"{type(self.distance).__name__} returned shape {tuple(values.shape)}, "
                f"expected {tuple(preds.shape[:1])}"
            )
        self.accumulate(values)


class LPIPSMetric(PerceptualMetric):
    """The LPIPS column: ``PerceptualMetric`` named ``"lpips"`` (give it LPIPS or STLPIPS)."""

    def __init__(self, distance: PerceptualDistance, **kwargs):
        super().__init__(distance, name="lpips", **kwargs)


class DISTSMetric(PerceptualMetric):
    """The DISTS column: ``PerceptualMetric`` named ``"dists"`` (give it DISTS)."""

    def __init__(self, distance: PerceptualDistance, **kwargs):
        super().__init__(distance, name="dists", **kwargs)
