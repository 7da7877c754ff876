"""The whole chain through `lift run` with the shipped stage configs at toy sizes: prior ->
bank -> test bank -> StyleGAN-W+ translator -> ResShift upsampler -> pipeline (Eq. 1-16) ->
Tables -> report. Checks what a user gets: studio textures of the right size, range and bit
depth, the Eq. 15 maps, expressions, the tables' JSON, and a report whose links resolve."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
import yaml

from lift.data.io import read_texture
from lift.run.runner import run

ROOT = Path(__file__).resolve().parents[1]
TINY_G = {"z_dim": 16, "w_dim": 16, "mapping_layers": 2, "channel_base": 128, "channel_max": 16}
TINY_D = {"channel_base": 128, "channel_max": 16, "mbstd_group_size": 2}
FAST = {"trainer.limit_val_batches": 0, "trainer.num_sanity_val_steps": 0,
        "trainer.enable_progress_bar": False}
INVERT = {"model.init_args.settings.init_args.schedule.init_args.steps": 2,
          "model.init_args.settings.init_args.w_stats_samples": 256,
          "trainer.enable_progress_bar": False}


def _recipe(out: Path) -> Path:
    prior_args = {**FAST, "trainer.max_steps": 4, "trainer.limit_train_batches": 2,
                  **{f"model.init_args.generator.init_args.{k}": v for k, v in TINY_G.items()},
                  **{f"model.init_args.discriminator.init_args.{k}": v for k, v in TINY_D.items()}}
    recipe = {
        "name": "tiny_chain", "seeds": [0], "profile": "quickstart",
        "trainer": ["configs/trainer/cpu.yaml"],
        "stages": {
            "prior": {"command": "fit", "configs": ["configs/prior/stylegan2_quickstart.yaml"],
                      "args": prior_args, "outputs": {"checkpoint": "last.ckpt"}},
            "invert": {"command": "predict",
                       "configs": ["configs/invert/stylegan2_quickstart.yaml"], "args": INVERT,
                       "inputs": {"model.init_args.checkpoint": "prior.checkpoint"},
                       "outputs": {"bank": "bank"}},
            "invert_test": {"command": "predict",
                            "configs": ["configs/invert/stylegan2_quickstart.yaml"],
                            "args": {**INVERT, "data.init_args.predict_split": "test"},
                            "inputs": {"model.init_args.checkpoint": "prior.checkpoint"},
                            "outputs": {"bank": "bank"}},
            "translate": {
                "command": "fit", "configs": ["configs/translate/stylegan_wplus_quickstart.yaml"],
                "args": {**FAST, "trainer.max_steps": 2},
                "inputs": {
                    "model.init_args.translator.init_args.checkpoint": "prior.checkpoint",
                    "model.init_args.translator.init_args.sampler.init_args.bank": "invert.bank",
                    "model.init_args.translator.init_args.paired_bank": "invert.bank"},
                "outputs": {"checkpoint": "last.ckpt"}},
            "translate_phone": {"command": "fit",
                              "configs": ["configs/translate/phone_texture_quickstart.yaml"],
                              "args": {"trainer.enable_progress_bar": False},
                              "outputs": {"checkpoint": "last.ckpt"}},
            "upsample": {
                "command": "fit", "configs": ["configs/upsample/resshift_train_inference.yaml"],
                "args": {**FAST, "trainer.max_steps": 2, "data.init_args.crop_size": 64,
                         "model.init_args.upsampler.init_args.denoiser.init_args."
                         "block_out_channels": [8, 8, 8],
                         "model.init_args.upsampler.init_args.denoiser.init_args."
                         "norm_num_groups": 4,
                         "model.init_args.num_inference_steps": 2},
                "outputs": {"checkpoint": "last.ckpt"}},
        },
        "methods": {
            "ours": {"configs": ["configs/pipeline/studio.yaml",
                                 "configs/fragments/quickstart_data.yaml"],
                     "args": {"model.init_args.num_inference_steps": 2,
                              "trainer.enable_progress_bar": False},
                     "inputs": {"model.init_args.translator": "translate.checkpoint",
                                "model.init_args.eval_bank": "invert_test.bank",
                                "model.init_args.upsampler": "upsample.checkpoint"}},
            "phone_texture": {"configs": ["configs/pipeline/studio.yaml",
                                          "configs/fragments/quickstart_data.yaml"],
                              "args": {"model.init_args.upsampler": None,
                                       "model.init_args.translator_resolution": 64,
                                       "trainer.enable_progress_bar": False},
                              "inputs": {"model.init_args.translator":
                                         "translate_phone.checkpoint"}},
        },
        "tables": [{"table": 1, "split": "paired_test", "metrics": ["psnr", "ssim", "lpips"],
                    "rows": {"ours": "ours", "phone_texture": "phone_texture"}},
                   {"table": 2, "split": "unpaired_test", "metrics": ["faceid"],
                    "rows": {"ours": "ours", "phone_texture": "phone_texture"}}],
        "evaluation": {"source": {"class_path": "lift.data.SyntheticSource",
                                  "init_args": {"profile": "quickstart", "seed": 0}}},
    }
    path = out / "tiny_chain.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.links.append(value)


@pytest.mark.chain
def test_the_whole_chain_from_phone_textures_to_tables_and_report(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # recipe config paths are relative to the repository
    out = tmp_path / "run"
    assert run(_recipe(tmp_path), out=out, stream=False) == 0
    record = json.loads((out / "run.json").read_text())
    assert all(u["status"] == "done" for runs in record["stages"].values() for u in runs.values())

    predictions = out / "predictions" / "ours" / "seed0"
    from lift.data import SyntheticSource

    splits = SyntheticSource("quickstart", 0).splits()
    stems = splits["paired_test"] + splits["unpaired_test"]
    for stem in stems:
        studio = read_texture(predictions / "studio" / f"{stem}.png")
        assert studio.shape == (3, 256, 256)                      # the studio resolution
        assert 0 <= float(studio.min()) and float(studio.max()) <= 1
        levels = torch.unique((studio * 65535).round())
        assert levels.numel() > 256                               # really 16-bit
        assert read_texture(predictions / "translated" / f"{stem}.png").shape == (3, 64, 64)
        assert (predictions / "gain" / f"{stem}.exr").is_file()
        assert (predictions / "bias" / f"{stem}.exr").is_file()
    expressions = list((predictions / "expressions").rglob("*.png"))
    assert expressions, "no Eq. 16 expression textures written"

    table = json.loads((out / "tables" / "table1.json").read_text())
    assert set(table["rows"]) == {"ours", "phone_texture"}
    assert table["rows"]["ours"]["psnr"]["n"] == 1 and table["split"] == "paired_test"
    assert json.loads((out / "tables" / "table2.json").read_text())["rows"]["ours"]["faceid"]

    index = out / "report" / "index.html"
    parser = _Links()
    parser.feed(index.read_text())
    assert parser.links
    missing = [link for link in parser.links if not (index.parent / link).exists()]
    assert not missing, missing

    # Nothing changed: a rerun starts no stage.
    before = (out / "run.json").read_text()
    assert run(_recipe(tmp_path), out=out, stream=False) == 0
    after = json.loads((out / "run.json").read_text())
    assert [u["run_id"] for runs in after["stages"].values() for u in runs.values()] == [
        u["run_id"] for runs in json.loads(before)["stages"].values() for u in runs.values()]
