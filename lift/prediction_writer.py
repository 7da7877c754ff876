"""One prediction writer for every stage's predicted textures.

Contract (what a stage's ``predict_step`` returns): a dict with

* ``"stem"``: ``list[str]``, one file stem per item of the batch (e.g. the subject's name);
* any number of image entries ``name -> Tensor [B, C, H, W]``, C = 3 (texture) or 1 (mask),
  linear values in [0, 1] (the same convention as ``lift.data.io``);
* anything else (the stem list, scalar diagnostics, latents that are not 4-D) is ignored.

:class:`TextureWriter` writes ``<output_dir>/<name>/<stem>.<ext>`` for each image entry it
is told to write (``keys``; ``None``: every 4-D tensor entry), batch by batch, through
``lift.data.write_texture`` (atomic: a crash never leaves a half-written file):

* ``format="png16"``: 16-bit PNG (values rounded to 1/65535), ``"png8"``: 8-bit PNG,
* ``"exr"``: float32 OpenEXR, ``"tif"``: float32 TIFF (both exact).

Values are clamped to [0, 1] first (``clamp=True``, the default; a network's output may
overshoot slightly); NaN/Inf are an error naming the file. Under DDP every rank writes the
stems of its own batches (no gather, no collective call). With ``overwrite=False`` existing
files are kept, so a rerun of an interrupted prediction skips what is done (the step itself
still runs). Pass ``--trainer.callbacks+=lift.prediction_writer.TextureWriter`` or list it in a
config's ``trainer.callbacks``; for large runs also ``--return_predictions=false`` so Lightning
does not keep every batch's outputs in memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from lift.data.io import write_texture

#: format -> (file extension, PNG bits)
FORMATS: dict[str, tuple[str, int]] = {
    "png16": (".png", 16),
    "png8": (".png", 8),
    "exr": (".exr", 16),
    "tif": (".tif", 16),
}
STEM_KEY = "stem"


def image_entries(prediction: Mapping[str, Any], keys: Sequence[str] | None = None
                  ) -> dict[str, torch.Tensor]:
    """The entries of a prediction dict that are written: ``keys`` (each must be a 4-D tensor)
    or, with ``keys=None``, every 4-D tensor entry."""
    if keys is None:
        return {k: v for k, v in prediction.items()
                if k != STEM_KEY and isinstance(v, torch.Tensor) and v.ndim == 4}
    out = {}
    for key in keys:
        if key not in prediction:
            raise KeyError(f"TextureWriter: prediction has no entry {key!r} "
                           f"(entries: {sorted(prediction)})")
        value = prediction[key]
        if not isinstance(value, torch.Tensor) or value.ndim != 4:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"TextureWriter: entry {key!r} is not an image batch "
                             f"[B,C,H,W] (got {shape})")
        out[key] = value
    return out


class TextureWriter(BasePredictionWriter):
    """Writes predicted textures as ``<output_dir>/<name>/<stem>.<ext>`` (see the module docs).

    Args:
        output_dir: the folder (created); ``None``: ``<trainer.default_root_dir>/predictions``.
        keys: the image entries to write; ``None``: every 4-D tensor entry of the prediction.
        format: ``"png16"`` (default), ``"png8"``, ``"exr"`` or ``"tif"``.
        clamp: clamp values to [0, 1] before writing (default ``True``).
        overwrite: replace existing files (default ``True``); ``False`` keeps them.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        keys: list[str] | None = None,
        format: Literal["png16", "png8", "exr", "tif"] = "png16",
        clamp: bool = True,
        overwrite: bool = True,
    ):
        super().__init__(write_interval="batch")
        if format not in FORMATS:
            raise ValueError(f"TextureWriter: format must be one of {sorted(FORMATS)}, "
                             f"got {format!r}")
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.keys = list(keys) if keys is not None else None
        self.format = format
        self.clamp = clamp
        self.overwrite = overwrite
        self.written: int = 0  # files written by this rank (for logs and tests)

    @property
    def extension(self) -> str:
        return FORMATS[self.format][0]

    def directory(self, trainer: pl.Trainer | None = None) -> Path:
        if self.output_dir is not None:
            return self.output_dir
        root = trainer.default_root_dir if trainer is not None else os.getcwd()
        return Path(root) / "predictions"

    def path(self, name: str, stem: str, trainer: pl.Trainer | None = None) -> Path:
        return self.directory(trainer) / name / f"{stem}{self.extension}"

    def write_prediction(self, prediction: Any, trainer: pl.Trainer | None = None,
                         batch: Any = None) -> list[Path]:
        """Write one prediction dict; returns the files written."""
        if prediction is None:
            return []
        if not isinstance(prediction, Mapping):
            raise TypeError("TextureWriter: predict_step must return a dict with 'stem' and "
                            f"image entries, got {type(prediction).__name__}")
        entries = image_entries(prediction, self.keys)
        if not entries:
            return []
        stems = prediction.get(STEM_KEY)
        if stems is None and isinstance(batch, Mapping):
            stems = batch.get(STEM_KEY)
        if stems is None:
            raise KeyError("TextureWriter: the prediction (and the batch) has no 'stem' list")
        stems = [stems] if isinstance(stems, str) else [str(s) for s in stems]
        _, bits = FORMATS[self.format]
        written = []
        for name, images in entries.items():
            if images.shape[0] != len(stems):
                raise ValueError(f"TextureWriter: entry {name!r} holds {images.shape[0]} "
                                 f"images for {len(stems)} stems")
            images = images.detach().to("cpu", torch.float32)
            if self.clamp:
                images = images.clamp(0, 1)  # NaN stays NaN: write_texture refuses it
            for stem, image in zip(stems, images):
                target = self.path(name, stem, trainer)
                if not self.overwrite and target.exists():
                    continue
                written.append(write_texture(target, image, bits=bits))
        self.written += len(written)
        return written

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           prediction: Any, batch_indices: Sequence[int] | None, batch: Any,
                           batch_idx: int, dataloader_idx: int) -> None:
        self.write_prediction(prediction, trainer, batch)
