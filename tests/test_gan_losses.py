"""StyleGAN2 losses against hand computations, and DiffAugment's behaviour."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lift_stylegan2.augment import DiffAugment
from lift.losses.gan import (
    d_logistic_loss,
    d_r1_penalty,
    g_nonsaturating_loss,
    path_length_penalty,
)


def test_logistic_losses_hand_values():
    real = torch.tensor([[0.0], [2.0]])
    fake = torch.tensor([[-1.0], [0.0]])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected_d = (sp(-1.0) + sp(0.0)) / 2 + (sp(0.0) + sp(-2.0)) / 2
    assert math.isclose(d_logistic_loss(real, fake).item(), expected_d, rel_tol=1e-6)
    expected_g = (sp(1.0) + sp(0.0)) / 2
    assert math.isclose(g_nonsaturating_loss(fake).item(), expected_g, rel_tol=1e-6)


def test_r1_penalty_hand_value():
    # D(x) = sum(a * x²) / 2 per sample => ∇D = a * x, R1 = (γ/2) mean_n sum (a x_n)².
    torch.manual_seed(0)
    a = torch.randn(1, 3, 4, 4)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    logits = (a * x.square()).sum(dim=[1, 2, 3]).unsqueeze(1) / 2
    r1 = d_r1_penalty(logits, x, gamma=10.0)
    expected = 5.0 * ((a * x.detach()).square().sum(dim=[1, 2, 3])).mean()
    torch.testing.assert_close(r1, expected)
    # The graph is kept: R1 back-propagates into D's parameters (here: into a).
    a_param = a.clone().requires_grad_(True)
    x2 = x.detach().requires_grad_(True)
    r1b = d_r1_penalty((a_param * x2.square()).sum(dim=[1, 2, 3]) / 2, x2, gamma=10.0)
    r1b.backward()
    torch.testing.assert_close(a_param.grad, 10.0 * a * x.detach().square().mean(0, keepdim=True))


def test_path_length_hand_value():
    # A linear "generator": img_n = M · ws_n (flattened), so J^T y = M^T y per sample.
    torch.manual_seed(0)
    n, num_ws, w_dim, h = 3, 2, 4, 2
    m = torch.randn(3 * h * h, num_ws * w_dim, requires_grad=True)
    ws = torch.randn(n, num_ws, w_dim, requires_grad=True)
    img = (ws.flatten(1) @ m.t()).reshape(n, 3, h, h)
    noise = torch.randn(n, 3, h, h)
    pl_mean = torch.tensor(0.5)
    penalty, new_mean, lengths = path_length_penalty(img, ws, pl_mean, decay=0.01, noise=noise)
    y = noise.flatten(1) / h  # / sqrt(H W)
    grads = (y @ m.detach()).reshape(n, num_ws, w_dim)
    exp_lengths = grads.square().sum(2).mean(1).sqrt()
    exp_mean = 0.5 + 0.01 * (exp_lengths.mean() - 0.5)
    torch.testing.assert_close(lengths, exp_lengths)
    torch.testing.assert_close(new_mean, exp_mean)
    torch.testing.assert_close(penalty, (exp_lengths - exp_mean).square().mean())
    assert not new_mean.requires_grad
    penalty.backward()  # differentiable w.r.t. the generator's parameters
    assert m.grad is not None and m.grad.abs().sum() > 0


def test_path_length_is_zero_for_an_isometry_at_its_mean():
    # An orthogonal map has the same Jacobian length for every sample: penalty 0 at the mean.
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(12, 12))
    ws = torch.randn(5, 1, 12, requires_grad=True)
    img = (ws.flatten(1) @ q.t()).reshape(5, 3, 2, 2)
    noise = torch.ones(5, 3, 2, 2) * 2  # |y| = 2 * sqrt(12) / 2
    length = math.sqrt(12)
    penalty, new_mean, lengths = path_length_penalty(img, ws, torch.tensor(length), 0.01, noise)
    torch.testing.assert_close(lengths, torch.full((5,), length))
    assert penalty.item() < 1e-10


def test_diffaugment_is_differentiable_and_random_per_sample():
    torch.manual_seed(0)
    aug = DiffAugment()
    x = (torch.rand(6, 3, 16, 16) * 2 - 1).requires_grad_(True)
    y = aug(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not torch.allclose(aug(x.detach()), aug(x.detach()))


def test_diffaugment_parts():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16)
    # Translation only: every output pixel is an input pixel or zero fill.
    t = DiffAugment(color=False, cutout=False)(x)
    values = set(x.flatten().tolist()) | {0.0}
    assert set(t.flatten().tolist()) <= values
    # Cutout only: a square of 8x8 zeros (up to the border) and the rest unchanged.
    c = DiffAugment(color=False, translation=False)(x)
    zeroed = c == 0
    assert torch.equal(c[~zeroed], x[~zeroed])
    per_image = zeroed[:, 0].sum(dim=[1, 2])
    assert (per_image <= 64).all() and (per_image >= 16).all()
    # Colour only: per-image affine in value, no spatial change (a constant stays constant).
    const = torch.full((2, 3, 8, 8), 0.3)
    col = DiffAugment(translation=False, cutout=False)(const)
    assert torch.allclose(col, col[:, :, :1, :1].expand_as(col))
    # No flags: identity.
    torch.testing.assert_close(DiffAugment(False, False, False)(x), x)
    assert F.mse_loss(t, x) > 0
