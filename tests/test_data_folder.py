"""Folder layout: default and file splits, pairing, and every bad-input case (raise / skip)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lift.cli import main
from lift.data import FolderSource, TextureDataModule, TextureDataset, TextureError, check_folder
from lift.data.io import write_texture


def _tex(seed: int, size: int = 8, channels: int = 3) -> torch.Tensor:
    t = torch.rand(channels, size, size, generator=torch.Generator().manual_seed(seed))
    return (t * 65535).round() / 65535 if channels == 3 else (t > 0.3).float()


def make_folder(root: Path, phone=("a", "b", "c"), studio=("b", "c", "d"), masks=("a", "b"),
                size: int = 8, splits: dict | None = None) -> Path:
    for i, stem in enumerate(phone):
        write_texture(root / "phone" / f"{stem}.png", _tex(i, size))
    for i, stem in enumerate(studio):
        write_texture(root / "studio" / f"{stem}.png", _tex(100 + i, size))
    for i, stem in enumerate(masks):
        write_texture(root / "masks" / f"{stem}.png", _tex(200 + i, size, 1), bits=8)
    for split, lines in (splits or {}).items():
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text(lines)
    return root


def test_default_splits_pair_by_stem(tmp_path):
    src = FolderSource(str(make_folder(tmp_path)))
    assert src.splits() == {
        "phone_train": ["a", "b", "c"],
        "studio_train": ["b", "c", "d"],
        "paired_train": ["b", "c"],
        "paired_test": [],
        "unpaired_test": [],
    }
    assert torch.equal(src.load("b", "studio"), _tex(100))
    assert torch.equal(src.load("a", "mask"), _tex(200, channels=1))
    assert torch.equal(src.load("c", "mask"), torch.ones(1, 8, 8))  # no mask file: all seen
    assert src.size("phone_train", "phone") == (8, 8)


def test_split_files_with_comments_and_train_defaults_exclude_test(tmp_path):
    root = make_folder(tmp_path, splits={
        "paired_test": "# held out\n\nc   # subject c\n",
        "unpaired_test": "a\n",
    })
    src = FolderSource(str(root))
    assert src.splits()["paired_test"] == ["c"]
    assert src.splits()["unpaired_test"] == ["a"]
    assert src.splits()["phone_train"] == ["b"]  # default minus the test stems
    assert src.splits()["paired_train"] == ["b"]
    assert src.split_sources["paired_test"] == "splits/paired_test.txt"
    assert src.split_sources["phone_train"] == "default"


def _raises(root: Path, *fragments: str):
    with pytest.raises(TextureError) as info:
        FolderSource(str(root))
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    return str(info.value)


def test_split_file_naming_a_missing_stem(tmp_path):
    root = make_folder(tmp_path, splits={"phone_train": "a\nzz\n"})
    _raises(root, "splits/phone_train.txt", "'zz'", "no phone/ file")


def test_paired_stem_missing_a_side(tmp_path):
    root = make_folder(tmp_path, splits={"paired_train": "a\nb\n"})  # a has no studio
    _raises(root, "splits/paired_train.txt", "'a'", "no studio/ file", "paired_train")


def test_test_stem_in_train_split(tmp_path):
    root = make_folder(tmp_path, splits={"paired_test": "b\n", "phone_train": "a\nb\n"})
    _raises(root, "splits/phone_train.txt", "'b'", "paired_test")


def test_size_mismatch_within_split(tmp_path):
    root = make_folder(tmp_path)
    write_texture(root / "phone" / "c.png", _tex(5, size=16))
    _raises(root, str(root / "phone" / "c.png"), "16x16", "8x8", "phone_train")


def test_mask_size_mismatch(tmp_path):
    root = make_folder(tmp_path)
    write_texture(root / "masks" / "b.png", _tex(5, size=4, channels=1), bits=8)
    _raises(root, str(root / "masks" / "b.png"), "4x4", "b.png (8x8)")


def test_unreadable_wrong_channels_non_square_and_unsupported(tmp_path):
    root = make_folder(tmp_path)
    (root / "phone" / "a.png").write_bytes(b"\x89PNG\r\n")  # truncated header
    cv2.imwrite(str(root / "studio" / "b.png"), np.zeros((8, 8, 4), np.uint16))  # RGBA
    write_texture(root / "studio" / "c.png", torch.zeros(3, 8, 6))
    (root / "phone" / "notes.txt").write_text("hi")
    message = _raises(root, "phone/a.png", "truncated", "studio/b.png", "4 channel",
                      "studio/c.png", "not square", "phone/notes.txt", "unsupported")
    assert message.count("\n  - ") == 4


def test_two_files_for_one_stem_and_unknown_split_file(tmp_path):
    root = make_folder(tmp_path, splits={"val": "a\n"})
    write_texture(root / "phone" / "a.tif", _tex(9))
    _raises(root, "phone/a.tif", "two phone files", "splits/val.txt", "unknown split file")


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(TextureError, match="not found"):
        FolderSource(str(tmp_path / "nope"))
    with pytest.raises(TextureError, match="neither a phone/ nor a studio/"):
        FolderSource(str(tmp_path))


def test_empty_split_requested(tmp_path):
    src = FolderSource(str(make_folder(tmp_path)))
    with pytest.raises(TextureError, match=rf"{tmp_path}.*split paired_test is empty"):
        TextureDataset(src, "paired_test")


def test_skip_mode_warns_counts_and_keeps_the_rest(tmp_path):
    root = make_folder(tmp_path, splits={"paired_test": "d\n"})  # d has no phone: problem
    write_texture(root / "phone" / "c.png", _tex(5, size=16))  # odd size out in phone_train
    with pytest.warns(UserWarning, match="skipping"):
        src = FolderSource(str(root), on_error="skip")
    splits = src.splits()
    assert splits["phone_train"] == ["a", "b"]
    assert splits["paired_test"] == []
    # c's phone texture is the odd size out in both splits that use it (ties: first wins)
    assert set(src.skipped) == {"phone_train/c", "paired_train/c", "paired_test/d"}
    assert src.num_skipped == 3
    assert splits["studio_train"] == ["b", "c"]  # c's studio texture is fine
    assert "16x16" in src.skipped["phone_train/c"]


def test_read_time_corruption_raises_or_skips(tmp_path):
    root = make_folder(tmp_path, phone=("a", "b", "c"), masks=(), size=32)
    path = root / "phone" / "b.png"
    path.write_bytes(path.read_bytes()[:200])  # header intact: only reading finds it
    dataset = TextureDataset(FolderSource(str(root)), "phone_train")
    with pytest.raises(TextureError, match="b.png.*truncated"):
        dataset[1]

    src = FolderSource(str(root), on_error="skip")
    dm = TextureDataModule(src, val_split=None, batch_size=3, shuffle=False, drop_last=False)
    dm.setup("fit")
    with pytest.warns(UserWarning, match="skipping 'b'"):
        batch = next(iter(dm.train_dataloader()))
    assert batch["stem"] == ["a", "c"]
    assert batch["phone"].shape == (2, 3, 32, 32)
    assert list(src.skipped) == ["read/b"] and src.num_skipped == 1


def test_read_time_size_change_is_caught(tmp_path):
    root = make_folder(tmp_path)
    src = FolderSource(str(root))
    write_texture(root / "phone" / "a.tif", _tex(1, size=8))  # not seen: listed at open only
    write_texture(root / "phone" / "a.png", _tex(1, size=16))  # replaced after opening
    with pytest.raises(TextureError, match="a.png.*16x16.*header"):
        src.load("a", "phone")


def test_expressions(tmp_path):
    root = make_folder(tmp_path)
    write_texture(root / "expressions" / "b" / "smile.png", _tex(7))
    write_texture(root / "expressions" / "b" / "blink.png", _tex(8))
    write_texture(root / "expressions_studio" / "b" / "smile.png", _tex(9))
    src = FolderSource(str(root))
    expr = src.expressions("b")
    assert list(expr) == ["blink", "smile"] and torch.equal(expr["smile"], _tex(7))
    assert list(src.expressions_studio("b")) == ["smile"]
    assert src.expressions("a") == {}
    write_texture(root / "expressions" / "b" / "smile.png", _tex(7, size=4))
    _raises(root, "expressions/b/smile.png", "4x4")


def test_check_folder_and_cli(tmp_path, capsys):
    root = make_folder(tmp_path, splits={"paired_test": "c\n"})
    report = check_folder(str(root))
    assert "phone_train" in report and "problems: none" in report
    assert "png uint16" in report and "png uint8" in report
    path = root / "studio" / "d.png"
    assert main(["data", "check", str(root)]) == 0  # a clean folder passes
    capsys.readouterr()
    path.write_bytes(path.read_bytes()[:60])
    assert main(["data", "check", str(root)]) == 1  # a problem fails the command
    out = capsys.readouterr().out
    assert "problems: 1" in out and "studio/d.png" in out


def test_skip_mode_removes_leaked_test_stems_from_train(tmp_path):
    root = make_folder(tmp_path, splits={"paired_test": "b\n", "phone_train": "a\nb\nc\n",
                                         "paired_train": "b\nc\n"})
    with pytest.warns(UserWarning, match="skipping 2"):
        src = FolderSource(str(root), on_error="skip")
    assert src.splits()["paired_test"] == ["b"]  # the test split keeps its subject
    assert src.splits()["phone_train"] == ["a", "c"]
    assert src.splits()["paired_train"] == ["c"]
    assert "paired_test" in src.skipped["phone_train/b"]


def test_skip_mode_drops_a_stem_only_where_its_broken_file_is_needed(tmp_path):
    root = make_folder(tmp_path, splits={"paired_train": "b\nc\n",
                                         "phone_train": "a\nb\nc\nc\n"})  # c twice: warn only
    write_texture(root / "masks" / "b.png", torch.zeros(1, 8, 6))  # non-square mask
    with pytest.warns(UserWarning, match="listed twice"):
        src = FolderSource(str(root), on_error="skip")
    splits = src.splits()
    assert splits["phone_train"] == ["a", "c"] and splits["paired_train"] == ["c"]
    assert splits["studio_train"] == ["b", "c", "d"]  # b's studio texture is fine
    assert set(src.skipped) == {"phone_train/b", "paired_train/b"}
