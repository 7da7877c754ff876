"""The sRGB transfer curve (lift.colour) and the validation image grid (ImageGridLogger)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image

from lift import atomic
from lift.callbacks import ImageGridLogger, image_rows, labelled_grid, tile_size
from lift.colour import linear_to_srgb, srgb_to_linear

# --- lift.colour ------------------------------------------------------------------------------


def test_srgb_hand_computed_values():
    x = torch.tensor([0.0, 0.0031308, 0.001, 0.5, 0.18, 1.0], dtype=torch.float64)
    # 0.001 -> 12.92 * 0.001; 0.5 -> 1.055 * 0.5 ** (1 / 2.4) - 0.055; 0.18 (mid grey) -> 0.4614
    expected = torch.tensor([0.0, 0.04045, 0.01292, 0.735357, 0.461356, 1.0], dtype=torch.float64)
    torch.testing.assert_close(linear_to_srgb(x), expected, atol=2e-6, rtol=0)
    torch.testing.assert_close(srgb_to_linear(expected), x, atol=2e-6, rtol=0)


def test_srgb_round_trip_torch_and_numpy():
    x = torch.linspace(0, 1, 10001, dtype=torch.float64)
    torch.testing.assert_close(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-12, rtol=0)
    y = np.linspace(0, 1, 257)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(y)), y, atol=1e-12)
    assert isinstance(linear_to_srgb(y), np.ndarray)
    # The two segments meet: the curve is continuous at the cut.
    cut = torch.tensor([0.0031308 - 1e-9, 0.0031308 + 1e-9], dtype=torch.float64)
    assert abs(float(linear_to_srgb(cut).diff())) < 1e-6


def test_srgb_keeps_the_shape_and_negative_values_finite():
    x = torch.tensor([[-0.1, 0.2], [1.5, 0.0]])
    y = linear_to_srgb(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert float(y[0, 0]) == pytest.approx(-0.1 * 12.92)


# --- the grid --------------------------------------------------------------------------------


def _images():
    return {
        "phone": torch.full((3, 3, 16, 16), 0.5),
        "translated": torch.rand(3, 3, 16, 16),
        "studio": torch.rand(2, 3, 32, 32),  # the largest row sets the tile size
    }


def test_tiles_are_at_least_min_tile_and_low_res_rows_are_upscaled():
    images = _images()
    assert tile_size(images) == (128, 128)  # 32 px * 4
    assert tile_size(images, min_tile=100) == (128, 128)  # integer factor: ceil(100 / 32) = 4
    assert tile_size({"a": torch.zeros(1, 3, 256, 256)}) == (256, 256)  # never downscaled
    grid = image_rows(images, min_tile=128, padding=2)
    assert grid.shape == (3, 3 * 128 + 4 * 2, 3 * 128 + 4 * 2)
    # Nearest upscaling: a 16-px row becomes 8x8 blocks of one value.
    ramp = torch.arange(16.0).div(15).expand(1, 3, 16, 16).contiguous()
    g = image_rows({"ramp": ramp}, padding=0, non_colour_suffixes=("ramp",))
    assert g.shape[-1] == 128
    assert torch.equal(g[0, 0, :8], ramp[0, 0, 0, 0].expand(8))
    assert torch.equal(g[0, 0, 8:16], ramp[0, 0, 0, 1].expand(8))


def test_srgb_is_applied_to_colour_rows_only():
    half = torch.full((1, 3, 8, 8), 0.5)
    grid = labelled_grid({"phone": half, "phone_mask": half[:, :1], "phone_gradient": half},
                         padding=0, font_size=10)
    h = grid.shape[0]
    # Rows are 128 px high and the label margin is on top: sample each row's tile centre.
    top = h - 3 * 128
    right = grid.shape[1] - 64
    colour, mask, gradient = (grid[top + 64 + 128 * r, right] for r in range(3))
    assert tuple(colour) == (188, 188, 188)  # 0.5 linear -> 0.7354 sRGB -> 187.5 -> 188
    assert tuple(mask) == (128, 128, 128)  # data rows shown as they are (0.5 -> 128)
    assert tuple(gradient) == (128, 128, 128)


def test_row_and_column_labels_are_drawn_in_margins():
    images = _images()
    bare = image_rows(images)
    grid = labelled_grid(images, column_labels=["s000001", "s000002", "s000003"])
    assert grid.shape[0] > bare.shape[1] and grid.shape[1] > bare.shape[2]
    top = grid.shape[0] - bare.shape[1]
    left = grid.shape[1] - bare.shape[2]
    assert top >= 10 and left >= 30  # room for one line / the longest row name
    label_row = grid[:top, left:]  # column labels
    label_col = grid[top:, :left]  # row labels
    assert (label_row < 128).any(), "no column label drawn"
    assert (label_col < 128).any(), "no row label drawn"
    # Every row has ink beside it (one label per row).
    for r in range(3):
        band = label_col[2 + r * 130: 2 + r * 130 + 128]
        assert (band < 128).any(), f"row {r} has no label"
    # The default labels are the column indices: different text, different pixels.
    other = labelled_grid(images)
    assert not np.array_equal(other[:top], grid[:top])


class _Stage(pl.LightningModule):
    stage = "toy"

    def __init__(self):
        super().__init__()
        self.validation_images = {"phone": torch.full((2, 3, 16, 16), 0.5),
                                  "phone_mask": torch.ones(2, 1, 16, 16)}
        self.validation_stems = ["alice", "bob"]


class _FakeExperiment:
    def __init__(self):
        self.images = []

    def add_image(self, tag, image, step, dataformats="CHW"):
        self.images.append((tag, np.asarray(image), step, dataformats))


def _fake_trainer(log_dir: Path, loggers=()):
    return SimpleNamespace(log_dir=str(log_dir), default_root_dir=str(log_dir), global_step=42,
                           is_global_zero=True, sanity_checking=False, loggers=list(loggers))


def test_grid_file_is_written_atomically_and_sent_to_image_loggers(tmp_path, monkeypatch):
    used = []
    real = atomic.atomic_path

    def spy(path):
        used.append(Path(path))
        return real(path)

    monkeypatch.setattr("lift.callbacks.atomic_path", spy)
    experiment = _FakeExperiment()
    loggers = [SimpleNamespace(experiment=experiment), SimpleNamespace(experiment=object())]
    module = _Stage()
    ImageGridLogger().on_validation_epoch_end(_fake_trainer(tmp_path, loggers), module)
    target = tmp_path / "images" / "toy_step0000042.png"
    assert used == [target] and target.is_file()
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left
    saved = np.asarray(Image.open(target))
    assert saved.shape[0] >= 128 + 10 and saved.shape[1] >= 2 * 128 + 30
    [(tag, image, step, fmt)] = experiment.images
    assert (tag, step, fmt) == ("val/toy", 42, "HWC")
    np.testing.assert_array_equal(image, saved)
    assert module.validation_images == {}


def test_non_zero_rank_reads_log_dir_and_writes_nothing(tmp_path):
    reads = []

    class Trainer(SimpleNamespace):
        @property
        def log_dir(self):
            reads.append(1)
            return str(tmp_path)

    trainer = Trainer(default_root_dir=str(tmp_path), global_step=1, is_global_zero=False,
                      sanity_checking=False, loggers=[])
    ImageGridLogger().on_validation_epoch_end(trainer, _Stage())
    assert reads == [1] and not (tmp_path / "images").exists()


def test_tensorboard_logger_receives_the_grid(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = TensorBoardLogger(save_dir=tmp_path, name="logs", version=0)
    trainer = _fake_trainer(tmp_path / "logs" / "version_0", [logger])
    ImageGridLogger().on_validation_epoch_end(trainer, _Stage())
    logger.experiment.flush()
    events = list((tmp_path / "logs" / "version_0").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent), size_guidance={"images": 0})
    acc.Reload()
    assert "val/toy" in acc.Tags()["images"]
    [event] = acc.Images("val/toy")
    assert event.step == 42 and event.width >= 2 * 128 and event.height >= 128


def test_trainer_run_writes_the_grid_under_the_loggers_version_dir(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    from toy_stage import TinyData, TinyRegressor

    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", enable_progress_bar=False,
                         enable_checkpointing=False, default_root_dir=tmp_path,
                         num_sanity_val_steps=0, enable_model_summary=False,
                         logger=TensorBoardLogger(tmp_path, name="logs", version=3),
                         callbacks=[ImageGridLogger()])
    trainer.fit(TinyRegressor(), TinyData(n=4))
    [png] = (tmp_path / "logs" / "version_3" / "images").glob("toy_step*.png")
    grid = np.asarray(Image.open(png))
    assert grid.shape[0] >= 128 and grid.shape[1] >= 2 * 128
