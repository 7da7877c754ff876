"""A tiny texture source and prediction folders for the evaluation and report tests."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from lift.data.io import write_texture
from lift.data.sources import SPLITS, TextureSource

SIZE = 64
PAIRED = ["p0", "p1"]
UNPAIRED = ["u0", "u1"]


def smooth_texture(seed: int, size: int = SIZE) -> torch.Tensor:
    """A smooth random texture in [0.2, 0.8] (so a +-0.1 offset stays in range)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, size // 8, size // 8, generator=g)
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)[0]
    return (0.2 + 0.6 * (x - x.min()) / (x.max() - x.min())).clamp(0.2, 0.8)


def hole_mask(size: int = SIZE) -> torch.Tensor:
    """Seen everywhere except a square inside the FaceID crop box."""
    mask = torch.ones(1, size, size)
    mask[:, size // 2 - 8: size // 2 + 8, size // 2 - 8: size // 2 + 8] = 0
    return mask


class TinySource(TextureSource):
    """Two paired and two unpaired test subjects at 64x64, one expression each."""

    def __init__(self):
        super().__init__()
        self.data = {}
        for i, stem in enumerate(PAIRED + UNPAIRED):
            self.data[stem] = {"phone": smooth_texture(100 + i), "mask": hole_mask(),
                               "studio": smooth_texture(200 + i)}
            if stem in UNPAIRED:
                del self.data[stem]["studio"]

    def splits(self):
        out = {s: [] for s in SPLITS}
        out["paired_test"], out["unpaired_test"] = list(PAIRED), list(UNPAIRED)
        return out

    def load(self, stem, kind):
        return self.data[stem][kind]

    def expressions(self, stem):
        return {"smile": (self.data[stem]["phone"] * 0.9)}


def write_prediction(run_dir: Path, method: str, seed: int, stem: str, tensor: torch.Tensor,
                     kind: str = "studio") -> Path:
    path = Path(run_dir) / "predictions" / method / f"seed{seed}" / kind / f"{stem}.png"
    return write_texture(path, tensor.clamp(0, 1))


def noisy(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def write_folder_source(root: Path, source: TinySource) -> Path:
    """The same subjects as a FolderSource folder."""
    for stem, kinds in source.data.items():
        for kind, tensor in kinds.items():
            sub = {"phone": "phone", "studio": "studio", "mask": "masks"}[kind]
            write_texture(root / sub / f"{stem}.png", tensor)
    (root / "splits").mkdir(parents=True, exist_ok=True)
    (root / "splits" / "paired_test.txt").write_text("\n".join(PAIRED) + "\n")
    (root / "splits" / "unpaired_test.txt").write_text("\n".join(UNPAIRED) + "\n")
    for split in ("phone_train", "studio_train", "paired_train"):
        (root / "splits" / f"{split}.txt").write_text("")
    return root
