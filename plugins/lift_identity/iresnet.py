"""The "improved" ResNet (iresnet) of insightface's arcface_torch, the ArcFace backbone.

Architecture as in deepinsight/insightface recognition/arcface_torch/backbones/iresnet.py
(written here from its description; module names kept so its checkpoints load unchanged):
stem conv 3x3 (64, stride 1) -> BN -> PReLU; four stages of 64/128/256/512 channels whose
first block has stride 2; a block is BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN,
plus the input (through conv1x1(stride) + BN where the shape changes), with no activation
after the sum; then BN -> flatten (512 x 7 x 7 for 112x112 input) -> dropout -> fc(512) ->
BatchNorm1d whose weight stays 1. All BN eps are 1e-5; convs have no bias.
"""

from __future__ import annotations

import torch
from torch import nn

# Blocks per stage (arcface_torch's iresnet18/34/50/100/200).
IRESNET_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3),
                  200: (6, 26, 60, 6)}
WIDTHS = (64, 128, 256, 512)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-5)


class IBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = _bn(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = _bn(cout)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = _bn(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            _bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """iresnet of ``depth`` in (18, 34, 50, 100, 200); 112x112 input -> ``num_features``."""

    def __init__(self, depth: int = 50, num_features: int = 512, dropout: float = 0.0):
        super().__init__()
        if depth not in IRESNET_LAYERS:
            raise ValueError(f"iresnet depth must be one of {sorted(IRESNET_LAYERS)}, got {depth}")
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = _bn(64)
        self.prelu = nn.PReLU(64)
        cin = 64
        for index, (cout, blocks) in enumerate(zip(WIDTHS, IRESNET_LAYERS[depth]), start=1):
            stage = [IBasicBlock(cin, cout, 2)] + [IBasicBlock(cout, cout, 1)
                                                   for _ in range(blocks - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*stage))
            cin = cout
        self.bn2 = _bn(512)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(512 * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        nn.init.ones_(self.features.weight)
        self.features.weight.requires_grad_(False)  # fixed at 1, as in arcface_torch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))
