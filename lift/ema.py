"""Exponential moving averages of network weights (StyleGAN2's G_ema, ResShift's EMA)."""

from __future__ import annotations

import torch
from torch import nn


def beta_from_half_life(half_life_images: float, batch_size: int) -> float:
    """Per-step decay for a half-life given in images (StyleGAN2: ``ema_kimg * 1000``)."""
    if half_life_images <= 0:
        return 0.0
    return 0.5 ** (batch_size / half_life_images)


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, beta: float) -> None:
    """``target <- beta * target + (1 - beta) * source`` for parameters; buffers are copied."""
    for p_t, p_s in zip(target.parameters(), source.parameters(), strict=True):
        p_t.lerp_(p_s.detach(), 1.0 - beta)
    for b_t, b_s in zip(target.buffers(), source.buffers(), strict=True):
        b_t.copy_(b_s)
