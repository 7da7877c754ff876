"""Built-in perceptual distances (plugin ``lift_perceptual``): STLPIPS, LPIPS, DISTS."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from lift.weights import WeightsNotFoundError
from lift_perceptual.dists import DISTS
from lift_perceptual.lpips_distance import LPIPS
from lift_perceptual.stlpips import STLPIPS, packaged_weights


def texture(size: int, seed: int = 0) -> torch.Tensor:
    """A deterministic natural-looking RGB image [1,3,size,size] in [0,1]: smooth shading,
    sharp-edged discs and fine band-limited grain."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij"
    )
    img = torch.zeros(3, size, size)
    for c in range(3):
        for k in range(6):
            fx, fy, phase = (torch.rand(3, generator=g) * torch.tensor([12.0, 12.0, 6.28])).tolist()
            img[c] += torch.sin(2 * math.pi * (fx * xx + fy * yy) + phase) / (k + 1)
    for _ in range(8):
        cx, cy, r = torch.rand(3, generator=g).tolist()
        disc = (((xx - cx) ** 2 + (yy - cy) ** 2) < (0.2 * r) ** 2).float()
        img += 0.8 * disc * (torch.rand(3, 1, 1, generator=g) - 0.5)
    img += 0.3 * F.avg_pool2d(torch.randn(1, 3, size, size, generator=g), 3, 1, 1)[0]
    return ((img - img.min()) / (img.max() - img.min()))[None]


def binomial_blur(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    k = (k[:, None] * k[None]) / 256
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k.expand(3, 1, 5, 5), groups=3)


def distortions(size: int, seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """An image [1,3,size,size] and its distorted versions (the 1-pixel shift is a crop of a
    larger image, so no wrapped-around seam)."""
    big = texture(size + 1, seed)
    x = big[..., :size, :size]
    g = torch.Generator().manual_seed(seed + 1)
    return x, {
        "identical": x.clone(),
        "shift": big[..., :size, 1:],
        "blur": binomial_blur(x),
        "noise": (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1),
        "pure_noise": torch.rand(x.shape, generator=g),
    }


def distances(distance, x: torch.Tensor, cases: dict[str, torch.Tensor]) -> dict[str, float]:
    with torch.no_grad():
        d = distance(x.expand(len(cases), -1, -1, -1), torch.cat(list(cases.values())))
    return dict(zip(cases, d.tolist()))


@pytest.fixture(scope="module")
def stlpips_alex():
    return STLPIPS("alex")


@pytest.fixture
def no_weights_anywhere(tmp_path, monkeypatch):
    """Every place resolve_weights searches is an empty folder."""
    monkeypatch.setenv("LIFT_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "weights").mkdir()
    return tmp_path / "weights"


@pytest.fixture
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


# --- registration -----------------------------------------------------------------------


def test_registered_by_the_perceptual_plugin(builtin_registry):
    infos = {c.name: c for c in builtin_registry.components("perceptual_distance")}
    for name, cls in {"STLPIPS": STLPIPS, "LPIPS": LPIPS, "DISTS": DISTS}.items():
        assert infos[name].cls is cls
        assert infos[name].plugin == "perceptual"


# --- STLPIPS ----------------------------------------------------------------------------


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_stlpips_matches_the_reference_package(net):
    # stlpips_pytorch's own modules import IPython and torchsummary (dev extra).
    reference = pytest.importorskip(
        "stlpips_pytorch.stlpips",
        reason="stlpips_pytorch's modules need torchsummary and IPython (pip install -e .[dev])",
    )
    ours = STLPIPS(net)
    theirs = reference.LPIPS(net=net, variant="shift_tolerant", verbose=False)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 48, 40, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    z = torch.rand(2, 3, 48, 40, generator=g)
    with torch.no_grad():
        for a, b in [(x, y), (x, z)]:
            expected = theirs(a, b, normalize=True).flatten()
            assert torch.allclose(ours(a, b), expected, atol=1e-5, rtol=0)


def test_stlpips_loads_the_released_blur_filter(stlpips_alex):
    taps = torch.tensor([1.0, 2.0, 1.0])
    kernel = taps[:, None] * taps[None] / 16
    filters = [b for n, b in stlpips_alex.named_buffers() if n.endswith("filt")]
    assert len(filters) == 3
    for f in filters:
        assert torch.equal(f, kernel.expand_as(f))
    # the LPIPS v0.1 scaling layer
    assert torch.allclose(stlpips_alex.shift.flatten(), torch.tensor([-0.030, -0.088, -0.188]))
    assert torch.allclose(stlpips_alex.scale.flatten(), torch.tensor([0.458, 0.448, 0.450]))


def test_stlpips_alex_orders_distortions_like_the_measured_figures(stlpips_alex):
    # FACTS.md (256^2, alex): identical 0, 1-px shift 0.012, blur 0.024, +0.2 noise 0.53,
    # pure noise 0.90.
    x, cases = distortions(256)
    d = distances(stlpips_alex, x, cases)
    assert abs(d["identical"]) < 1e-6
    assert 0 < d["shift"] < 0.05
    assert d["shift"] < d["blur"] < 0.1
    assert 0.3 < d["noise"] < 1.0
    assert d["noise"] < d["pure_noise"] < 1.5


def test_stlpips_vgg_orders_distortions():
    x, cases = distortions(64, seed=3)
    d = distances(STLPIPS("vgg"), x, cases)
    assert abs(d["identical"]) < 1e-6
    # At 64^2 this busy texture suffers more from blur than from noise; a 1-pixel shift is
    # still the smallest change, and pure noise is farther than noise added to the image.
    assert 0 < d["shift"] < min(d["blur"], d["noise"])
    assert d["noise"] < d["pure_noise"]


def test_stlpips_is_more_shift_tolerant_than_sensitive_to_blur(stlpips_alex):
    x = texture(64, seed=5)
    with torch.no_grad():
        shifted = stlpips_alex(x, torch.roll(x, 1, dims=-2))
        blurred = stlpips_alex(x, binomial_blur(x))
    assert shifted < blurred


def test_stlpips_is_frozen_eval_and_differentiable(stlpips_alex):
    assert all(not p.requires_grad for p in stlpips_alex.parameters())
    stlpips_alex.train()
    assert not stlpips_alex.training
    assert not any(m.training for m in stlpips_alex.modules())
    x = texture(32).requires_grad_(True)
    y = torch.rand(2, 3, 32, 32)
    out = stlpips_alex(x.expand(2, -1, -1, -1), y)
    assert out.shape == (2,)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_stlpips_rejects_bad_shapes(stlpips_alex):
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        stlpips_alex(x[:, :1], x[:, :1])
    with pytest.raises(ValueError, match="one shape"):
        stlpips_alex(x, x[:1])
    with pytest.raises(ValueError, match="at least 21x21"):
        stlpips_alex(x[..., :16, :16], x[..., :16, :16])


def test_stlpips_falls_back_to_weights_dir(no_weights_anywhere, monkeypatch):
    monkeypatch.setattr("lift_perceptual.stlpips.packaged_weights", lambda net: None)
    with pytest.raises(WeightsNotFoundError, match="alex_shift_tolerant.pth"):
        STLPIPS("alex")
    shutil.copy(packaged_weights("alex"), no_weights_anywhere / "alex_shift_tolerant.pth")
    assert STLPIPS("alex").net == "alex"


def test_stlpips_rejects_a_wrong_state_dict(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}, path)
    with pytest.raises(RuntimeError, match="Missing key"):
        STLPIPS("alex", weights=str(path))


# --- LPIPS and DISTS: local torchvision / piq files ---------------------------------------


@pytest.fixture(scope="module")
def fake_vgg16_features(tmp_path_factory):
    """A randomly initialised torchvision VGG16's ``features.*`` entries (the part LPIPS and
    DISTS load), saved under torchvision's file name: tests the loading code, not a network."""
    import torchvision

    torch.manual_seed(0)
    full = torchvision.models.vgg16().state_dict()
    state = {k: v for k, v in full.items() if k.startswith("features.")}
    path = tmp_path_factory.mktemp("weights") / "vgg16-397923af.pth"
    torch.save(state, path)
    return path


def test_lpips_without_backbone_names_the_file(no_weights_anywhere):
    with pytest.raises(WeightsNotFoundError) as err:
        LPIPS("vgg")
    message = str(err.value)
    assert "vgg16-397923af.pth" in message
    assert str(no_weights_anywhere) in message and "LIFT_WEIGHTS_DIR" in message
    with pytest.raises(WeightsNotFoundError, match="alexnet-owt-7be5be79.pth"):
        LPIPS("alex")


def test_lpips_loads_a_local_backbone(fake_vgg16_features, no_downloads, monkeypatch):
    monkeypatch.setenv("LIFT_WEIGHTS_DIR", str(fake_vgg16_features.parent))
    distance = LPIPS("vgg")
    state = torch.load(fake_vgg16_features, weights_only=True)
    convs = [
        (i, layer)
        for stage in distance.model.net.children()
        for i, layer in stage.named_children()
        if isinstance(layer, torch.nn.Conv2d)
    ]
    assert len(convs) == 13
    for i, conv in convs:
        assert torch.equal(conv.weight, state[f"features.{i}.weight"])
    # the lpips package's own linear heads were loaded (non-negative, not the random init)
    heads = [lin.model[-1].weight for lin in distance.model.lins]
    assert all((w >= 0).all() and w.abs().sum() > 0 for w in heads)

    assert all(not p.requires_grad for p in distance.parameters())
    distance.train()
    assert not any(m.training for m in distance.modules())
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    assert torch.allclose(distance(x, x), torch.zeros(2), atol=1e-6)
    out = distance(x, torch.rand(2, 3, 32, 32))
    assert out.shape == (2,) and (out > 0).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_lpips_rejects_a_file_that_is_not_the_backbone(tmp_path):
    path = tmp_path / "vgg16-397923af.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, path)
    with pytest.raises(RuntimeError, match="is not a torchvision vgg16-397923af.pth"):
        LPIPS("vgg", weights=str(path))


def test_dists_without_weights_names_the_files(no_weights_anywhere):
    with pytest.raises(WeightsNotFoundError, match="dists_weights.pt"):
        DISTS()
    dists_file = no_weights_anywhere / "dists_weights.pt"
    torch.save({"alpha": torch.ones(1, 1475, 1, 1), "beta": torch.ones(1, 1475, 1, 1)}, dists_file)
    with pytest.raises(WeightsNotFoundError, match="vgg16-397923af.pth"):
        DISTS()


def test_dists_loads_local_files(tmp_path, fake_vgg16_features, no_downloads):
    g = torch.Generator().manual_seed(0)
    ab = torch.rand(1, 2 * 1475, 1, 1, generator=g)
    ab = ab / ab.sum()  # DISTS' alpha and beta sum to one
    dists_file = tmp_path / "dists_weights.pt"
    torch.save({"alpha": ab[:, :1475], "beta": ab[:, 1475:]}, dists_file)
    distance = DISTS(weights=str(dists_file), backbone_weights=str(fake_vgg16_features))

    state = torch.load(fake_vgg16_features, weights_only=True)
    assert torch.equal(distance.model.model[0].weight, state["features.0.weight"])
    assert torch.equal(distance.model.model[28].weight, state["features.28.weight"])
    assert torch.equal(torch.cat(distance.model.weights[:6], dim=1), ab[:, :1475])

    assert all(not p.requires_grad for p in distance.parameters())
    x = torch.rand(2, 3, 48, 48, requires_grad=True)
    assert torch.allclose(distance(x, x), torch.zeros(2), atol=1e-5)
    out = distance(x, torch.rand(2, 3, 48, 48))
    assert out.shape == (2,) and (out > 0).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 32x32"):
        distance(x[..., :16, :16], x[..., :16, :16])
