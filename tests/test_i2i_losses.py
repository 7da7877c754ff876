"""CUT / CycleGAN losses against hand computations; the image pool's semantics."""

from __future__ import annotations

import math
import random

import pytest
import torch

from lift_i2i.losses import l1_loss, lsgan_loss, patch_nce_loss
from lift_i2i.pool import ImagePool


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_lsgan_terms_by_hand():
    pred = torch.tensor([[[[0.5, 2.0], [1.0, -1.0]]]])
    # real: ((0.5-1)² + (2-1)² + 0 + (-2)²) / 4; fake: (0.25 + 4 + 1 + 1) / 4
    assert lsgan_loss(pred, True).item() == pytest.approx((0.25 + 1 + 0 + 4) / 4)
    assert lsgan_loss(pred, False).item() == pytest.approx((0.25 + 4 + 1 + 1) / 4)


def test_l1_by_hand():
    a = torch.tensor([[0.5, -1.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [0.25, 1.0]])
    assert l1_loss(a, b).item() == pytest.approx((0.5 + 2 + 0.25 + 0) / 4)


def naive_patch_nce(q, k, batch, tau, all_negatives):
    """CUT Eq. 3, patch by patch: ℓ = -log(e^{v·v⁺/τ} / (e^{v·v⁺/τ} + Σ_n e^{v·v⁻_n/τ})),
    negatives = the other sampled patches of the same image (or of the whole batch)."""
    n_rows = q.shape[0]
    per_image = n_rows // batch
    losses = []
    for i in range(n_rows):
        b = i // per_image
        pos = math.exp(float(q[i] @ k[i]) / tau)
        pool = range(n_rows) if all_negatives else range(b * per_image, (b + 1) * per_image)
        neg = sum(math.exp(float(q[i] @ k[j]) / tau) for j in pool if j != i)
        losses.append(-math.log(pos / (pos + neg)))
    return torch.tensor(losses, dtype=torch.float64)


@pytest.mark.parametrize("all_negatives", [False, True])
def test_patch_nce_equals_the_per_patch_formula(all_negatives):
    g = torch.Generator().manual_seed(0)
    batch, patches, dim = 3, 7, 16
    q = torch.nn.functional.normalize(torch.randn(batch * patches, dim, generator=g), dim=1)
    k = torch.nn.functional.normalize(torch.randn(batch * patches, dim, generator=g), dim=1)
    k[::2] = torch.nn.functional.normalize(q[::2] + 0.3 * k[::2], dim=1)  # some easy positives
    ours = patch_nce_loss(q, k, batch, 0.07, all_negatives)
    expected = naive_patch_nce(q.double(), k.double(), batch, 0.07, all_negatives)
    assert ours.shape == (batch * patches,)
    torch.testing.assert_close(ours.double(), expected, rtol=1e-5, atol=1e-5)


def test_patch_nce_gradients_flow_to_queries_only():
    q = torch.nn.functional.normalize(torch.randn(8, 4), dim=1).requires_grad_(True)
    k = torch.nn.functional.normalize(torch.randn(8, 4), dim=1).requires_grad_(True)
    patch_nce_loss(q, k, 2).mean().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None


def test_pool_stores_the_first_images_then_swaps_half_the_time():
    size = 50
    pool = ImagePool(size, random.Random(123))
    first = torch.arange(size, dtype=torch.float32).view(size, 1, 1, 1)
    out = pool.query(first[:20])
    torch.testing.assert_close(out, first[:20])  # not full: stored and returned as they are
    out = pool.query(first[20:])
    torch.testing.assert_close(out, first[20:])
    assert len(pool.images) == size

    # Full: per image, uniform() > 0.5 returns a uniformly chosen stored image and stores the
    # new one in its slot; otherwise the new image comes back and the pool is unchanged.
    mirror = random.Random(123)
    stored = list(range(size))
    new = torch.arange(100, 140, dtype=torch.float32).view(40, 1, 1, 1)
    out = pool.query(new).flatten().tolist()
    swaps = 0
    for value, got in zip(range(100, 140), out):
        if mirror.uniform(0, 1) > 0.5:
            slot = mirror.randint(0, size - 1)
            assert got == stored[slot]
            stored[slot] = value
            swaps += 1
        else:
            assert got == value
    assert [int(t.item()) for t in pool.images] == stored
    assert 10 < swaps < 30  # about half of 40


def test_pool_of_size_zero_is_the_identity_and_pool_output_is_detached():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    assert ImagePool(0).query(x) is x
    assert not ImagePool(5).query(x * 2).requires_grad
