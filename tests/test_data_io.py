"""Texture file I/O: exact round trips at 16 bits and in float, and one error per bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lift.data.io import TextureError, exr_available, read_texture, texture_info, write_texture


def _fine_ramp(h: int = 8, w: int = 8) -> torch.Tensor:
    """Values 1/65535 apart: an 8-bit path would merge all of them into one level."""
    k = torch.arange(3 * h * w, dtype=torch.float32).view(3, h, w) + 30000
    return k / 65535.0


def test_png16_round_trip_keeps_sub_8bit_differences(tmp_path):
    tex = _fine_ramp()
    assert (tex.max() - tex.min()) * 255 < 1  # all inside one 8-bit level
    path = write_texture(tmp_path / "a.png", tex)
    assert texture_info(path).dtype == "uint16"
    back = read_texture(path)
    assert back.dtype == torch.float32 and back.shape == (3, 8, 8)
    assert torch.equal(back, tex)
    assert len(torch.unique(back)) == 3 * 64


def test_png_channel_order_is_rgb(tmp_path):
    tex = torch.zeros(3, 4, 4)
    tex[0] = 1.0  # pure red
    write_texture(tmp_path / "red.png", tex)
    raw = cv2.imread(str(tmp_path / "red.png"), cv2.IMREAD_UNCHANGED)
    assert raw[0, 0].tolist() == [0, 0, 65535]  # OpenCV's BGR on disk
    assert torch.equal(read_texture(tmp_path / "red.png"), tex)


def test_png8_reads_as_linear_levels(tmp_path):
    arr = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3) * 5
    cv2.imwrite(str(tmp_path / "a.png"), arr[:, :, ::-1].copy())
    back = read_texture(tmp_path / "a.png")
    expected = torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1)
    assert torch.equal(back, expected)  # divided by 255, no gamma


def test_mask_png_grey(tmp_path):
    mask = (torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    write_texture(tmp_path / "m.png", mask, bits=8)
    info = texture_info(tmp_path / "m.png")
    assert (info.channels, info.dtype) == (1, "uint8")
    assert torch.equal(read_texture(tmp_path / "m.png", channels=1), mask)


def test_float_tiff_is_exact(tmp_path):
    tex = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(1))
    write_texture(tmp_path / "a.tif", tex)
    assert torch.equal(read_texture(tmp_path / "a.tif"), tex)


@pytest.mark.skipif(not exr_available(), reason="no OpenEXR support (OpenCV build or package)")
def test_float_exr_is_exact(tmp_path):
    tex = torch.rand(3, 6, 6, generator=torch.Generator().manual_seed(2))
    write_texture(tmp_path / "a.exr", tex)
    info = texture_info(tmp_path / "a.exr")
    assert (info.width, info.channels, info.dtype) == (6, 3, "float32")
    assert torch.equal(read_texture(tmp_path / "a.exr"), tex)
    mask = (tex[:1] > 0.5).float()
    write_texture(tmp_path / "m.exr", mask)
    assert torch.equal(read_texture(tmp_path / "m.exr", channels=1), mask)


def test_exr_without_backend_is_a_clear_error(tmp_path, monkeypatch):
    import lift.data.io as io

    monkeypatch.setattr(io, "_cv2_has_exr", lambda: False)
    monkeypatch.setattr(io, "_openexr_module", lambda: None)
    with pytest.raises(TextureError, match=r"a\.exr.*OpenEXR"):
        write_texture(tmp_path / "a.exr", torch.zeros(3, 2, 2))


# ------------------------------------------------------------------ bad input


def _expect(path, match, **kw):
    with pytest.raises(TextureError, match=match) as info:
        read_texture(path, **kw)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.png", "not found")


def test_unsupported_extension(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8")
    _expect(tmp_path / "a.jpg", "unsupported extension")


def test_truncated_png(tmp_path):
    tex = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3))
    path = write_texture(tmp_path / "a.png", tex)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect(path, "unreadable, truncated or corrupt")
    path.write_bytes(data[:20])  # not even a whole header
    with pytest.raises(TextureError, match="a.png"):
        texture_info(path)


def test_rgba_texture_is_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 4), np.uint8))
    _expect(tmp_path / "a.png", "4 channel")


def test_grey_texture_and_rgb_mask_are_refused(tmp_path):
    write_texture(tmp_path / "grey.png", torch.zeros(1, 4, 4))
    _expect(tmp_path / "grey.png", "1 channel.*texture")
    write_texture(tmp_path / "rgb.png", torch.zeros(3, 4, 4))
    _expect(tmp_path / "rgb.png", "3 channel.*mask", channels=1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_inf_refused(tmp_path, bad):
    arr = np.full((4, 4, 3), 0.5, np.float32)
    arr[1, 2, 0] = bad
    cv2.imwrite(str(tmp_path / "a.tif"), arr)
    _expect(tmp_path / "a.tif", "NaN/Inf")
    with pytest.raises(TextureError, match="NaN/Inf"):
        write_texture(tmp_path / "b.png", torch.from_numpy(arr).permute(2, 0, 1))


def test_out_of_range_float_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "a.tif"), np.full((4, 4, 3), 1.5, np.float32))
    _expect(tmp_path / "a.tif", r"outside \[0, 1\]")
    with pytest.raises(TextureError, match="outside"):
        write_texture(tmp_path / "b.png", torch.full((3, 2, 2), -0.1))


def test_non_square_refused(tmp_path):
    write_texture(tmp_path / "a.png", torch.zeros(3, 4, 6))
    _expect(tmp_path / "a.png", "not square")
    assert read_texture(tmp_path / "a.png", square=False).shape == (3, 4, 6)


def test_write_refuses_bad_shapes(tmp_path):
    with pytest.raises(TextureError, match="shape"):
        write_texture(tmp_path / "a.png", torch.zeros(2, 4, 4))


def test_write_is_atomic_and_leaves_no_temporaries(tmp_path, monkeypatch):
    path = write_texture(tmp_path / "a.png", torch.zeros(3, 4, 4))
    original = path.read_bytes()
    monkeypatch.setattr(cv2, "imwrite", lambda *a, **k: False)
    with pytest.raises(TextureError, match="could not write"):
        write_texture(path, torch.ones(3, 4, 4))
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
