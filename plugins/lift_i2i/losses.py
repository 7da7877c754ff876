"""Losses of CUT and CycleGAN as pure functions (no networks inside, no weights applied).

All images are in the networks' [-1, 1] range: the reference weights (cycle 10, identity 5,
NCE 1) were tuned for L1 distances measured there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lsgan_loss(pred: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN (Mao et al. 2017): mean (D(x) - 1)² for real, mean D(x)² for fake.

    Averaged over every patch of the PatchGAN map, as the references' ``nn.MSELoss``.
    """
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if target_is_real else 0.0))


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (CycleGAN's cycle and identity losses)."""
    return (pred - target).abs().mean()


def patch_nce_loss(
    query: torch.Tensor,
    key: torch.Tensor,
    batch_size: int,
    temperature: float = 0.07,
    negatives_from_minibatch: bool = False,
) -> torch.Tensor:
    """PatchNCE (CUT Eq. 2-3): per-patch InfoNCE with the corresponding input patch as the
    positive and the other sampled patches as negatives.

    ``query``/``key`` are [B*P, C] l2-normalised embeddings, batch-major (image b's P patches
    are rows b*P ... b*P+P-1), query i and key i at the same location. Returns the loss of each
    of the B*P queries: -log(exp(q·k⁺/τ) / (exp(q·k⁺/τ) + Σ_neg exp(q·k⁻/τ))).

    Negatives come from the same image (``negatives_from_minibatch=False``, CUT / FastCUT) or
    from every image of the batch (single-image translation). Keys carry no gradient. As in the
    reference, the query's own location is removed from the negatives by setting its logit to
    -10/τ (exp(-10/0.07) ≈ 1e-62, i.e. excluded) rather than by dropping the column.
    """
    key = key.detach()
    dim = query.shape[1]
    positive = (query * key).sum(dim=1, keepdim=True)  # [B*P, 1]
    groups = 1 if negatives_from_minibatch else batch_size
    q = query.reshape(groups, -1, dim)
    k = key.reshape(groups, -1, dim)
    n = q.shape[1]
    negative = torch.bmm(q, k.transpose(1, 2))  # [groups, n, n]: query i against key j
    self_pair = torch.eye(n, dtype=torch.bool, device=query.device)[None]
    negative = negative.masked_fill(self_pair, -10.0).reshape(-1, n)
    logits = torch.cat([positive, negative], dim=1) / temperature
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target, reduction="none")
