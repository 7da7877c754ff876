"""What every built-in perceptual distance shares: frozen weights, eval mode, input checks."""

from __future__ import annotations

import torch

from lift.components import PerceptualDistance


class FrozenDistance(PerceptualDistance):
    """A PerceptualDistance whose network never trains and never leaves eval mode.

    Subclasses build their network in ``__init__``, then call ``self.freeze()``; ``forward``
    checks its inputs with ``self.check_inputs`` and returns ``[B]`` distances.
    """

    # Smallest side the network accepts (its reflect paddings / poolings need at least this).
    min_size: int = 1

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True):
        # Frozen: dropout (in the LPIPS heads) must stay off even inside a training loop.
        return super().train(False)

    def check_inputs(self, x: torch.Tensor, y: torch.Tensor) -> None:
        name = type(self).__name__
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{name} expects x of shape [B,3,H,W], got {tuple(x.shape)}")
        if x.shape != y.shape:
            raise ValueError(
                f"{name} expects x and y of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"{name} needs images of at least {self.min_size}x{self.min_size}, "
                f"got {tuple(x.shape[-2:])}"
            )
