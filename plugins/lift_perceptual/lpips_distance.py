"""LPIPS (Zhang et al. 2018), the distance of the paper's Eq. 1, 5, 6 and its LPIPS column.

Built with the ``lpips`` package, which ships its linear-head weights. The backbone is
torchvision's ImageNet VGG16 (or AlexNet), read from a local checkpoint: nothing is downloaded.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import torch
import torchvision

from lift.weights import resolve_weights
from lift_perceptual.frozen import FrozenDistance

# torchvision's ImageNet checkpoints (the files torchvision itself would download).
BACKBONE_FILES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}
BACKBONE_URLS = {
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
}
TORCHVISION_MODELS = {"vgg": torchvision.models.vgg16, "alex": torchvision.models.alexnet}
MIN_SIZE = {"vgg": 16, "alex": 31}  # smaller inputs vanish before the last feature layer


def backbone_weights(net: str, weights: str | None) -> Path:
    """The local torchvision checkpoint for ``net`` (``weights`` overrides the search)."""
    if weights is not None:
        return Path(weights)
    return resolve_weights(
        BACKBONE_FILES[net],
        "perceptual_distance",
        hint=f"It is torchvision's ImageNet {'VGG16' if net == 'vgg' else 'AlexNet'} "
        f"checkpoint, {BACKBONE_URLS[net]} (download it on a machine with internet access).",
    )


def load_torchvision_features(net: str, path: Path) -> torch.nn.Sequential:
    """``features`` of a torchvision VGG16/AlexNet, loaded strictly from checkpoint ``path``.

    Only the ``features.*`` entries are used (the classifier is not part of LPIPS/DISTS), so a
    checkpoint holding just those works too.
    """
    with torch.device("meta"):  # no random init: every parameter is loaded below
        features = TORCHVISION_MODELS[net](weights=None).features
    features = features.to_empty(device="cpu")
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    try:
        features.load_state_dict(own, strict=True)
    except RuntimeError as exc:
        raise RuntimeError(
            f"{path} is not a torchvision {BACKBONE_FILES[net]} checkpoint: {exc}"
        ) from exc
    return features


class LPIPS(FrozenDistance):
    """The paper's LPIPS: pretrained backbone + the ``lpips`` package's linear heads (v0.1).

    Args:
        net: backbone, ``"vgg"`` (the paper's LPIPS-VGG) or ``"alex"``.
        weights: a torchvision checkpoint file for the backbone; None resolves
            ``vgg16-397923af.pth`` / ``alexnet-owt-7be5be79.pth`` with
            ``lift.weights.resolve_weights`` ($LIFT_WEIGHTS_DIR, ~/.cache/lift/weights, torch hub).
    """

    def __init__(self, net: Literal["vgg", "alex"] = "vgg", weights: str | None = None):
        super().__init__()
        if net not in BACKBONE_FILES:
            raise ValueError(f"LPIPS net must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
        import lpips

        self.net = net
        features = load_torchvision_features(net, backbone_weights(net, weights))
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained`
            warnings.simplefilter("ignore", UserWarning)
            # pnet_rand: build the backbone without downloading; pretrained: load the heads.
            self.model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        # lpips' stages hold torchvision's `features` layers under their original indices.
        copied = 0
        for stage in self.model.net.children():
            for index, layer in stage.named_children():
                if any(True for _ in layer.parameters()):
                    layer.load_state_dict(features[int(index)].state_dict())
                    copied += 1
        expected = sum(1 for m in features if isinstance(m, torch.nn.Conv2d))
        if copied != expected:
            raise RuntimeError(f"copied {copied} backbone layers into lpips, expected {expected}")
        self.min_size = MIN_SIZE[net]
        self.freeze()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.check_inputs(x, y)
        return self.model(x, y, normalize=True).flatten()  # normalize: [0,1] -> [-1,1]
