"""One prediction writer for every stage's predicted textures.

Contract (what a stage's ``predict_step`` returns): a dict with

* ``"stem"``: ``list[str]``, one file stem per item of the batch (e.g. the subject's name);
* any number of image entries ``name -> Tensor [B, C, H, W]``, C = 3 (texture) or 1 (mask),
  linear values in [0, 1] (the same convention as ``lift.data.io``);
* nested image entries ``name -> {sub: Tensor [B, C, H, W]}`` (the pipeline's
  ``"expressions"``: one texture per expression name and batch item);
* anything else (the stem list, scalar diagnostics, latents that are not 4-D) is ignored.

:class:`TextureWriter` writes ``<output_dir>/<name>/<stem>.<ext>`` for each image entry and
``<output_dir>/<name>/<stem>/<sub>.<ext>`` for each nested one it is told to write (``keys``;
``None``: every 4-D tensor entry and every mapping of 4-D tensors), batch by batch, through
``lift.data.write_texture`` (atomic: a crash never leaves a half-written file). The format is
``format`` for every entry, or ``formats[name]`` for the entries named there:

* ``"png16"``: 16-bit PNG (values rounded to 1/65535), ``"png8"``: 8-bit PNG,
* ``"exr"``: float32 OpenEXR, ``"tif"``: float32 TIFF (both exact).

Entries written as PNG are clamped to [0, 1] first (``clamp=True``, the default; a network's
output may overshoot slightly); with ``clamp=False`` a value outside [0, 1] is an error. The
float formats keep every value as it is, also outside [0, 1] (signed maps such as the
colour transform's bias, read back with ``read_texture(..., check_range=False)``).
NaN/Inf are an error naming the file. Under DDP every rank writes the
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


def _is_image_batch(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.ndim == 4


def _is_nested(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and _is_image_batch(v) for k, v in value.items())


def image_entries(prediction: Mapping[str, Any], keys: Sequence[str] | None = None
                  ) -> dict[str, torch.Tensor | Mapping[str, torch.Tensor]]:
    """The entries of a prediction dict that are written: ``keys`` (each must be a 4-D tensor
    or a mapping of them) or, with ``keys=None``, every 4-D tensor entry and every mapping of
    4-D tensors."""
    if keys is None:
        return {k: v for k, v in prediction.items()
                if k != STEM_KEY and (_is_image_batch(v) or (_is_nested(v) and v))}
    out = {}
    for key in keys:
        if key not in prediction:
            raise KeyError(f"TextureWriter: prediction has no entry {key!r} "
                           f"(entries: {sorted(prediction)})")
        value = prediction[key]
        if not (_is_image_batch(value) or _is_nested(value)):
            if isinstance(value, torch.Tensor):
                shape = tuple(value.shape)
            elif isinstance(value, Mapping):
                shape = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                         for k, v in value.items()}
            else:
                shape = type(value).__name__
            raise ValueError(f"TextureWriter: entry {key!r} is not an image batch "
                             f"[B,C,H,W] nor a mapping of them (got {shape})")
        out[key] = value
    return out


def _check_format(fmt: str, what: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"TextureWriter: {what} must be one of {sorted(FORMATS)}, got {fmt!r}")
    return fmt


class TextureWriter(BasePredictionWriter):
    """Writes predicted textures as ``<output_dir>/<name>/<stem>.<ext>`` and nested entries as
    ``<output_dir>/<name>/<stem>/<sub>.<ext>`` (see the module docs).

    Args:
        output_dir: the folder (created); ``None``: ``<trainer.default_root_dir>/predictions``.
        keys: the image entries to write; ``None``: every 4-D tensor entry of the prediction
            and every mapping of 4-D tensors.
        format: ``"png16"`` (default), ``"png8"``, ``"exr"`` or ``"tif"``.
        formats: entry name -> format for the entries written in another format than
            ``format`` (e.g. ``{gain: exr, bias: exr}``: signed maps); None: none.
        clamp: clamp values of the entries written as PNG to [0, 1] before writing (default
            ``True``; ``False``: out-of-range values are an error). Float formats are never
            clamped.
        overwrite: replace existing files (default ``True``); ``False`` keeps them.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        keys: list[str] | None = None,
        format: Literal["png16", "png8", "exr", "tif"] = "png16",
        formats: dict[str, Literal["png16", "png8", "exr", "tif"]] | None = None,
        clamp: bool = True,
        overwrite: bool = True,
    ):
        super().__init__(write_interval="batch")
        self.format = _check_format(format, "format")
        self.formats = {str(name): _check_format(fmt, f"formats[{name!r}]")
                        for name, fmt in (formats or {}).items()}
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.keys = list(keys) if keys is not None else None
        self.clamp = clamp
        self.overwrite = overwrite
        self.written: int = 0  # files written by this rank (for logs and tests)

    def format_of(self, name: str) -> str:
        """The format entry ``name`` is written in."""
        return self.formats.get(name, self.format)

    @property
    def extension(self) -> str:
        """The extension of ``format`` (entries without a ``formats`` choice)."""
        return FORMATS[self.format][0]

    def directory(self, trainer: pl.Trainer | None = None) -> Path:
        if self.output_dir is not None:
            return self.output_dir
        root = trainer.default_root_dir if trainer is not None else os.getcwd()
        return Path(root) / "predictions"

    def path(self, name: str, stem: str, trainer: pl.Trainer | None = None,
             sub: str | None = None) -> Path:
        """``<dir>/<name>/<stem>.<ext>``, or ``<dir>/<name>/<stem>/<sub>.<ext>`` for a nested
        entry's ``sub``."""
        ext = FORMATS[self.format_of(name)][0]
        folder = self.directory(trainer) / name
        return folder / f"{stem}{ext}" if sub is None else folder / stem / f"{sub}{ext}"

    def _write(self, name: str, images: torch.Tensor, stems: list[str],
               trainer: pl.Trainer | None, sub: str | None = None) -> list[Path]:
        what = name if sub is None else f"{name}[{sub!r}]"
        if images.shape[0] != len(stems):
            raise ValueError(f"TextureWriter: entry {what} holds {images.shape[0]} "
                             f"images for {len(stems)} stems")
        fmt = self.format_of(name)
        _, bits = FORMATS[fmt]
        png = FORMATS[fmt][0] == ".png"
        images = images.detach().to("cpu", torch.float32)
        if png and self.clamp:
            images = images.clamp(0, 1)  # NaN stays NaN: write_texture refuses it
        written = []
        for stem, image in zip(stems, images):
            target = self.path(name, stem, trainer, sub)
            if not self.overwrite and target.exists():
                continue
            written.append(write_texture(target, image, bits=bits, check_range=png))
        return written

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
        written = []
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                written += self._write(name, value, stems, trainer)
            else:
                for sub, images in value.items():
                    written += self._write(name, images, stems, trainer, sub)
        self.written += len(written)
        return written

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           prediction: Any, batch_indices: Sequence[int] | None, batch: Any,
                           batch_idx: int, dataloader_idx: int) -> None:
        self.write_prediction(prediction, trainer, batch)
