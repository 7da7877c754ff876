"""TextureDataset / TextureDataModule: resizing, crops, loaders, configs, DDP sharding."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from jsonargparse import ArgumentParser

from lift.data import (
    SyntheticSource,
    TextureDataModule,
    TextureDataset,
    TextureError,
    TextureSource,
)
from lift.data.dataset import resize_texture


class DictSource(TextureSource):
    """An in-memory source: also checks that a third-party TextureSource is enough."""

    def __init__(self, textures: dict[str, dict[str, torch.Tensor]], splits: dict):
        super().__init__()
        self.textures = textures
        self._splits = splits

    def splits(self):
        full = dict.fromkeys(("phone_train", "studio_train", "paired_train", "paired_test",
                              "unpaired_test"), [])
        return {**full, **self._splits}

    def load(self, stem, kind):
        return self.textures[stem][kind]


def _paired(n: int = 5, size: int = 16) -> DictSource:
    g = torch.Generator().manual_seed(0)
    textures = {}
    for i in range(n):
        phone = torch.rand(3, size, size, generator=g)
        # studio = phone and mask = phone's red channel > 0.5: crops must stay aligned
        textures[f"s{i}"] = {"phone": phone, "studio": phone.clone(),
                             "mask": (phone[:1] > 0.5).float()}
    stems = list(textures)
    return DictSource(textures, {"phone_train": stems, "paired_train": stems,
                                 "paired_test": stems[:2], "unpaired_test": stems[:5]})


def test_area_downsampling_is_the_block_mean():
    x = torch.arange(16, dtype=torch.float32).view(1, 4, 4) / 16
    expected = torch.tensor([[0 + 1 + 4 + 5, 2 + 3 + 6 + 7],
                             [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]).float().view(1, 2, 2) / 64
    assert torch.allclose(resize_texture(x, 2), expected)


def test_non_integer_downsampling_is_antialiased():
    x = torch.zeros(1, 9, 9)
    x[:, :, ::2] = 1.0  # finest stripes: without antialiasing they alias
    y = resize_texture(x, 4)
    assert y.shape == (1, 4, 4)
    assert (y - 5 / 9).abs().max() < 0.2  # close to the mean, not 0/1 aliasing
    flat = resize_texture(torch.full((3, 9, 9), 0.25), 7)
    assert torch.allclose(flat, torch.full((3, 7, 7), 0.25))


def test_keys_per_split_and_mask_binarised_after_resize():
    src = _paired()
    item = TextureDataset(src, "phone_train", resolution=8)[0]
    assert set(item) == {"stem", "phone", "mask"}
    assert item["phone"].shape == (3, 8, 8) and item["mask"].shape == (1, 8, 8)
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    ref = torch.nn.functional.interpolate(src.load("s0", "mask")[None], size=8, mode="area")[0]
    assert torch.equal(item["mask"], (ref >= 0.5).float())
    item = TextureDataset(src, "paired_train")[0]
    assert set(item) == {"stem", "phone", "mask", "studio"}
    with pytest.raises(ValueError, match="provides"):
        TextureDataset(src, "phone_train", keys=("studio",))


def test_random_crop_is_shared_by_all_keys_and_varies():
    src = _paired()
    ds = TextureDataset(src, "paired_train", crop_size=6, random_crop=True, seed=1)
    windows = set()
    for _ in range(20):
        item = ds[0]
        assert item["phone"].shape == (3, 6, 6) and item["mask"].shape == (1, 6, 6)
        assert torch.equal(item["phone"], item["studio"])
        assert torch.equal(item["mask"], (item["phone"][:1] > 0.5).float())
        full = src.load("s0", "phone")
        hits = [(t, l) for t in range(11) for l in range(11)
                if torch.equal(full[:, t:t + 6, l:l + 6], item["phone"])]
        windows.update(hits)
    assert len(windows) > 5
    centre = TextureDataset(src, "paired_train", crop_size=6)[0]
    assert torch.equal(centre["phone"], src.load("s0", "phone")[:, 5:11, 5:11])
    with pytest.raises(ValueError, match="exceeds"):
        TextureDataset(src, "paired_train", crop_size=32, resolution=16)


def test_random_crop_is_reproducible_from_the_seeds():
    def crops(seed):
        torch.manual_seed(123)
        ds = TextureDataset(_paired(), "phone_train", crop_size=4, random_crop=True, seed=seed)
        return torch.stack([ds[i]["phone"] for i in range(5)])

    assert torch.equal(crops(0), crops(0))
    assert not torch.equal(crops(0), crops(1))


def test_datamodule_loaders():
    dm = TextureDataModule(_paired(), train_split="paired_train", val_split="paired_test",
                           test_split=None, predict_split="phone_train", crop_size=8,
                           batch_size=2, seed=3)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 2  # 5 items, drop_last
    assert batches[0]["phone"].shape == (2, 3, 8, 8) and len(batches[0]["stem"]) == 2
    val = list(dm.val_dataloader())
    assert [b["stem"] for b in val] == [["s0", "s1"]]
    assert val[0]["phone"].shape == (2, 3, 16, 16)  # no crop outside training
    assert dm.test_dataloader() == []
    predict = list(dm.predict_dataloader())
    assert sum(len(b["stem"]) for b in predict) == 5  # nothing dropped


def test_shuffle_order_follows_the_seed():
    def order(seed):
        dm = TextureDataModule(_paired(8), batch_size=2, seed=seed, val_split=None)
        dm.setup("fit")
        return [s for b in dm.train_dataloader() for s in b["stem"]]

    assert order(0) == order(0)
    assert order(0) != order(1)
    dm = TextureDataModule(_paired(8), batch_size=2, shuffle=False, val_split=None)
    dm.setup("fit")
    assert [s for b in dm.train_dataloader() for s in b["stem"]] == [f"s{i}" for i in range(8)]


def test_datamodule_argument_errors():
    with pytest.raises(ValueError, match="is not a split"):
        TextureDataModule(_paired(), val_split="val")
    dm = TextureDataModule(_paired(), batch_size=8)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        dm.setup("fit")
    dm = TextureDataModule(_paired(), val_split="studio_train", batch_size=2)
    with pytest.raises(TextureError, match="studio_train is empty"):
        dm.setup("fit")


def test_jsonargparse_resolves_the_source_by_class_path(tmp_path):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(TextureDataModule, "data")
    cfg = parser.parse_object({"data": {
        "source": {"class_path": "lift.data.SyntheticSource",
                   "init_args": {"profile": "quickstart", "seed": 4}},
        "resolution": 64, "batch_size": 4}})
    dm = parser.instantiate(cfg).data
    assert isinstance(dm, TextureDataModule)
    assert type(dm.source).__name__ == "SyntheticSource" and dm.source.seed == 4
    assert dm.resolution == 64

    (tmp_path / "phone").mkdir()
    from lift.data.io import write_texture

    write_texture(tmp_path / "phone" / "a.png", torch.zeros(3, 4, 4))
    cfg = parser.parse_object({"data": {"source": {
        "class_path": "lift.data.FolderSource",
        "init_args": {"root": str(tmp_path), "on_error": "skip"}}}})
    dm = parser.instantiate(cfg).data
    assert dm.source.on_error == "skip" and dm.source.splits()["phone_train"] == ["a"]
    with pytest.raises(Exception, match="on_error"):
        parser.parse_object({"data": {"source": {
            "class_path": "lift.data.FolderSource",
            "init_args": {"root": str(tmp_path), "on_error": "ignore"}}}})


def test_lift_cli_print_config(capsys):
    from lift.cli import main

    with pytest.raises(SystemExit) as info:
        main(["fit", "--model", "lightning.pytorch.demos.boring_classes.BoringModel",
              "--data", "lift.data.TextureDataModule",
              "--data.source", "lift.data.SyntheticSource",
              "--data.source.profile", "quickstart", "--data.resolution", "64",
              "--print_config"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "class_path: lift.data" in out and "SyntheticSource" in out
    assert "profile: quickstart" in out and "resolution: 64" in out


DDP_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch, lightning as L
    sys.path.insert(0, os.environ["TEST_DIR"])
    from test_datamodule import _paired
    from lift.data import TextureDataModule

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)
            self.seen = {"train": [], "val": [], "test": [], "predict": []}
        def training_step(self, batch, i):
            self.seen["train"] += batch["stem"]
            return self.layer(batch["phone"].mean().view(1, 1)).sum()
        def validation_step(self, batch, i):
            self.seen["val"] += batch["stem"]
        def test_step(self, batch, i):
            self.seen["test"] += batch["stem"]
        def predict_step(self, batch, i):
            self.seen["predict"] += batch["stem"]
            return batch["stem"]
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = TextureDataModule(_paired(7), train_split="phone_train", val_split="paired_test",
                           test_split="phone_train", predict_split="phone_train", batch_size=2)
    model = Recorder()
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, dm)
    trainer.test(model, dm, verbose=False)
    trainer.predict(model, dm)
    seen = model.seen["test"]
    model.seen["test"] = []
    dm.test_split = "unpaired_test"  # 5 items, batch 2: ranks would run 2 and 1 batches
    dm.datasets.pop("test")
    trainer.test(model, dm, verbose=False)
    model.seen["test5"], model.seen["test"] = model.seen["test"], seen
    with open(os.path.join(os.environ["OUT"], f"rank{trainer.global_rank}.json"), "w") as f:
        json.dump(model.seen, f)
    torch.distributed.destroy_process_group()
""")


@pytest.mark.ddp
def test_ddp_shards_train_test_and_predict(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "TEST_DIR": os.path.dirname(__file__), "OUT": str(tmp_path),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    stems = {f"s{i}" for i in range(7)}
    assert sorted(seen[0]["val"] + seen[1]["val"]) == ["s0", "s1"]
    for phase in ("test", "predict"):
        # Lightning shards evaluation loaders without padding: every item exactly once.
        a, b = seen[0][phase], seen[1][phase]
        assert sorted(a + b) == sorted(stems)
    # an uneven split: still every item once (the ranks run 2 and 1 batches)
    assert sorted([len(seen[0]["test5"]), len(seen[1]["test5"])]) == [2, 3]
    assert sorted(seen[0]["test5"] + seen[1]["test5"]) == ["s0", "s1", "s2", "s3", "s4"]
    # train: each rank 4 (padded) items, drop_last -> 2 batches of 2 per rank
    assert len(seen[0]["train"]) == len(seen[1]["train"]) == 4
    assert set(seen[0]["train"]) | set(seen[1]["train"]) <= stems


def test_soft_masks_are_binarised_without_resize():
    src = _paired(1, size=4)
    src.textures["s0"]["mask"] = torch.tensor([0.0, 0.3, 0.5, 0.7, 1.0, 0.49, 0.51, 0.2]
                                              * 2).view(1, 4, 4)
    mask = TextureDataset(src, "phone_train")[0]["mask"]
    assert mask.flatten().tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0] * 2


def test_predict_split_test_is_both_test_splits():
    source = SyntheticSource("quickstart", 0)
    dm = TextureDataModule(source, predict_split="test", resolution=16, batch_size=4)
    dm.setup("predict")
    stems = [s for batch in dm.predict_dataloader() for s in batch["stem"]]
    splits = source.splits()
    assert stems == splits["paired_test"] + splits["unpaired_test"]
