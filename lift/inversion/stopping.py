"""Per-texture early stopping: a texture whose loss stopped improving leaves the batch.

Each texture is judged on its own loss history only, so stopping keeps textures independent.
"""

from __future__ import annotations

import torch
from lift.spec import Recordable


class PlateauStop(Recordable):
    """Stop a texture once its loss has not improved by ``rel_tol`` for ``patience`` steps.

    An improvement is a loss below ``best * (1 - rel_tol)``; it resets the patience counter
    and becomes the new best. Nothing stops before ``min_steps`` (e.g. while latent noise is
    still being injected).
    """

    def __init__(
        self,
        patience: int,      # steps without improvement before a texture stops
        rel_tol: float,     # relative improvement that counts (0.001 = 0.1 %)
        min_steps: int,     # never stop before this many steps
    ):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience = patience
        self.rel_tol = rel_tol
        self.min_steps = min_steps

    def update(
        self, loss: torch.Tensor, best: torch.Tensor, since_best: torch.Tensor, step: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step for every texture: returns ``(best, since_best, stop)``, all ``[B]``.

        ``loss`` is the texture's loss at ``step`` (steps taken so far); ``best`` starts at
        +inf and ``since_best`` at 0.
        """
        improved = loss < best * (1 - self.rel_tol)
        best = torch.where(improved, loss, best)
        since_best = torch.where(improved, torch.zeros_like(since_best), since_best + 1)
        stop = (since_best >= self.patience) & (step >= self.min_steps)
        return best, since_best, stop
