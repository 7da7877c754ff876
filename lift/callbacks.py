"""Lightning callbacks shared by the stages (side effects live here, not in plugins)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from torchvision.utils import make_grid, save_image

from lift.atomic import atomic_path


def image_rows(images: dict[str, torch.Tensor], max_items: int = 8) -> torch.Tensor:
    """Stack named image batches as rows of one grid (row order = dict order)."""
    rows = []
    size = None
    for batch in images.values():
        batch = batch[:max_items].detach().float().cpu().clamp(0, 1)
        if batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)
        size = size or batch.shape[-2:]
        if batch.shape[-2:] != size:  # low-res rows are shown at the grid's size
            batch = torch.nn.functional.interpolate(batch, size=size, mode="nearest")
        rows.append(batch)
    ncol = max(r.shape[0] for r in rows)
    padded = [torch.cat([r, r.new_ones(ncol - r.shape[0], *r.shape[1:])]) for r in rows]
    return make_grid(torch.cat(padded), nrow=ncol, padding=2, pad_value=1.0)


class ImageGridLogger(pl.Callback):
    """Writes ``module.validation_images`` as a PNG grid after each validation epoch.

    Rows are the named image batches (e.g. phone / translated / studio). Files go to
    ``<log_dir>/images/<stage>_step<N>.png``; a TensorBoard logger also gets the grid.
    """

    def __init__(self, max_items: int = 8):
        super().__init__()
        self.max_items = max_items

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # trainer.log_dir broadcasts across ranks when there is no logger: read it on every
        # rank before returning early on the others, or rank 0 waits forever.
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        images = getattr(pl_module, "validation_images", None)
        if not images or not trainer.is_global_zero or trainer.sanity_checking:
            return
        grid = image_rows(images, self.max_items)
        stage = getattr(pl_module, "stage", "stage") or "stage"
        with atomic_path(log_dir / "images" / f"{stage}_step{trainer.global_step:07d}.png") as tmp:
            save_image(grid, tmp)
        experiment = getattr(trainer.logger, "experiment", None)
        if hasattr(experiment, "add_image"):
            experiment.add_image(f"val/{stage}", grid, trainer.global_step)
        pl_module.validation_images = {}
