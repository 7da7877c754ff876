"""Lightning callbacks shared by the stages (side effects live here, not in plugins).

* :class:`ImageGridLogger`: the validation image grid (sRGB-encoded, labelled, >= 128-px tiles),
  written as a PNG under the run's log directory and sent to TensorBoard.
* :class:`StageCheckpoint`: a :class:`~lightning.pytorch.callbacks.ModelCheckpoint` whose
  directory is the run directory ``trainer.default_root_dir`` (one key per stage config),
  whose ``last.ckpt`` always holds the final state of a finished run, is refreshed during
  training at a step or time interval (a killed run loses at most that), is written
  atomically, and carries every rank's RNG streams (a resumed run continues them).
"""

from __future__ import annotations

import math
import os
import random
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from lift.atomic import atomic_path
from lift.colour import linear_to_srgb

# ----------------------------------------------------------------------------- image grids

#: Rows whose name ends with one of these (case-insensitive) are data, not colour: they are
#: shown as they are, without the sRGB curve. Single-channel rows are always shown as they are.
NON_COLOUR_SUFFIXES: tuple[str, ...] = ("mask", "gradient")

_BACKGROUND = 255  # white: padding, empty cells and label margins
_INK = (0, 0, 0)


def is_colour_row(name: str, batch: torch.Tensor,
                  non_colour_suffixes: Iterable[str] = NON_COLOUR_SUFFIXES,
                  non_colour_names: Iterable[str] = ()) -> bool:
    """Whether a grid row holds linear colour (sRGB-encoded for display) or data (shown as is)."""
    if batch.ndim == 4 and batch.shape[1] == 1:
        return False
    lowered = name.lower().strip()
    if name in set(non_colour_names):
        return False
    return not any(lowered.endswith(s.lower()) for s in non_colour_suffixes)


def tile_size(images: Mapping[str, torch.Tensor], min_tile: int = 128) -> tuple[int, int]:
    """The grid's tile size: the largest row's size, scaled by the smallest integer factor
    that brings its shorter side to at least ``min_tile`` (so nearest upscaling keeps every
    source pixel a whole block)."""
    h = max(int(b.shape[-2]) for b in images.values())
    w = max(int(b.shape[-1]) for b in images.values())
    factor = max(1, math.ceil(min_tile / max(1, min(h, w))))
    return h * factor, w * factor


def image_rows(
    images: Mapping[str, torch.Tensor],
    max_items: int = 8,
    *,
    min_tile: int = 128,
    padding: int = 2,
    non_colour_suffixes: Iterable[str] = NON_COLOUR_SUFFIXES,
    non_colour_names: Iterable[str] = (),
) -> torch.Tensor:
    """Stack named image batches as rows of one display grid (row order = dict order).

    Every row is brought to :func:`tile_size` with nearest upscaling (low-res rows included),
    colour rows are encoded with the sRGB curve (:func:`lift.colour.linear_to_srgb`), masks /
    single-channel / non-colour rows (:func:`is_colour_row`) are shown as they are. Short rows
    are padded with background tiles. Returns float ``[3, H, W]`` display values in [0, 1].
    """
    size = tile_size(images, min_tile)
    rows = []
    for name, batch in images.items():
        batch = batch[:max_items].detach().float().cpu()
        if batch.ndim == 3:  # one image [C,H,W]
            batch = batch[None]
        colour = is_colour_row(name, batch, non_colour_suffixes, non_colour_names)
        batch = batch.clamp(0, 1)
        if colour:
            batch = linear_to_srgb(batch).clamp(0, 1)
        if batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)
        elif batch.shape[1] != 3:
            raise ValueError(f"image grid row {name!r}: expected 1 or 3 channels, "
                             f"got shape {tuple(batch.shape)}")
        if tuple(batch.shape[-2:]) != size:
            batch = torch.nn.functional.interpolate(batch, size=size, mode="nearest")
        rows.append(batch)
    ncol = max(r.shape[0] for r in rows)
    padded = [torch.cat([r, r.new_ones(ncol - r.shape[0], *r.shape[1:])]) for r in rows]
    return make_grid(torch.cat(padded), nrow=ncol, padding=padding, pad_value=1.0)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, ValueError, OSError):
        return ImageFont.load_default()


def _text_size(font: Any, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return right - left, bottom - top


def _fit(font: Any, text: str, width: int) -> str:
    """``text`` shortened with '..' until it fits ``width`` pixels."""
    if _text_size(font, text)[0] <= width:
        return text
    while len(text) > 1 and _text_size(font, text + "..")[0] > width:
        text = text[:-1]
    return text + ".."


def labelled_grid(
    images: Mapping[str, torch.Tensor],
    max_items: int = 8,
    *,
    column_labels: Sequence[str] | None = None,
    min_tile: int = 128,
    font_size: int = 14,
    padding: int = 2,
    non_colour_suffixes: Iterable[str] = NON_COLOUR_SUFFIXES,
    non_colour_names: Iterable[str] = (),
) -> np.ndarray:
    """:func:`image_rows` with the row names on the left and column labels on top.

    ``column_labels`` (e.g. the stems of the items) label the columns; missing ones are the
    column index. Returns uint8 ``[H, W, 3]`` (sRGB display values).
    """
    grid = image_rows(images, max_items, min_tile=min_tile, padding=padding,
                      non_colour_suffixes=non_colour_suffixes, non_colour_names=non_colour_names)
    body = grid.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    th, tw = tile_size(images, min_tile)
    names = [str(k) for k in images]
    ncol = (body.shape[1] - padding) // (tw + padding)
    labels = list(column_labels or [])[:ncol]
    labels += [str(i) for i in range(len(labels), ncol)]

    font = _font(font_size)
    gap = max(4, font_size // 2)
    line_h = max(_text_size(font, "Ag")[1], _text_size(font, "0")[1])
    left = max(_text_size(font, n)[0] for n in names) + 2 * gap
    top = line_h + 2 * gap
    canvas = Image.new("RGB", (left + body.shape[1], top + body.shape[0]),
                       (_BACKGROUND,) * 3)
    canvas.paste(Image.fromarray(body), (left, top))
    draw = ImageDraw.Draw(canvas)
    for r, name in enumerate(names):  # row labels, vertically centred on the row
        y = top + padding + r * (th + padding) + th // 2
        draw.text((gap, y), name, fill=_INK, font=font, anchor="lm")
    for c, label in enumerate(labels):  # column labels, centred above the column
        x = left + padding + c * (tw + padding) + tw // 2
        draw.text((x, top - gap), _fit(font, label, tw - 2), fill=_INK, font=font, anchor="md")
    return np.asarray(canvas)


class ImageGridLogger(pl.Callback):
    """Writes ``module.validation_images`` as a labelled PNG grid after each validation epoch.

    Rows are the module's named image batches (e.g. phone / translated / studio), labelled on
    the left; columns are labelled on top with ``module.validation_stems`` (an optional
    ``list[str]``, e.g. the subjects' stems) or else the item index.

    Display: textures are linear light, so colour rows are encoded with the sRGB transfer curve
    (IEC 61966-2-1, :func:`lift.colour.linear_to_srgb`). Rows that are data rather than colour
    are shown as they are: single-channel rows, rows whose name ends with one of
    ``non_colour_suffixes`` (default ``"mask"``, ``"gradient"``, e.g. ``phone_gradient``), and
    names listed in the module's optional ``validation_non_colour`` attribute. Every tile's
    shorter side is at least ``min_tile`` pixels (nearest upscaling by an integer factor, so
    pixels stay visible); rows of lower resolution are brought to the grid's tile size the same
    way.

    Output: ``<log_dir>/images/<stage>_step<N>.png`` (atomic write; ``log_dir`` is
    ``trainer.log_dir``, ``<default_root_dir>/logs/version_N`` with lift's default loggers),
    and the same grid as ``val/<stage>`` to every logger whose experiment has ``add_image``
    (TensorBoard).
    """

    def __init__(self, max_items: int = 8, min_tile: int = 128, font_size: int = 14,
                 non_colour_suffixes: tuple[str, ...] = NON_COLOUR_SUFFIXES):
        super().__init__()
        if min_tile < 1:
            raise ValueError(f"min_tile must be >= 1, got {min_tile}")
        self.max_items = max_items
        self.min_tile = min_tile
        self.font_size = font_size
        self.non_colour_suffixes = tuple(non_colour_suffixes)

    def render(self, pl_module: pl.LightningModule,
               images: Mapping[str, torch.Tensor]) -> np.ndarray:
        """The labelled uint8 ``[H, W, 3]`` grid for ``images`` of ``pl_module``."""
        stems = getattr(pl_module, "validation_stems", None)
        return labelled_grid(
            images, self.max_items, column_labels=[str(s) for s in stems] if stems else None,
            min_tile=self.min_tile, font_size=self.font_size,
            non_colour_suffixes=self.non_colour_suffixes,
            non_colour_names=getattr(pl_module, "validation_non_colour", ()) or (),
        )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # trainer.log_dir broadcasts across ranks when there is no logger: read it on every
        # rank before returning early on the others, or rank 0 waits forever.
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        images = getattr(pl_module, "validation_images", None)
        if not images or not trainer.is_global_zero or trainer.sanity_checking:
            return
        grid = self.render(pl_module, images)
        stage = getattr(pl_module, "stage", "stage") or "stage"
        with atomic_path(log_dir / "images" / f"{stage}_step{trainer.global_step:07d}.png") as tmp:
            Image.fromarray(grid).save(tmp, format="PNG")
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if callable(getattr(experiment, "add_image", None)):
                experiment.add_image(f"val/{stage}", grid, trainer.global_step,
                                     dataformats="HWC")
        pl_module.validation_images = {}


# ----------------------------------------------------------------------------- checkpoints

#: Top-level checkpoint key of the RNG streams: one entry per rank.
RNG_KEY = "lift_rng"


def rng_state() -> dict[str, Any]:
    """This process's global RNG streams (torch CPU and CUDA, NumPy, Python) as plain values
    that ``torch.load(weights_only=True)`` reads back (no NumPy arrays)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "torch.cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": {"version": int(version), "internal": list(internal),
                       "gauss_next": gauss_next}}


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("torch.cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file beside the target, fsync, rename
    (:func:`lift.atomic.atomic_path`): a killed save leaves the earlier checkpoint in place.
    (Lightning's own "atomic" save writes through a temporary file in the system temp
    directory and moves it, which is a copy, not a rename, across file systems.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options, got "
                            f"{storage_options!r}")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class StageCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` for a stage's run directory: one config key, a fixed ``last.ckpt``.

    * ``dirpath`` defaults to ``trainer.default_root_dir`` itself (not the logger's
      ``logs/version_N``), so a stage config names its run directory once
      (``trainer.default_root_dir``) and ``<default_root_dir>/last.ckpt`` is a fixed path: a
      rerun with ``--ckpt_path last`` and the next stage's config find it.
    * ``save_last=True`` and ``enable_version_counter=False`` by default: ``last.ckpt`` is
      overwritten in place (never ``last-v1.ckpt``), also by a fresh run in the same directory.
    * When training ends (``max_steps``/``max_epochs`` reached or early stop), ``last.ckpt`` is
      written with the final state unless a checkpoint was already saved at that step, so a
      finished run's ``last.ckpt`` holds the final step even when validation (and with it the
      epoch-end save) runs only every few epochs. With ``monitor=None`` the top-k file is
      refreshed too; with a monitor it is left to the validation-time saves.
    * ``every_n_train_steps=N`` saves every N optimiser steps, independent of validation.
      A module that makes several optimiser steps a batch (the GAN stages: G, D and the lazy
      regularisers) can step over a multiple of N; the save then happens at the first batch
      past it (Lightning's own rule, ``global_step % N == 0``, would skip it).
      Default ``None``: saves at epoch ends (Lightning's rule: after each validation when
      ``check_val_every_n_epoch != 1``) and at the end of training.
    * Independently of those, ``last.ckpt`` alone is refreshed during training whenever
      ``last_every_n_train_steps`` optimiser steps have passed since the last save (``None``:
      never) or ``last_every_seconds`` of wall time (default 600; ``None``: never; under DDP
      rank 0's clock decides, broadcast to the others), so a killed run loses at most that
      much, whatever the validation schedule. A save that falls on the last batch of an epoch
      moves to the next batch (Lightning 2.6 resumes a checkpoint of an epoch's last batch
      without the next epoch's ``on_train_epoch_start`` hooks and with its progress
      miscounted); with one batch an epoch it is not moved.
    * Writes are atomic (:class:`AtomicCheckpointIO`, installed when the strategy uses
      Lightning's default ``TorchCheckpointIO``).
    * Every checkpoint carries every rank's global RNG streams (torch, CUDA, NumPy, Python;
      key ``lift_rng``); a resumed run restores its rank's at ``on_train_start`` (after the
      sanity check), so random draws continue as in the uninterrupted run. A resume with
      another world size warns and keeps the freshly seeded streams.

    Everything else is ``ModelCheckpoint``'s, including its rules: nothing is saved under
    ``fast_dev_run`` or outside ``fit``.
    """

    def __init__(self, dirpath: str | os.PathLike | None = None, *,
                 save_last: bool | None = True, enable_version_counter: bool = False,
                 last_every_n_train_steps: int | None = None,
                 last_every_seconds: float | None = 600.0, **kwargs: Any):
        super().__init__(dirpath=dirpath, save_last=save_last,
                         enable_version_counter=enable_version_counter, **kwargs)
        if last_every_n_train_steps is not None and last_every_n_train_steps < 1:
            raise ValueError("last_every_n_train_steps must be >= 1 or null, got "
                             f"{last_every_n_train_steps}")
        if last_every_seconds is not None and last_every_seconds <= 0:
            raise ValueError(f"last_every_seconds must be > 0 or null, got {last_every_seconds}")
        self.last_every_n_train_steps = last_every_n_train_steps
        self.last_every_seconds = last_every_seconds
        self._last_saved_time = time.monotonic()
        self._rng_to_restore: dict[str, Any] | None = None
        self._previous_step = 0  # global_step after the previous batch

    def _use_root_dir(self, trainer: pl.Trainer) -> None:
        if self.dirpath is None:
            root = trainer.default_root_dir
            self.dirpath = os.path.realpath(os.path.expanduser(root)) if "://" not in str(root) \
                else root

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._use_root_dir(trainer)
        strategy = trainer.strategy
        if type(getattr(strategy, "_checkpoint_io", None)) in (TorchCheckpointIO, type(None)) \
                and type(strategy.checkpoint_io) is TorchCheckpointIO:
            strategy.checkpoint_io = AtomicCheckpointIO()
        super().setup(trainer, pl_module, stage)

    # --- RNG streams ---------------------------------------------------------------------

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> dict[str, Any] | None:
        state = rng_state()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # dump_checkpoint runs on every rank; only rank 0's dict is written
            states: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(states, state)
        else:
            states = [state]
        checkpoint[RNG_KEY] = states
        return super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
        states = checkpoint.get(RNG_KEY)
        if not states:
            return
        if len(states) != trainer.world_size:
            warnings.warn(f"the checkpoint holds the RNG streams of {len(states)} rank(s), this "
                          f"run has {trainer.world_size}: random draws start from the seed, not "
                          "where the interrupted run left them", stacklevel=2)
            return
        self._rng_to_restore = states[trainer.global_rank]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_saved_time = time.monotonic()
        self._previous_step = trainer.global_step
        if trainer.ckpt_path and trainer.global_step > 0:
            # resumed from a checkpoint of this step: the step interval continues from it (as
            # in the uninterrupted run), and the same step is not saved again
            self._last_global_step_saved = trainer.global_step
        if self._rng_to_restore is not None:
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    # --- interval saves of last.ckpt -----------------------------------------------------

    def _last_due(self, trainer: pl.Trainer) -> bool:
        n = self.last_every_n_train_steps
        due = n is not None and trainer.global_step - max(self._last_global_step_saved, 0) >= n
        if self.last_every_seconds is not None:
            late = time.monotonic() - self._last_saved_time >= self.last_every_seconds
            if trainer.world_size > 1:
                late = bool(trainer.strategy.broadcast(late))
            due = due or late
        return due

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._save_stepped_over(trainer)
        if not self.save_last or (self.last_every_n_train_steps is None
                                  and self.last_every_seconds is None):
            return
        if self._should_skip_saving_checkpoint(trainer) or not self._last_due(trainer):
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch \
                and trainer.num_training_batches != 1:
            # Resumed from a save at the last batch of an epoch (or at its end), Lightning 2.6
            # skips the next epoch's on_train_epoch_start hooks and miscounts its progress:
            # save one batch later, at the next epoch's first batch.
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_stepped_over(self, trainer: pl.Trainer) -> None:
        """The ``every_n_train_steps`` save for a batch that stepped over a multiple of N."""
        n, step, previous = self._every_n_train_steps, trainer.global_step, self._previous_step
        self._previous_step = step
        if n < 1 or step % n == 0 or step // n == previous // n:
            return  # Lightning's rule has it (or no multiple was passed)
        if self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self.monitor is not None and self.monitor not in candidates:
            self._defer_save_until_validation = True
            return
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self._last_saved_time = time.monotonic()

    def _find_last_checkpoints(self, trainer: pl.Trainer) -> set[str]:
        # `--ckpt_path last` is resolved before `setup`: resolve the directory here too.
        self._use_root_dir(trainer)
        return super()._find_last_checkpoints(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Not ModelCheckpoint.on_train_end: that one saves `last` even under fast_dev_run.
        # A module with no optimiser (a training-free baseline estimating statistics) ends at
        # global step 0, which ModelCheckpoint takes for "already saved": save it once anyway.
        never_saved = trainer.global_step == 0 and not self.last_model_path
        if self._should_skip_saving_checkpoint(trainer) and not (
                never_saved and not trainer.fast_dev_run and not trainer.sanity_checking):
            return
        candidates = self._monitor_candidates(trainer)
        if self.monitor is None:
            self._save_topk_checkpoint(trainer, candidates)
        if self.save_last:
            self._save_last_checkpoint(trainer, candidates)
