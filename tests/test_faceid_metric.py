"""The FaceID metric (Table 2; ``lift_metrics.faceid``): mean squared L2 between embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lift.components import IdentityEncoder
from lift_metrics.faceid import FaceID

WEIGHTS = np.array([[1.0, 0.0], [2.0, -1.0], [0.5, 3.0]])  # channel means [3] -> embedding [2]


class MeanLinear(IdentityEncoder):
    """A deterministic linear encoder: per-channel means of the texture times ``WEIGHTS``."""

    embedding_dim = 2

    def __init__(self):
        super().__init__()
        self.register_buffer("weight", torch.tensor(WEIGHTS, dtype=torch.float32))
        self.masks_seen = 0

    def forward(self, texture: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            self.masks_seen += 1
            texture = texture * mask
        return texture.mean(dim=(2, 3)) @ self.weight


def by_hand(preds: np.ndarray, target: np.ndarray) -> float:
    values = []
    for p, t in zip(preds, target):
        a = p.mean(axis=(1, 2)) @ WEIGHTS
        b = t.mean(axis=(1, 2)) @ WEIGHTS
        values.append(sum((a - b) ** 2))
    return sum(values) / len(values)


def test_faceid_matches_a_hand_computation_over_two_updates():
    g = torch.Generator().manual_seed(0)
    preds = torch.rand(5, 3, 8, 8, generator=g)
    target = torch.rand(5, 3, 8, 8, generator=g)
    metric = FaceID(MeanLinear())
    metric.update(preds[:2], target[:2])
    metric.update(preds[2:], target[2:])
    expected = by_hand(preds.double().numpy(), target.double().numpy())
    assert metric.compute().item() == pytest.approx(expected, rel=1e-5)
    # The mean over all 5 textures, not the mean of the two batch means.
    first = by_hand(preds[:2].double().numpy(), target[:2].double().numpy())
    second = by_hand(preds[2:].double().numpy(), target[2:].double().numpy())
    assert abs(expected - (first + second) / 2) > 1e-3
    metric.reset()
    metric.update(preds, preds)
    assert metric.compute().item() == 0.0


def test_faceid_passes_the_mask_to_the_encoder():
    g = torch.Generator().manual_seed(1)
    preds, target = torch.rand(2, 2, 3, 4, 4, generator=g)
    mask = torch.ones(2, 1, 4, 4)
    mask[:, :, :, :2] = 0
    encoder = MeanLinear()
    metric = FaceID(encoder)
    metric.update(preds, target, mask=mask)
    assert encoder.masks_seen == 2  # preds and target, both masked
    expected = by_hand((preds * mask).double().numpy(), (target * mask).double().numpy())
    assert metric.compute().item() == pytest.approx(expected, rel=1e-5)


def test_faceid_properties_and_checks(builtin_registry):
    metric = FaceID(MeanLinear())
    assert metric.name == "FaceID" and metric.higher_is_better is False
    assert builtin_registry.get("metric", "FaceID") is FaceID
    with pytest.raises(TypeError, match="IdentityEncoder"):
        FaceID(torch.nn.Identity())
    with pytest.raises(ValueError, match="one shape"):
        metric.update(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5))


def test_faceid_with_dlib_prefers_the_same_identity():
    """With the offline default encoder: a studio texture is closer (in FaceID) to its own
    subject's phone texture than to another subject's."""
    from lift.data import SyntheticSource
    from lift_identity.dlib_resnet import DlibResNet

    source = SyntheticSource(profile="quickstart", seed=0)
    a, b = source.splits()["paired_train"][:2]
    studio = torch.stack([source.load(a, "studio")] * 2)
    phone = torch.stack([source.load(a, "phone"), source.load(b, "phone")])
    mask = torch.stack([source.load(a, "mask"), source.load(b, "mask")])
    encoder = DlibResNet()
    same, other = FaceID(encoder), FaceID(encoder)
    same.update(studio[:1], phone[:1], mask=mask[:1])
    other.update(studio[1:], phone[1:], mask=mask[1:])
    assert same.compute() < other.compute()
