"""Latent samplers: where G_studio's training latents come from (Sect 3.1, Table 4).

Every sampler returns W+ codes ``[num, num_ws, w_dim]`` for the synthesis network, so the
translation stage never branches on a latent space; swapping the sampler in a config is the
paper's Table 4 ablation (W+ bank vs Z space).

- ``ZSampler``: z ~ N(0, I) through the mapping network, broadcast to every style layer
  (StyleGAN's own training distribution, Table 4's "Z space"). Differentiable w.r.t. the
  mapping network's parameters (they receive gradients if the stage trains them).
- ``WSampler``: the same draw through a *frozen* mapping network: w = mapping(z) computed
  without gradients, broadcast to every layer (a point of W). With the mapping frozen (the
  paper finetunes only the synthesis network) ``ZSampler`` and ``WSampler`` draw one
  distribution; they differ in whether the mapping network can learn.
- ``ZPlusSampler``: one independent z per style layer through the mapping network (Z+, as
  AgileGAN), so the layers of one code differ.
- ``WPlusBankSampler``: uniform over the latent bank S_W+ of inverted phone textures (Eq. 1);
  under DDP every rank loads and samples the full bank.

Class names carry a ``Sampler`` suffix (``ZSampler`` ... rather than ``Z``): the registry and
short ``class_path`` values use class names, and one-letter names clash easily.
"""

from __future__ import annotations

import torch
from torch import nn

from lift.components import LatentSampler, StyleGenerator
from lift.latent_bank import LatentBank, check_bank_generator


def _draw_device(module: nn.Module, generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else module.device


class _MappingSampler(LatentSampler):
    """Shared plumbing of the samplers that go through the bound generator's mapping."""

    def __init__(self, truncation_psi: float = 1.0):
        super().__init__()
        self.truncation_psi = truncation_psi  # 1: no truncation; <1 pulls w towards w_avg
        self._generator: list[nn.Module] = []  # a list: not a submodule, not in state_dict

    def bind(self, generator: StyleGenerator) -> None:
        if not isinstance(generator, StyleGenerator):
            raise TypeError(f"{type(self).__name__} needs a lift.components.StyleGenerator, "
                            f"got {type(generator).__name__}")
        self._generator = [generator]

    @property
    def generator(self) -> nn.Module:
        if not self._generator:
            raise RuntimeError(f"{type(self).__name__}.bind(generator) was not called")
        return self._generator[0]

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def _gaussian(self, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
        z = torch.randn(shape, generator=generator, device=_draw_device(self, generator))
        return z.to(self.device)

    def _check(self, ws: torch.Tensor, num: int) -> torch.Tensor:
        g = self.generator
        assert ws.shape == (num, g.num_ws, g.w_dim), ws.shape
        return ws


class ZSampler(_MappingSampler):
    """z ~ N(0, I) → mapping → one w broadcast to all layers (gradients reach the mapping)."""

    def sample(self, num: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        z = self._gaussian((num, self.generator.z_dim), generator)
        return self._check(self.generator.map(z, truncation_psi=self.truncation_psi), num)


class WSampler(_MappingSampler):
    """w = mapping(z) of a frozen mapping network (no gradients), broadcast to all layers."""

    def sample(self, num: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        z = self._gaussian((num, self.generator.z_dim), generator)
        with torch.no_grad():
            ws = self.generator.map(z, truncation_psi=self.truncation_psi)
        return self._check(ws.detach(), num)


class ZPlusSampler(_MappingSampler):
    """Z+ (AgileGAN): an independent z per style layer, each through the mapping network."""

    def sample(self, num: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        g = self.generator
        z = self._gaussian((num * g.num_ws, g.z_dim), generator)
        # The mapping broadcasts each w to all rows; keep row 0 of each, one per layer.
        w = g.map(z, truncation_psi=self.truncation_psi)[:, 0]
        return self._check(w.reshape(num, g.num_ws, g.w_dim), num)


class WPlusBankSampler(LatentSampler):
    """Uniform draws from the latent bank S_W+ (Sect 3.1): inverted phone textures' codes.

    The bank is loaded whole on every rank (DDP ranks all sample the full bank); it is a
    non-persistent buffer, so checkpoints do not carry a copy of it.
    """

    def __init__(self, bank: str):
        super().__init__()
        self.bank = bank  # latent bank directory written by the inversion stage
        latent_bank = LatentBank.open(bank)
        self._latent_bank = [latent_bank]  # a list: not a submodule
        latent_bank.check_complete()  # training on a partial bank would bias the draws
        codes = latent_bank.tensor()
        if codes.shape[0] == 0:
            raise ValueError(f"latent bank {bank} holds no codes")
        self.register_buffer("codes", codes, persistent=False)

    def bind(self, generator: StyleGenerator) -> None:
        expected = (getattr(generator, "num_ws", None), getattr(generator, "w_dim", None))
        if tuple(self.codes.shape[1:]) != expected:
            raise ValueError(
                f"latent bank {self.bank} holds codes of shape {tuple(self.codes.shape[1:])} "
                f"but the generator expects (num_ws, w_dim) = {expected}"
            )
        check_bank_generator(self._latent_bank[0], generator, "the generator it is bound to")
        self.codes = self.codes.to(next(generator.parameters()).device)

    def sample(self, num: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_indexed(num, generator=generator)[0]

    def sample_indexed(self, num: int, *, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        device = generator.device if generator is not None else self.codes.device
        idx = torch.randint(self.codes.shape[0], (num,), generator=generator, device=device)
        idx = idx.to(self.codes.device)
        return self.codes[idx], idx
