"""ProjectedDiscriminator: the contract, a frozen feature network outside the checkpoint, fixed
projections, gradients to the images (R1), and the shipped prior config training with it."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lift.components import ImageDiscriminator
from lift_perceptual.projected import ProjectedDiscriminator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def d():
    torch.manual_seed(0)
    return ProjectedDiscriminator(32, num_scales=3, projection_channels=16, head_channels=16)


def test_logits_per_image_and_only_the_heads_train(d):
    assert isinstance(d, ImageDiscriminator)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    out = d(x)
    assert out.shape == (3, 1) and torch.isfinite(out).all()
    trainable = [n for n, p in d.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("heads.") for n in trainable)
    assert not any(p.requires_grad for p in d.feature_net.parameters())
    # the frozen network is the package's: not in this model's state dict
    assert not any("backbone" in k for k in d.state_dict())
    assert {f"ccm{s}" for s in range(3)} <= set(d.state_dict())


def test_gradients_reach_the_images_and_the_heads(d):
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    assert grad.abs().sum() > 0
    grad.square().sum().backward()  # R1's double backward
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.heads.parameters())
    d.zero_grad(set_to_none=True)


def test_projections_are_fixed_by_their_seed_and_a_state_dict_round_trip_is_exact(d):
    other = ProjectedDiscriminator(32, num_scales=3, projection_channels=16, head_channels=16)
    assert torch.equal(other.ccm0, d.ccm0)
    reseeded = ProjectedDiscriminator(32, num_scales=3, projection_channels=16,
                                      head_channels=16, projection_seed=1)
    assert not torch.equal(reseeded.ccm0, d.ccm0)
    other.load_state_dict(d.state_dict())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(other.eval()(x), d.eval()(x))
    d.train()


def test_real_and_blurred_images_get_different_logits_after_a_few_steps():
    """The heads learn on the frozen features: 30 Adam steps separate sharp from blurred."""
    torch.manual_seed(0)
    d = ProjectedDiscriminator(32, num_scales=2, projection_channels=16, head_channels=16)
    opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.0, 0.99))
    gen = torch.Generator().manual_seed(0)
    sharp = (torch.rand(16, 3, 32, 32, generator=gen) > 0.5).float() * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2)
    for _ in range(30):
        loss = (torch.nn.functional.softplus(-d(sharp)) + torch.nn.functional.softplus(
            d(blurred))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert d(sharp).mean() > d(blurred).mean() + 1.0


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="RGB"):
        ProjectedDiscriminator(32, img_channels=1)
    with pytest.raises(ValueError, match="num_scales"):
        ProjectedDiscriminator(32, num_scales=6)
    with pytest.raises(ValueError, match="resolution >= 21"):
        ProjectedDiscriminator(16)
    with pytest.raises(ValueError, match=r"expects \[N, 3, 32, 32\]"):
        ProjectedDiscriminator(32, num_scales=1)(torch.zeros(1, 3, 16, 16))


def test_the_shipped_projected_prior_config_trains(tmp_path):
    cmd = [sys.executable, "-m", "lift.cli", "fit",
           "--config", "configs/prior/stylegan2_projected_quickstart.yaml",
           "--config", "configs/trainer/cpu.yaml", "--trainer.fast_dev_run=2",
           f"--trainer.default_root_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
