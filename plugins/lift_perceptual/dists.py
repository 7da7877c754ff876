"""DISTS (Ding et al. 2020), the paper's DISTS column, through ``piq.DISTS``.

piq builds DISTS from torchvision's ImageNet VGG16 (``vgg16(pretrained=True)``) and its own
alpha/beta weights (``torch.hub.load_state_dict_from_url(.../dists_weights.pt)``); both would
be downloaded. Here both files are resolved locally and handed to piq's constructor in place
of its two download calls, so piq's own DISTS code computes the distance.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import torch

from lift.weights import resolve_weights
from lift_perceptual.frozen import FrozenDistance
from lift_perceptual import lpips_distance

DISTS_FILE = "dists_weights.pt"


class DISTS(FrozenDistance):
    """piq's DISTS with local weights; ``[B]`` distances (``1 - similarity``, 0 when equal).

    Args:
        weights: piq's DISTS alpha/beta file; None resolves ``dists_weights.pt`` with
            ``lift.weights.resolve_weights``.
        backbone_weights: torchvision's VGG16 checkpoint; None resolves ``vgg16-397923af.pth``.
    """

    min_size = 32  # five poolings

    def __init__(self, weights: str | None = None, backbone_weights: str | None = None):
        super().__init__()
        import piq
        import piq.perceptual

        dists_path = Path(weights) if weights is not None else resolve_weights(
            DISTS_FILE,
            self.kind,
            hint=f"It is piq's DISTS weights file, {piq.DISTS._weights_url} "
            "(download it on a machine with internet access).",
        )
        vgg_path = lpips_distance.backbone_weights("vgg", backbone_weights)
        features = lpips_distance.load_torchvision_features("vgg", vgg_path)
        alpha_beta = torch.load(dists_path, map_location="cpu", weights_only=True)
        if not isinstance(alpha_beta, dict) or set(alpha_beta) != {"alpha", "beta"}:
            raise RuntimeError(f"{dists_path} is not piq's {DISTS_FILE} (alpha and beta)")

        def local_weights(url: str, *args, **kwargs):
            if not url.endswith("/" + DISTS_FILE):
                raise RuntimeError(f"piq asked for {url}; lift resolves only {DISTS_FILE}")
            return alpha_beta

        def local_vgg16(*args, **kwargs):
            vgg = torch.nn.Module()
            vgg.features = features  # piq only uses `.features`
            return vgg

        # piq's only two download calls, answered with the local files.
        with mock.patch.object(torch.hub, "load_state_dict_from_url", local_weights), \
                mock.patch.object(piq.perceptual, "vgg16", local_vgg16):
            self.model = piq.DISTS(reduction="none")
        self.freeze()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.check_inputs(x, y)
        return self.model(x, y)

