"""RelightingAugmentation (plugins/lift_related/augmentation.py): deterministic under a seed,
masks that follow the distribution learned from the observed phone masks, a light model that
reduces to the identity when switched off, and no dependency on the synthetic benchmark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lift_related.augmentation import RelightingAugmentation, sh_basis

from lift.spec import build, spec_of

R = 32


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _masks(n: int = 40, seed: int = 0) -> torch.Tensor:
    """Phone-like masks: a left or right side strip unseen, plus a random rectangle hole."""
    g = _seeded(seed)
    masks = torch.ones(n, 1, R, R)
    for i in range(n):
        width = int(torch.randint(2, 8, (1,), generator=g))
        if i % 3:
            masks[i, :, :, :width] = 0
        else:
            masks[i, :, :, R - width:] = 0
        top, left = (int(v) for v in torch.randint(8, 24, (2,), generator=g))
        masks[i, :, top:top + 3, left:left + 5] = 0
    return masks


def test_the_same_seed_gives_the_same_degradation_and_another_seed_another():
    studio = torch.rand(4, 3, R, R, generator=_seeded(5))
    for mode in ("pool", "frequency"):
        aug = RelightingAugmentation(R, mask_mode=mode, noise_std=0.01)
        aug.observe(_masks())
        a_phone, a_mask = aug(studio, generator=_seeded(1))
        b_phone, b_mask = aug(studio, generator=_seeded(1))
        c_phone, c_mask = aug(studio, generator=_seeded(2))
        assert torch.equal(a_phone, b_phone) and torch.equal(a_mask, b_mask)
        assert not torch.equal(a_phone, c_phone)
        assert a_phone.shape == studio.shape and a_mask.shape == (4, 1, R, R)
        assert set(a_mask.unique().tolist()) <= {0.0, 1.0}
        assert float(a_phone.min()) >= 0 and float(a_phone.max()) <= 1
        assert float((a_phone * (1 - a_mask)).abs().max()) == 0  # holes are black
    # the global generator is used when none is given: seeded, it repeats too
    torch.manual_seed(3)
    first = aug(studio)
    torch.manual_seed(3)
    assert torch.equal(first[0], aug(studio)[0])


def test_frequency_mode_matches_the_observed_per_texel_hole_frequency():
    aug = RelightingAugmentation(R, mask_mode="frequency", hole_correlation=0.08)
    # a configured visibility: a left-right ramp from never to always seen, a fully seen band
    u = (torch.arange(R) + 0.5) / R
    visibility = u[None, :].expand(R, R).clone()
    visibility[10:14] = 1.0
    aug.visible_sum.copy_(visibility[None].double() * 100)
    aug.mask_count.fill_(100)
    torch.testing.assert_close(aug.visibility, visibility[None].float())
    masks = aug.sample_masks(3000, generator=_seeded(0))
    empirical = masks.mean(0)[0]
    error = (empirical - visibility).abs()
    assert float(error.mean()) < 0.015 and float(error.max()) < 0.08, float(error.max())
    assert abs(float(1 - masks.mean()) - float(1 - visibility.mean())) < 0.01  # hole fraction
    assert float(masks[:, 0, 10:14].min()) == 1.0        # p(hole) = 0: never a hole
    # holes are blobs, not salt and pepper: neighbours agree far more often than independence
    same = (masks[..., 1:] == masks[..., :-1]).float().mean()
    p = visibility[:, 1:]
    independent = (p * p + (1 - p) * (1 - p)).mean()
    assert float(same) > float(independent) + 0.1


def test_observe_learns_the_frequency_and_pool_mode_draws_the_observed_masks():
    observed = _masks(30)
    aug = RelightingAugmentation(R, mask_mode="pool", pool_size=64, jitter=0.0,
                                 mirror_prob=0.0)
    aug.observe(observed[:10])
    aug.observe(observed[10:])
    torch.testing.assert_close(aug.visibility, observed.mean(0), atol=1e-6, rtol=0)
    drawn = aug.sample_masks(2000, generator=_seeded(0))
    pool = {m.flatten().to(torch.uint8).numpy().tobytes() for m in observed}
    assert all(m.flatten().to(torch.uint8).numpy().tobytes() in pool for m in drawn[:50])
    error = (drawn.mean(0) - observed.mean(0)).abs()
    assert float(error.max()) < 0.06
    # mirroring across the symmetry axis: the distribution of the mirrored masks joins in
    aug.mirror_prob = 0.5
    mirrored = aug.sample_masks(3000, generator=_seeded(1)).mean(0)
    expected = (observed.mean(0) + observed.mean(0).flip(-1)) / 2
    assert float((mirrored - expected).abs().max()) < 0.06
    # jitter keeps the hole fraction (shifts replicate the border)
    aug.jitter, aug.mirror_prob = 0.1, 0.0
    jittered = aug.sample_masks(2000, generator=_seeded(2))
    assert abs(float(jittered.mean()) - float(observed.mean())) < 0.03


def test_the_pool_is_a_ring_buffer_of_the_last_masks_and_other_sizes_are_resized():
    aug = RelightingAugmentation(R, pool_size=4)
    aug.observe(torch.zeros(3, 1, R, R))
    aug.observe(torch.ones(3, 1, 2 * R, 2 * R))  # area-resized to R
    assert int(aug.mask_count) == 6 and int(aug.pool_next) == 6
    assert int(aug.pool.sum()) == 3 * R * R       # 3 of the 4 slots hold the newest masks
    assert aug.sample_masks(2, size=2 * R, generator=_seeded(0)).shape == (2, 1, 2 * R, 2 * R)


def test_without_light_cast_and_holes_the_augmentation_is_the_identity():
    aug = RelightingAugmentation(R, sh_std=(0.0, 0.0), key_intensity=(0.0, 0.0),
                                 exposure=(1.0, 1.0), cast_std=0.0, ambient_floor=0.0)
    aug.observe(torch.ones(2, 1, R, R))
    studio = torch.rand(3, 3, R, R, generator=_seeded(0))
    phone, mask = aug(studio, generator=_seeded(0))
    assert torch.equal(mask, torch.ones_like(mask))
    torch.testing.assert_close(phone, studio, atol=1e-5, rtol=0)


def test_the_light_fields_are_positive_with_the_configured_exposure():
    aug = RelightingAugmentation(R, exposure=(0.8, 1.2))
    lit = aug.light(64, R, R, generator=_seeded(0))
    assert float(lit["gain"].min()) > 0 and float(lit["shadow"].min()) >= 0
    means = lit["gain"].mean(dim=(1, 2, 3))
    assert float(means.min()) >= 0.8 - 1e-9 and float(means.max()) <= 1.2 + 1e-9
    # the DC term alone is a uniform environment: E = 1 everywhere
    flat = RelightingAugmentation(R, sh_std=(0.0, 0.0)).light(2, R, R, generator=_seeded(0))
    torch.testing.assert_close(flat["sh"], torch.ones_like(flat["sh"]))
    # a band-1 light brightens the side it comes from: E rises along the normals' x
    lit_x = torch.einsum("hwk,k->hw", sh_basis(aug.normals(R, R)),
                         torch.tensor([0, 0, 0, 1.0, 0, 0, 0, 0, 0], dtype=torch.float64))
    assert bool((lit_x[:, R // 2:] > 0).all()) and bool((lit_x[:, : R // 2] < 0).all())
    n = aug.normals(R, R)
    torch.testing.assert_close(n.norm(dim=-1), torch.ones(R, R, dtype=torch.float64))


def test_errors_and_the_recorded_spec():
    with pytest.raises(RuntimeError, match="observed no phone mask"):
        RelightingAugmentation(R).sample_masks(1)
    with pytest.raises(ValueError, match="mask_mode"):
        RelightingAugmentation(R, mask_mode="synthetic")
    spec = spec_of(RelightingAugmentation(R, mask_mode="frequency"))
    assert spec["class_path"] == "lift_related.augmentation.RelightingAugmentation"
    assert build(spec).mask_mode == "frequency"


def test_the_plugin_does_not_use_the_synthetic_benchmarks_phone_model():
    package = Path(__import__("lift_related").__file__).parent
    for source in package.glob("*.py"):
        imports = [line for line in source.read_text().splitlines()
                   if line.lstrip().startswith(("import ", "from "))]
        assert not [line for line in imports if "synth" in line or "lift.data" in line], source
    code = ("import sys, lift_related.augmentation, lift_related.completion, "
            "lift_related.srresnet; "
            "print(sorted(m for m in sys.modules if m.startswith('lift.data')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "synth" not in out, out
