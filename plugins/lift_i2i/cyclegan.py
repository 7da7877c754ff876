"""CycleGAN (Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", ICCV 2017) as a Translator: phone (domain A) <-> studio (domain B).

Defaults are the original reference's (junyanz/pytorch-CycleGAN-and-pix2pix, ``--model
cycle_gan``): ResNet-9 generators with stride-2 / transposed-conv resampling, 70x70
PatchGANs, instance norm, no dropout, N(0, 0.02) init, LSGAN, image pools of 50. The copy in
the CUT repository differs only in its defaults (anti-aliased resampling, Xavier init):
``antialias=True, antialias_up=True, init_type="xavier"`` reproduces it.

Names follow the reference: ``generator_a`` is G_A: A -> B (phone -> studio, the
translator), ``generator_b`` is G_B: B -> A; ``discriminator_a`` (D_A) judges domain B
(G_A's fakes vs real studio), ``discriminator_b`` (D_B) judges domain A.

Loss terms (unweighted, images in [-1, 1]):

- generator phase: ``gan_a`` (D_A(G_A(a)) -> 1), ``gan_b`` (D_B(G_B(b)) -> 1),
  ``cycle_a`` = |G_B(G_A(a)) - a|₁, ``cycle_b`` = |G_A(G_B(b)) - b|₁,
  ``identity_a`` = |G_A(b) - b|₁, ``identity_b`` = |G_B(a) - a|₁ (means);
- discriminator phase: ``d_a_real`` (D_A(b) -> 1), ``d_a_fake`` (D_A(pool_B(G_A(a))) -> 0),
  ``d_b_real`` (D_B(a) -> 1), ``d_b_fake`` (D_B(pool_A(G_B(b))) -> 0).

The reference weights (:meth:`CycleGAN.reference_loss_weights`): gan 1, cycle λ_A = λ_B = 10,
identity λ_idt·λ = 0.5·10 = 5 (the reference scales its identity weight by the cycle weight),
each discriminator's loss halved: 0.5 per D term. The generator phase comes first.

:meth:`forward_step` computes everything the generator phase needs (fakes, reconstructions
and the identity mappings, which the reference computes at the start of its G update from
the same, not yet updated, generators) in three generator calls instead of the reference's
six: G_A on [a; b], G_B on [b; a; G_A(a)], G_A on G_B(b). Instance norm is per image, so
batching changes nothing but the speed.
"""

from __future__ import annotations

import random
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from lift.components import Phase, Translator
from lift_i2i.cut import to_signed, to_unit
from lift_i2i.losses import l1_loss, lsgan_loss
from lift_i2i.networks import PatchDiscriminator, ResnetGenerator, init_weights
from lift_i2i.pool import ImagePool


class CycleGAN(Translator):
    """Two generators, two PatchGANs, cycle + identity losses, image pools of 50."""


    def __init__(
        self,
        ngf: int = 64,
        ndf: int = 64,
        n_blocks: int = 9,                  # --netG resnet_9blocks
        n_layers_d: int = 3,                # --netD basic: the 70x70 PatchGAN
        norm: str = "instance",             # --norm instance
        dropout: bool = False,              # cycle_gan sets no_dropout=True
        antialias: bool = False,            # original CycleGAN: stride-2 convs
        antialias_up: bool = False,         # original CycleGAN: transposed convs
        init_type: str = "normal",          # --init_type normal
        init_gain: float = 0.02,            # --init_gain
        identity_loss: bool = True,         # compute identity_a / identity_b (λ_idt > 0)
        pool_size: int = 50,                # --pool_size
        pool_seed: int | None = None,       # None: Python's global ``random`` (seed_everything)
    ):
        super().__init__()
        self.identity_loss = identity_loss
        self._per_sample_norm = norm != "batch"

        def generator() -> ResnetGenerator:
            return ResnetGenerator(3, 3, ngf, n_blocks, norm, dropout, antialias, antialias_up)

        def discriminator() -> PatchDiscriminator:
            return PatchDiscriminator(3, ndf, n_layers_d, norm, antialias)

        self.generator_a, self.generator_b = generator(), generator()
        self.discriminator_a, self.discriminator_b = discriminator(), discriminator()
        for net in (self.generator_a, self.generator_b, self.discriminator_a,
                    self.discriminator_b):
            init_weights(net, init_type, init_gain)
        rng = random.Random(pool_seed) if pool_seed is not None else None
        self.fake_b_pool = ImagePool(pool_size, rng)  # G_A's outputs, for D_A
        self.fake_a_pool = ImagePool(pool_size, rng)  # G_B's outputs, for D_B

    # The pools are training state (D sees their history): checkpointed, so that a resumed run
    # feeds D the fakes the uninterrupted one would (the reference does not save them).
    def get_extra_state(self) -> dict:
        state = {name: torch.cat(pool.images) if pool.images else torch.empty(0)
                 for name, pool in (("fake_b_pool", self.fake_b_pool),
                                    ("fake_a_pool", self.fake_a_pool))}
        if self.fake_b_pool.rng is not None:  # pool_seed: its own stream (else the global one,
            state["pool_rng"] = self.fake_b_pool.rng.getstate()  # saved with lift_rng)
        return state

    def set_extra_state(self, state: dict) -> None:
        for name in ("fake_b_pool", "fake_a_pool"):
            images = state.get(name)
            pool = getattr(self, name)
            pool.images = [] if images is None or images.numel() == 0 else list(images.split(1))
        if "pool_rng" in state and self.fake_b_pool.rng is not None:
            self.fake_b_pool.rng.setstate(state["pool_rng"])

    def phases(self) -> dict[str, Phase]:
        """G_A and G_B first, then D_A and D_B (the reference's order)."""
        generator = ("gan_a", "gan_b", "cycle_a", "cycle_b")
        if self.identity_loss:
            generator += ("identity_a", "identity_b")
        return {"generator": Phase(self.generator_parameters, self.generator_losses, generator),
                "discriminator": Phase(self.discriminator_parameters, self.discriminator_losses,
                                       ("d_a_real", "d_a_fake", "d_b_real", "d_b_fake"))}

    @staticmethod
    def reference_loss_weights() -> dict[str, float]:
        """Weights reproducing the reference objective (λ_A = λ_B = 10, λ_idt = 0.5)."""
        return {"gan_a": 1.0, "gan_b": 1.0, "cycle_a": 10.0, "cycle_b": 10.0,
                "identity_a": 5.0, "identity_b": 5.0,
                "d_a_real": 0.5, "d_a_fake": 0.5, "d_b_real": 0.5, "d_b_fake": 0.5}

    # --- training ----------------------------------------------------------------------------

    def _run(self, net: nn.Module, *parts: torch.Tensor) -> list[torch.Tensor]:
        """``net`` on each part; one batched call when the norm is per image."""
        if not self._per_sample_norm:
            return [net(p) for p in parts]
        return list(net(torch.cat(parts)).split([p.shape[0] for p in parts]))

    def forward_step(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        real_a, real_b = to_signed(batch["phone"]), to_signed(batch["studio"])
        idt_a = idt_b = None
        if self.identity_loss:
            fake_b, idt_a = self._run(self.generator_a, real_a, real_b)  # G_A(a), G_A(b)
            fake_a, idt_b, rec_a = self._run(self.generator_b, real_b, real_a, fake_b)
        else:
            (fake_b,) = self._run(self.generator_a, real_a)
            fake_a, rec_a = self._run(self.generator_b, real_b, fake_b)
        rec_b = self.generator_a(fake_a)
        return {"real_a": real_a, "real_b": real_b, "fake_a": fake_a, "fake_b": fake_b,
                "rec_a": rec_a, "rec_b": rec_b, "idt_a": idt_a, "idt_b": idt_b}

    def generator_losses(self, batch: Mapping[str, Any], outputs: Mapping[str, Any],
                         step: int = 0) -> dict[str, torch.Tensor]:
        o = outputs
        terms = {
            "gan_a": lsgan_loss(self.discriminator_a(o["fake_b"]), True),
            "gan_b": lsgan_loss(self.discriminator_b(o["fake_a"]), True),
            "cycle_a": l1_loss(o["rec_a"], o["real_a"]),
            "cycle_b": l1_loss(o["rec_b"], o["real_b"]),
        }
        if self.identity_loss:
            terms["identity_a"] = l1_loss(o["idt_a"], o["real_b"])
            terms["identity_b"] = l1_loss(o["idt_b"], o["real_a"])
        return terms

    def discriminator_losses(self, batch: Mapping[str, Any], outputs: Mapping[str, Any],
                             step: int = 0) -> dict[str, torch.Tensor]:
        # Pools are queried B first, then A, as in the reference (same random draws).
        fake_b = self.fake_b_pool.query(outputs["fake_b"].detach())
        pred_real, pred_fake = self._run(self.discriminator_a, outputs["real_b"], fake_b)
        terms = {"d_a_real": lsgan_loss(pred_real, True), "d_a_fake": lsgan_loss(pred_fake, False)}
        fake_a = self.fake_a_pool.query(outputs["fake_a"].detach())
        pred_real, pred_fake = self._run(self.discriminator_b, outputs["real_a"], fake_a)
        terms["d_b_real"] = lsgan_loss(pred_real, True)
        terms["d_b_fake"] = lsgan_loss(pred_fake, False)
        return terms

    def generator_parameters(self) -> Iterable[nn.Parameter]:
        return [*self.generator_a.parameters(), *self.generator_b.parameters()]

    def discriminator_parameters(self) -> Iterable[nn.Parameter]:
        return [*self.discriminator_a.parameters(), *self.discriminator_b.parameters()]

    # --- inference ---------------------------------------------------------------------------

    def translate(self, phone: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """G_A(phone) in [0, 1]. The mask is not used (CycleGAN translates the whole image)."""
        return to_unit(self.generator_a(to_signed(phone)))

    def visuals(self, batch: Mapping[str, Any], outputs: Mapping[str, Any]
                ) -> dict[str, torch.Tensor]:
        names = {"fake_studio": "fake_b", "cycled_phone": "rec_a", "fake_phone": "fake_a",
                 "cycled_studio": "rec_b"}
        return {k: to_unit(outputs[v].detach()) for k, v in names.items()}
