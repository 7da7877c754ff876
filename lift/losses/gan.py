"""GAN losses as pure functions (no state, no networks inside).

The prior stage (StyleGAN2's objective) and the GAN translators (the paper's hinge loss, Eq. 3)
share them; they need only logits, images and codes, so any generator/discriminator pair that
follows lift.components.StyleGenerator / ImageDiscriminator can use them.

Non-saturating logistic GAN loss (Goodfellow et al. 2014), R1 gradient penalty (Mescheder et
al. 2018; the paper's Eq. 7 with γ = 10) and path-length regularisation (StyleGAN2 Sect. 3.2,
Eq. 4). Lazy regularisation (computing R1 / path length every k steps, scaled by k) is the
training loop's job, not these functions'.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss: mean softplus(D(fake)) + mean softplus(-D(real))."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss: mean softplus(-D(G(z))) = -log sigmoid(D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def d_r1_penalty(
    real_logits: torch.Tensor, real_images: torch.Tensor, gamma: float
) -> torch.Tensor:
    """R1: (γ/2) E[ ||∇_x D(x)||² ] over real images (``real_images`` must require grad).

    The graph is kept (``create_graph``) so the penalty can be back-propagated into D.
    """
    assert real_images.requires_grad, "R1 needs real_images.requires_grad_(True) before D"
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.square().sum(dim=[1, 2, 3]).mean() * (gamma / 2)


def path_length_penalty(
    images: torch.Tensor,
    ws: torch.Tensor,
    pl_mean: torch.Tensor,
    decay: float,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Path-length regulariser (StyleGAN2 Eq. 4): E[(||J_w^T y||₂ − a)²].

    ``y`` ~ N(0, I) / sqrt(H W) (so the length does not depend on the resolution), the gradient
    is taken per W+ row, squared lengths summed over w_dim and averaged over rows; ``a`` is the
    running mean of the lengths, updated with ``decay``. Returns
    ``(penalty, new_pl_mean, lengths)``; ``new_pl_mean`` is detached (store it as a buffer).
    ``images`` must have been produced from ``ws`` (which must require grad).
    """
    assert ws.ndim == 3 and images.ndim == 4 and images.shape[0] == ws.shape[0]
    h, w = images.shape[2:]
    if noise is None:
        noise = torch.randn_like(images)
    noise = noise / math.sqrt(h * w)
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
    new_mean = pl_mean.lerp(lengths.mean(), decay)
    penalty = (lengths - new_mean).square().mean()
    return penalty, new_mean.detach(), lengths


def d_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss (the paper's Eq. 3): E[relu(1 - D(x))] + E[relu(1 + D(G(w)))]."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss (Eq. 3): -E[D(G(w))]."""
    return -fake_logits.mean()
