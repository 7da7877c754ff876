"""The reference projectors' schedule (NVlabs / rosinality StyleGAN2 projectors).

With ``t = step / steps`` in [0, 1):

- learning rate ``lr * min(1, t / lr_rampup) * (0.5 - 0.5 cos(pi * min(1, (1 - t) / lr_rampdown)))``
  (linear ramp-up over the first ``lr_rampup`` fraction, cosine ramp-down over the last
  ``lr_rampdown`` fraction);
- latent noise ``noise_strength * w_std * max(0, 1 - t / noise_ramp) ** 2`` added to the
  code in the forward pass only (exploration early on, none after ``noise_ramp``).

Reference values: steps 1000, lr 0.1, lr_rampup 0.05, lr_rampdown 0.25, noise_strength 0.05,
noise_ramp 0.75 (they live in the configs, not here).
"""

from __future__ import annotations

import math

import torch
from lift.spec import Recordable


class ProjectorSchedule(Recordable):
    """Per-texture learning rate and latent-noise scale as functions of each texture's step."""

    def __init__(
        self,
        steps: int,                 # optimisation steps per texture (reference: 1000)
        lr: float,                  # peak Adam learning rate (reference: 0.1)
        lr_rampup: float,           # fraction of steps of linear warm-up (0: none)
        lr_rampdown: float,         # fraction of steps of cosine decay at the end (0: none)
        noise_strength: float,      # latent noise at t=0, in units of w_std (0: none)
        noise_ramp: float,          # fraction of steps after which the noise is 0
    ):
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        for name, value in (("lr_rampup", lr_rampup), ("lr_rampdown", lr_rampdown),
                            ("noise_ramp", noise_ramp)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} is a fraction of the steps in [0, 1], got {value}")
        self.steps = steps
        self.lr = lr
        self.lr_rampup = lr_rampup
        self.lr_rampdown = lr_rampdown
        self.noise_strength = noise_strength
        self.noise_ramp = noise_ramp

    def _t(self, step: torch.Tensor) -> torch.Tensor:
        return step.double() / self.steps

    def learning_rate(self, step: torch.Tensor) -> torch.Tensor:
        """Learning rate of each texture at its (0-based) ``step`` ``[B]``."""
        t = self._t(step)
        down = torch.ones_like(t) if self.lr_rampdown == 0 else ((1 - t) / self.lr_rampdown).clamp(max=1)
        ramp = 0.5 - 0.5 * torch.cos(math.pi * down)
        if self.lr_rampup > 0:
            ramp = ramp * (t / self.lr_rampup).clamp(max=1)
        return (self.lr * ramp).float()

    def noise_scale(self, step: torch.Tensor) -> torch.Tensor:
        """Latent-noise factor (times ``w_std``) of each texture at its ``step`` ``[B]``."""
        if self.noise_ramp == 0 or self.noise_strength == 0:
            return torch.zeros(step.shape)
        t = self._t(step)
        return (self.noise_strength * (1 - t / self.noise_ramp).clamp(min=0) ** 2).float()
