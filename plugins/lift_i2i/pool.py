"""CycleGAN's history of generated images (Shrivastava et al. 2017; CycleGAN Sect. 4)."""

from __future__ import annotations

import random

import torch


class ImagePool:
    """Feeds the discriminator a mix of current and earlier fakes.

    ``query(images)`` goes image by image: while fewer than ``size`` images are stored, the
    image is stored and returned; afterwards, with probability 1/2 a uniformly chosen stored
    image is returned and replaced by the new one, otherwise the new image is returned (and not
    stored). ``size = 0`` returns the input. Random draws come from ``rng`` (Python's ``random``
    module by default, which Lightning's ``seed_everything`` seeds), one ``uniform`` per image
    once full and one ``randint`` per swap, as in the reference. CycleGAN checkpoints its pools
    (the reference does not).
    """

    def __init__(self, size: int = 50, rng: random.Random | None = None):
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.rng = rng  # None: the module ``random`` at query time (keeps the pool picklable)
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        rng = self.rng if self.rng is not None else random
        out = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif rng.uniform(0, 1) > 0.5:
                slot = rng.randint(0, self.size - 1)
                out.append(self.images[slot])
                self.images[slot] = image
            else:
                out.append(image)
        return torch.cat(out, 0)
