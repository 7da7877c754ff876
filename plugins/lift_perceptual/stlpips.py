"""Shift-tolerant LPIPS (ST-LPIPS; Ghildyal & Liu, ECCV 2022) with real pretrained weights.

The ``stlpips-pytorch`` package ships whole networks (backbone + linear heads) as plain state
dicts, ``stlpips_pytorch/weights/vST0.0/{alex,vgg}_shift_tolerant.pth``. Its own modules import
IPython and torchsummary, so this module rebuilds the network and loads the state dict into it.

LPIPS (Zhang et al. 2018) of images x, y in [0,1]:
    x' = ((2x - 1) - shift) / scale                      (the "scaling layer")
    f_l = features of layer l, unit-normalised along channels
    d(x, y) = sum_l mean_{h,w} w_l . (f_l(x') - f_l(y'))^2
The shift-tolerant backbones keep the convolutions of AlexNet / VGG16 but make every
downsampling a blur pool: a stride-1 max pool (where the original pools), then a depthwise
[1,2,1]x[1,2,1]/16 filter with stride 2 on a reflect padding of 2; AlexNet's first conv runs
at stride 1 and is followed by a blur pool.
"""

from __future__ import annotations

import importlib.util
import re
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lift.weights import resolve_weights
from lift_perceptual.frozen import FrozenDistance


class BlurPool(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect pad 2, depthwise [1,2,1]^2/16, stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        # Saved in the checkpoint as ``filt``; loading it checks the filter is the one expected.
        self.register_buffer("filt", (kernel / kernel.sum()).expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (2, 2, 2, 2), mode="reflect")
        return F.conv2d(x, self.filt, stride=2, groups=x.shape[1])


def _stage(*layers: tuple[int, nn.Module]) -> nn.Sequential:
    # Keep the layer indices of the released checkpoint (its keys are ``net.slice<k>.<index>``).
    return nn.Sequential(OrderedDict((str(i), m) for i, m in layers))


def _conv(cin: int, cout: int, k: int, pad: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=k, padding=pad)


def shift_tolerant_alexnet() -> nn.ModuleDict:
    """Five stages whose outputs are the LPIPS feature maps (64, 192, 384, 256, 256 ch)."""
    relu = lambda: nn.ReLU()  # noqa: E731 (not in-place: stage outputs are kept as features)
    return nn.ModuleDict(
        {
            "slice1": _stage((0, nn.Conv2d(3, 64, 11, stride=1, padding=2)), (1, BlurPool(64)),
                             (2, relu())),
            "slice2": _stage((3, nn.MaxPool2d(3, stride=1)), (4, BlurPool(64)),
                             (5, _conv(64, 192, 5, 2)), (6, relu())),
            "slice3": _stage((7, nn.MaxPool2d(3, stride=1)), (8, BlurPool(192)),
                             (9, _conv(192, 384, 3, 1)), (10, relu())),
            "slice4": _stage((11, _conv(384, 256, 3, 1)), (12, relu())),
            "slice5": _stage((13, _conv(256, 256, 3, 1)), (14, relu())),
        }
    )


def shift_tolerant_vgg16() -> nn.ModuleDict:
    """VGG16's conv stages up to relu1_2, 2_2, 3_3, 4_3, 5_3 (64, 128, 256, 512, 512 ch)."""
    stages: dict[str, nn.Sequential] = {}
    widths = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]  # (channels, convs) per stage
    index, cin = 0, 3
    for s, (cout, n_convs) in enumerate(widths, start=1):
        layers: list[tuple[int, nn.Module]] = []
        if s > 1:  # VGG's 2x2 max pool, made shift tolerant
            layers += [(index, nn.MaxPool2d(2, stride=1)), (index + 1, BlurPool(cin))]
            index += 2
        for _ in range(n_convs):
            layers += [(index, _conv(cin, cout, 3, 1)), (index + 1, nn.ReLU())]
            index, cin = index + 2, cout
        stages[f"slice{s}"] = _stage(*layers)
    return nn.ModuleDict(stages)


BACKBONES = {"alex": shift_tolerant_alexnet, "vgg": shift_tolerant_vgg16}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
MIN_SIZE = {"alex": 21, "vgg": 18}  # below these a reflect padding exceeds its input


def packaged_weights(net: str) -> Path | None:
    """The state dict shipped by ``stlpips-pytorch`` (located without importing it)."""
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"
        if path.is_file():
            return path
    return None


def _rename(key: str) -> str:
    """Checkpoint key -> this module's key."""
    key = key.replace("scaling_layer.", "")
    key = re.sub(r"^lin(\d+)\.model\.1\.", r"heads.\1.", key)  # model.0 is a (no-op) dropout
    return re.sub(r"^net\.", "backbone.", key)


class STLPIPS(FrozenDistance):
    """Shift-tolerant LPIPS with the released pretrained weights: the offline default.

    Args:
        net: backbone, ``"alex"`` (faster) or ``"vgg"``.
        weights: a ST-LPIPS state-dict file; None uses the one shipped by ``stlpips-pytorch``,
            else ``<net>_shift_tolerant.pth`` found by ``lift.weights.resolve_weights``.
    """

    def __init__(self, net: Literal["alex", "vgg"] = "alex", weights: str | None = None):
        super().__init__()
        if net not in BACKBONES:
            raise ValueError(f"STLPIPS net must be one of {sorted(BACKBONES)}, got {net!r}")
        self.net = net
        self.min_size = MIN_SIZE[net]
        with torch.device("meta"):  # no random init: every tensor is loaded below (strict)
            self.register_buffer("shift", torch.zeros(1, 3, 1, 1))
            self.register_buffer("scale", torch.ones(1, 3, 1, 1))
            self.backbone = BACKBONES[net]()
            self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS[net])

        path = Path(weights) if weights is not None else packaged_weights(net)
        if path is None:
            path = resolve_weights(
                f"{net}_shift_tolerant.pth",
                self.kind,
                hint="It ships with the stlpips-pytorch package (pip install stlpips-pytorch), "
                "in stlpips_pytorch/weights/vST0.0/.",
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.to_empty(device="cpu")
        self.load_state_dict({_rename(k): v for k, v in state.items()}, strict=True)
        self.freeze()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.check_inputs(x, y)
        fx, fy = self.features(x), self.features(y)
        total = x.new_zeros(x.shape[0])
        for head, a, b in zip(self.heads, fx, fy):
            total = total + head((a - b) ** 2).mean(dim=(1, 2, 3))  # spatial average per layer
        return total

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's five stage outputs for images ``x`` in [0, 1] (raw, before LPIPS's
        unit normalisation; a projected discriminator's feature space)."""
        h = ((2 * x - 1) - self.shift) / self.scale  # [0,1] -> [-1,1] -> scaling layer
        out = []
        for stage in self.backbone.values():
            h = stage(h)
            out.append(h)
        return out

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Unit length along channels (eps as in the reference LPIPS).
        return [h / (h.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
                for h in self.activations(x)]
