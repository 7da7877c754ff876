"""`lift data synth` writes a folder that FolderSource reads back into the very same tensors."""

from __future__ import annotations

import json

import pytest
import torch

from lift.cli import main
from lift.data import (SPLIT_KEYS, FolderSource, SyntheticSource, TextureDataModule, TextureError,
                       check_folder)
from lift.data import synth


@pytest.fixture
def tiny_profile(monkeypatch):
    """A hidden 32² profile with every split non-empty (the real quickstart takes ~30 s)."""
    profile = synth.SynthProfile("tiny", 32, 16, phone_only=3, studio_only=2, paired_train=2,
                                 paired_test=2, unpaired_test=2, expressions=2)
    monkeypatch.setitem(synth.PROFILES, "tiny", profile)
    return "tiny"


def _batches(source, split):
    dm = TextureDataModule(source, train_split=split, val_split=None, test_split=None,
                           batch_size=3, shuffle=False, drop_last=False)
    dm.setup("fit")
    return list(dm.train_dataloader())


def assert_same_data(folder, synthetic):
    assert folder.splits() == synthetic.splits()
    for split in SPLIT_KEYS:
        a, b = _batches(folder, split), _batches(synthetic, split)
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            assert x["stem"] == y["stem"]
            assert set(x) == set(y) == {"stem", *SPLIT_KEYS[split]}
            for key in SPLIT_KEYS[split]:
                assert torch.equal(x[key], y[key]), (split, key, x["stem"])
    for stem in synthetic.splits()["paired_test"] + synthetic.splits()["unpaired_test"]:
        for get in ("expressions", "expressions_studio"):
            ex, ey = getattr(folder, get)(stem), getattr(synthetic, get)(stem)
            assert list(ex) == list(ey) and len(ex) == 2
            assert all(torch.equal(ex[k], ey[k]) for k in ex)


def test_written_folder_equals_synthetic_source(tmp_path, tiny_profile, capsys):
    out = tmp_path / "bench"
    assert main(["data", "synth", "--out", str(out), "--profile", tiny_profile]) == 0
    assert "subjects 11" in capsys.readouterr().out
    manifest = json.loads((out / "lift_synth.json").read_text())
    assert manifest["complete"] and manifest["seed"] == 0
    assert manifest["profile"]["name"] == "tiny" and manifest["generator"]["quantize_bits"] == 16
    assert manifest["splits"]["phone_train"] == 5 and manifest["files"]["masks"] == 9
    assert (out / "splits" / "paired_test.txt").read_text().startswith("#")
    assert_same_data(FolderSource(str(out)), SyntheticSource(tiny_profile))
    assert "problems: none" in check_folder(str(out))


def test_resume_refuse_and_overwrite(tmp_path, tiny_profile, capsys):
    out = tmp_path / "bench"
    main(["data", "synth", "--out", str(out), "--profile", tiny_profile])
    phone = out / "phone" / "s000001.png"
    before = phone.read_bytes()
    phone.unlink()
    (out / "expressions" / "s000009" / "exp01_open.png").unlink()
    capsys.readouterr()
    main(["data", "synth", "--out", str(out), "--profile", tiny_profile])  # resumes
    assert "files written 2 " in capsys.readouterr().out
    assert phone.read_bytes() == before

    with pytest.raises(TextureError, match="lift_synth.json.*--overwrite"):
        main(["data", "synth", "--out", str(out), "--profile", tiny_profile, "--seed", "1"])
    main(["data", "synth", "--out", str(out), "--profile", tiny_profile, "--seed", "1",
          "--overwrite"])
    assert json.loads((out / "lift_synth.json").read_text())["seed"] == 1
    assert phone.read_bytes() != before
    assert_same_data(FolderSource(str(out)), SyntheticSource(tiny_profile, seed=1))

    phone.write_bytes(phone.read_bytes()[:100])  # damaged outside lift: --overwrite redoes all
    main(["data", "synth", "--out", str(out), "--profile", tiny_profile, "--seed", "1",
          "--overwrite"])
    assert "problems: none" in check_folder(str(out))

    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    with pytest.raises(TextureError, match="not empty"):
        main(["data", "synth", "--out", str(other), "--profile", tiny_profile])


def test_synthetic_source_cache_and_lazy_expressions(tiny_profile):
    src = SyntheticSource(tiny_profile, cache_size=2)
    stem = src.splits()["paired_test"][0]
    phone = src.load(stem, "phone")
    assert src.load(stem, "phone") is phone  # cached
    assert src.sample(stem).expressions == {}  # neutral only, until asked for
    assert len(src.expressions(stem)) == 2
    for other in src.splits()["phone_train"][:3]:
        src.load(other, "phone")
    assert len(src._cache) == 2
    assert torch.equal(src.load(stem, "phone"), phone)  # regenerated identically
    with pytest.raises(ValueError, match="unknown synthetic profile"):
        SyntheticSource("nope")


@pytest.mark.slow
def test_quickstart_acceptance(tmp_path):
    out = tmp_path / "quickstart"
    assert main(["data", "synth", "--out", str(out), "--profile", "quickstart"]) == 0
    assert_same_data(FolderSource(str(out)), SyntheticSource("quickstart"))


def test_parallel_writer_matches(tmp_path, tiny_profile):
    from lift.data.writer import write_synthetic_benchmark

    write_synthetic_benchmark(str(tmp_path / "one"), tiny_profile, progress=False)
    write_synthetic_benchmark(str(tmp_path / "two"), tiny_profile, workers=2, progress=False)
    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.png"))
    two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.png"))
    assert one == two and len(one) == 48
    assert all((tmp_path / "one" / p).read_bytes() == (tmp_path / "two" / p).read_bytes()
               for p in one)


def test_a_rerun_rewrites_zero_byte_and_truncated_files(tmp_path, tiny_profile, capsys):
    out = tmp_path / "bench"
    main(["data", "synth", "--out", str(out), "--profile", tiny_profile])
    studio = sorted((out / "studio").glob("*.png"))[0]
    phone = out / "phone" / "s000001.png"
    expression = next((out / "expressions").rglob("*.png"))
    whole = {p: p.read_bytes() for p in (phone, studio, expression)}
    phone.write_bytes(b"")                                  # zero bytes
    studio.write_bytes(whole[studio][:-20])                 # truncated: no IEND chunk
    expression.write_bytes(whole[expression][:50])
    capsys.readouterr()
    main(["data", "synth", "--out", str(out), "--profile", tiny_profile])  # no --overwrite
    assert "files written 3 " in capsys.readouterr().out
    assert all(p.read_bytes() == data for p, data in whole.items())
    assert "problems: none" in check_folder(str(out))
