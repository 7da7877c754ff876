"""The related systems' completion translators (plugins/lift_related/completion.py): the symmetry
properties of the mirrored input and of the flipped-feature concatenation, the training pairs and
loss terms, and both shipped quickstart configs under ``fast_dev_run`` at toy sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from lift_related.augmentation import RelightingAugmentation
from lift_related.completion import MirroredCompletion, SymmetricCompletion, symmetrise_kernels
from lift_related.symmetry import MirrorConcat, mirror, mirror_valid

import translation_helpers
from lift.cli import main
from lift.components import PerceptualDistance
from lift.config_compose import resolve_config

ROOT = Path(__file__).resolve().parents[1]
R = 16


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class MeanAbs(PerceptualDistance):
    """A parameter-free stand-in for LPIPS."""

    def forward(self, x, y):
        return (x - y).abs().mean(dim=(1, 2, 3))


# --- symmetry --------------------------------------------------------------------------------


def test_flipped_feature_concatenation_is_mirror_equivariant():
    fuse = MirrorConcat()
    f = torch.randn(2, 5, 8, 12, generator=_seeded(0))
    fused = fuse(f)
    assert fused.shape == (2, 10, 8, 12)
    # the fused features of mirrored features are the mirror of the fused features
    torch.testing.assert_close(fuse(f.flip(-1)), fused.flip(-1), rtol=0, atol=0)
    # ... and the mirror of the fused map only swaps its two halves
    torch.testing.assert_close(fused.flip(-1), torch.cat([fused[:, 5:], fused[:, :5]], 1))
    # every texel sees its mirrored texel's features
    torch.testing.assert_close(fused[:, 5:, :, 2], f[:, :, :, 12 - 1 - 2])
    # a symmetric feature map gives a symmetric fused map
    sym = f + f.flip(-1)
    torch.testing.assert_close(fuse(sym), fuse(sym).flip(-1), rtol=0, atol=0)


def test_an_off_centre_axis_mirrors_about_its_own_column():
    x = torch.arange(8.0).view(1, 1, 1, 8)
    assert mirror(x, 0.5).flatten().tolist() == [7, 6, 5, 4, 3, 2, 1, 0]
    # axis u = 3/8: column j -> round(2 * 3 - 1 - j) = 5 - j; columns 6, 7 fall outside
    assert mirror(x, 3 / 8, fill=-1).flatten().tolist() == [5, 4, 3, 2, 1, 0, -1, -1]
    assert mirror_valid(8, 3 / 8).tolist() == [True] * 6 + [False] * 2
    twice = mirror(mirror(x, 3 / 8), 3 / 8)
    assert twice.flatten()[:6].tolist() == x.flatten()[:6].tolist()  # an involution inside


def test_symmetric_completion_with_symmetric_kernels_is_exactly_mirror_equivariant():
    torch.manual_seed(0)
    t = SymmetricCompletion(channels=(4, 8, 8), augmentation=None, use_paired=True)
    symmetrise_kernels(t)
    x = torch.rand(2, 4, R, R, generator=_seeded(1))
    outs, outs_m = t.network(x), t.network(x.flip(-1))
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 16), (8, 8), (4, 4)]  # finest first
    for o, om in zip(outs, outs_m):
        torch.testing.assert_close(om, o.flip(-1), atol=1e-5, rtol=0)
    for f, fm in zip(t.network.encode(x), t.network.encode(x.flip(-1))):
        torch.testing.assert_close(fm, f.flip(-1), atol=1e-5, rtol=0)
    # a mirror-symmetric input gives a symmetric completion and symmetric fused features
    sym = (x + x.flip(-1)) / 2
    y = t.translate(sym[:, :3], (sym[:, 3:] > 0.5).float())
    torch.testing.assert_close(y, y.flip(-1), atol=1e-5, rtol=0)
    for f in t.network.encode(torch.cat([sym[:, :3], (sym[:, 3:] > 0.5).float()], 1)):
        torch.testing.assert_close(f, f.flip(-1), atol=1e-5, rtol=0)


def test_symmetric_completion_sees_the_mirrored_texel_at_every_level():
    """Without symmetric kernels the fused map is still mirror-symmetric up to the half swap,
    and a change at texel (v, u) reaches the fused features at the mirrored texel."""
    torch.manual_seed(0)
    t = SymmetricCompletion(channels=(4, 8), augmentation=None)
    x = torch.rand(1, 4, R, R, generator=_seeded(2))
    bumped = x.clone()
    bumped[..., 5, 1] += 1.0
    with torch.no_grad():
        pairs = list(zip(t.network.encode(x), t.network.encode(bumped)))
    for f, g in pairs:
        c = f.shape[1] // 2
        torch.testing.assert_close(f.flip(-1), torch.cat([f[:, c:], f[:, :c]], 1))
        w = f.shape[-1]
        far = (g - f)[:, c:, :, w - 1 - (1 * w // R)].abs().amax()  # mirror of column 1
        assert float(far) > 0


def test_mirrored_completion_feeds_the_texture_its_mask_and_their_mirror():
    t = MirroredCompletion(channels=(4, 8), augmentation=None)
    phone = torch.rand(1, 3, R, R, generator=_seeded(3))
    mask = torch.zeros(1, 1, R, R)
    mask[..., : R // 2] = 1  # only the left half was seen
    x = t.network_input(phone * mask, mask)
    assert x.shape == (1, 8, R, R)
    torch.testing.assert_close(x[:, 4:7, :, R // 2:], (phone * mask).flip(-1)[..., R // 2:])
    assert bool((x[:, 7, :, R // 2:] == 1).all())  # the mirrored mask covers the unseen half
    # mirroring the input mirrors the network input, which is also its halves swapped
    xm = t.network_input((phone * mask).flip(-1), mask.flip(-1))
    torch.testing.assert_close(xm, x.flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(xm, torch.cat([x[:, 4:], x[:, :4]], 1), rtol=0, atol=0)
    # an off-centre axis: columns mirrored outside the map have a zero mirrored mask
    off = MirroredCompletion(channels=(4, 8), augmentation=None, symmetry_axis=0.4)
    xo = off.network_input(phone, torch.ones(1, 1, R, R))
    assert bool((xo[:, 7, :, -3:] == 0).all()) and bool((xo[:, 7, :, :10] == 1).all())


# --- training pairs and terms ----------------------------------------------------------------


def _batch(b: int = 2) -> dict:
    g = _seeded(4)
    mask = (torch.rand(b, 1, R, R, generator=g) > 0.2).float()
    return {"phone": torch.rand(b, 3, R, R, generator=g), "mask": mask,
            "studio": torch.rand(b, 3, R, R, generator=g),
            "paired_phone": torch.rand(b, 3, R, R, generator=g), "paired_mask": mask,
            "paired_studio": torch.rand(b, 3, R, R, generator=g)}


@pytest.mark.parametrize("cls", [MirroredCompletion, SymmetricCompletion])
def test_pairs_come_from_the_paired_split_and_the_augmented_studio_textures(cls):
    torch.manual_seed(0)
    t = cls(channels=(4, 8), augmentation=RelightingAugmentation(R), distance=MeanAbs())
    t.train()
    batch = _batch()
    outputs = t.forward_step(batch)
    assert int(t.augmentation.mask_count) == 4  # learned from mask and paired_mask
    assert outputs["phone"].shape == (4, 3, R, R)
    torch.testing.assert_close(outputs["studio"], torch.cat([batch["paired_studio"],
                                                             batch["studio"]]))
    phase = t.phases()["generator"]
    terms = phase.losses(batch, outputs, 0)
    assert set(terms) == set(phase.terms)
    assert ("l1_multiscale" in terms) == (cls is SymmetricCompletion)
    assert "perceptual" in terms and t.rebuilt_modules() == ("distance",)
    sum(terms.values()).backward()
    params = list(phase.parameters())
    assert params and all(p.grad is not None for p in params)
    assert set(t.visuals(batch, outputs)) == {"input", "mask", "completed", "target"}
    # without pairs of either kind: an error
    with pytest.raises(ValueError, match="no training pairs"):
        cls(channels=(4, 8), augmentation=None, use_paired=False)
    only_aug = cls(channels=(4, 8), augmentation=RelightingAugmentation(R), use_paired=False)
    assert only_aug.forward_step(batch)["phone"].shape[0] == 2
    assert only_aug.phases()["generator"].terms[0] == "l1" and only_aug.rebuilt_modules() == ()


# --- the shipped configs ---------------------------------------------------------------------

TOY = {"model": {"init_args": {"translator": {"init_args": {
    "channels": [8, 16], "augmentation": {"init_args": {"resolution": 32}}}}}},
    "data": {"init_args": {"resolution": 32, "batch_size": 2, "paired_batch_size": 2}}}


@pytest.mark.parametrize("name", ["mirrored_completion", "symmetric_completion"])
def test_shipped_completion_config_trains_under_fast_dev_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = ROOT / "configs" / "translate" / f"{name}_quickstart.yaml"
    overlay = tmp_path / "toy.yaml"
    overlay.write_text(yaml.safe_dump(TOY))
    translation_helpers.SEEN.clear()
    argv = ["fit", "--config", str(config), "--config", str(ROOT / "configs/trainer/cpu.yaml"),
            "--config", str(overlay), "--trainer.fast_dev_run", "1",
            "--trainer.default_root_dir", str(tmp_path),
            "--trainer.callbacks+", "translation_helpers.FiniteLossCheck"]
    assert main(argv) == 0
    assert translation_helpers.SEEN, "no training step ran"
    weights = resolve_config(config)["model"]["init_args"]["loss_weights"]
    logged = {k.split("/")[-1] for k in translation_helpers.SEEN[-1]}
    assert set(weights) <= logged, logged


def test_mirrored_completion_loss_decreases_with_the_shipped_optimiser_and_does_not_collapse():
    """Adam at configs/fragments/completion_adam.yaml's lr (2e-4; 1e-3 once collapsed the
    mirrored U-Net to a black output) on a fixed batch of pairs: the loss falls, the output
    keeps the target's spread."""
    adam = resolve_config(ROOT / "configs" / "fragments" / "completion_adam.yaml")
    adam = adam["model"]["init_args"]["optimizers"]["generator"]["init_args"]
    assert adam["lr"] == pytest.approx(2e-4)
    torch.manual_seed(0)
    t = MirroredCompletion(channels=(8, 16), augmentation=None, distance=MeanAbs())
    t.train()
    g = _seeded(5)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, R), torch.linspace(0, 1, R), indexing="ij")
    studio = torch.stack([yy, xx, (yy * xx)]).expand(2, 3, R, R).contiguous()  # in [0, 1]
    mask = (torch.rand(2, 1, R, R, generator=g) > 0.3).float()
    batch = {"paired_phone": studio * 0.7 * mask, "paired_mask": mask, "paired_studio": studio}
    phase = t.phases()["generator"]
    opt = torch.optim.Adam(list(phase.parameters()), lr=adam["lr"], betas=tuple(adam["betas"]))
    losses = []
    for _ in range(200):
        outputs = t.forward_step(batch)
        loss = sum(phase.losses(batch, outputs, 0).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::20]
    with torch.no_grad():
        out = t.translate(batch["paired_phone"], mask)
    assert out.std() > 0.5 * studio.std()
