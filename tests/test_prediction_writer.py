"""TextureWriter: <output_dir>/<name>/<stem>.<ext> for every stage's predicted textures."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from lift.data.io import exr_available, read_texture
from lift.prediction_writer import TextureWriter, image_entries
from toy_stage import TinyData, TinyRegressor


def _fine_ramp(n: int = 2, size: int = 8) -> torch.Tensor:
    """Values 0.3 + k/10000: neighbours differ by far less than 1/255."""
    k = torch.arange(n * 3 * size * size, dtype=torch.float64).reshape(n, 3, size, size)
    return (0.3 + k / 10000).float()


def test_png16_round_trip_keeps_differences_below_one_level_of_8_bit(tmp_path):
    images = _fine_ramp()
    writer = TextureWriter(tmp_path, format="png16")
    paths = writer.write_prediction({"stem": ["a", "b"], "studio": images})
    assert paths == [tmp_path / "studio" / "a.png", tmp_path / "studio" / "b.png"]
    back = torch.stack([read_texture(p) for p in paths])
    assert (back - images).abs().max() <= 0.5 / 65535 + 1e-7
    # Every distinct input value stays distinct (8 bits would merge ~39 neighbours into one).
    assert back.unique().numel() == images.unique().numel()


@pytest.mark.skipif(not exr_available(), reason="no OpenEXR writer (OpenCV or openexr)")
def test_exr_round_trip_is_exact(tmp_path):
    images = _fine_ramp()
    writer = TextureWriter(tmp_path, format="exr")
    paths = writer.write_prediction({"stem": ["a", "b"], "studio": images})
    assert [p.name for p in paths] == ["a.exr", "b.exr"]
    back = torch.stack([read_texture(p) for p in paths])
    assert torch.equal(back, images)


def test_keys_select_entries_and_non_images_are_skipped(tmp_path):
    prediction = {
        "stem": ["s1"], "upsampled": torch.rand(1, 3, 4, 4), "mask": torch.rand(1, 1, 4, 4),
        "low_res": torch.rand(1, 3, 2, 2), "latent": torch.rand(1, 18, 512),
        "loss": torch.tensor(0.5), "note": "text",
    }
    assert set(image_entries(prediction)) == {"upsampled", "mask", "low_res"}
    writer = TextureWriter(tmp_path / "all")
    writer.write_prediction(prediction)
    assert sorted(p.relative_to(tmp_path / "all").as_posix()
                  for p in (tmp_path / "all").rglob("*.png")) == [
        "low_res/s1.png", "mask/s1.png", "upsampled/s1.png"]
    assert read_texture(tmp_path / "all" / "mask" / "s1.png", channels=1).shape == (1, 4, 4)
    chosen = TextureWriter(tmp_path / "some", keys=["upsampled", "mask"])
    chosen.write_prediction(prediction)
    assert sorted(p.parent.name for p in (tmp_path / "some").rglob("*.png")) == [
        "mask", "upsampled"]
    with pytest.raises(KeyError, match="'studio'"):
        TextureWriter(tmp_path, keys=["studio"]).write_prediction(prediction)
    with pytest.raises(ValueError, match="'latent' is not an image batch"):
        TextureWriter(tmp_path, keys=["latent"]).write_prediction(prediction)


def test_errors_and_options(tmp_path):
    with pytest.raises(ValueError, match="format"):
        TextureWriter(tmp_path, format="jpeg")
    writer = TextureWriter(tmp_path)
    with pytest.raises(ValueError, match="2 images for 1 stems"):
        writer.write_prediction({"stem": ["a"], "x": torch.rand(2, 3, 4, 4)})
    with pytest.raises(KeyError, match="stem"):
        writer.write_prediction({"x": torch.rand(1, 3, 4, 4)})
    # The stems may come from the batch; overshoot is clamped.
    [path] = writer.write_prediction({"x": torch.full((1, 3, 4, 4), 1.2)}, batch={"stem": ["b"]})
    assert torch.equal(read_texture(path), torch.ones(3, 4, 4))
    assert writer.write_prediction(None) == []
    # overwrite=False keeps what is there.
    keep = TextureWriter(tmp_path, overwrite=False)
    assert keep.write_prediction({"stem": ["b"], "x": torch.zeros(1, 3, 4, 4)}) == []
    assert torch.equal(read_texture(path), torch.ones(3, 4, 4))


def test_trainer_predict_writes_every_stem(tmp_path):
    writer = TextureWriter(keys=["image", "mask"])
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[writer])
    trainer.predict(TinyRegressor(size=8), TinyData(n=5, batch_size=2),
                    return_predictions=False)
    out = tmp_path / "predictions"  # the default: <default_root_dir>/predictions
    stems = [f"item{i:03d}" for i in range(5)]
    assert sorted(p.stem for p in (out / "image").glob("*.png")) == stems
    assert sorted(p.stem for p in (out / "mask").glob("*.png")) == stems
    assert writer.written == 10
    image = read_texture(out / "image" / "item000.png")
    assert image.shape == (3, 8, 8) and image[:, 0, 0].eq(0).all() and image.max() > 0
    assert not list(tmp_path.rglob(".*.tmp*"))  # atomic writes leave no temporary behind


def test_lift_predict_with_the_writer_added_on_the_command_line(tmp_path):
    import yaml

    from lift.cli import main

    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({
        "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                    "default_root_dir": str(tmp_path / "run")},
        "model": {"class_path": "toy_stage.TinyRegressor"},
        "data": {"class_path": "toy_stage.TinyData", "init_args": {"n": 3}},
    }))
    assert main(["predict", "--config", str(config),
                 "--trainer.callbacks+=lift.prediction_writer.TextureWriter",
                 f"--trainer.callbacks.output_dir={tmp_path / 'out'}",
                 "--trainer.callbacks.keys=[mask]", "--return_predictions=false"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == [
        "item000.png", "item001.png", "item002.png", "mask"]


# --- nested entries, per-entry formats, clamping only for PNG ------------------------------------


def test_nested_entries_write_one_file_per_stem_and_name(tmp_path):
    images = _fine_ramp(2, 8)
    prediction = {"stem": ["s1", "s2"], "studio": images,
                  "expressions": {"smile": images * 0.5, "blink": images * 0.25},
                  "stats": {"loss": torch.tensor(1.0)}}  # not images: ignored with keys=None
    assert set(image_entries(prediction)) == {"studio", "expressions"}
    paths = TextureWriter(tmp_path).write_prediction(prediction)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths) == [
        "expressions/s1/blink.png", "expressions/s1/smile.png",
        "expressions/s2/blink.png", "expressions/s2/smile.png",
        "studio/s1.png", "studio/s2.png"]
    back = read_texture(tmp_path / "expressions" / "s2" / "smile.png")
    assert (back - images[1] * 0.5).abs().max() <= 0.5 / 65535 + 1e-7
    # An empty mapping (a subject without expressions) writes nothing, also when named.
    assert TextureWriter(tmp_path / "e", keys=["expressions"]).write_prediction(
        {"stem": ["s"], "expressions": {}}) == []
    with pytest.raises(ValueError, match="'stats' is not an image batch"):
        TextureWriter(tmp_path, keys=["stats"]).write_prediction(prediction)
    with pytest.raises(ValueError, match=r"expressions\['smile'\] holds 2 images for 1 stems"):
        TextureWriter(tmp_path).write_prediction({"stem": ["a"], "expressions": {
            "smile": torch.rand(2, 3, 4, 4)}})


@pytest.mark.skipif(not exr_available(), reason="no OpenEXR writer (OpenCV or openexr)")
def test_formats_per_entry_and_float_formats_keep_values_outside_0_1(tmp_path):
    bias = torch.linspace(-0.3, 0.2, 3 * 4 * 4).reshape(1, 3, 4, 4)
    gain = torch.full((1, 3, 4, 4), 1.7)
    studio = torch.full((1, 3, 8, 8), 1.2)  # overshoot: clamped in the PNG
    writer = TextureWriter(tmp_path, formats={"gain": "exr", "bias": "exr"})
    paths = writer.write_prediction({"stem": ["a"], "studio": studio, "gain": gain,
                                     "bias": bias})
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths) == [
        "bias/a.exr", "gain/a.exr", "studio/a.png"]
    assert torch.equal(read_texture(tmp_path / "bias" / "a.exr", check_range=False), bias[0])
    assert torch.equal(read_texture(tmp_path / "gain" / "a.exr", check_range=False), gain[0])
    assert torch.equal(read_texture(tmp_path / "studio" / "a.png"), torch.ones(3, 8, 8))
    assert writer.path("gain", "a").name == "a.exr" and writer.extension == ".png"
    # A nested entry takes its name's format.
    writer = TextureWriter(tmp_path, formats={"maps": "tif"})
    [path] = writer.write_prediction({"stem": ["a"], "maps": {"bias": bias}})
    assert path == tmp_path / "maps" / "a" / "bias.tif"
    assert torch.equal(read_texture(path, check_range=False), bias[0])
    # clamp=False: PNG refuses out-of-range values instead of clipping them.
    from lift.data.io import TextureError

    with pytest.raises(TextureError, match="outside"):
        TextureWriter(tmp_path / "raw", clamp=False).write_prediction(
            {"stem": ["a"], "studio": studio})
    with pytest.raises(ValueError, match=r"formats\['gain'\]"):
        TextureWriter(tmp_path, formats={"gain": "jpeg"})
